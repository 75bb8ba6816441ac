"""Faithfulness metrics on cases with known answers: the trained detector on synthetic shapes with exact outlines.

Measured with exactly this setting (4 images rendered with seed 7100, 7 predictions, 10 steps, gray fill, CPU,
ultralytics 8.4.190): mean areas under the normalised curves

    map                         image deletion  image insertion  box deletion  box insertion
    object map (+4 px margin)       0.176           0.857           0.385         0.779
    HiResCAM                        0.058           0.978           0.191         0.826
    random                          0.349           0.759           0.331         0.701
    ConfidenceMap                   0.082           0.970           0.333         0.769
    inverted object map             0.851           0.659

Thresholds sit well inside these gaps.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ultralytics_cam import metrics

from conftest import trained

SEED, N_IMAGES = 7100, 4


@pytest.fixture(scope="module")
def detect_case():
    """The trained detector, rendered images, and per image its ConfidenceMap and HiResCAM results."""
    import torch

    from synthetic_shapes import render_image

    torch.manual_seed(0)
    model = trained("detect")
    rng = np.random.default_rng(SEED)
    data = [render_image("detect", rng, 160) for _ in range(N_IMAGES)]
    images = [im for im, _ in data]
    conf = model.cam(images, method="ConfidenceMap", verbose=False)
    cam = model.cam(images, method="HiResCAM", verbose=False)
    scorer = metrics.FaithfulnessScorer(model, steps=10)
    cases = [scorer.prepare(r) for r in conf]
    return model, data, conf, cam, scorer, cases


def object_maps(result, objects) -> np.ndarray:
    """Per prediction: its object's exact outline filled with 1, plus a blurred margin, so the map peaks on it."""
    out = []
    for box in result.boxes.xyxy.numpy():
        best = max(objects, key=lambda o: metrics.box_iou(box, o["box_xyxy"]))
        mask = np.zeros(result.orig_shape, np.float32)
        cv2.fillPoly(mask, [np.round(best["polygon"]).astype(np.int32)], 1.0)
        out.append(mask + cv2.GaussianBlur(mask, (0, 0), 4))
    return np.stack(out)


def mean_areas(scorer, cases, maps_per_image) -> dict[str, float]:
    aucs = [c.aucs() for case, maps in zip(cases, maps_per_image) for c in scorer.curves(case, maps)]
    return {k: float(np.mean([a[k] for a in aucs])) for k in aucs[0]}


@pytest.mark.slow
def test_a_map_on_the_object_beats_random_and_inverted(detect_case):
    _, data, conf, _, scorer, cases = detect_case
    assert sum(len(r.cam) for r in conf) >= 5  # the model finds the objects: there is something to explain
    objects = [object_maps(r, objs) for r, (_, objs) in zip(conf, data)]
    on_object = mean_areas(scorer, cases, objects)
    random = mean_areas(scorer, cases, [metrics.random_maps(len(m), m.shape[1:], seed=1) for m in objects])
    inverted = mean_areas(scorer, cases, [metrics.inverted_maps(m) for m in objects])
    assert on_object["image_deletion"] < random["image_deletion"] - 0.1, (on_object, random)
    assert on_object["image_deletion"] < inverted["image_deletion"] - 0.3, (on_object, inverted)
    assert on_object["image_insertion"] > random["image_insertion"] + 0.04, (on_object, random)
    assert on_object["image_insertion"] > inverted["image_insertion"] + 0.1, (on_object, inverted)


@pytest.mark.slow
def test_box_level_separates_confidence_map_from_a_map_that_peaks_on_the_object(detect_case):
    """Image-level deletion barely tells HiResCAM from ConfidenceMap; box-level deletion does."""
    _, _, conf, cam, scorer, cases = detect_case
    for a, b in zip(conf, cam):
        np.testing.assert_allclose(a.boxes.xyxy.numpy(), b.boxes.xyxy.numpy(), atol=1e-3)  # the same predictions
    confidence = mean_areas(scorer, cases, [metrics.confidence_maps(r) for r in conf])
    hires = mean_areas(scorer, cases, [r.cam.maps for r in cam])
    image_gap = confidence["image_deletion"] - hires["image_deletion"]
    box_gap = confidence["box_deletion"] - hires["box_deletion"]
    assert abs(image_gap) < 0.06, (confidence, hires)
    assert box_gap > 0.08, (confidence, hires)
    assert box_gap > 2 * abs(image_gap), (confidence, hires)


@pytest.mark.slow
def test_curves_have_the_documented_shape_and_batched_forwards(detect_case):
    _, _, conf, _, scorer, cases = detect_case
    r, case = conf[0], cases[0]
    n = len(r.cam)
    before = scorer.forwards
    curves = scorer.curves(case, r.cam.maps)
    assert len(curves) == n
    for c in curves:
        assert set(c.curves) == {
            ("image", "deletion"),
            ("image", "insertion"),
            ("box", "deletion"),
            ("box", "insertion"),
        }
        for y in c.curves.values():
            assert y.shape == (11,) and np.isfinite(y).all()
        assert c.curves[("image", "deletion")][0] == 1.0 and c.curves[("image", "insertion")][-1] == 1.0
        assert set(c.aucs()) == {"image_deletion", "image_insertion", "box_deletion", "box_insertion"}
    # only the 9 inner steps of the 4 curves per prediction are scored for a new map: the end points are shared
    assert scorer.forwards - before == n * 4 * 9


@pytest.mark.slow
def test_faithfulness_rows_and_summary(detect_case):
    model, _, conf, _, scorer, _ = detect_case
    rows = metrics.faithfulness(model, conf[:2], scorer=scorer)
    assert len(rows) == sum(len(r.cam) for r in conf[:2])
    assert {"map", "random", "confidence", "inverted"} <= set(rows[0])
    summary = metrics.summarise(rows)
    for name in ("map", "random", "confidence", "inverted"):
        s = summary[name]
        expected = np.mean([s[f"{lv}_insertion"] - s[f"{lv}_deletion"] for lv in ("image", "box")])
        assert s["faithfulness"] == pytest.approx(expected)


def test_bad_options_are_named():
    model = trained("detect")
    with pytest.raises(ValueError, match="fill='white'"):
        metrics.FaithfulnessScorer(model, fill="white")
    with pytest.raises(ValueError, match="steps=1"):
        metrics.FaithfulnessScorer(model, steps=1)
    with pytest.raises(ValueError, match="baselines"):
        metrics.faithfulness(model, [], baselines=("zeros",))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segment", "obb", "classify"])
def test_every_task_gets_curves(task):
    """Mask IoU (segment), rotated IoU (obb) and class probability (classify) give finite, normalised curves."""
    from synthetic_shapes import render_image

    model = trained(task)
    im, _ = render_image(task, np.random.default_rng(3), 96 if task == "classify" else 160)
    (r,) = model.cam(im, method="HiResCAM", verbose=False)
    assert len(r.cam)
    scorer = metrics.FaithfulnessScorer(model, steps=4)
    case = scorer.prepare(r)
    curves = scorer.curves(case, r.cam.maps)
    levels = {lv for c in curves for lv, _ in c.curves}
    assert levels == ({"image"} if task == "classify" else {"image", "box"})
    # every explained prediction is found again in the unperturbed image, with its confidence (x its overlap, ~1)
    np.testing.assert_allclose(case.base_score, r.cam.conf.numpy(), rtol=0.1)
    for i, c in enumerate(curves):
        for y in c.curves.values():
            assert np.isfinite(y).all() and y.min() >= 0
            if i == 0:  # the strongest prediction (a weak class's probability may well rise when pixels go)
                assert y.max() < 2
