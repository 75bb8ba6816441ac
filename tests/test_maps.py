"""Compact maps: the patch route gives the dense route's numbers, and drawing never needs all maps at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ultralytics_cam.geometry import Geometry
from ultralytics_cam.maps import CamMaps, Patch, resample_patch

from conftest import trained, yaml_model

SHAPES = [(30, 40), (15, 20), (8, 10)]  # a 240 x 320 input at strides 8, 16, 32


def window_layers(n: int, seed: int = 0) -> list[torch.Tensor]:
    """Layer maps as the local path leaves them: each map non-zero on a window of one level, some at the border."""
    gen = torch.Generator().manual_seed(seed)
    layers = [torch.zeros(n, *s) for s in SHAPES]
    for i in range(n):
        level = i % 3
        h, w = SHAPES[level]
        y, x = [(0, 0), (h - 1, w - 1), (h // 2, 3)][i % 3]
        y0, y1, x0, x1 = max(y - 2, 0), min(y + 3, h), max(x - 2, 0), min(x + 3, w)
        layers[level][i, y0:y1, x0:x1] = torch.rand(y1 - y0, x1 - x0, generator=gen)
    return layers


def dense_reference(layers: list[torch.Tensor], i: int, hw: tuple[int, int]) -> torch.Tensor:
    """What the engine used to compute: upsample every layer map, average, ReLU, min-max."""
    ups = [F.interpolate(t[i : i + 1, None], hw, mode="bilinear", align_corners=False)[0, 0] for t in layers]
    fused = (sum(ups) / len(ups)).clamp(min=0)
    lo, hi = fused.min(), fused.max()
    return (fused - lo) / (hi - lo) if hi > lo else torch.zeros_like(fused)


def test_window_maps_stay_small_patches_and_equal_the_dense_route():
    layers = window_layers(9)
    maps = CamMaps.from_layers(layers, (240, 320))
    for i in range(9):
        p = maps.patch(i)
        stride = 240 // SHAPES[i % 3][0]
        assert p.values.numel() <= ((5 + 2) * stride) ** 2  # a 5 x 5 window (+1 cell each side) at the input size
        torch.testing.assert_close(maps.dense(i), dense_reference(layers, i, (240, 320)), rtol=0, atol=1e-6)


def test_dense_and_multi_layer_maps_equal_the_dense_route():
    layers = [torch.rand(3, *s) * (torch.rand(3, *s) > 0.5) for s in SHAPES]
    layers[0][2] = 0  # one map empty on one level
    maps = CamMaps.from_layers(layers, (240, 320))
    for i in range(3):
        torch.testing.assert_close(maps.dense(i), dense_reference(layers, i, (240, 320)), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("in_hw", "out_hw"), [((48, 64), (100, 90)), ((48, 64), (20, 30)), ((7, 5), (7, 5))])
def test_resample_patch_equals_interpolate(in_hw, out_hw):
    full = torch.zeros(in_hw)
    full[2:6, 1:4] = torch.rand(4, 3)
    ref = F.interpolate(full[None, None], out_hw, mode="bilinear", align_corners=False)[0, 0]
    p = resample_patch(Patch(2, 1, full[2:6, 1:4]), in_hw, out_hw)
    got = torch.zeros(out_hw)
    got[p.y0 : p.y1, p.x0 : p.x1] = p.values
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "geometry",
    [
        Geometry("letterbox", (240, 320), (1080, 810)),
        Geometry("letterbox", (240, 320), (480, 1280)),
        Geometry("stretch", (240, 320), (333, 555)),
        Geometry("center_crop", (240, 240), (300, 500)),
        Geometry("letterbox", (240, 320), (240, 320)),
    ],
    ids=lambda g: f"{g.kind}-{g.orig_hw}",
)
def test_patches_map_to_the_original_image_as_the_dense_maps_do(geometry):
    hw = geometry.input_hw
    shapes = [(hw[0] // 8, hw[1] // 8), (hw[0] // 16, hw[1] // 16), (hw[0] // 32, hw[1] // 32)]
    gen = torch.Generator().manual_seed(1)
    layers = [torch.zeros(6, *s) for s in shapes]
    for i in range(6):
        t = layers[i % 3][i]
        t[: 3 + i, -4:] = torch.rand(min(3 + i, t.shape[0]), 4, generator=gen)
    maps = CamMaps.from_layers(layers, hw)
    for i in range(6):
        want = geometry.to_original(maps.dense(i)[None])[0]
        p = geometry.patch_to_original(maps.patch(i))
        got = torch.zeros(geometry.orig_hw)
        got[p.y0 : p.y1, p.x0 : p.x1] = p.values
        torch.testing.assert_close(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("method", ["HiResCAM", "GradCAM", "ConfidenceMap", "EigenCAM"])
def test_heatmap_stats_and_plots_equal_their_dense_definitions(method, assets, monkeypatch):
    """heatmap = max of the maps; energy in box and peak from the dense maps; renormalized overlay as before."""
    from ultralytics_cam.plotting import renormalize_in_boxes
    from ultralytics_cam.result import CamResult

    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), method=method, conf=1e-4, imgsz=192, max_det=7)
    cam = r.cam
    # first, on the fresh result (nothing dense built or cached yet): none of them needs the dense (N, H, W) stack,
    # neither at the original size (CamResult.maps) nor at the input size (CamMaps.dense() without an index)
    with monkeypatch.context() as m:
        dense_one = CamMaps.dense

        def one_map_only(self, i=None):
            if i is None:
                pytest.fail("the dense input-size stack was built")
            return dense_one(self, i)

        m.setattr(CamResult, "maps", property(lambda self: pytest.fail("the dense maps were built")))
        m.setattr(CamMaps, "dense", one_map_only)
        heatmap, stats, renormalized = cam.heatmap, cam.stats(), cam._renormalized(range(len(cam)))
        cam.plot(), cam.plot(renormalize=True), cam.plot(index=0)
    # then they equal their dense definitions
    dense = cam.maps.copy()
    np.testing.assert_allclose(heatmap, dense.max(0), rtol=0, atol=1e-6)
    regions = cam.regions()
    for s, m, region in zip(stats, dense, regions):
        if s["energy_in_box"] is not None:
            assert s["energy_in_box"] == pytest.approx(float(m[region].sum()) / float(m.sum()), abs=2e-5)
        assert m[s["peak"][1], s["peak"][0]] == pytest.approx(float(m.max()), abs=1e-6)
    np.testing.assert_allclose(renormalized, renormalize_in_boxes(dense, regions), atol=1e-5)


def test_a_result_keeps_layer_maps_not_input_size_maps(assets):
    """Memory per result: the local path keeps n maps per level at the level's resolution, never n x H x W floats."""
    (r,) = trained("detect").cam(str(assets / "bus.jpg"), conf=1e-3, imgsz=640, max_det=40)
    compact = r.cam.compact
    assert compact.path == "local" and len(compact) == 40
    kept = sum(t.numel() for t in compact._layers)
    h, w = compact.input_hw
    assert kept < len(compact) * h * w / 20  # less than a twentieth of the input-size stack


def test_batched_patches_equal_one_by_one():
    layers = window_layers(12, seed=3)
    layers[1][0, 2:4, 2:4] = 0.5  # map 0 lives on two levels: computed on its own
    maps = CamMaps.from_layers(layers, (240, 320))
    for i, p in zip(range(12), maps.patches(list(range(12)))):
        q = maps.patch(i)
        assert (p.y0, p.x0) == (q.y0, q.x0)
        torch.testing.assert_close(p.values, q.values, rtol=0, atol=1e-6)
