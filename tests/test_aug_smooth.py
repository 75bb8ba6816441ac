"""aug_smooth: grad-cam's six test-time augmentations, with predictions followed to their mirrored anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultralytics_cam.heads import Selection

from conftest import yaml_model


def test_flipped_anchor_sits_at_the_mirrored_point():
    """The mirrored anchor index points at the anchor whose centre is the prediction's anchor centre mirrored."""
    model = yaml_model("yolo11n.yaml")
    net = model.model.eval()
    x = torch.rand(1, 3, 96, 160)
    with torch.no_grad():
        head_out = net(x)
    from ultralytics_cam.heads import AnchorHeadAdapter

    adapter = AnchorHeadAdapter(net, "detect")
    head = net.model[-1]
    centres = (head.anchors * head.strides).T  # (A, 2) anchor centres in input pixels
    index = torch.arange(len(centres))
    sel = Selection(index, index * 0, index * 0.0, torch.zeros(len(index), 4))
    flipped = adapter.flip(sel, head_out, (96, 160))
    mirrored = centres[flipped.index]
    torch.testing.assert_close(mirrored[:, 0], 160 - centres[:, 0])
    torch.testing.assert_close(mirrored[:, 1], centres[:, 1])
    assert torch.equal(adapter.flip(flipped, head_out, (96, 160)).index, index)  # flipping twice is the identity


def test_mirrored_boxes_and_rotations():
    sel = Selection(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.5]), torch.tensor([[10.0, 5, 30, 25]]))
    assert sel.mirrored(sel.index, 100).boxes.tolist() == [[70.0, 5, 90, 25]]
    obb = Selection(torch.tensor([0]), torch.tensor([1]), torch.tensor([0.5]), torch.tensor([[20.0, 10, 8, 4, 0.3]]))
    m = obb.mirrored(obb.index, 100)
    assert m.flipped and m.boxes[0, 0] == 80 and m.boxes[0, 4] == pytest.approx(-0.3)


def test_confidence_map_is_unchanged_by_aug_smooth(assets):
    """Boxes drawn at the mirrored place and flipped back land where they were: six identical maps average to one."""
    model = yaml_model("yolo11n.yaml")
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 3, "method": "ConfidenceMap"}
    (a,) = model.cam(str(assets / "bus.jpg"), **kw)
    (b,) = model.cam(str(assets / "bus.jpg"), aug_smooth=True, **kw)
    np.testing.assert_allclose(a.cam.maps_input.numpy(), b.cam.maps_input.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["yolo11n.yaml", "yolo11n-obb.yaml", "yolo11n-cls.yaml", "rtdetr-l.yaml"])
def test_aug_smooth_runs_and_stays_close_to_the_plain_map(name, assets):
    model = yaml_model(name)
    kw = {"conf": 1e-3 if name.startswith("rtdetr") else 1e-4, "imgsz": 160, "max_det": 2}
    (plain,) = model.cam(str(assets / "bus.jpg"), **kw)
    (smooth,) = model.cam(str(assets / "bus.jpg"), aug_smooth=True, **kw)
    assert smooth.cam.maps.shape == plain.cam.maps.shape
    a, b = plain.cam.maps_input.numpy().ravel(), smooth.cam.maps_input.numpy().ravel()
    assert b.min() >= 0 and b.max() <= 1
    assert np.corrcoef(a, b)[0, 1] > 0.5  # an average over near-identical views, not another object's map


def test_finer_cam_compares_the_classes_of_the_rtdetr_query_it_explains_on_flipped_inputs(assets, monkeypatch):
    """On a flipped input RT-DETR re-finds each prediction's query by box overlap; FinerCAM's class logits must come
    from that same query, so the explained class logit is always an entry of the vector it is compared within."""
    from ultralytics_cam.heads.rtdetr import RTDETRHeadAdapter
    from ultralytics_cam.methods.composite import FinerCAM

    moved: list[bool] = []
    queries = RTDETRHeadAdapter._queries

    def spy_queries(self, head_out, sels, rematch, imgsz):
        out = queries(self, head_out, sels, rematch, imgsz)
        moved.extend(bool((q != s.index).any()) for q, s in zip(out, sels))
        return out

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    transform = FinerCAM.transform_targets

    def spy_transform(self, values, logits, cls):
        calls.append((values.detach().clone(), logits.gather(1, cls[:, None]).squeeze(1).detach().clone()))
        return transform(self, values, logits, cls)

    monkeypatch.setattr(RTDETRHeadAdapter, "_queries", spy_queries)
    monkeypatch.setattr(FinerCAM, "transform_targets", spy_transform)
    model = yaml_model("rtdetr-l.yaml")
    (r,) = model.cam(str(assets / "bus.jpg"), method="FinerCAM", aug_smooth=True, conf=1e-3, imgsz=160, max_det=3)
    assert len(r.cam) > 0 and len(calls) == 6  # the plain pass and five augmentations
    assert any(moved)  # some flipped pass found a prediction at another query: the queries can be told apart
    for values, own in calls:
        assert torch.equal(values, own)
    with pytest.raises(ValueError, match="imgsz"):
        RTDETRHeadAdapter(model.model, "detect").class_logits(None, [], rematch=True)
