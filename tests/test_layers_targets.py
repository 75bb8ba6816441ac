"""layers= and target= : resolution, errors, and that each target explains something different."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ultralytics_cam import LayerError, TargetError
from ultralytics_cam.layers import parse_layers

from conftest import yaml_model


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        (16, [16]),
        ([16, 19, 22], [16, 19, 22]),
        ("16,19,22", [16, 19, 22]),
        ("[16, 19, 22]", [16, 19, 22]),
        ("model.16", ["model.16"]),
        (["model.16", 19], ["model.16", 19]),
        ("-2", [-2]),
    ],
)
def test_parse_layers(spec, expected):
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["", [], 1.5, True, [None], {"a": 1}])
def test_parse_layers_rejects_bad_values(spec):
    with pytest.raises(LayerError, match="layers="):
        parse_layers(spec)


@pytest.mark.parametrize(
    ("layers", "labels"),
    [
        ([16], [16]),
        ("13,16", [13, 16]),
        ("model.16", ["model.16"]),
        (-9, [15]),
        (["model.16.m.0", 19], ["model.16.m.0", 19]),
    ],
)
def test_layer_choices_are_used(layers, labels, assets):
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), layers=layers, conf=1e-4, imgsz=128, max_det=2)
    assert r.cam.layers == labels
    assert r.cam.maps.max() > 0


def test_auto_choice_is_logged(assets, caplog):
    caplog.set_level(logging.INFO, logger="ultralytics.cam")
    yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=128, max_det=1, verbose=True)
    assert "layers=auto -> 16 (C3k2), 19 (C3k2), 22 (C3k2)" in caplog.text


@pytest.mark.parametrize("layers", [99, 23, "model.99", "model.23.cv2", "nonsense.path"])
def test_bad_layer_lists_the_valid_ones(layers, assets):
    with pytest.raises(LayerError) as e:
        yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), layers=layers, imgsz=128)
    msg = str(e.value)
    assert "Valid layers:" in msg
    assert "16  C3k2" in msg and "1x64x16x16" in msg  # index, module type and output shape at imgsz
    assert "auto" in msg


def test_different_layers_give_different_maps(assets):
    model = yaml_model("yolo11n.yaml")
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 3}
    (a,) = model.cam(str(assets / "bus.jpg"), layers=[4], **kw)
    (b,) = model.cam(str(assets / "bus.jpg"), layers=[16], **kw)
    assert not np.allclose(a.cam.maps, b.cam.maps)


TASK_TARGETS = {
    "yolo11n.yaml": ("class", "box", "all"),
    "yolo11n-seg.yaml": ("class", "box", "all", "mask"),
    "yolo11n-pose.yaml": ("class", "box", "all", "keypoints"),
    "yolo11n-obb.yaml": ("class", "box", "all", "angle"),
    "yolo11n-cls.yaml": ("class",),
    "rtdetr-l.yaml": ("class", "box", "all"),
}


@pytest.mark.parametrize("name", list(TASK_TARGETS))
def test_every_target_of_every_task(name, assets):
    model = yaml_model(name, seed=2 if "seg" in name else 0)
    if name.startswith(
        "rtdetr"
    ):  # RT-DETR initialises its box regressors to exactly zero: boxes = anchors, no gradient
        for mlp in model.model.model[-1].dec_bbox_head:
            torch.nn.init.normal_(mlp.layers[-1].weight, std=0.01)
    kw = {"conf": 1e-3 if "rtdetr" in name else 1e-5, "imgsz": 160, "max_det": 3, "retina_masks": True}
    maps = {}
    for target in TASK_TARGETS[name]:
        (r,) = model.cam(str(assets / "bus.jpg"), target=target, **kw)
        assert r.cam.target == target
        assert len(r.cam) > 0 and r.cam.maps.max() > 0
        maps[target] = r.cam.maps
    if len(maps) > 1:  # box and mask/keypoints/angle are different questions than class
        others = [t for t in maps if t not in ("class", "all")]
        assert all(not np.allclose(maps["class"], maps[t]) for t in others)
    for bad in {"class", "box", "all", "mask", "keypoints", "angle"} - set(TASK_TARGETS[name]):
        with pytest.raises(
            TargetError, match=f"target='{bad}' is not available.*Valid targets: {', '.join(TASK_TARGETS[name])}"
        ):
            model.cam(str(assets / "bus.jpg"), target=bad, **kw)
