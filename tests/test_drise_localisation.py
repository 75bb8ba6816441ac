"""DRISE maps land on their objects: the small trained models on synthetic shapes with known geometry.

Measured with exactly this setting (10 images of each task rendered with seed 7000, never seen in training; 160 px;
conf 0.25; 200 masks of 32 px cells kept with p = 0.5, seed 0), on the CPU, ultralytics 8.4.190, torch 2.14.1;
pointing game against the object's polygon, energy in the prediction's own box (rotated box for OBB):

    task     masks   predictions  matched  pointing game  energy in box
    detect    200        28          25        0.960          0.318
    detect   1000        28          25        1.000          0.353
    obb       200        30          24        0.917          0.262

D-RISE maps are smooth (sums of masks of 32 px cells on 160 px images) and include the context the detector uses, so
their energy in the box is lower than the gradient maps' (tests/test_localisation.py: 0.79-0.97) and far above a
random map's (0.10). Thresholds sit a few points under the measurements (one or two predictions of slack), never set by
trial to pass. The other tasks are in docs/drise.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from ultralytics_cam.evaluation import LocalisationScores, localisation

from conftest import trained

N_IMAGES, SEED, MASKS = 10, 7000, 200
CASES = [
    # task, min pointing game, min energy in box
    ("detect", 0.88, 0.28),
    ("obb", 0.83, 0.22),
]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "min_pg", "min_energy"), CASES)
def test_drise_maps_land_on_their_objects(task, min_pg, min_energy):
    from synthetic_shapes import render_image

    rng = np.random.default_rng(SEED)  # the first 10 images of tests/test_localisation.py's set
    data = [render_image(task, rng, 160) for _ in range(N_IMAGES)]
    results = trained(task).cam([im for im, _ in data], method="DRISE", drise_masks=MASKS, verbose=False)
    s = LocalisationScores()
    for r, (_, objects) in zip(results, data):
        localisation(r, objects, s)
    assert s.matched >= 0.8 * s.predictions  # the model itself works: most predictions are real objects
    assert s.pointing_game >= min_pg, s.as_dict()
    assert s.energy_in_box >= min_energy, s.as_dict()
