"""The maps land on their objects: the project's small trained models on synthetic shapes with known geometry.

Measured with exactly this setting (30 images of each task rendered with seed 7000, never seen in training; 160 px;
conf 0.25), on the CPU, ultralytics 8.4.190, torch 2.14.1; pointing game against the object's polygon, energy in the
prediction's own box (rotated box for OBB):

    task     method / target         predictions  matched  pointing game  energy in box
    detect   HiResCAM / class             78         73        0.918          0.855
    detect   LayerCAM / class             78         73        0.973          0.876
    detect   GradCAMElementWise           78         73        0.973          0.854
    detect   EigenGradCAM                 78         73        1.000          0.967
    detect   SegEigenCAM                  78         73        1.000          0.964
    detect   HiResCAM / box               78         73        0.863          0.791
    detect   HiResCAM / all               78         73        0.918          0.836
    segment  HiResCAM / class             80         74        0.878          0.859
    segment  HiResCAM / mask              80         74        0.960          0.828
    pose     HiResCAM / class             78         74        0.865          0.826
    pose     HiResCAM / keypoints         78         74        0.716          0.761
    obb      HiResCAM / class             90         79        0.987          0.874
    obb      HiResCAM / angle             90         79        0.873          0.792
    detect   RandomCAM (baseline)         78         73        0.219          0.098
    detect   GradCAM (global weights)     78         73        0.315          0.112

Thresholds sit a few points under these numbers (one or two predictions of slack), never set by trial to pass.
GradCAM's weak localisation is a property of the method on detectors (its channel weights are global, so other
objects light up too), not checked here; see the README's benchmark.
"""

from __future__ import annotations

import numpy as np
import pytest

from ultralytics_cam.evaluation import LocalisationScores, localisation

from conftest import render, trained

N_IMAGES, SEED = 30, 7000

CASES = [
    # task, method, target, min pointing game, min energy in box
    ("detect", "HiResCAM", "class", 0.88, 0.82),
    ("detect", "LayerCAM", "class", 0.93, 0.84),
    ("detect", "GradCAMElementWise", "class", 0.93, 0.82),
    ("detect", "EigenGradCAM", "class", 0.96, 0.93),
    ("detect", "SegEigenCAM", "class", 0.96, 0.93),
    ("detect", "HiResCAM", "box", 0.82, 0.75),
    ("detect", "HiResCAM", "all", 0.88, 0.80),
    ("segment", "HiResCAM", "class", 0.84, 0.82),
    ("segment", "HiResCAM", "mask", 0.92, 0.79),
    ("pose", "HiResCAM", "class", 0.82, 0.79),
    ("pose", "HiResCAM", "keypoints", 0.67, 0.72),
    ("obb", "HiResCAM", "class", 0.95, 0.84),
    ("obb", "HiResCAM", "angle", 0.83, 0.75),
]


def dataset(task: str):
    rng = np.random.default_rng(SEED)
    from synthetic_shapes import render_image

    return [render_image(task, rng, 160) for _ in range(N_IMAGES)]


def scores(task: str, method: str, target: str) -> LocalisationScores:
    data = dataset(task)
    results = trained(task).cam([im for im, _ in data], method=method, target=target)
    s = LocalisationScores()
    for r, (_, objects) in zip(results, data):
        localisation(r, objects, s)
    return s


@pytest.mark.parametrize(("task", "method", "target", "min_pg", "min_energy"), CASES)
def test_maps_land_on_their_objects(task, method, target, min_pg, min_energy):
    s = scores(task, method, target)
    assert s.matched >= 0.85 * s.predictions  # the model itself works: most predictions are real objects
    assert s.pointing_game >= min_pg, s.as_dict()
    assert s.energy_in_box >= min_energy, s.as_dict()


def test_a_random_map_does_not_pass_for_an_explanation():
    """The localisation scores can fail: RandomCAM's maps score far below the thresholds above."""
    s = scores("detect", "RandomCAM", "class")
    assert s.pointing_game < 0.5 and s.energy_in_box < 0.3, s.as_dict()


def test_each_prediction_gets_its_own_map():
    """Two objects in one image: each prediction's map peaks inside its own object, not the other one's."""
    im = render("detect", seed=11)[0]
    (r,) = trained("detect").cam(im)
    assert len(r.boxes) >= 2
    peaks = [s["peak"] for s in r.cam.stats()]
    for (x, y), box in zip(peaks, r.boxes.xyxy.numpy()):
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
    assert len({tuple(p) for p in peaks}) == len(peaks)
