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
        if task == "obb":  # centre, size and rotation of each rotated box
            cx, cy, bw, bh, angle = boxes.unbind(1)
        else:
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            bw, bh, angle = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1], torch.zeros(len(boxes))
        sigma = (self.softness * torch.minimum(bw, bh)).clamp(min=1.0)[:, None, None]
        ys = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5  # pixel centres
        xs = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5
        dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
        cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # pixel offsets in each box's own frame

        def band(t: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
            scale = sigma * math.sqrt(2.0)
            return 0.5 * (torch.erf((t + half) / scale) - torch.erf((t - half) / scale))

        return conf[:, None, None] * band(u, bw[:, None, None] / 2) * band(v, bh[:, None, None] / 2)
