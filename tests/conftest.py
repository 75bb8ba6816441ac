"""Shared test setup: offline Ultralytics, a private config dir, YAML-built and trained models, synthetic images."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Must happen before Ultralytics is imported anywhere: no downloads, no writes to the user's settings.
os.environ["YOLO_OFFLINE"] = "1"
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ucam-yolo-config-"))
os.environ.setdefault("YOLO_VERBOSE", "False")

import numpy as np
import pytest
import torch

import ultralytics_cam  # noqa: F401  (adds Model.cam, as a user's import would)
from ultralytics_cam.cli import DEMO_MODEL

ROOT = Path(__file__).resolve().parents[1]


def relative_runs_dir(config_dir: str | Path) -> None:
    """Write Ultralytics settings into ``config_dir`` whose ``runs_dir`` is the relative "runs", for a subprocess.

    Ultralytics' default ``runs_dir`` is ``<git root>/runs`` when the ultralytics package itself sits inside a git
    checkout (a CI clone with its .venv inside), else ``./runs``; the CLI tests read the outputs under their cwd.
    (In-process runs under pytest go to Ultralytics' own test folder, so tests pass ``project=`` there.)
    """
    from ultralytics.utils import SettingsManager

    SettingsManager(file=Path(config_dir) / "Ultralytics" / "settings.json").update(runs_dir="runs")  # its layout


#: The small trained test models (scripts/make_test_models.py) and their metrics.json. They are not installed with
#: the package, except detect.pt: it is ``yolo-cam demo``'s model and ships in the wheel (``DEMO_MODEL``).
MODELS = ROOT / "tests" / "models"


def model_file(task: str) -> Path:
    """The trained test model of ``task``: the demo model for detect, else ``tests/models/<task>.pt``."""
    return DEMO_MODEL if task == "detect" else MODELS / f"{task}.pt"


TASKS = ("detect", "segment", "pose", "obb", "classify")


def require(condition: bool, reason: str) -> None:
    """Skip the calling test unless ``condition`` holds; in CI (``CI`` set) fail instead.

    For what a user's machine may lack (an optional extra, Chromium, a CJK font): CI installs all of it, so there a
    test never passes by being skipped.
    """
    __tracebackhide__ = True  # report the caller's line
    if condition:
        return
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"cannot be skipped in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def cli_env(tmp_path: Path, block_downloads: bool = True) -> dict[str, str]:
    """The environment of a ``yolo-cam`` (or other Python) subprocess: offline, its own Ultralytics settings (in
    ``tmp_path / "yolo-config"``, with runs/ under the subprocess's cwd), outside pytest's and GitHub's detection.

    ``block_downloads`` points the HTTP(S) proxies at a closed port, so a download fails fast even where there is a
    network; pass False for a process that talks to a local server (a Ray cluster) through those libraries.
    """
    relative_runs_dir(tmp_path / "yolo-config")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_CURRENT_TEST", "GITHUB_ACTIONS"}}
    env.update(YOLO_OFFLINE="1", YOLO_CONFIG_DIR=str(tmp_path / "yolo-config"), YOLO_VERBOSE="False")
    if block_downloads:
        env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
    return env


def pytest_report_header(config):
    """Print the versions the run used."""
    from importlib.metadata import version

    import pytorch_grad_cam  # noqa: F401
    import ultralytics

    return f"ultralytics {ultralytics.__version__}, torch {torch.__version__}, grad-cam {version('grad-cam')}"


@pytest.fixture(autouse=True)
def _seed():
    """Deterministic weights for YAML-built models and deterministic RandomCAM."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """Anything a test saves under a relative ``runs/`` lands in its own temporary folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def assets() -> Path:
    """Ultralytics' bundled sample photographs (bus.jpg, zidane.jpg)."""
    from ultralytics.utils import ASSETS

    return ASSETS


def yaml_model(name: str, seed: int = 0, **kwargs):
    """Build a model from one of Ultralytics' own YAML files (random weights, nothing downloaded)."""
    from ultralytics import RTDETR, YOLO

    torch.manual_seed(seed)
    return RTDETR(name) if name.startswith("rtdetr") else YOLO(name, **kwargs)


def tiny_detector():
    """yolo11n.yaml with seeded random weights and class biases drawn around 0, so every image has confident
    predictions to explain (the default bias prior keeps random-weight scores near 1e-5, below any threshold)."""
    model = yaml_model("yolo11n.yaml", seed=0)
    gen = torch.Generator().manual_seed(0)
    for branch in model.model.model[-1].cv3:
        bias = branch[-1].bias
        bias.data = torch.randn(bias.shape, generator=gen) * 2
    return model


def trained(task: str):
    """Load the project's small model trained on synthetic shapes for ``task`` (see scripts/make_test_models.py)."""
    from ultralytics import YOLO

    return YOLO(str(model_file(task)))


#: Export formats the tests run (``[export]`` extra); OpenVINO only where its wheel installs.
EXPORT_FORMATS = ("onnx", "torchscript", "openvino")
#: The Python module each format needs, to skip (locally) or fail (CI) with the extra's name.
_EXPORT_MODULES = {"onnx": "onnxruntime", "torchscript": "torch", "openvino": "openvino"}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(task, format)``: the trained test model of ``task`` exported by Ultralytics (cached per session).

    The model is copied into a session folder first, since Ultralytics writes an export beside its weights. Exports
    run once per (task, format) and are shared by every test of the session.
    """
    import importlib.util
    import shutil
    import warnings

    folder = tmp_path_factory.mktemp("exports")
    done: dict[tuple[str, str], Path] = {}

    def export(task: str, fmt: str) -> Path:
        module = _EXPORT_MODULES[fmt]
        require(
            importlib.util.find_spec(module) is not None, f"{fmt} export needs pip install 'ultralytics-cam[export]'"
        )
        key = (task, fmt)
        if key not in done:
            from ultralytics import YOLO

            weights = folder / f"{task}.pt"
            if not weights.exists():
                shutil.copy(model_file(task), weights)
            imgsz = 96 if task == "classify" else 160  # the size each test model was trained at
            with warnings.catch_warnings():  # the exporters' own deprecation and tracer warnings: setup, not the test
                warnings.simplefilter("ignore")
                done[key] = Path(YOLO(str(weights)).export(format=fmt, imgsz=imgsz, verbose=False))
        return done[key]

    return export


@pytest.fixture(scope="session")
def shapes():
    """The synthetic-shape generator the test models were trained on."""
    import synthetic_shapes

    return synthetic_shapes


def render(task: str, seed: int, imgsz: int = 160):
    """Render one synthetic image with known objects (ground truth for localisation tests)."""
    import synthetic_shapes

    return synthetic_shapes.render_image(task, np.random.default_rng(seed), imgsz)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster (2 CPUs) for the whole test session; yields its address (for RAY_ADDRESS)."""
    import importlib.util

    hint = 'engine=ray needs the [ray] extra: pip install "ultralytics-cam[ray]"'
    require(importlib.util.find_spec("ray") is not None, hint)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
