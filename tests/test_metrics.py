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
    model, _, conf, _, _, _ = detect_case
    scorer = metrics.FaithfulnessScorer(model, steps=10, share=False, early_stop=False)  # every point its own forward
    r = conf[0]
    case = scorer.prepare(r)
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
    assert set(c.points()) == {"image_deletion@10%", "image_insertion@10%", "image_deletion@20%",
                               "image_insertion@20%", "box_deletion@50%", "box_insertion@50%"}  # fmt: skip


@pytest.mark.slow
def test_faithfulness_rows_and_summary(detect_case):
    model, _, conf, _, scorer, _ = detect_case
    rows = metrics.faithfulness(model, conf[:2], scorer=scorer)
    assert len(rows) == sum(len(r.cam) for r in conf[:2])
    assert {"map", "random", "confidence", "centre", "inverted"} <= set(rows[0])
    summary = metrics.summarise(rows)
    for name in ("map", "random", "confidence", "centre", "inverted"):
        s = summary[name]
        expected = np.mean([s[f"{lv}_insertion"] - s[f"{lv}_deletion"] for lv in ("image", "box")])
        assert s["faithfulness"] == pytest.approx(expected)


def test_bad_options_are_named():
    model = trained("detect")
    with pytest.raises(ValueError, match="fill='white'"):
        metrics.FaithfulnessScorer(model, fill="white")
    with pytest.raises(ValueError, match="steps=1"):
        metrics.FaithfulnessScorer(model, steps=1)
    with pytest.raises(ValueError, match="protocol='odexia'"):
        metrics.FaithfulnessScorer(model, protocol="odexia")
    with pytest.raises(ValueError, match="protocol=odexai scores detections"):
        metrics.FaithfulnessScorer(trained("classify"), protocol="odexai")
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


# -- the protocol's shortcuts, each against the full computation ---------------------------------------------------
def _curve_sets(detect_case, *scorers):
    """Per scorer: the curves of every prediction under HiResCAM (sparse: many ties, broken by the random map) and
    under the random baseline (one map for every prediction of an image), image by image."""
    _, _, conf, cam, _, _ = detect_case
    got: list[list] = [[] for _ in scorers]
    for r, c in zip(conf, cam):
        sets = (c.cam.maps, metrics.baseline_maps(r, c.cam.maps, ("random",))["random"])
        for out, scorer in zip(got, scorers):
            case = scorer.prepare(r)
            out += [p for m in sets for p in scorer.curves(case, m)]
    return got


@pytest.mark.slow
def test_shared_forwards_and_the_nms_postprocess_give_the_full_computations_numbers(detect_case):
    """One forward per distinct perturbed image, and NMS without Results: the reference curves, point by point."""
    model = detect_case[0]
    full = metrics.FaithfulnessScorer(model, share=False, early_stop=False)
    full.raw = False  # the reference: Ultralytics' Results for every perturbed image, one forward per point
    fast = metrics.FaithfulnessScorer(model, early_stop=False)
    assert fast.raw
    ref, got = _curve_sets(detect_case, full, fast)
    compared = 0
    for a, b in zip(ref, got):
        assert a.curves.keys() == b.curves.keys()
        for key, y in a.curves.items():
            np.testing.assert_allclose(b.curves[key], y, atol=1e-5, err_msg=str(key))
            compared += 1
    assert compared >= 40
    assert fast.forwards < full.forwards, (fast.forwards, full.forwards)  # the random map's curves were shared


@pytest.mark.slow
def test_early_stop_gives_the_full_curve_wherever_a_vanished_prediction_stays_vanished(detect_case):
    """The early stop's claim, checked curve by curve; where an object came back, the gap is measured, not hidden."""
    model = detect_case[0]
    full = metrics.FaithfulnessScorer(model, early_stop=False)
    fast = metrics.FaithfulnessScorer(model, early_stop=True)
    ref, got = _curve_sets(detect_case, full, fast)
    stopped, came_back = 0, []
    for a, b in zip(ref, got):
        for key, y in a.curves.items():
            z = b.curves[key]
            zero = np.flatnonzero(y[1:-1] == 0.0)
            if key[1] != "deletion" or not zero.size or y[-1] != 0.0:
                np.testing.assert_allclose(z, y, atol=1e-5)  # no stop: every point scored (batches differ)
                continue
            stop = zero[0] + 1
            np.testing.assert_allclose(z[: stop + 1], y[: stop + 1], atol=1e-5)  # the same up to the stop
            assert (z[stop:] == 0.0).all()
            if (y[stop:] == 0.0).all():
                stopped += 1
                np.testing.assert_allclose(z, y, atol=1e-5)
            else:  # the object vanished, then came back as more pixels went: the stop is not exact here
                came_back.append(a.auc(*key) - b.auc(*key))
    assert stopped >= 5  # the stop fired where its claim holds: the comparison is not vacuous
    assert fast.forwards < full.forwards
    # measured on this synthetic model (gray blobs on plain shapes can look like a shape): 4 of the stopped curves
    # came back, their areas 0.0004 to 0.037 higher in the full computation; docs/eval.md reports the real model's
    assert all(0 < d < 0.05 for d in came_back), (came_back, stopped)  # the full area is higher: never hidden


