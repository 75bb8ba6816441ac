"""Every task and model family, built from Ultralytics' own YAML files (random weights: plumbing, not meaning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultralytics_cam import UnsupportedModelError

from conftest import yaml_model

CASES = [
    # (yaml, extra predict kwargs, head class, auto layers)
    ("yolov8n.yaml", {}, "Detect", [15, 18, 21]),
    ("yolov10n.yaml", {"nms": False}, "v10Detect", [16, 19, 22]),
    ("yolo11n.yaml", {}, "Detect", [16, 19, 22]),
    ("yolo12n.yaml", {}, "Detect", [14, 17, 20]),
    ("yolo26n.yaml", {}, "Detect", [16, 19, 22]),
    ("yolo26n.yaml", {"nms": False}, "Detect", [16, 19, 22]),
    ("yolo11n-seg.yaml", {"seed": 2}, "Segment", [16, 19, 22]),  # seed 0's random masks are all empty
    ("yolo26n-seg.yaml", {"nms": False}, "Segment26", [16, 19, 22]),
    ("yolo11n-pose.yaml", {}, "Pose", [16, 19, 22]),
    ("yolo26n-pose.yaml", {"nms": False}, "Pose26", [16, 19, 22]),
    ("yolo11n-obb.yaml", {}, "OBB", [16, 19, 22]),
    ("yolo26n-obb.yaml", {"nms": False}, "OBB26", [16, 19, 22]),
    ("yolo11n-cls.yaml", {}, "Classify", [9]),
    ("rtdetr-l.yaml", {"conf": 1e-3}, "RTDETRDecoder", [21, 24, 27]),
]


def rows(r):
    for attr in ("obb", "boxes"):
        if getattr(r, attr) is not None:
            return getattr(r, attr)
    return None


@pytest.mark.parametrize(("name", "kwargs", "head", "auto"), CASES, ids=[c[0] + str(c[1] or "") for c in CASES])
def test_every_family_and_task_with_auto_layers(name, kwargs, head, auto, assets):
    kwargs = dict(kwargs)
    model = yaml_model(name, seed=kwargs.pop("seed", 0))
    assert type(model.model.model[-1]).__name__ == head
    kwargs = {"conf": 1e-4, "imgsz": 160, "max_det": 4, "batch": 2, **kwargs}
    results = model.cam([str(assets / "bus.jpg"), str(assets / "zidane.jpg")], **kwargs)
    assert len(results) == 2
    explained = 0
    for r in results:
        assert r.cam.layers == auto
        if r.probs is not None:
            assert torch.equal(r.cam.cls, torch.as_tensor(r.probs.top5))
        else:
            table = rows(r)
            assert len(r.cam) == (0 if table is None else len(table))
            if len(r.cam):  # row i of the maps explains row i of the Results
                torch.testing.assert_close(r.cam.conf, table.conf.float())
                torch.testing.assert_close(r.cam.cls, table.cls.long())
        maps = r.cam.maps
        assert maps.shape == (len(r.cam), *r.orig_shape)
        assert np.isfinite(maps).all() and maps.min(initial=0) >= 0 and maps.max(initial=0) <= 1
        explained += len(r.cam)
        if len(r.cam):
            assert maps.max() > 0.5  # random weights may leave a single map all-negative (ReLU'd), never all of them
    assert explained > 0


def test_end2end_head_is_read_at_run_time(assets):
    """The same YOLO26 weights run NMS-free with nms=False and through NMS otherwise; both are explained."""
    model = yaml_model("yolo26n.yaml")
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 3}
    (e2e,) = model.cam(str(assets / "bus.jpg"), nms=False, **kw)
    (nms,) = model.cam(str(assets / "bus.jpg"), **kw)
    plain_e2e = model.predict(str(assets / "bus.jpg"), nms=False, **kw)[0]
    assert torch.equal(e2e.boxes.data, plain_e2e.boxes.data)
    assert len(e2e.cam) == len(e2e.boxes) and len(nms.cam) == len(nms.boxes)


def test_segmentation_rows_dropped_by_ultralytics_keep_alignment(assets, monkeypatch):
    """SegmentationPredictor drops rows with empty masks; the maps must follow the surviving rows."""
    from ultralytics.models.yolo.segment import SegmentationPredictor

    original = SegmentationPredictor.construct_result
    dropped = []

    def drop_every_other(self, pred, img, orig_img, img_path, proto):
        keep = torch.arange(len(pred)) % 2 == 1  # as if every even row had an empty mask
        dropped.append(int((~keep).sum()))
        return original(self, pred[keep], img, orig_img, img_path, proto)

    monkeypatch.setattr(SegmentationPredictor, "construct_result", drop_every_other)
    model = yaml_model("yolo11n-seg.yaml", seed=2)
    (r,) = model.cam(
        str(assets / "bus.jpg"), conf=1e-5, imgsz=160, max_det=8, method="ConfidenceMap", retina_masks=True
    )
    assert sum(dropped) > 0 and len(r.boxes) > 0
    torch.testing.assert_close(r.cam.conf, r.boxes.conf.float())
    torch.testing.assert_close(r.cam.cls, r.boxes.cls.long())
    # ConfidenceMap draws each row's own box: the map of row i must sit on box i
    for m, box in zip(r.cam.maps, r.boxes.xyxy.numpy()):
        y, x = np.unravel_index(m.argmax(), m.shape)
        assert box[0] - 2 <= x <= box[2] + 2 and box[1] - 2 <= y <= box[3] + 2


def test_yolo_world_is_explained(assets):
    from ultralytics import YOLOWorld

    torch.manual_seed(0)
    model = YOLOWorld("yolov8s-worldv2.yaml")
    model.model.txt_feats = torch.randn(1, 3, 512)  # text embeddings would come from CLIP, which needs a download
    model.model.model[-1].nc = 3
    model.model.names = {0: "a", 1: "b", 2: "c"}
    (r,) = model.cam(str(assets / "bus.jpg"), conf=1e-7, imgsz=160, max_det=3)
    assert len(r.cam) == len(r.boxes) > 0
    assert r.cam.maps.max() > 0


def test_yoloe_with_prompts_is_explained_and_without_is_refused(assets):
    from ultralytics import YOLOE

    torch.manual_seed(0)
    model = YOLOE("yoloe-11s-seg.yaml")
    with pytest.raises(UnsupportedModelError, match="no class prompts"):
        model.cam(str(assets / "bus.jpg"), imgsz=96)
    model.set_classes(["a", "b"], torch.randn(1, 2, 512))  # real prompts come from CLIP (a download)
    (r,) = model.cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=160, max_det=3)
    assert len(r.cam) == len(r.boxes) > 0 and r.cam.maps.max() > 0


def test_scores_that_do_not_depend_on_the_layers_give_empty_maps_and_a_warning(assets, monkeypatch, caplog):
    """All-zero gradients at every layer: the run goes on with empty maps, and a warning says why."""
    import logging

    from ultralytics_cam.heads import AnchorHeadAdapter

    original = AnchorHeadAdapter.class_logit  # the building block of the default target, 'class'
    monkeypatch.setattr(
        AnchorHeadAdapter, "class_logit", lambda self, *a, **k: [v * 0 for v in original(self, *a, **k)]
    )
    caplog.set_level(logging.WARNING, logger="ultralytics.cam")
    model = yaml_model("yolo11n.yaml")
    (r,) = model.cam(str(assets / "bus.jpg"), conf=1e-4, imgsz=160, max_det=2, head_replay=False)  # the dense path
    assert len(r.cam) == 2 and r.cam.path == "dense" and r.cam.maps.max() == 0
    assert "do not depend on layers [16, 19, 22]" in caplog.text
    caplog.clear()
    src = [str(assets / "bus.jpg"), str(assets / "zidane.jpg")]
    fresh = yaml_model("yolo11n.yaml")  # a new predictor (the first one has warned already)
    fresh.cam(src, conf=1e-4, imgsz=160, max_det=2, head_replay=False, batch=1)  # two batches: one warning
    assert caplog.text.count("do not depend on layers") == 1


def test_chunked_backward_equals_one_backward(assets, monkeypatch):
    """Splitting the slots into chunks (memory budget) gives the same maps, also when images have few predictions."""
    from ultralytics_cam import engine

    model = yaml_model("yolo11n.yaml")
    src = [str(assets / "bus.jpg"), str(assets / "zidane.jpg")]
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 5, "batch": 2, "head_replay": False}  # the dense path chunks
    whole = model.cam(src, **kw)
    monkeypatch.setattr(engine, "GRADIENT_BUDGET_BYTES", 1)  # one slot per chunk: one backward per prediction
    monkeypatch.setattr(engine, "CPU_GRADIENT_BUDGET_BYTES", 1)
    chunked = model.cam(src, **kw)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a.cam.maps_input, b.cam.maps_input, atol=1e-5, rtol=0)


def test_kpca_cam_on_constant_activations_gives_an_empty_map_not_a_crash(assets, caplog):
    """sklearn's ARPACK raises on a numerically zero kernel (a random-weight yolo11n at 640 px has near-constant
    P3/P4 features on bus.jpg); the run goes on with an empty map at that layer and a warning."""
    import logging

    caplog.set_level(logging.WARNING, logger="ultralytics.cam")
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), method="KPCA_CAM", conf=1e-4, max_det=2)
    assert len(r.cam) == 2 and np.isfinite(r.cam.maps).all()
    assert "KPCA_CAM found no structure at layer" in caplog.text
