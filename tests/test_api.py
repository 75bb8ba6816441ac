"""model.cam: installation, argument handling and return types."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import ultralytics_cam
from ultralytics_cam import CamResult, MethodError, TargetError, UnsupportedModelError

from conftest import yaml_model


def test_import_adds_model_cam_and_install_is_idempotent():
    from ultralytics.engine.model import Model

    assert ultralytics_cam.is_installed()
    first = Model.__dict__["cam"]
    ultralytics_cam.install()
    ultralytics_cam.install()
    assert Model.__dict__["cam"] is first
    ultralytics_cam.uninstall()
    try:
        assert "cam" not in Model.__dict__
        assert not hasattr(yaml_model("yolo11n.yaml"), "cam")
    finally:
        ultralytics_cam.install()
    assert ultralytics_cam.is_installed()


@pytest.mark.parametrize("cls_name", ["YOLO", "RTDETR", "YOLOWorld", "YOLOE"])
def test_cam_is_a_method_of_every_model_class(cls_name):
    import ultralytics

    cls = getattr(ultralytics, cls_name)
    assert callable(cls.cam)
    assert cls.cam.__doc__


def test_returns_results_with_cam_attached(assets):
    model = yaml_model("yolo11n.yaml")
    results = model.cam([str(assets / "bus.jpg"), str(assets / "zidane.jpg")], conf=1e-4, imgsz=160, max_det=4)
    assert isinstance(results, list) and len(results) == 2
    for r in results:
        assert isinstance(r.cam, CamResult)
        n = len(r.boxes)
        assert n > 0
        assert r.cam.maps.shape == (n, *r.orig_shape)
        assert r.cam.maps.dtype == np.float32
        assert r.cam.maps.min() >= 0 and r.cam.maps.max() <= 1
        assert r.cam.heatmap.shape == r.orig_shape
        np.testing.assert_allclose(r.cam.heatmap, r.cam.maps.max(0))
        assert r.cam.method == "HiResCAM" and r.cam.target == "class" and r.cam.layers == [16, 19, 22]
        torch.testing.assert_close(r.cam.conf, r.boxes.conf.float())
        torch.testing.assert_close(r.cam.cls, r.boxes.cls.long())
        overlay = r.cam.plot()
        assert overlay.shape == (*r.orig_shape, 3) and overlay.dtype == np.uint8


def test_stream_returns_a_generator(assets):
    model = yaml_model("yolo11n.yaml")
    gen = model.cam(str(assets / "bus.jpg"), stream=True, conf=1e-4, imgsz=160, max_det=2)
    assert isinstance(gen, types.GeneratorType)
    (r,) = list(gen)
    assert isinstance(r.cam, CamResult)


def test_numpy_and_tensor_sources(assets):
    import cv2

    model = yaml_model("yolo11n.yaml")
    im = cv2.imread(str(assets / "bus.jpg"))
    (r,) = model.cam(im, conf=1e-4, imgsz=160, max_det=2)
    assert r.cam.maps.shape[1:] == im.shape[:2]
    x = torch.rand(1, 3, 160, 128)
    (r,) = model.cam(x, conf=1e-4, imgsz=160, max_det=2)
    assert r.cam.maps.shape[1:] == (160, 128)


def test_method_names_are_case_insensitive(assets):
    model = yaml_model("yolo11n.yaml")
    for name in ("hirescam", "GRADCAM", "gradcam++", "kpca-cam"):
        (r,) = model.cam(str(assets / "bus.jpg"), method=name, conf=1e-4, imgsz=128, max_det=1)
        assert len(r.cam) == 1
    assert r.cam.method == "KPCA_CAM"


def test_unknown_method_suggests_close_names():
    model = yaml_model("yolo11n.yaml")
    with pytest.raises(MethodError, match="HiResCAM") as e:
        model.cam(method="HiResCm")
    assert "Did you mean" in str(e.value)


def test_refused_method_says_why():
    with pytest.raises(MethodError, match=r"FullGrad.*not supported: FullGrad ignores the target layers"):
        yaml_model("yolo11n.yaml").cam(method="FullGrad")


def test_unknown_argument_gets_did_you_mean():
    with pytest.raises(ValueError, match=r"'methd' \(did you mean 'method'\?\) is not a valid argument"):
        yaml_model("yolo11n.yaml").cam(methd="GradCAM")


def test_ultralytics_arguments_are_validated_by_ultralytics():
    with pytest.raises((ValueError, TypeError), match="conf"):
        yaml_model("yolo11n.yaml").cam(conf="high")


@pytest.mark.parametrize("key", ["visualize", "augment", "embed"])
def test_incompatible_ultralytics_arguments_are_refused(key):
    with pytest.raises(ValueError, match=f"'{key}' cannot be used with CAM"):
        yaml_model("yolo11n.yaml").cam(**{key: True if key != "embed" else [1]})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 2}, "alpha=2 is not valid"),
        ({"colormap": "rainbowz"}, "colormap='rainbowz' is not an OpenCV colormap"),
        ({"renormalize": "yes"}, "renormalize='yes' is not valid"),
        ({"target": "boxx"}, "Did you mean 'box'"),
    ],
)
def test_bad_cam_options_name_the_option(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        yaml_model("yolo11n.yaml").cam(**kwargs)


def test_target_the_task_lacks_lists_valid_ones(assets):
    with pytest.raises(TargetError, match=r"target='mask' is not available for task 'detect'.*class, box, all"):
        yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), target="mask", imgsz=64)


def test_gradient_methods_on_an_exported_model_are_refused_with_drise_as_the_way_out():
    """Exports run DRISE (tests/test_drise_exports.py); gradient methods are refused before anything loads."""
    from ultralytics import YOLO

    model = yaml_model("yolo11n.yaml")
    fake = YOLO.__new__(YOLO)
    fake.__dict__.update(model.__dict__)
    fake.__dict__["model"] = "yolo11n.onnx"
    with pytest.raises(UnsupportedModelError, match=r"needs gradients.*onnx export.*method='DRISE'.*the \.pt weights"):
        ultralytics_cam.cam(fake)


def test_non_model_is_refused():
    with pytest.raises(TypeError, match="needs an Ultralytics model"):
        ultralytics_cam.cam(torch.nn.Conv2d(1, 1, 1))


def test_missing_source_uses_ultralytics_assets():
    results = yaml_model("yolo11n.yaml").cam(conf=1e-4, imgsz=64, max_det=1)
    assert {r.path.split("/")[-1] for r in results} >= {"bus.jpg", "zidane.jpg"}


def test_deprecated_ultralytics_keys_are_mapped_as_predict_maps_them(assets):
    """model.predict(half=True) works (Ultralytics maps it to quantize=16); model.cam accepts the same spelling."""
    from ultralytics_cam.config import split_kwargs

    _, rest = split_kwargs({"half": False, "line_thickness": 2, "method": "GradCAM"})
    assert rest.get("line_width") == 2 and "half" not in rest and "line_thickness" not in rest
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), half=False, conf=1e-4, imgsz=64, max_det=1)
    assert len(r.cam) == 1


def test_a_cam_run_leaves_out_the_tracker_that_model_track_registered():
    # model.track registers Ultralytics' trackers as functools.partial callbacks on the model; a later model.cam must
    # not run them (they reorder rows and keep state), while the user's own callbacks still run.
    from ultralytics.trackers import register_tracker

    from ultralytics_cam.api import _callbacks_for

    model = yaml_model("yolo11n.yaml")
    register_tracker(model, persist=False)

    def mine(predictor):
        return None

    model.add_callback("on_predict_start", mine)

    def module(f):
        return getattr(getattr(f, "func", f), "__module__", "")

    tracked = [f for fns in model.callbacks.values() for f in fns if module(f).startswith("ultralytics.trackers")]
    assert len(tracked) == 2  # on_predict_start and on_predict_postprocess_end
    kept = [f for fns in _callbacks_for(model).values() for f in fns]
    assert not [f for f in kept if module(f).startswith("ultralytics.trackers")]
    assert mine in kept
