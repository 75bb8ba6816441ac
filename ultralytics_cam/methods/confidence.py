"""ConfidenceMap: our gradient-free baseline, each prediction's box filled with its confidence and smoothed.

It reads no layer and runs no backward, so it costs almost nothing and shows what a heatmap looks like when it says
nothing beyond the boxes themselves; a CAM method that cannot beat it on localisation adds no information.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .base import CamMethod

if TYPE_CHECKING:
    from ..heads import Selection
    from ..maps import CamMaps

__all__ = ["ConfidenceMap"]


class ConfidenceMap(CamMethod):
    """Each box (rotated for OBB, the whole image for classify) filled with its confidence and Gaussian-blurred.

    A rectangle blurred by an isotropic Gaussian is separable in the rectangle's own frame, so each map is computed
    exactly in closed form, ``conf * [Phi((u + w/2)/s) - Phi((u - w/2)/s)] * [same in v]``, instead of blurring an
    image (an OpenCV blur with a sigma proportional to a 600 px box took 40 ms per map).
    """

    name = "ConfidenceMap"
    summary = "each box filled with its confidence and smoothed: a gradient-free baseline (ultralytics-cam)"
    needs_gradients = False
    uses_activations = False
    normalize = False  # the value is the confidence itself
    #: The blur's sigma, as a share of the box's shorter side.
    softness = 0.15

    #: Profiles are cut where they fall below 1e-9 of the confidence: 6 sigma beyond the box edge.
    reach = 6.0

    def input_maps(self, selection: Selection, task: str, imgsz: tuple[int, int]) -> torch.Tensor:
        """Draw the (n, H, W) maps in model-input space."""
        return self._draw(selection, task, imgsz, 0, imgsz[0], 0, imgsz[1])

    def lazy_input_maps(self, selection: Selection, task: str, imgsz: tuple[int, int]) -> CamMaps:
        """Each map drawn on demand, on the rectangle where it exceeds 1e-9 of its confidence (box + 6 sigma)."""
        from ..maps import CamMaps

        h, w = imgsz
        sel = selection
        if sel.flipped:  # drawn at the mirrored boxes, then mirrored back: draw the original boxes instead
            sel = sel.mirrored(sel.index, w)
        n = len(sel)
        if task == "classify" or n == 0:
            support = torch.tensor([[0, h, 0, w]] * n, dtype=torch.long).view(n, 4)
        else:
            boxes = sel.boxes.float().cpu()
            if task == "obb":
                cx, cy, bw, bh, a = boxes.unbind(1)
                half_w = (bw * a.cos().abs() + bh * a.sin().abs()) / 2
                half_h = (bw * a.sin().abs() + bh * a.cos().abs()) / 2
                x1, y1, x2, y2 = cx - half_w, cy - half_h, cx + half_w, cy + half_h
                sigma = (self.softness * torch.minimum(bw, bh)).clamp(min=1.0)
            else:
                x1, y1, x2, y2 = boxes.unbind(1)
                sigma = (self.softness * torch.minimum(x2 - x1, y2 - y1)).clamp(min=1.0)
            pad = self.reach * sigma
            support = torch.stack(
                [
                    (y1 - pad).floor().clamp(0, h),
                    (y2 + pad).ceil().clamp(0, h),
                    (x1 - pad).floor().clamp(0, w),
                    (x2 + pad).ceil().clamp(0, w),
                ],
                1,
            ).long()

        def render(i: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
            return self._draw(sel.subset(torch.tensor([i])), task, imgsz, y0, y1, x0, x1)[0]

        return CamMaps.from_renderer(n, imgsz, render, support)

    def _draw(
        self, selection: Selection, task: str, imgsz: tuple[int, int], y0: int, y1: int, x0: int, x1: int
    ) -> torch.Tensor:
        """Draw the (n, y1 - y0, x1 - x0) maps on rows [y0, y1) and columns [x0, x1) of model-input space."""
        conf = selection.conf.float().cpu()
        if task == "classify":
            return conf[:, None, None].expand(len(conf), y1 - y0, x1 - x0).clone()
        boxes = selection.boxes.float().cpu()
        ys = torch.arange(y0, y1, dtype=torch.float32)[None, :] + 0.5  # pixel centres
        xs = torch.arange(x0, x1, dtype=torch.float32)[None, :] + 0.5
        if task != "obb":  # axis-aligned: the outer product of a row and a column profile
            bx1, by1, bx2, by2 = (c[:, None] for c in boxes.unbind(1))
            sigma = (self.softness * torch.minimum(bx2 - bx1, by2 - by1)).clamp(min=1.0)
            rows = _band(ys - (by1 + by2) / 2, (by2 - by1) / 2, sigma)
            cols = _band(xs - (bx1 + bx2) / 2, (bx2 - bx1) / 2, sigma)
            return conf[:, None, None] * rows[:, :, None] * cols[:, None, :]
        cx, cy, bw, bh, angle = (c[:, None, None] for c in boxes.unbind(1))
        sigma = (self.softness * torch.minimum(bw, bh)).clamp(min=1.0)
        dx, dy = xs[:, None, :] - cx, ys[:, :, None] - cy
        cos, sin = torch.cos(angle), torch.sin(angle)
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # pixel offsets in each rotated box's own frame
        return conf[:, None, None] * _band(u, bw / 2, sigma) * _band(v, bh / 2, sigma)


def _band(t: torch.Tensor, half: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A 1-D box of half-width ``half`` centred at 0, blurred by a Gaussian of ``sigma``, evaluated at ``t``."""
    scale = sigma * math.sqrt(2.0)
    return 0.5 * (torch.erf((t + half) / scale) - torch.erf((t - half) / scale))
