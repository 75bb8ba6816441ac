"""Compact, lazy class activation maps: small until someone asks for the dense (N, H, W) array.

The engine computes each prediction's map on every target layer at that layer's own resolution (an 80 x 80 map at
P3 for a 640 px input), after grad-cam's per-layer ReLU and min-max. Everything after that is linear resampling and a
per-map normalisation, so it is kept lazy:

1. each layer map is upsampled (bilinear) to the model input, the layers are fused (their mean, or the method's own
   rule) and the fused map is min-max scaled again: exactly grad-cam's ``scale_cam_image`` steps, in this order;
2. the result is mapped to the original image by the predictor's geometry (letterbox crop, stretch or centre crop,
   then a bilinear resize).

A map that is non-zero only on a small window of its layer (what the local head replay gives element-wise methods:
a 5 x 5 window of the head input) stays a small patch through both steps: the input-size patch covers the upsampled
window, the original-size patch the pixels whose bilinear samples touch it. ``heatmap``, ``plot``, the statistics and
the writers work patch by patch, so their cost and memory grow with the patches' area, not with N x H x W. Maps that
are dense (GradCAM's global channel weights light up the whole level) are rendered one at a time, which bounds memory
by one map rather than N.

Exactness: the patch route computes the very same numbers as the dense route (same interpolation weights as
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, same fusion and normalisation); the tests
compare both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["CamMaps", "Patch", "axis_weights", "resample_patch"]

#: The most input-size pixels one batch of patches holds (4 M floats, 16 MiB): dense maps go a few at a time.
PATCH_BATCH_FLOATS = 4_000_000


@dataclass(frozen=True)
class Patch:
    """A map's values on the rectangle [y0, y0 + h) x [x0, x0 + w) of its grid; zero everywhere else."""

    y0: int
    x0: int
    values: torch.Tensor  # (h, w) float32

    @property
    def y1(self) -> int:
        """End row (exclusive)."""
        return self.y0 + self.values.shape[0]

    @property
    def x1(self) -> int:
        """End column (exclusive)."""
        return self.x0 + self.values.shape[1]


