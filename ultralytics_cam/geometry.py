"""Map a CAM from the model's input back onto the original image, undoing exactly what the predictor did to it.

- YOLO predictors letterbox (scale to fit, pad evenly): undone by Ultralytics' own ``ops.scale_masks``.
- RT-DETR stretches the image to the input size (``scale_fill``): a plain resize back.
- Classification resizes the short side and centre-crops: the map covers only the central crop; outside it is 0.
- Tensor sources are fed as they are: the map is already at the original size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .maps import Patch, resample_patch

__all__ = ["Geometry", "geometry_kind"]


def geometry_kind(predictor: Any) -> str:
    """How ``predictor`` (an Ultralytics predictor, or a validator) fitted images to the model input.

    "stretch" for tensor sources (fed unchanged: the maps are at the original size already) and for ``scale_fill``
    (RT-DETR); "center_crop" for classification (torchvision transforms resize the short side and crop); otherwise
    "letterbox". A validator has no source: it letterboxes.
    """
    source_type = getattr(predictor, "source_type", None)
    if source_type is not None and source_type.tensor:
        return "stretch"
    args = getattr(predictor, "args", None)
    if getattr(predictor, "host_transforms", None) is not None or getattr(args, "task", None) == "classify":
        return "center_crop"
    return "stretch" if getattr(predictor, "scale_fill", False) else "letterbox"


@dataclass(frozen=True)
class Geometry:
    """How one image went from its original size to the model input.

    Attributes:
        kind: "letterbox", "stretch" or "center_crop".
        input_hw: (h, w) of the model input.
        orig_hw: (h, w) of the original image.
    """

    kind: str
    input_hw: tuple[int, int]
    orig_hw: tuple[int, int]

    def to_original(self, maps: torch.Tensor) -> torch.Tensor:
        """Return (n, H, W) maps at the original size from (n, h, w) maps at the input size."""
        if maps.shape[-2:] == self.orig_hw or len(maps) == 0:
            return maps.new_zeros((len(maps), *self.orig_hw)) if len(maps) == 0 else maps
        if self.kind == "letterbox":
            from ultralytics.utils import ops

            return ops.scale_masks(maps[:, None].float(), self.orig_hw)[:, 0]
        if self.kind == "stretch":
            return F.interpolate(maps[:, None].float(), self.orig_hw, mode="bilinear", align_corners=False)[:, 0]
        if self.kind == "center_crop":
            return self._uncrop(maps)
        raise ValueError(f"unknown geometry kind {self.kind!r}")

    def canvas(self) -> tuple[int, int, int, int]:
        """The region that is resized to the original image: (row offset, column offset, height, width).

        Canvas pixel (y, x) holds input pixel (y + row offset, x + column offset), zero where that lies outside the
        input: the letterbox's content (padding cropped, as ``ops.scale_masks`` crops it), the whole stretched input,
        or the resized image around a centre crop.

        Raises:
            ValueError: ``kind`` is not a known geometry kind.
        """
        (h, w), (h0, w0) = self.input_hw, self.orig_hw
        if (h, w) == (h0, w0):
            return 0, 0, h, w
        if self.kind == "letterbox":  # ops.scale_masks' own arithmetic (ratio_pad=None)
            gain = min(h / h0, w / w0)
            pad_w, pad_h = (w - max(round(w0 * gain), 1)) / 2, (h - max(round(h0 * gain), 1)) / 2
            top, left = round(pad_h - 0.1), round(pad_w - 0.1)
            return top, left, max(round(h0 * gain), 1), max(round(w0 * gain), 1)
        if self.kind == "stretch":
            return 0, 0, h, w
        if self.kind == "center_crop":
            rh, rw, top, left = self._crop_frame()
            return -top, -left, rh, rw
        raise ValueError(f"unknown geometry kind {self.kind!r}")

    def patch_to_original(self, patch: Patch) -> Patch:
        """Map a :class:`~ultralytics_cam.maps.Patch` at the input size to the original size.

        The same numbers as :meth:`to_original` on the dense map, computed only where the patch can reach.
        """
        oy, ox, ch, cw = self.canvas()
        y0, y1 = max(patch.y0 - oy, 0), min(patch.y1 - oy, ch)
        x0, x1 = max(patch.x0 - ox, 0), min(patch.x1 - ox, cw)
        if y1 <= y0 or x1 <= x0:
            return Patch(0, 0, torch.zeros((0, 0)))
        values = patch.values[y0 + oy - patch.y0 : y1 + oy - patch.y0, x0 + ox - patch.x0 : x1 + ox - patch.x0]
        if (ch, cw) == self.orig_hw:
            return Patch(y0, x0, values.float())
        return resample_patch(Patch(y0, x0, values.float()), (ch, cw), self.orig_hw)

    def _crop_frame(self) -> tuple[int, int, int, int]:
        """(resized height, resized width, crop top, crop left) of torchvision's Resize(short side) + CenterCrop."""
        (h0, w0), (ch, cw) = self.orig_hw, self.input_hw
        if ch == cw:  # torchvision Resize(int): short side -> size, long side -> int(size * long / short)
            rh, rw = (ch, int(ch * w0 / h0)) if h0 <= w0 else (int(ch * h0 / w0), ch)
        else:  # a non-square size resizes to exactly (h, w), so the crop is a no-op
            rh, rw = ch, cw
        return rh, rw, int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))

    def _uncrop(self, maps: torch.Tensor) -> torch.Tensor:
        """Undo torchvision's Resize(short side) + CenterCrop(size) as Ultralytics' classify transforms apply them."""
        (h0, w0), (ch, cw) = self.orig_hw, self.input_hw
        rh, rw, top, left = self._crop_frame()
        canvas = maps.new_zeros((len(maps), rh, rw), dtype=torch.float32)
        canvas[:, top : top + ch, left : left + cw] = maps
        return F.interpolate(canvas[:, None], (h0, w0), mode="bilinear", align_corners=False)[:, 0]
