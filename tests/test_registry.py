"""The generic registry (names, lookup, did-you-mean, duplicates, provenance) and options resolved once per run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import ultralytics_cam
from ultralytics_cam import CamConfig, MethodError, PluginError
from ultralytics_cam.registry import Registry, canonical

from conftest import yaml_model


@dataclass(frozen=True)
class Thing:
    name: str
    provider: str = field(default="", compare=False)


def test_names_are_looked_up_as_users_type_them():
    reg: Registry[Thing] = Registry("method", MethodError, "CAM method")
    reg.add(Thing("GradCAMPlusPlus"), "ultralytics-cam")
    reg.add(Thing("HiResCAM"), "ultralytics-cam")
    for typed in ("GradCAMPlusPlus", "gradcam++", "grad-cam++", "Grad CAM PlusPlus", "GRADCAM_PLUSPLUS"):
        assert reg.get(typed).name == "GradCAMPlusPlus"
    assert canonical("Grad-CAM++") == "gradcamplusplus"
    assert reg.find("nothing") is None and reg.find(3) is None
    assert "hirescam" in reg and len(reg) == 2
    assert reg.names() == ["GradCAMPlusPlus", "HiResCAM"]  # registration order


def test_unknown_names_raise_the_kind_error_with_close_matches_and_the_valid_names():
    reg: Registry[Thing] = Registry("target", MethodError, "target")
    reg.add(Thing("box"), "a")
    reg.add(Thing("class"), "a")
    with pytest.raises(
        MethodError, match=r"target='boxx' is not a known target\. Did you mean 'box'\? Valid targets: box, class\."
    ):
        reg.get("boxx")
    with pytest.raises(MethodError, match=r"Valid targets: class\.$"):
        reg.get("zzz", valid=["class"])


def test_duplicates_name_both_providers_and_carry_the_second_as_an_attribute():
    reg: Registry[Thing] = Registry("writer")
    stored = reg.add(Thing("heatmap"), "ultralytics-cam")
    assert stored.provider == "ultralytics-cam"  # provenance is filled in by the registry
    with pytest.raises(
        PluginError, match="writer 'HeatMap' is registered twice: by 'ultralytics-cam' and by 'dup'"
    ) as e:
        reg.add(Thing("HeatMap"), "dup")
    assert e.value.plugin == "dup"
    assert reg.names() == ["heatmap"]  # the clash did not replace the first


def test_the_method_target_and_layers_are_resolved_once_per_run(monkeypatch, assets):
    # CamConfig resolves them; the engine receives the config and looks nothing up again.
    from ultralytics_cam import config, layers, plugins

    calls = {"method": 0, "target": 0, "layers": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(plugins, "get_method_spec", counting("method", plugins.get_method_spec))
    monkeypatch.setattr(plugins, "get_target_spec", counting("target", plugins.get_target_spec))
    monkeypatch.setattr(config, "parse_layers", counting("layers", layers.parse_layers))
    monkeypatch.setattr(layers, "parse_layers", counting("layers", layers.parse_layers))
    calls["lookups"] = 0  # every lookup by name ends in Registry.find, whoever calls it
    monkeypatch.setattr(Registry, "find", counting("lookups", Registry.find))
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), imgsz=96, conf=1e-4, max_det=2, layers="16,19")
    assert len(r.cam) == 2
    assert calls == {"method": 1, "target": 1, "layers": 1, "lookups": 2}


def test_a_depth_model_looks_up_only_the_target_its_head_reads_class_as(monkeypatch, assets):
    # The one lookup the config cannot make: on depth models the default target="class" means "near" (a property of
    # the head, known once the model is loaded). The layers see the resolved name too.
    from ultralytics_cam.methods.base import LayerContext

    looked_up: list[object] = []
    real_find = Registry.find

    def find(self, name):
        looked_up.append(name)
        return real_find(self, name)

    seen: list[str] = []
    real_init = LayerContext.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.target)

    monkeypatch.setattr(Registry, "find", find)
    monkeypatch.setattr(LayerContext, "__init__", init)
    (r,) = yaml_model("yolo26n-depth.yaml").cam(str(assets / "bus.jpg"), imgsz=64)
    assert looked_up == ["HiResCAM", "class", "near"]
    assert r.cam.target == "near" and set(seen) == {"near"}


def test_a_config_holds_its_resolved_specs_and_pickles_as_options():
    import pickle

    c = CamConfig(method="gradcam++", target="Box", layers="16, 19")
    assert c.method_spec.name == "GradCAMPlusPlus" and c.target_spec.name == "box" and c.target == "box"
    assert c.layer_spec == [16, 19]
    assert "method_spec" not in c.to_dict() and set(c.to_dict()) == set(ultralytics_cam.CAM_DEFAULTS)
    back = pickle.loads(pickle.dumps(c))
    assert back == c and back.method_spec == c.method_spec


class _OnlyCam:
    """A plugin whose result hook takes fewer arguments than the spec (pluggy allows it)."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @ultralytics_cam.hookimpl
    def ultralytics_cam_result_ready(self, cam):
        self.seen.append(cam)


class _Duplicate:
    @ultralytics_cam.hookimpl
    def ultralytics_cam_register_methods(self):
        from ultralytics_cam.methods import HiResCAM

        return [ultralytics_cam.MethodSpec.of(HiResCAM)]


@pytest.fixture
def fresh_plugins():
    from ultralytics_cam import plugins

    plugins.reset()
    yield plugins
    plugins.reset()


def test_a_result_hook_may_take_fewer_arguments_than_the_spec(fresh_plugins):
    plugin = _OnlyCam()
    fresh_plugins.get_plugin_manager().register(plugin, name="only-cam")
    fresh_plugins.call_result_ready(result="r", cam="c", config="cfg")
    assert plugin.seen == ["c"]


def test_a_registry_that_fails_is_not_recorded_again_on_every_retry(fresh_plugins):
    fresh_plugins.get_plugin_manager().register(_Duplicate(), name="dup")
    from ultralytics_cam.plugins.manager import _infos

    _infos["dup"] = fresh_plugins.manager.PluginInfo("dup")
    for _ in range(3):
        infos = {i.name: i for i in fresh_plugins.plugin_infos()}
    assert "registered twice" in (infos["dup"].error or "")
    builtins = infos["ultralytics-cam"].registered
    assert len(builtins["target"]) == len(fresh_plugins.target_registry())  # recorded once, not once per retry
    assert "method" not in builtins  # the method registry never completed


def test_yolo_cam_plugins_lists_everything_else_when_two_plugins_clash(fresh_plugins):
    from ultralytics_cam.listings import plugins_text

    fresh_plugins.get_plugin_manager().register(_Duplicate(), name="dup")
    text = plugins_text()
    assert "methods: ERROR: method 'HiResCAM' is registered twice" in text
    assert "targets (" in text and "writers (" in text  # the other groups are still listed