@functools.lru_cache(maxsize=64)
def axis_weights(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear weights of one axis, as ``F.interpolate(mode="bilinear", align_corners=False)`` computes them.

    Returns, for every output position, the two source indices ``i0``, ``i1`` and the weight ``lam`` of ``i1``
    (PyTorch: ``src = (dst + 0.5) * in / out - 0.5``, clamped at 0; ``i1 = min(i0 + 1, in - 1)``).
    """
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = ((torch.arange(out_size, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.long()
    lam = (src - i0).clamp(0, 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, lam


def _axis_range(i0: torch.Tensor, i1: torch.Tensor, lo: int, hi: int) -> tuple[int, int]:
    """The output positions whose two sources touch [lo, hi): a contiguous range, since the sources are sorted."""
    start = int(torch.searchsorted(i1, torch.tensor(lo)))  # first output whose upper source reaches lo
    end = int(torch.searchsorted(i0, torch.tensor(hi)))  # first output whose lower source is at or past hi
    return start, max(start, end)


def _lerp_axis(values: torch.Tensor, i0: torch.Tensor, i1: torch.Tensor, lam: torch.Tensor, dim: int) -> torch.Tensor:
    """Interpolate ``values`` along ``dim`` with gathered sources (indices already relative to ``values``)."""
    a, b = values.index_select(dim, i0), values.index_select(dim, i1)
    shape = [1, 1]
    shape[dim] = -1
    return torch.lerp(a, b, lam.view(shape))  # one fused pass: a + lam * (b - a)


def resample_patch(patch: Patch, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Patch:
    """Bilinearly resize the zero-padded map a patch describes from ``in_hw`` to ``out_hw``; return the output patch.

    Equal to ``F.interpolate`` of the full map restricted to the positions the patch can reach (everything else is
    exactly zero).
    """
    out = patch.values
    starts = []
    axes = ((patch.y0, patch.y1, in_hw[0], out_hw[0]), (patch.x0, patch.x1, in_hw[1], out_hw[1]))
    for dim, (lo, hi, n_in, n_out) in enumerate(axes):
        i0, i1, lam = axis_weights(n_in, n_out)
        s, e = _axis_range(i0, i1, lo, hi)
        starts.append(s)
        padded = F.pad(out, (1, 1) if dim == 1 else (0, 0, 1, 1))  # a zero beyond each end of the patch
        j0 = (i0[s:e] - lo + 1).clamp(0, hi - lo + 1)
        j1 = (i1[s:e] - lo + 1).clamp(0, hi - lo + 1)
        out = _lerp_axis(padded, j0, j1, lam[s:e], dim)
    return Patch(starts[0], starts[1], out)


class CamMaps:
    """The maps of one image's n predictions at the model-input size, computed on demand.

    Built by the engine in one of three forms:

    - :meth:`from_layers`: per target layer, an (n, h, w) stack of layer maps after ReLU and min-max, plus the fusion
      rule; each map's non-zero bounding box per layer makes patches possible;
    - :meth:`from_renderer`: maps drawn directly in input space (``ConfidenceMap``) by a function that renders any
      rectangle of map i, with each map's support;
    - :meth:`from_dense`: a plain (n, H, W) stack (kept for maps that come out dense anyway).

    Attributes:
        input_hw: (H, W) of the model input.
        path: how the maps were computed ("local" head replay, "dense" backward, or "forward" for methods without a
            backward), recorded in ``cam.json``.
    """

    def __init__(self, n: int, input_hw: tuple[int, int], path: str = "dense") -> None:
        self.n = n
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.path = path
        self._layers: list[torch.Tensor] = []
        self._boxes: torch.Tensor | None = None  # (n, L, 4) y0, y1, x0, x1 of each layer map's non-zero part
        self._fuse: Callable[[list[torch.Tensor]], torch.Tensor] | None = None  # None: grad-cam's mean
        self._normalize = True
        self._shared = False  # one map for every prediction (image-level methods)
        self._render: Callable[[int, int, int, int, int], torch.Tensor] | None = None
        self._support: torch.Tensor | None = None  # (n, 4) for rendered maps
        self._dense: torch.Tensor | None = None

    # -- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def from_layers(
        cls,
        layers: list[torch.Tensor],
        input_hw: tuple[int, int],
        *,
        fuse: Callable[[list[torch.Tensor]], torch.Tensor] | None = None,
        normalize: bool = True,
        shared: bool = False,
        n: int | None = None,
        path: str = "dense",
    ) -> CamMaps:
        """Maps from per-layer stacks (each (m, h, w), ReLU'd and min-max scaled); ``shared``: one map for all n."""
        m = len(layers[0]) if layers else 0
        out = cls(m if n is None else n, input_hw, path)
        out._layers = [t.detach().float().cpu() for t in layers]  # small; drawing happens on the host
        out._fuse, out._normalize, out._shared = fuse, normalize, shared
        out._boxes = torch.stack([_nonzero_boxes(t) for t in out._layers], 1) if layers else None
        return out

    @classmethod
    def from_renderer(
        cls,
        n: int,
        input_hw: tuple[int, int],
        render: Callable[[int, int, int, int, int], torch.Tensor],
        support: torch.Tensor,
        path: str = "forward",
    ) -> CamMaps:
        """Maps drawn by ``render(i, y0, y1, x0, x1) -> (y1 - y0, x1 - x0)``, zero outside ``support`` (n, 4)."""
        out = cls(n, input_hw, path)
        out._render, out._support = render, support.long()
        return out

    @classmethod
    def from_dense(cls, maps: torch.Tensor, path: str = "dense") -> CamMaps:
        """Maps given as a dense (n, H, W) stack at the input size."""
        out = cls(len(maps), (maps.shape[-2], maps.shape[-1]), path)
        out._dense = maps.detach().float().cpu()
        return out

    def __len__(self) -> int:
        return self.n

    @property
    def _layer_boxes(self) -> torch.Tensor:
        """``_boxes``, for code that runs only on maps with layers (:meth:`from_layers` sets both together)."""
        assert self._boxes is not None  # from_layers sets _boxes whenever _layers is non-empty
        return self._boxes

    @property
    def shared(self) -> bool:
        """Whether every prediction has the same map (image-level methods: EigenCAM, FEM, KPCA_CAM)."""
        return self._shared

    # -- access ----------------------------------------------------------------------------------------------------
    def patch(self, i: int) -> Patch:
        """Map ``i`` at the input size as a patch (the whole map when its support is the whole input)."""
        big_h, big_w = self.input_hw
        if self._dense is not None:
            return Patch(0, 0, self._dense[i])
        if self._render is not None:
            assert self._support is not None  # from_renderer sets _render and _support together
            y0, y1, x0, x1 = (int(v) for v in self._support[i])
            return Patch(y0, x0, self._render(i, y0, y1, x0, x1).float())
        if not self._layers:
            return Patch(0, 0, torch.zeros((0, 0)))
        j = 0 if self._shared else i
        layer_boxes = self._layer_boxes
        rows = [(t[j], self._input_box(t.shape[-2:], layer_boxes[j, li])) for li, t in enumerate(self._layers)]
        alive = [(m, box) for m, box in rows if box is not None]
        if not alive:
            return Patch(0, 0, torch.zeros((0, 0)))
        if self._fuse is not None:  # the method's own fusion reads whole maps (RefineCAM's per-layer min-max)
            box = (0, big_h, 0, big_w)
        else:
            box = (
                min(b[0] for _, b in alive),
                max(b[1] for _, b in alive),
                min(b[2] for _, b in alive),
                max(b[3] for _, b in alive),
            )
        y0, y1, x0, x1 = box
        if self._fuse is not None:
            fused = self._fuse([self._upsample(m, box)[None] for m, _ in rows])[0]
        else:  # grad-cam's mean over the layers; a layer whose map is empty adds zeros
            fused = self._upsample(alive[0][0], box)
            for m, _ in alive[1:]:
                fused += self._upsample(m, box)
            fused /= len(rows)
        fused = fused.clamp_(min=0)
        if self._normalize:
            whole = (y1 - y0) * (x1 - x0) == big_h * big_w
            lo = float(fused.min()) if whole else 0.0  # outside the patch the map is exactly 0
            hi = float(fused.max()) if fused.numel() else 0.0
            fused = (fused - lo) / (hi - lo) if hi > lo else torch.zeros_like(fused)
        return Patch(y0, x0, fused)

    def patches(self, rows: list[int]) -> list[Patch]:
        """The patches of maps ``rows``, computed together where they can be.

        Maps that are non-zero on one layer only (what the local path gives element-wise methods) and fused by the
        mean are upsampled as one batch per layer: the same interpolation weights as :meth:`patch`, gathered for all
        of them at once, so a hundred small patches cost a few tensor operations instead of a few hundred.
        """
        out: dict[int, Patch] = {}
        if self._layers and self._fuse is None and not self._shared and self._dense is None and self._render is None:
            layer_boxes = self._layer_boxes
            alive = (layer_boxes[..., 1] > layer_boxes[..., 0]) & (layer_boxes[..., 3] > layer_boxes[..., 2])  # (n, L)
            only = torch.where(alive.sum(1) == 1, alive.float().argmax(1), -1).tolist()  # the one live layer, or -1
            for li in range(len(self._layers)):
                group = [i for i in rows if only[i] == li]
                boxes = layer_boxes[group, li]
                area = ((boxes[:, 1] - boxes[:, 0] + 2) * (boxes[:, 3] - boxes[:, 2] + 2)).tolist()  # cells, + margin
                cell = (self.input_hw[0] / self._layers[li].shape[-2]) * (self.input_hw[1] / self._layers[li].shape[-1])
                start = 0
                while start < len(group):  # batches of at most PATCH_BATCH_FLOATS input pixels
                    end, total = start, 0.0
                    while end < len(group) and (end == start or total + area[end] * cell <= PATCH_BATCH_FLOATS):
                        total += area[end] * cell
                        end += 1
                    out.update(zip(group[start:end], self._batched_patches(li, group[start:end])))
                    start = end
        return [out[i] if i in out else self.patch(i) for i in rows]

    def _batched_patches(self, li: int, group: list[int]) -> list[Patch]:
        """:meth:`patch` of maps non-zero on layer ``li`` alone, as one batch."""
        big_h, big_w = self.input_hw
        stack = self._layers[li][group]  # (m, h, w)
        h, w = stack.shape[-2:]
        boxes = self._layer_boxes[group, li]  # (m, 4) y0, y1, x0, x1 at the layer's resolution
        iy0, iy1, ly = axis_weights(h, big_h)
        ix0, ix1, lx = axis_weights(w, big_w)
        ys0, ys1 = torch.searchsorted(iy1, boxes[:, 0].contiguous()), torch.searchsorted(iy0, boxes[:, 1].contiguous())
        xs0, xs1 = torch.searchsorted(ix1, boxes[:, 2].contiguous()), torch.searchsorted(ix0, boxes[:, 3].contiguous())
        hm, wm = int((ys1 - ys0).max()), int((xs1 - xs0).max())
        yy = (ys0[:, None] + torch.arange(hm)).clamp(max=big_h - 1)  # (m, hm) input rows of each patch
        xx = (xs0[:, None] + torch.arange(wm)).clamp(max=big_w - 1)
        lam = ly[yy][:, :, None]
        rows = stack.gather(1, iy0[yy][:, :, None].expand(-1, -1, w)) * (1 - lam)
        rows += stack.gather(1, iy1[yy][:, :, None].expand(-1, -1, w)) * lam  # (m, hm, w)
        lam = lx[xx][:, None, :]
        vals = rows.gather(2, ix0[xx][:, None, :].expand(-1, hm, -1)) * (1 - lam)
        vals += rows.gather(2, ix1[xx][:, None, :].expand(-1, hm, -1)) * lam  # (m, hm, wm)
        vals /= len(self._layers)  # the mean over layers: the others are zero here
        vals.clamp_(min=0)
        sizes_h, sizes_w = (ys1 - ys0).tolist(), (xs1 - xs0).tolist()
        if self._normalize:
            if any(a * b == big_h * big_w for a, b in zip(sizes_h, sizes_w)):  # a patch covering the whole input
                return [self.patch(i) for i in group]
            hi = vals.flatten(1).amax(1)  # outside each patch the map is 0: that is its minimum
            vals = torch.where(hi[:, None, None] > 0, vals / hi.clamp(min=1e-30)[:, None, None], 0.0)
        return [
            Patch(int(y0), int(x0), vals[k, :hh, :ww])
            for k, (y0, x0, hh, ww) in enumerate(zip(ys0.tolist(), xs0.tolist(), sizes_h, sizes_w))
        ]

    def dense(self, i: int | None = None) -> torch.Tensor:
        """Map ``i`` as a dense (H, W) tensor, or all maps as (n, H, W) (memory: n x H x W floats)."""
        if i is None:
            out = torch.zeros((self.n, *self.input_hw))
            for k in range(self.n):
                out[k] = self.dense(k)
            return out
        p = self.patch(i)
        out = torch.zeros(self.input_hw)
        out[p.y0 : p.y1, p.x0 : p.x1] = p.values
        return out

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _input_box(self, hw: tuple[int, ...], box: torch.Tensor) -> tuple[int, int, int, int] | None:
        """The input-size rows/columns where the upsampled layer map can be non-zero, or None for an empty map."""
        y0, y1, x0, x1 = (int(v) for v in box)
        if y1 <= y0 or x1 <= x0:
            return None
        big_h, big_w = self.input_hw
        iy0, iy1, _ = axis_weights(hw[0], big_h)
        ix0, ix1, _ = axis_weights(hw[1], big_w)
        ry = _axis_range(iy0, iy1, y0, y1)
        rx = _axis_range(ix0, ix1, x0, x1)
        return (*ry, *rx)

    def _upsample(self, m: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
        """The layer map upsampled to the input size, on the input rectangle ``box``."""
        y0, y1, x0, x1 = box
        big_h, big_w = self.input_hw
        h, w = m.shape
        if (y0, y1, x0, x1) == (0, big_h, 0, big_w):
            return F.interpolate(m[None, None], (big_h, big_w), mode="bilinear", align_corners=False)[0, 0]
        iy0, iy1, ly = axis_weights(h, big_h)
        ix0, ix1, lx = axis_weights(w, big_w)
        rows = _lerp_axis(m, iy0[y0:y1], iy1[y0:y1], ly[y0:y1], 0)
        return _lerp_axis(rows, ix0[x0:x1], ix1[x0:x1], lx[x0:x1], 1)


def _nonzero_boxes(maps: torch.Tensor) -> torch.Tensor:
    """(n, 4) y0, y1, x0, x1 of each (h, w) map's non-zero part (y1 <= y0 for an all-zero map)."""
    if maps.numel() == 0:
        return torch.zeros((len(maps), 4), dtype=torch.long)
    rows, cols = maps.ne(0).any(2), maps.ne(0).any(1)  # (n, h), (n, w)
    h, w = maps.shape[-2:]
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    y0 = torch.where(rows, ar_h, h).amin(1)
    y1 = torch.where(rows, ar_h + 1, 0).amax(1)
    x0 = torch.where(cols, ar_w, w).amin(1)
    x1 = torch.where(cols, ar_w + 1, 0).amax(1)
    return torch.stack([y0, y1, x0, x1], 1)
