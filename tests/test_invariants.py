"""The model is left exactly as it was: weights, flags, hooks, caches, predictor, and later predictions."""

from __future__ import annotations

import pytest
import torch

from ultralytics_cam import LayerError

from conftest import yaml_model


def snapshot(model):
    net = model.model
    return {
        "state": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in net.named_parameters()},
        "training": {k: m.training for k, m in net.named_modules()},
        "predictor": model.predictor,
        "callbacks": {k: list(v) for k, v in model.callbacks.items()},
        "overrides": dict(model.overrides),
    }


def hooks(module):
    return [
        (name, kind)
        for name, m in module.named_modules()
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
        if getattr(m, kind)
    ]


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(after["state"][k], v), k
    assert after["requires_grad"] == before["requires_grad"]
    assert after["training"] == before["training"]
    assert after["predictor"] is before["predictor"]
    assert after["callbacks"] == before["callbacks"]
    assert after["overrides"] == before["overrides"]
    assert hooks(model.model) == []
    for t in list(model.model.parameters()) + list(model.model.buffers()):
        assert not t.is_inference()
    head = model.model.model[-1]
    for name in ("anchors", "strides"):
        if isinstance(getattr(head, name, None), torch.Tensor):
            assert not getattr(head, name).is_inference()


@pytest.mark.parametrize("name", ["yolo11n.yaml", "yolo11n-seg.yaml", "yolo26n-pose.yaml", "yolo11n-cls.yaml"])
def test_model_is_unchanged_and_predict_identical(name, assets):
    model = yaml_model(name)
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 5, "verbose": False}
    src = str(assets / "bus.jpg")
    plain_before = model.predict(src, **kw)[0]
    before = snapshot(model)
    model.cam(src, method="GradCAM", **kw)
    model.cam(src, method="ScoreCAM", **kw) if name == "yolo11n-cls.yaml" else None
    assert_unchanged(model, before)
    plain_after = model.predict(src, **kw)[0]
    if plain_before.boxes is not None:
        assert torch.equal(plain_before.boxes.data, plain_after.boxes.data)
    if plain_before.probs is not None:
        assert torch.equal(plain_before.probs.data, plain_after.probs.data)
    if plain_before.masks is not None:
        assert torch.equal(plain_before.masks.data, plain_after.masks.data)
    if plain_before.keypoints is not None:
        assert torch.equal(plain_before.keypoints.data, plain_after.keypoints.data)


def test_requires_grad_false_models_stay_false(assets):
    model = yaml_model("yolo11n.yaml")
    for p in model.model.parameters():
        p.requires_grad_(False)
    before = snapshot(model)
    (r,) = model.cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=128, max_det=2)
    assert r.cam.maps.max() > 0  # gradients reached the layers although no parameter requires grad
    assert_unchanged(model, before)


@pytest.mark.parametrize("head_replay", [True, False])
def test_no_hooks_left_after_an_error(assets, monkeypatch, head_replay):
    """A method that fails, on the local head replay path and on the dense path."""
    from ultralytics_cam.methods.gradcam import HiResCAM

    def boom(self, *args):
        raise RuntimeError("boom")

    monkeypatch.setattr(HiResCAM, "local_layer_map" if head_replay else "layer_map", boom)
    model = yaml_model("yolo11n.yaml")
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        model.cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=128, max_det=2, head_replay=head_replay)
    assert_unchanged(model, before)


def test_engine_removes_its_hooks_when_the_forward_fails(assets):
    """A layer error raised inside the forward leaves no hook on the predictor's network either."""
    from ultralytics_cam.config import CamConfig
    from ultralytics_cam.predictor import cam_predictor_class

    model = yaml_model("yolo11n.yaml")
    cls = cam_predictor_class(model._smart_load("predictor"))
    predictor = cls(overrides={"imgsz": 128, "conf": 1e-4, "mode": "predict", "verbose": False})
    predictor.cam_config = CamConfig(layers="model.23.cv2.0")  # inside the head: refused before any hook
    with pytest.raises(LayerError):
        predictor.setup_model(model.model, verbose=False)
    predictor.cam_config = CamConfig(layers=[10])  # C2PSA outputs a tensor: accepted
    predictor.setup_model(model.model, verbose=False)
    net = predictor.model.model
    engine = predictor.cam_engine
    x = torch.rand(1, 3, 128, 128)
    engine.forward(x)
    assert hooks(net) == []
    handle = net.model[10].register_forward_hook(lambda m, i, o: (o, o))  # now layer 10 returns a tuple
    with pytest.raises(LayerError, match="not a \\(B, C, H, W\\) feature map"):
        engine.forward(x)
    handle.remove()
    assert hooks(net) == []
    assert torch.is_grad_enabled()
