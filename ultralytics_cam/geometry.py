"""Map a CAM from the model's input back onto the original image, undoing exactly what the predictor did to it.

- YOLO predictors letterbox (scale to fit, pad evenly): undone by Ultralytics' own ``ops.scale_masks``.
- RT-DETR stretches the image to the input size (``scale_fill``): a plain resize back.
- Classification resizes the short side and centre-crops: the map covers only the central crop; outside it is 0.
- Tensor sources are fed as they are: the map is already at the original size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Geometry"]


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

    def _uncrop(self, maps: torch.Tensor) -> torch.Tensor:
        """Undo torchvision's Resize(short side) + CenterCrop(size) as Ultralytics' classify transforms apply them."""
        (h0, w0), (ch, cw) = self.orig_hw, self.input_hw
        if ch == cw:  # torchvision Resize(int): short side -> size, long side -> int(size * long / short)
            rh, rw = (ch, int(ch * w0 / h0)) if h0 <= w0 else (int(ch * h0 / w0), ch)
        else:  # a non-square size resizes to exactly (h, w), so the crop is a no-op
            rh, rw = ch, cw
        top, left = int(round((rh - ch) / 2.0)), int(round((rw - cw) / 2.0))
        canvas = maps.new_zeros((len(maps), rh, rw), dtype=torch.float32)
        canvas[:, top : top + ch, left : left + cw] = maps
        return F.interpolate(canvas[:, None], (h0, w0), mode="bilinear", align_corners=False)[:, 0]
