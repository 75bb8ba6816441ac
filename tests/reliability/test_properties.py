"""Issue 9: property-based tests of ``model.cam`` over image sizes, channels, dtypes, batch sizes and options.

For every drawn case: each map has the original image's shape, values are finite and in [0, 1], there is one map per
kept prediction, the model is unchanged, and the peak memory of the call stays under a bound computed from the input
and the options (linear in the pixels, with an N x H x W term only when ``save_maps`` asks to keep every map).

Profiles (hypothesis settings): ``ci`` (default, well under a minute here), ``long`` (on demand) and ``explicit`` (only
the extreme cases given with ``@example``)::

    ULTRALYTICS_CAM_HYPOTHESIS=long pytest tests/reliability/test_properties.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from corpus import bus, write_image
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from ultralytics_cam import writers

from conftest import tiny_detector

settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    derandomize=True,  # the same cases on every CI run; the long profile explores
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explicit", phases=[Phase.explicit], deadline=None)  # only the @example extremes
PROFILE = settings.get_profile(os.environ.get("ULTRALYTICS_CAM_HYPOTHESIS", "ci"))

MB = 2**20


# -- peak memory of one call (Linux: the kernel's resident high-water mark, reset before the call) ---------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM); False where the platform cannot (then memory is not asserted)."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    return _status_kb("VmHWM") * 1024


def memory_bound(shapes: list[tuple[int, int, int, int]], n: int, save_maps: bool) -> int:
    """Bytes a call may add to the resident size: from the input and the options, never from N x H x W by default.

    ``shapes`` are (height, width, channels, bytes per channel) of the images (a returned list holds every image and
    its maps), ``n`` the predictions per image.
    """
    bound = 600 * MB  # the model, autograd, grad-cam, torch's allocator and Python's heaps at these small imgsz
    for h, w, c, b in shapes:
        bound += 3 * h * w * c * b  # the decoded image (Ultralytics' copy, the plot's copy)
        bound += 64 * h * w  # a handful of full-size float32 maps and uint8 overlays (heatmap, plots, PNG encoding)
        bound += n * 64 * 1024  # per prediction: its compact map, box and statistics
        if save_maps:
            bound += 3 * n * h * w * 4  # every map kept at full size, as asked (maps.npy and one PNG each)
    return bound


# -- the model and its state -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return tiny_detector()


def _image(rng: np.random.Generator, assets: Path, h: int, w: int, channels: int, dtype: str) -> np.ndarray:
    im = bus(assets, w, h, shift=int(rng.integers(0, max(w, 1))))
    if channels == 1:
        im = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
    elif channels == 4:
        im = np.dstack([im, rng.integers(0, 256, (h, w), dtype=np.uint8)])
    return im.astype(np.uint16) * 257 if dtype == "uint16" else im


sizes = st.integers(1, 4000)
case = st.fixed_dictionaries(
    {
        "images": st.lists(
            st.tuples(sizes, sizes, st.sampled_from([1, 3, 4]), st.sampled_from(["uint8", "uint16"])),
            min_size=1,
            max_size=3,
        ),
        "batch": st.integers(1, 3),
        "max_det": st.integers(1, 30),
        "imgsz": st.sampled_from([32, 64, 96]),
        "method": st.sampled_from(["HiResCAM", "GradCAM", "EigenCAM", "LayerCAM"]),
        "target": st.sampled_from(["class", "box"]),
        "renormalize": st.booleans(),
        "show_boxes": st.booleans(),
        "save": st.booleans(),
        "save_maps": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def _case(images: list, **kw: object) -> dict:
    base = {"batch": 1, "max_det": 1, "imgsz": 64, "method": "HiResCAM", "target": "class", "renormalize": False}
    return {"images": images, **base, "show_boxes": True, "save": False, "save_maps": False, "seed": 0, **kw}


@pytest.mark.slow
@settings(PROFILE)
@given(c=case)
# the extremes, always run: a 12-megapixel photo with 30 predictions, saved (the memory bound must not see N x H x W),
# one pixel, a 1-pixel-tall panorama, a batch of mixed channels and depths with save_maps
@example(c=_case([(3000, 4000, 3, "uint8")], max_det=30, save=True))
@example(c=_case([(1, 1, 1, "uint16")]))
@example(c=_case([(1, 4000, 4, "uint8")], max_det=3, method="EigenCAM"))
@example(
    c=_case(
        [(50, 70, 1, "uint16"), (90, 40, 4, "uint8"), (33, 33, 3, "uint16")],
        batch=2,
        max_det=4,
        save=True,
        save_maps=True,
        target="box",
        renormalize=True,
    )
)
def test_maps_match_the_input_and_memory_stays_bounded(model, assets, tmp_path_factory, c):
    from test_invariants import assert_unchanged, snapshot

    rng = np.random.default_rng(c["seed"])
    src = tmp_path_factory.mktemp("src")
    shapes, paths = [], []
    for i, (h, w, ch, dtype) in enumerate(c["images"]):
        path = src / f"im{i}.png"
        write_image(path, _image(rng, assets, h, w, ch, dtype))
        paths.append(path)
        shapes.append((h, w, ch, 2 if dtype == "uint16" else 1))
    before = snapshot(model)
    opts = {k: c[k] for k in ("batch", "max_det", "imgsz", "method", "target", "renormalize", "show_boxes")}
    save = {"save": True, "save_maps": c["save_maps"], "project": tmp_path_factory.mktemp("out")} if c["save"] else {}
    measured = reset_peak() and sys.platform.startswith("linux")
    base = peak_rss()
    results = model.cam(src, conf=0.0, **opts, **save)
    added = peak_rss() - base

    assert len(results) == len(paths)
    by_name = {Path(r.path).name: r for r in results}
    for path, (h, w, _, _) in zip(paths, shapes):
        r = by_name[path.name]
        assert tuple(r.orig_shape) == (h, w)
        assert len(r.cam) == len(r.boxes) <= c["max_det"]  # one map per kept prediction
        heat = r.cam.heatmap
        assert heat.shape == (h, w) and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
        if len(r.cam):
            maps = r.cam.maps
            assert maps.shape == (len(r.cam), h, w)
            assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        if c["save"]:
            folder = Path(r.save_dir) / path.stem
            stored = np.load(folder / "heatmap.npy")
            # downscaled only when the long side exceeds the larger of the cap and the model input's side
            limit = max(writers.HEATMAP_NPY_MAX_SIDE, *(int(v) for v in r.cam.geometry.input_hw))
            assert max(stored.shape) == min(max(h, w), limit), (stored.shape, (h, w), limit)
            assert np.isfinite(stored).all()
    assert_unchanged(model, before)
    if measured:
        bound = memory_bound(shapes, c["max_det"], save_maps=c["save"] and c["save_maps"])
        assert added <= bound, f"peak grew by {added / MB:.0f} MB, bound {bound / MB:.0f} MB for {c}"
