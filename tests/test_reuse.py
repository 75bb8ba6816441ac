"""``model.cam`` reuses its CAM predictor while model and options are unchanged, and never anything stale."""

from __future__ import annotations

import copy

import torch
from test_invariants import assert_unchanged, snapshot

from ultralytics_cam import api

from conftest import yaml_model

KW = {"conf": 1e-4, "imgsz": 128, "max_det": 3, "verbose": False}


def kept(model):
    entry = api._REUSED.get(model)
    return None if entry is None else entry[1]


def test_repeated_calls_reuse_one_predictor_and_give_the_same_maps(assets):
    model = yaml_model("yolo11n.yaml")
    src = str(assets / "bus.jpg")
    (a,) = model.cam(src, **KW)
    first = kept(model)
    (b,) = model.cam(src, **KW)
    assert first is not None and kept(model) is first
    assert model.predictor is None  # never stored where model.predict looks
    torch.testing.assert_close(a.cam.maps_input, b.cam.maps_input, rtol=0, atol=0)


def test_a_changed_option_gives_a_fresh_predictor(assets):
    model = yaml_model("yolo11n.yaml")
    src = str(assets / "bus.jpg")
    model.cam(src, **KW)
    first = kept(model)
    (r,) = model.cam(src, **{**KW, "max_det": 2})
    assert kept(model) is not first and len(r.cam) == 2
    model.cam(src, method="GradCAM", **KW)
    assert kept(model) is not first


def test_changed_or_reloaded_weights_give_a_fresh_predictor(assets):
    model = yaml_model("yolo11n.yaml")
    src = str(assets / "bus.jpg")
    (before,) = model.cam(src, **KW)
    first = kept(model)
    state = copy.deepcopy(model.model.state_dict())
    with torch.no_grad():  # weights changed in place, as load_state_dict does
        for p in model.model.parameters():
            p.mul_(0.5)
    (changed,) = model.cam(src, **KW)
    assert kept(model) is not first
    assert not torch.equal(changed.boxes.conf, before.boxes.conf)
    second = kept(model)
    model.model = copy.deepcopy(model.model)  # a reloaded network object
    model.model.load_state_dict(state)
    (reloaded,) = model.cam(src, **KW)
    assert kept(model) is not second
    torch.testing.assert_close(reloaded.boxes.conf, before.boxes.conf)


def test_reuse_leaves_the_model_and_predict_unchanged(assets):
    model = yaml_model("yolo11n.yaml")
    src = str(assets / "bus.jpg")
    plain = model.predict(src, **KW)[0]
    before = snapshot(model)
    for _ in range(3):
        model.cam(src, **KW)
    assert_unchanged(model, before)
    assert torch.equal(model.predict(src, **KW)[0].boxes.data, plain.boxes.data)


def test_saving_runs_and_open_streams_are_never_reused(assets, tmp_path):
    model = yaml_model("yolo11n.yaml")
    src = str(assets / "bus.jpg")
    model.cam(src, save=True, project=str(tmp_path), **KW)
    assert kept(model) is None  # a saving run has its own folder and summary
    stream = model.cam([src, src], stream=True, **KW)
    next(stream)  # the generator now holds the predictor's lock
    held = kept(model)
    (r,) = model.cam(src, **KW)  # a second call while the stream is open must not wait for it
    assert kept(model) is not held and len(r.cam) == 3
    stream.close()
