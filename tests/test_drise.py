"""D-RISE: the masks, the debiased sum and the similarity are what they claim; maps are seeded and shared per image.

The parts are checked on their own against explicit formulas (oracle tests), then through ``model.cam`` on the small
trained models. Exported models, refusals and localisation have their own modules (test_drise_exports.py,
test_drise_localisation.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ultralytics_cam.blackbox import BlackBoxEngine
from ultralytics_cam.errors import MethodError
from ultralytics_cam.methods.drise import MaskSet, SaliencyAccumulator
from ultralytics_cam.similarity import Detections, drise_similarity

from conftest import render, trained


# -- masks ------------------------------------------------------------------------------------------------------------
def test_masks_depend_on_the_seed_only_not_on_the_chunks_they_are_built_in():
    masks = MaskSet(40, (48, 64), cell=8, keep=0.5, seed=3)
    whole = masks.masks(0, 40)
    parts = torch.cat([masks.masks(i, min(i + 7, 40)) for i in range(0, 40, 7)])
    assert torch.equal(whole, parts)
    assert torch.equal(whole, MaskSet(40, (48, 64), cell=8, keep=0.5, seed=3).masks(0, 40))
    assert not torch.equal(whole, MaskSet(40, (48, 64), cell=8, keep=0.5, seed=4).masks(0, 40))


def test_masks_are_smooth_cells_kept_with_the_given_probability():
    masks = MaskSet(400, (64, 96), cell=12, keep=0.3, seed=0)
    m = masks.masks(0, 400)
    assert m.shape == (400, 64, 96) and m.min() >= 0 and m.max() <= 1
    assert masks.grid.shape[-2:] == (math.ceil(64 / 12) + 1, 96 // 12 + 1)  # one extra row and column to shift into
    assert abs(float(m.mean()) - 0.3) < 0.02  # the share of the image a mask keeps is the keep probability
    steps = (m[:, :, 1:] - m[:, :, :-1]).abs().amax()
    assert steps <= 1 / 12 + 1e-6  # bilinear: at most one cell's rise per pixel, never a hard edge
    # random shifts: the masks' cell borders are not all on one lattice (unshifted masks would be equal at these)
    assert len({tuple(row) for row in (m[:, 0, ::12] > 0.5).int().tolist()}) > 100


# -- the debiased weighted sum ----------------------------------------------------------------------------------------
def test_saliency_is_the_debiased_weighted_sum_of_the_masks():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand((50, 6, 7), generator=gen)
    weights = torch.rand((50, 3), generator=gen)
    acc = SaliencyAccumulator(3, (6, 7))
    for i in range(0, 50, 9):  # chunks of any size add up to the same sums
        acc.add(masks[i : i + 9], weights[i : i + 9])
    expected = torch.einsum("kn,khw->nhw", weights - weights.mean(0), masks).clamp(min=0)
    lo = expected.flatten(1).amin(1)[:, None, None]
    hi = expected.flatten(1).amax(1)[:, None, None]
    assert torch.allclose(acc.maps(), (expected - lo) / (hi - lo), atol=1e-5)


def test_a_weight_that_never_changes_gives_an_empty_map():
    acc = SaliencyAccumulator(1, (4, 4))
    acc.add(torch.rand((20, 4, 4)), torch.full((20, 1), 0.7))
    assert float(acc.maps().abs().max()) == 0.0


# -- the similarity ---------------------------------------------------------------------------------------------------
def box_detections(boxes, cls, conf, probs=None):
    return Detections(torch.tensor(cls), torch.tensor(conf), torch.tensor(boxes, dtype=torch.float32), probs)


def test_similarity_is_iou_times_confidence_times_the_cosine_of_the_class_vectors():
    target = box_detections([[0, 0, 10, 10]], [0], [0.9], torch.tensor([[0.9, 0.1]]))
    found = box_detections([[0, 0, 10, 5], [0, 0, 10, 10]], [0, 1], [0.6, 0.5], torch.tensor([[0.6, 0.0], [0.3, 0.5]]))
    cos = torch.nn.functional.cosine_similarity(torch.tensor([[0.9, 0.1]]), torch.tensor([[0.6, 0.0], [0.3, 0.5]]))
    expected = torch.maximum(0.5 * 0.6 * cos[0], 1.0 * 0.5 * cos[1])
    assert torch.allclose(drise_similarity(target, found), expected[None])


def test_similarity_without_class_vectors_is_the_same_class_only():
    target = box_detections([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1], [0.9, 0.8])
    found = box_detections([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1], [0.7, 0.4])
    assert torch.allclose(drise_similarity(target, found), torch.tensor([0.0, 0.4]))
    assert torch.equal(drise_similarity(target, box_detections(torch.zeros((0, 4)).tolist(), [], [])), torch.zeros(2))


def test_similarity_of_rotated_boxes_masks_and_classes():
    from ultralytics.utils.metrics import batch_probiou

    rot = torch.tensor([[50.0, 50.0, 40.0, 20.0, 0.3]])
    shifted = torch.tensor([[55.0, 50.0, 40.0, 20.0, 0.3]])
    target = Detections(torch.tensor([0]), torch.tensor([0.9]), rot)
    found = Detections(torch.tensor([0]), torch.tensor([0.5]), shifted)
    assert torch.allclose(drise_similarity(target, found), 0.5 * batch_probiou(rot, shifted)[0])
    a = torch.zeros((1, 8, 8))
    a[0, :4] = 1  # half the image
    b = torch.zeros((1, 8, 8))
    b[0, :2] = 1  # its upper half: mask IoU 0.5, box IoU would be higher
    box = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    seg = drise_similarity(Detections(torch.tensor([0]), torch.tensor([1.0]), box, masks=a),
                           Detections(torch.tensor([0]), torch.tensor([0.8]), box, masks=b))  # fmt: skip
    assert torch.allclose(seg, torch.tensor([0.4]))
    classes = Detections(torch.tensor([2, 0]), torch.tensor([0.7, 0.2]), torch.zeros((2, 0)))
    probs = Detections(torch.tensor([]), torch.tensor([]), torch.zeros((0, 0)), torch.tensor([[0.1, 0.3, 0.6]]))
    assert torch.allclose(drise_similarity(classes, probs), torch.tensor([0.6, 0.1]))


# -- through model.cam ------------------------------------------------------------------------------------------------
KW = {"method": "DRISE", "drise_masks": 32, "verbose": False}


def test_the_same_seed_gives_the_same_maps_and_another_seed_other_maps():
    model = trained("detect")
    im = render("detect", seed=11)[0]
    (a,) = model.cam(im, **KW)
    (b,) = model.cam(im, **KW)
    (c,) = model.cam(im, **KW, seed=1)
    assert len(a.cam) >= 2 and a.cam.maps.max() > 0
    assert np.array_equal(a.cam.maps, b.cam.maps)
    assert not np.array_equal(a.cam.maps, c.cam.maps)
    assert a.cam.method == "DRISE" and a.cam.layers == [] and a.cam.path == "forward"


def test_every_prediction_of_an_image_shares_the_same_masked_forwards(monkeypatch):
    """One masked forward per chunk of masks per image, whatever the number of predictions (2 images here)."""
    calls = []
    real = BlackBoxEngine._proposals

    def counted(self, masked, result, postprocess):
        calls.append(len(masked))
        return real(self, masked, result, postprocess)

    monkeypatch.setattr(BlackBoxEngine, "_proposals", counted)
    images = [render("detect", seed=s)[0] for s in (11, 12)]
    results = trained("detect").cam(images, **KW, batch=2)
    assert sum(len(r.cam) for r in results) > 2  # more predictions than images
    assert calls == [16, 16] * 2  # 32 masks in chunks of 16 (a PyTorch backend), per image


def test_the_maps_are_at_the_original_size_and_sit_on_the_image_not_the_letterbox():
    """A wide image: the letterbox pads it; the masks cover the image only and the maps come back to its size."""
    im, _ = render("detect", seed=11)
    wide = np.concatenate([im, im], axis=1)  # 160 x 320
    (r,) = trained("detect").cam(wide, **KW, imgsz=320, rect=False)  # a square 320 x 320 input, padded above, below
    assert r.cam.maps.shape == (len(r.cam), 160, 320)
    assert r.cam.maps_input.shape[1:] == (320, 320)
    pad = r.cam.maps_input[:, :80]  # the letterbox's top padding (80 rows) is never masked, so never scored
    assert float(pad.abs().max()) == 0.0 and r.cam.maps.max() > 0


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_every_task_gets_one_map_per_prediction(task):
    im = render(task, seed=3, imgsz=96 if task == "classify" else 160)[0]
    (r,) = trained(task).cam(im, **KW)
    n = len(r.probs.top5) if task == "classify" else len(r.obb if task == "obb" else r.boxes)
    assert len(r.cam) == n > 0
    assert r.cam.maps.shape[1:] == im.shape[:2] and r.cam.maps.max() > 0


def test_options_that_mean_nothing_to_drise_are_refused():
    model = trained("detect")
    im = render("detect", seed=11)[0]
    with pytest.raises(MethodError, match="explains only target 'class'"):
        model.cam(im, method="DRISE", target="box")
    with pytest.raises(MethodError, match="reads no layer"):
        model.cam(im, method="DRISE", layers="16,19")
    with pytest.raises(MethodError, match="aug_smooth=True"):
        model.cam(im, method="DRISE", aug_smooth=True)
    for key, value in (("drise_masks", 0), ("drise_cell", 1.5), ("drise_keep", 1.0), ("seed", -1)):
        with pytest.raises(ValueError, match=f"{key}="):
            model.cam(im, method="DRISE", **{key: value})


@pytest.mark.parametrize("task", ["detect", "obb"])
def test_class_vectors_are_read_at_the_anchors_nms_kept(task, monkeypatch):
    """Every target and proposal carries its anchor's class scores: their maximum is its confidence, at its class."""
    from ultralytics_cam import blackbox

    seen = []
    real = blackbox.drise_similarity

    def spy(target, found):
        seen.append((target, found))
        return real(target, found)

    monkeypatch.setattr(blackbox, "drise_similarity", spy)
    (r,) = trained(task).cam(render(task, seed=11)[0], **{**KW, "drise_masks": 16})
    assert len(r.cam) and seen
    for d in (seen[0][0], *(found for _, found in seen if len(found))):
        assert d.probs is not None and d.probs.shape == (len(d), len(r.names))
        values, classes = d.probs.max(1)
        assert torch.allclose(values, d.conf, atol=1e-5) and torch.equal(classes, d.cls)


def test_drise_is_refused_in_the_predict_callbacks_naming_where_it_runs():
    from ultralytics_cam import add_cam_callbacks

    with pytest.raises(MethodError, match=r"use it with model.cam\(...\), yolo-cam predict or the val failure hook"):
        add_cam_callbacks(trained("detect"), method="DRISE")
