"""Output names of inputs: one rule (``writers.unique_name``) wherever a name is given outside the predictor."""

from __future__ import annotations

import cv2
import numpy as np

from ultralytics_cam.distributed import output_names
from ultralytics_cam.ranking import load_sample
from ultralytics_cam.writers import unique_name


def test_same_stems_are_numbered_and_run_level_names_are_never_given():
    taken: set[str] = set()
    names = [unique_name(s, taken) for s in ("bus", "bus", "summary.json", "INDEX.HTML", "figures", "bus")]
    assert names == ["bus", "bus-2", "summary.json-2", "INDEX.HTML-2", "figures-2", "bus-3"]
    assert taken == set(names)


def test_the_ray_driver_names_folders_as_a_local_run_does():
    # A local run reserves the run-level names before Ultralytics de-duplicates (sources.write_results): a folder
    # named summary.json would make the run's own summary.json impossible to write.
    files = ["/d/summary.json.jpg", "/d/Manifest.jsonl.png", "/d/bus.jpg", "/e/bus.jpg"]
    assert output_names(files, set()) == ["summary.json-2", "Manifest.jsonl-2", "bus", "bus-2"]
    assert output_names(files[2:], {"bus"}) == ["bus-2", "bus-3"]


def test_eval_and_compare_samples_with_the_same_stem_get_their_own_names(tmp_path):
    # eval / compare name figures and rows after the sample: bus.jpg and bus.png used to share figures/bus.png.
    for suffix in (".jpg", ".png"):
        cv2.imwrite(str(tmp_path / f"bus{suffix}"), np.full((32, 32, 3), 128, np.uint8))
    names = [name for name, _ in load_sample(str(tmp_path), max_images=5)]
    assert sorted(names) == ["bus", "bus-2"]
