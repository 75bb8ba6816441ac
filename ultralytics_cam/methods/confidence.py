"""ConfidenceMap: our gradient-free baseline, each prediction's box filled with its confidence and smoothed.

It reads no layer and runs no backward, so it costs almost nothing and shows what a heatmap looks like when it says
nothing beyond the boxes themselves; a CAM method that cannot beat it on localisation adds no information.
"""

from __future__ import annotations

import math

import torch

from .base import CamMethod

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

    def input_maps(self, selection, task: str, imgsz: tuple[int, int]) -> torch.Tensor:
        """Draw the (n, H, W) maps in model-input space."""
        h, w = imgsz
        conf = selection.conf.float().cpu()
        if task == "classify":
            return conf[:, None, None].expand(len(conf), h, w).clone()
        boxes = selection.boxes.float().cpu()
        ys = torch.arange(h, dtype=torch.float32)[None, :] + 0.5  # pixel centres
        xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
        if task != "obb":  # axis-aligned: the outer product of a row and a column profile
            x1, y1, x2, y2 = (c[:, None] for c in boxes.unbind(1))
            sigma = (self.softness * torch.minimum(x2 - x1, y2 - y1)).clamp(min=1.0)
            rows = _band(ys - (y1 + y2) / 2, (y2 - y1) / 2, sigma)
            cols = _band(xs - (x1 + x2) / 2, (x2 - x1) / 2, sigma)
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