@pytest.mark.slow
def test_the_random_baseline_shares_its_image_curves_between_predictions(detect_case):
    """One random map per image: its image-level perturbations coincide for every prediction and run once."""
    model, _, conf, _, _, _ = detect_case
    r = max(conf, key=lambda r: len(r.cam))
    assert len(r.cam) >= 2
    scorer = metrics.FaithfulnessScorer(model, levels=("image",), early_stop=False)
    case = scorer.prepare(r)
    before = scorer.forwards
    curves = scorer.curves(case, metrics.baseline_maps(r, r.cam.maps, ("random",))["random"])
    inner = len(metrics.IMAGE_SCHEDULE) - 2
    assert scorer.forwards - before == 2 * inner  # not n x 2 x inner
    assert len({tuple(c.curves[("image", "deletion")]) for c in curves}) == len(curves)  # each its own score


@pytest.mark.slow
def test_per_image_sampling_scores_the_sampled_predictions_as_the_full_run_does(detect_case):
    model, _, conf, cam, _, _ = detect_case
    r, c = max(zip(conf, cam), key=lambda rc: len(rc[0].cam))
    rows = metrics.sample_predictions(r, 1, seed=0)
    assert len(rows) == 1 and len(metrics.sample_predictions(r, None)) == len(r.cam)
    scorer = metrics.FaithfulnessScorer(model)
    case = scorer.prepare(r)
    full = scorer.curves(case, c.cam.maps)
    part = scorer.curves(case, c.cam.maps, rows)
    i = int(rows[0])
    assert part[i].aucs() == full[i].aucs()
    assert all(not p.curves for k, p in enumerate(part) if k != i)


def test_sampling_is_stratified_by_class_and_size():
    """Two classes and two sizes among six predictions: four picks take one of each (class, size) first."""
    import torch

    from ultralytics_cam.geometry import Geometry

    class FakeCam:
        cls = torch.tensor([0, 0, 0, 0, 1, 1])
        conf = torch.ones(6)
        geometry = Geometry("letterbox", (200, 200), (200, 200))

        def regions(self):
            out = np.zeros((6, 200, 200), bool)
            for i, side in enumerate([10, 12, 150, 160, 8, 140]):
                out[i, :side, :side] = True
            return out

    class FakeResult:
        cam = FakeCam()
        probs = None

    picked = metrics.sample_predictions(FakeResult(), 4, seed=0)
    cls, small = FakeCam.cls.numpy()[picked], np.array([10, 12, 150, 160, 8, 140])[picked] < 32
    assert {(int(a), bool(b)) for a, b in zip(cls, small)} == {(0, True), (0, False), (1, True), (1, False)}


def test_centre_prior_peaks_at_the_box_centre_with_a_quarter_box_sigma(detect_case):
    _, _, conf, _, _, _ = detect_case
    r = conf[0]
    maps = metrics.centre_maps(r)
    for m, (x1, y1, x2, y2) in zip(maps, r.boxes.xyxy.numpy()):
        y, x = np.unravel_index(m.argmax(), m.shape)
        assert abs(x + 0.5 - (x1 + x2) / 2) <= 1 and abs(y + 0.5 - (y1 + y2) / 2) <= 1
        # a Gaussian with sigma a quarter of the box's sides: exp(-2) two sigma (half a box side) from the centre
        cx, cy, sx, sy = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
        for px, py in ((x1, cy), (cx, y2), (x1, y1)):
            xi, yi = int(px), int(py)
            expected = np.exp(-0.5 * (((xi + 0.5 - cx) / sx) ** 2 + ((yi + 0.5 - cy) / sy) ** 2))
            assert m[yi, xi] == pytest.approx(expected, abs=1e-4)
        assert m[int(cy), int(x1)] == pytest.approx(np.exp(-2), abs=0.15)  # the box's edge: about exp(-2)


