"""Maps are aligned with the original image: letterbox (YOLO), stretch (RT-DETR), centre crop (classify), rotated
boxes (OBB). ConfidenceMap draws each prediction's own box in model-input space, so after the mapping back it must
sit exactly on the box Ultralytics reports in original-image pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ultralytics_cam.geometry import Geometry

from conftest import render, trained, yaml_model


def assert_maps_on_boxes(r, min_energy=0.75):
    stats = r.cam.stats()
    assert stats
    for s, box in zip(stats, r.boxes.xyxy.numpy()):
        x, y = s["peak"]
        assert box[0] - 2 <= x <= box[2] + 2 and box[1] - 2 <= y <= box[3] + 2, (s, box)
        assert s["energy_in_box"] >= min_energy, s


@pytest.mark.parametrize("name", ["yolo11n.yaml", "rtdetr-l.yaml"])
def test_letterbox_and_stretch_are_undone(name, assets):
    """bus.jpg is 810 x 1080: YOLO letterboxes it to 128 x 160, RT-DETR stretches it to 160 x 160."""
    model = yaml_model(name)
    kw = {"conf": 1e-3 if name.startswith("rtdetr") else 1e-4, "imgsz": 160, "max_det": 5}
    (r,) = model.cam(str(assets / "bus.jpg"), method="ConfidenceMap", **kw)
    expected = "stretch" if name.startswith("rtdetr") else "letterbox"
    assert r.cam.geometry.kind == expected and r.cam.maps.shape[1:] == (1080, 810)
    assert_maps_on_boxes(r)


def test_letterbox_with_padding_on_a_wide_image(assets):
    """zidane.jpg is 1280 x 720: padding above and below in the model input must not shift the maps."""
    (r,) = yaml_model("yolo11n.yaml").cam(
        str(assets / "zidane.jpg"), method="ConfidenceMap", conf=1e-4, imgsz=160, max_det=5, rect=False
    )
    assert r.cam.maps_input.shape[1:] == (160, 160)  # square input: 160 x 90 content plus padding
    assert_maps_on_boxes(r)


def test_rotated_boxes_are_undone():
    im, _ = render("obb", seed=3)
    big = cv2.copyMakeBorder(im, 0, 0, 40, 40, cv2.BORDER_REFLECT)  # not square: letterboxed
    (r,) = trained("obb").cam(big, method="ConfidenceMap")
    assert len(r.cam) > 0
    regions = r.cam.regions()
    for m, inside in zip(r.cam.maps, regions):
        assert m[inside].sum() / m.sum() > 0.7
        y, x = np.unravel_index(m.argmax(), m.shape)
        assert inside[y, x]


def test_classify_centre_crop_is_undone(assets):
    """A portrait image: the classifier sees only its central square, so the map is zero above and below it."""
    (r,) = yaml_model("yolo11n-cls.yaml").cam(str(assets / "bus.jpg"), method="ConfidenceMap", imgsz=64)
    assert r.cam.geometry.kind == "center_crop"
    m = r.cam.maps[0]
    top, edge = (1080 - 810) // 2, 15  # bilinear resizing blends the crop's edge over one 13 px input row
    assert m[: top - edge].max() == 0 and m[1080 - top + edge :].max() == 0
    assert m[top + edge : 1080 - top - edge].min() > 0


def test_geometry_kinds_directly():
    maps = torch.zeros(1, 32, 64)
    maps[0, 8:24, :] = 1  # content rows of a 64 x 32 letterbox of a 2:1 image... as scale_masks undoes it
    out = Geometry("letterbox", (32, 64), (100, 400)).to_original(maps)
    assert out.shape == (1, 100, 400)
    out = Geometry("stretch", (32, 64), (10, 20)).to_original(maps)
    assert out.shape == (1, 10, 20)
    crop = Geometry("center_crop", (32, 32), (64, 32)).to_original(torch.ones(1, 32, 32))
    assert crop.shape == (1, 64, 32) and crop[0, :14].max() == 0 and crop[0, 18:46].min() > 0.99
