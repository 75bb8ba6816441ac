"""ConfidenceMap: our gradient-free baseline, each prediction's box filled with its confidence and smoothed.

It reads no layer and runs no backward, so it costs almost nothing and shows what a heatmap looks like when it says
nothing beyond the boxes themselves; a CAM method that cannot beat it on localisation adds no information.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .base import CamMethod

__all__ = ["ConfidenceMap"]


class ConfidenceMap(CamMethod):
    """Fill each box (rotated for OBB, the whole image for classify) with the confidence, then blur it."""

    name = "ConfidenceMap"
    summary = "each box filled with its confidence and smoothed: a gradient-free baseline (ultralytics-cam)"
    needs_gradients = False
    uses_activations = False
    normalize = False  # the value is the confidence itself

    def input_maps(self, selection, task: str, imgsz: tuple[int, int]) -> torch.Tensor:
        """Draw the maps in model-input space."""
        h, w = imgsz
        conf = selection.conf.float().cpu().numpy()
        maps = np.zeros((len(conf), h, w), np.float32)
        if task == "classify":
            maps[:] = conf[:, None, None]
            return torch.from_numpy(maps)
        boxes = selection.boxes.float().cpu()
        if task == "obb":
            from ultralytics.utils.ops import xywhr2xyxyxyxy

            polygons = xywhr2xyxyxyxy(boxes).numpy()
        for i, c in enumerate(conf):
            if task == "obb":
                cv2.fillPoly(maps[i], [np.round(polygons[i]).astype(np.int32)], float(c))
                side = float(min(boxes[i, 2], boxes[i, 3]))
            else:
                x1, y1, x2, y2 = boxes[i].tolist()
                maps[i, max(int(round(y1)), 0) : int(round(y2)), max(int(round(x1)), 0) : int(round(x2))] = c
                side = min(x2 - x1, y2 - y1)
            sigma = max(1.0, 0.15 * side)  # soften the edges in proportion to the box
            maps[i] = cv2.GaussianBlur(maps[i], (0, 0), sigma)
        return torch.from_numpy(maps)