def test_road_imputation_solves_roads_linear_system():
    """Without noise, every imputed pixel is the weighted mean of its neighbours; known pixels are untouched; a
    linear ramp (which equals the mean of its neighbours everywhere inside) is reproduced in the hole."""
    from ultralytics_cam.imputation import NEIGHBOURS, road_impute

    h, w = 40, 50
    ys, xs = np.mgrid[0:h, 0:w]
    ramp = np.stack([xs * 4, ys * 5, xs * 2 + ys * 2], -1).astype(np.uint8)
    missing = np.zeros((h, w), bool)
    missing[10:30, 15:35] = True
    out = road_impute(ramp, missing, np.random.default_rng(0), noise=0.0)
    assert (out[~missing] == ramp[~missing]).all()
    assert np.abs(out.astype(int) - ramp.astype(int))[missing].max() <= 1  # rounded to uint8
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
    holes = rng.random((h, w)) < 0.3
    exact = road_impute(image, holes, rng, noise=0.0).astype(float)
    for y0, x0 in zip(*np.nonzero(holes[1:-1, 1:-1])):
        y, x = y0 + 1, x0 + 1
        mean = sum(wt * exact[y + dy, x + dx] for (dy, dx), wt in NEIGHBOURS) / sum(wt for _, wt in NEIGHBOURS)
        assert np.abs(mean - exact[y, x]).max() <= 1.0  # the equation holds up to the rounding to uint8
    noisy = road_impute(image, holes, np.random.default_rng(2))
    assert 1.0 < np.abs(noisy.astype(float) - exact)[holes].std() < 4.0  # ROAD's noise: 0.01 of the range
    everything = road_impute(image, np.ones((h, w), bool), np.random.default_rng(0), noise=0.0)
    assert np.abs(everything.reshape(-1, 3).mean(0) - image.reshape(-1, 3).mean(0)).max() < 1  # the mean colour


@pytest.mark.slow
def test_road_fill_gives_curves_that_differ_from_gray(detect_case):
    model, _, conf, cam, _, _ = detect_case
    r, c = conf[0], cam[0]
    road = metrics.FaithfulnessScorer(model, fill="road", steps=4)
    gray = metrics.FaithfulnessScorer(model, fill="gray", steps=4)
    a = road.curves(road.prepare(r), c.cam.maps)
    b = gray.curves(gray.prepare(r), c.cam.maps)
    assert all(np.isfinite(y).all() for p in a for y in p.curves.values())
    assert any(not np.allclose(p.curves[k], q.curves[k]) for p, q in zip(a, b) for k in p.curves)
    again = road.curves(road.prepare(r), c.cam.maps)  # seeded noise: reproducible
    assert all(np.array_equal(p.curves[k], q.curves[k]) for p, q in zip(a, again) for k in p.curves)


@pytest.mark.slow
def test_odexai_protocol_steps_2000_input_pixels_and_scores_the_unperturbed_image_1(detect_case):
    model, _, conf, cam, _, _ = detect_case
    scorer = metrics.FaithfulnessScorer(model, protocol="odexai")
    assert scorer.fill == "black" and scorer.levels == ("image",)
    r, c = conf[0], cam[0]
    case = scorer.prepare(r)
    fr = case.fractions["image"]
    h, w = r.orig_shape
    gain = min(scorer.predictor.imgsz[0] / h, scorer.predictor.imgsz[1] / w)
    step = 2000 / (round(h * gain) * round(w * gain))
    np.testing.assert_allclose(np.diff(fr)[:-1], step)
    assert fr[-1] == 1.0
    curves = scorer.curves(case, c.cam.maps)
    for p in curves:  # the unperturbed image: IoU 1 x cosine 1 for every prediction found at ODExAI's conf 0.25
        y = p.curves[("image", "deletion")]
        assert y[0] == pytest.approx(1.0, abs=1e-4) and y[-1] == 0.0
        assert p.curves[("image", "insertion")][-1] == pytest.approx(1.0, abs=1e-4)
