"""Plugins: hook specifications, entry-point discovery, provenance, duplicates, broken and blocked plugins."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ultralytics_cam
from ultralytics_cam import MethodError, PluginError, TargetError, hookimpl
from ultralytics_cam.plugins import (
    get_plugin_manager,
    hookspecs,
    plugin_infos,
    registered_method_specs,
    registered_target_specs,
    registered_writer_specs,
    reset,
)

from conftest import ROOT, cli_env, yaml_model

EXAMPLE = ROOT / "examples" / "plugin"


def install_fake_dist(site: Path, dist: str, module_dir: Path, entry_points: dict[str, str]) -> None:
    """Make ``dist`` look pip-installed: a .dist-info with METADATA and entry_points.txt on ``sys.path``."""
    info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ultralytics_cam]\n{lines}\n")


@pytest.fixture(autouse=True)
def fresh_plugins():
    reset()
    yield
    reset()


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    site = tmp_path / "site"
    install_fake_dist(site, "ucam-example-plugin", EXAMPLE, {"example": "ucam_example_plugin"})
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))
    reset()
    return site


#: What ``import ultralytics_cam`` must not import (no import-time side effects beyond adding Model.cam): the optional
#: extras and the heavy libraries only some commands need. cv2 is not listed: Ultralytics itself imports it, and
#: importing Ultralytics' Model is what adding Model.cam takes.
NOT_AT_IMPORT = ("gradio", "ray", "matplotlib", "pytorch_grad_cam")


def test_plugin_manager_is_built_lazily_not_at_import():
    """In a fresh interpreter, ``import ultralytics_cam`` builds no plugin manager and imports none of NOT_AT_IMPORT."""
    code = "import ultralytics_cam, sys; from ultralytics_cam.plugins import manager; "
    code += f"print(manager._manager is None, *(m in sys.modules for m in {NOT_AT_IMPORT!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    assert out.stdout.split() == ["True"] + ["False"] * len(NOT_AT_IMPORT), dict(
        zip(["manager not built yet", *NOT_AT_IMPORT], out.stdout.split())
    )


def test_builtins_are_registered_through_the_hooks():
    impls = get_plugin_manager().hook.ultralytics_cam_register_methods.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["ultralytics-cam"]
    methods = {s.name: s for s in registered_method_specs()}
    assert methods["HiResCAM"].provider == "ultralytics-cam"
    assert {"class", "box", "all", "mask", "keypoints", "angle"} <= {s.name for s in registered_target_specs()}


def test_hook_ultralytics_cam_register_methods(example_installed, assets):
    spec = {s.name: s for s in registered_method_specs()}["AbsGradCAM"]
    assert spec.provider == "example"
    info = {i.name: i for i in plugin_infos()}["example"]
    assert (info.dist, info.version, info.error) == ("ucam-example-plugin", "0.1.0", None)
    assert info.registered == {"method": ["AbsGradCAM"], "target": ["margin"], "writer": ["peaks"]}
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), method="absgradcam", conf=1e-4, imgsz=128, max_det=2)
    assert r.cam.method == "AbsGradCAM" and len(r.cam) == 2 and r.cam.maps.max() > 0


def test_hook_ultralytics_cam_register_targets(example_installed, assets):
    spec = {s.name: s for s in registered_target_specs()}["margin"]
    assert spec.provider == "example"
    model = yaml_model("yolo11n.yaml")
    kw = {"conf": 1e-4, "imgsz": 128, "max_det": 2}
    (r,) = model.cam(str(assets / "bus.jpg"), target="margin", **kw)
    (c,) = model.cam(str(assets / "bus.jpg"), target="class", **kw)
    assert r.cam.target == "margin" and r.cam.maps.max() > 0
    assert not np.allclose(r.cam.maps, c.cam.maps)  # a different question than the class logit alone
    with pytest.raises(
        TargetError, match=r"target='margin' is not available for task 'classify'.*Valid targets: class"
    ):
        yaml_model("yolo11n-cls.yaml").cam(str(assets / "bus.jpg"), target="margin", imgsz=64)


def test_hook_ultralytics_cam_register_writers(example_installed, assets, tmp_path):
    assert "peaks" in {s.name for s in registered_writer_specs()}
    yaml_model("yolo11n.yaml").cam(
        str(assets / "bus.jpg"), save=True, project=str(tmp_path / "runs"), conf=1e-4, imgsz=128, max_det=2
    )
    peaks = list((tmp_path / "runs").rglob("peaks.csv"))
    assert len(peaks) == 1
    rows = peaks[0].read_text().splitlines()
    assert rows[0] == "index,class,confidence,peak_x,peak_y,energy_in_box" and len(rows) == 3


def test_hook_ultralytics_cam_result_ready(assets):
    seen = []

    class Spy:
        @hookimpl
        def ultralytics_cam_result_ready(self, result, cam, config):
            seen.append((result, cam, config.method))

    class Broken:
        @hookimpl
        def ultralytics_cam_result_ready(self, result, cam, config):
            raise RuntimeError("broken plugin")

    get_plugin_manager().register(Spy(), name="spy")
    get_plugin_manager().register(Broken(), name="broken")
    results = yaml_model("yolo11n.yaml").cam(
        [str(assets / "bus.jpg"), str(assets / "zidane.jpg")], conf=1e-4, imgsz=96, max_det=1
    )
    assert [(r, r.cam, "HiResCAM") for r in results] == seen  # called once per image, the broken one did not stop it


def test_duplicate_names_are_refused_naming_both_providers(tmp_path, monkeypatch):
    (tmp_path / "dup_plugin.py").write_text(
        textwrap.dedent(
            """
            from ultralytics_cam import MethodSpec, hookimpl
            from ultralytics_cam.methods import HiResCAM

            @hookimpl
            def ultralytics_cam_register_methods():
                return [MethodSpec.of(HiResCAM)]
            """
        )
    )
    install_fake_dist(tmp_path / "site", "dup-plugin", tmp_path, {"dup": "dup_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    reset()
    with pytest.raises(
        PluginError, match="method 'HiResCAM' is registered twice: by 'ultralytics-cam' and by 'dup'"
    ) as e:
        registered_method_specs()
    assert e.value.plugin == "dup"
    assert {i.name: i for i in plugin_infos()}["dup"].error == str(e.value)  # found by the attribute, not the text
    monkeypatch.setenv("ULTRALYTICS_CAM_BLOCK_PLUGINS", "dup")
    reset()
    assert "HiResCAM" in {s.name for s in registered_method_specs()}


def test_broken_plugins_are_reported_and_builtins_keep_working(tmp_path, monkeypatch, caplog, assets):
    (tmp_path / "crash_on_import.py").write_text("raise ImportError('missing dependency: foo')\n")
    (tmp_path / "crash_in_hook.py").write_text(
        "from ultralytics_cam import hookimpl\n\n@hookimpl\ndef ultralytics_cam_register_methods():\n    1 / 0\n"
    )
    install_fake_dist(tmp_path / "site", "bad-plugins", tmp_path, {"imp": "crash_on_import", "hook": "crash_in_hook"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    reset()
    import logging

    caplog.set_level(logging.WARNING, logger="ultralytics.cam")
    assert "HiResCAM" in {s.name for s in registered_method_specs()}
    infos = {i.name: i for i in plugin_infos()}
    assert infos["imp"].error == "ImportError: missing dependency: foo"
    assert "ZeroDivisionError" in infos["hook"].error
    assert "plugin 'imp' (bad-plugins) failed to load" in caplog.text
    assert "plugin 'hook' failed in ultralytics_cam_register_methods" in caplog.text
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=96, max_det=1)
    assert len(r.cam) == 1


def test_plugins_can_be_disabled_or_blocked(example_installed, monkeypatch):
    assert "AbsGradCAM" in {s.name for s in registered_method_specs()}
    monkeypatch.setenv("ULTRALYTICS_CAM_DISABLE_PLUGINS", "1")
    reset()
    assert "AbsGradCAM" not in {s.name for s in registered_method_specs()}
    monkeypatch.delenv("ULTRALYTICS_CAM_DISABLE_PLUGINS")
    from ultralytics_cam.plugins import block_plugin

    block_plugin("example")
    try:
        assert "AbsGradCAM" not in {s.name for s in registered_method_specs()}
        assert {i.name: i for i in plugin_infos()}["example"].error == "blocked"
        with pytest.raises(MethodError, match="not a known CAM method"):
            yaml_model("yolo11n.yaml").cam(method="AbsGradCAM")
    finally:
        from ultralytics_cam.plugins import manager

        manager._blocked.discard("example")


def test_unknown_names_get_close_matches(example_installed):
    with pytest.raises(MethodError, match="Did you mean 'AbsGradCAM'"):
        ultralytics_cam.CamConfig(method="AbsGradCM")
    with pytest.raises(TargetError, match="Did you mean 'margin'"):
        ultralytics_cam.CamConfig(target="margn")


def hookspec_names():
    return [n for n, f in vars(hookspecs).items() if n.startswith("ultralytics_cam_") and callable(f)]


def test_every_hookspec_has_a_test():
    tests = {n for n in globals() if n.startswith("test_hook_")}
    assert {f"test_hook_{n}" for n in hookspec_names()} <= tests


def test_every_hookspec_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    for name in hookspec_names():
        sig = inspect.signature(getattr(hookspecs, name))
        params = ", ".join(sig.parameters)
        assert f"{name}({params})" in doc, name


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def test_example_plugin_end_to_end_through_yolo_cam(tmp_path):
    """The example plugin 'installed' (a .dist-info with its entry point on PYTHONPATH) is listed by ``yolo-cam
    plugins`` with its distribution and version, and its method, target and writer work in ``yolo-cam predict``."""
    import json

    site = tmp_path / "site"
    install_fake_dist(site, "ucam-example-plugin", EXAMPLE, {"example": "ucam_example_plugin"})
    env = cli_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE), env.get("PYTHONPATH", "")])
    script = Path(sys.executable).parent / "yolo-cam"

    def run(*args):
        return subprocess.run(
            [str(script), *args], env=env, cwd=tmp_path, check=False, capture_output=True, text=True, timeout=300
        )

    listing = run("plugins")
    assert listing.returncode == 0, listing.stderr
    line = next(s for s in listing.stdout.splitlines() if s.strip().startswith("example "))
    assert "ucam-example-plugin 0.1.0" in line and "1 method, 1 target, 1 writer" in line
    assert "AbsGradCAM" in listing.stdout and "margin" in listing.stdout and "peaks" in listing.stdout

    assets = ROOT / "ultralytics_cam" / "assets"
    proc = run(
        "predict",
        f"model={assets / 'models' / 'detect.pt'}",
        f"source={assets / 'demo' / 'shapes_2.png'}",
        "method=AbsGradCAM",
        "target=margin",
        f"project={tmp_path / 'runs'}",
    )
    assert proc.returncode == 0, proc.stderr
    folder = next((tmp_path / "runs").rglob("shapes_2"))
    assert (folder / "peaks.csv").read_text().startswith("index,class,confidence")
    record = json.loads((folder / "cam.json").read_text())
    assert (record["method"], record["target"]) == ("AbsGradCAM", "margin")
