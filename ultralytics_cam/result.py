"""``CamResult``: the class activation maps of one image, attached to Ultralytics' ``Results`` as ``r.cam``.

Maps are kept at the model-input resolution and brought to the original image size only when asked for
(``maps``, ``heatmap``, ``plot``): N full-resolution float maps of a 4K frame would otherwise cost gigabytes per image.

``r.cam`` is a plain attribute: like any custom attribute, Ultralytics drops it on ``r[i]``, ``r.cpu()`` and
``r.to()``. Row ``i`` of ``r.cam.maps`` explains row ``i`` of ``r.boxes`` / ``r.masks`` / ``r.keypoints`` / ``r.obb``
(for classify: ``r.probs.top5[i]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from .geometry import Geometry
from .plotting import overlay, renormalize_in_boxes

__all__ = ["CamResult"]


class CamResult:
    """Class activation maps of one image, one per explained prediction.

    Attributes:
        method: the CAM method's name.
        layers: the layers read (indices or module names).
        target: what was explained ("class", "box", ...).
        cls: (n,) class id of each explained prediction.
        conf: (n,) its confidence (classify: probability).
        index: (n,) where it sits in the head's pre-NMS output: anchor (YOLO), query (RT-DETR) or class (classify).
        names: the model's class names.
        geometry: how the image was fitted to the model input.
        maps_input: (n, h, w) float16 maps at the model-input size, before the mapping back to the original image.
    """

    def __init__(
        self,
        maps_input: torch.Tensor,
        geometry: Geometry,
        result: Any,
        *,
        method: str,
        layers: list,
        target: str,
        cls: torch.Tensor,
        conf: torch.Tensor,
        index: torch.Tensor | None = None,
        display: dict | None = None,
    ) -> None:
        """Create the result; ``maps_input`` is (n, h, w) in [0, 1] at the model-input size.

        It is kept as float16 (resolution better than 1e-3 in [0, 1]): a list of results holds one map per prediction
        of every image, 61 MB per 640 x 480 image with 50 predictions in float32.
        """
        self.maps_input = maps_input.detach().to("cpu", torch.float16)
        self.geometry = geometry
        self.result = result
        self.method, self.layers, self.target = method, list(layers), target
        self.cls = cls.detach().long().cpu()
        self.conf = conf.detach().float().cpu()
        self.index = self.cls.clone() if index is None else index.detach().long().cpu()
        self.names = result.names
        self.display = {"alpha": 0.5, "colormap": "jet", "show_boxes": True, "renormalize": False, **(display or {})}
        self._maps: np.ndarray | None = None

    def __len__(self) -> int:
        """Return the number of explained predictions."""
        return len(self.maps_input)

    def __repr__(self) -> str:
        """Summarise the result."""
        h, w = self.geometry.orig_hw
        shape = f"({len(self)}, {h}, {w})"
        return f"CamResult(method={self.method!r}, target={self.target!r}, layers={self.layers}, maps={shape})"

    @property
    def maps(self) -> np.ndarray:
        """(n, H, W) float32 maps in [0, 1] at the original image size; row i explains prediction i."""
        if self._maps is None:
            self._maps = self.geometry.to_original(self.maps_input).clamp(0, 1).numpy().astype(np.float32, copy=False)
        return self._maps

    @property
    def heatmap(self) -> np.ndarray:
        """(H, W) float32 map of all explained predictions combined (their maximum), at the original size."""
        maps = self.maps
        return maps.max(0) if len(maps) else np.zeros(self.geometry.orig_hw, np.float32)

    # -- geometry of the predictions ---------------------------------------------------------------------------------
    def regions(self) -> np.ndarray:
        """(n, H, W) bool: each prediction's box (rotated box for OBB; the whole image for classify)."""
        h, w = self.geometry.orig_hw
        n = len(self)
        out = np.zeros((n, h, w), bool)
        r = self.result
        if r.obb is not None:
            for i, poly in enumerate(r.obb.xyxyxyxy.cpu().numpy()):
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
                out[i] = mask.astype(bool)
        elif r.boxes is not None:
            for i, (x1, y1, x2, y2) in enumerate(r.boxes.xyxy.cpu().numpy()):
                out[i, max(int(y1), 0) : int(np.ceil(y2)), max(int(x1), 0) : int(np.ceil(x2))] = True
        else:
            out[:] = True
        return out

    def stats(self) -> list[dict]:
        """Per prediction: class, name, confidence, box, its map's peak (x, y) and its share of energy in the box."""
        maps, regions = self.maps, self.regions()
        r = self.result
        boxes = (
            r.obb.xywhr.cpu().numpy().tolist()
            if r.obb is not None
            else r.boxes.xyxy.cpu().numpy().tolist()
            if r.boxes is not None
            else [None] * len(self)
        )
        out = []
        for i in range(len(self)):
            m = maps[i]
            total = float(m.sum())
            y, x = np.unravel_index(int(m.argmax()), m.shape)
            c = int(self.cls[i])
            out.append(
                {
                    "class": c,
                    "name": self.names.get(c, str(c)) if isinstance(self.names, dict) else str(c),
                    "confidence": round(float(self.conf[i]), 5),
                    "box": [round(v, 2) for v in boxes[i]] if boxes[i] is not None else None,
                    "peak": [int(x), int(y)],
                    "energy_in_box": round(float(m[regions[i]].sum()) / total, 5)
                    if total > 0 and r.probs is None
                    else None,
                }
            )
        return out

    def save(self, folder: str | Path, save_maps: bool = False) -> list[Path]:
        """Write this image's files of the output layout (SPEC §6) into ``folder``; return the written paths.

        ``detection.png``, ``heatmap.png``, ``heatmap.npy`` and ``cam.json`` (plus ``maps.npy`` and ``maps/*.png``
        with ``save_maps``). Each file is written atomically and the folder appears complete or not at all;
        same-named files already in ``folder`` are replaced, anything else in it is left alone.
        """
        from .writers import SaveConfig, write_image_folder

        return write_image_folder(self, folder, SaveConfig(save_maps=save_maps, source=str(self.result.path)))

    # -- drawing -----------------------------------------------------------------------------------------------------
    def plot(
        self,
        alpha: float | None = None,
        colormap: str | int | None = None,
        show_boxes: bool | None = None,
        renormalize: bool | None = None,
        index: int | None = None,
        **plot_kwargs: Any,
    ) -> np.ndarray:
        """Return a BGR uint8 overlay of the heatmap on the original image.

        Args:
            alpha: weight of the heatmap in the blend (default from ``model.cam(alpha=...)``, 0.5).
            colormap: any OpenCV colormap name ("jet", "turbo", "viridis", ...).
            show_boxes: draw Ultralytics' own annotations (boxes, labels, keypoints) on top.
            renormalize: scale each map to its own range inside its box and zero it outside, so weak predictions
                show as clearly as strong ones.
            index: draw only prediction ``index``'s map (and box).
            **plot_kwargs: passed to ``Results.plot`` when boxes are drawn (``conf``, ``labels``, ``line_width``...).
        """
        d = self.display
        alpha = d["alpha"] if alpha is None else alpha
        colormap = d["colormap"] if colormap is None else colormap
        show_boxes = d["show_boxes"] if show_boxes is None else show_boxes
        renormalize = d["renormalize"] if renormalize is None else renormalize
        maps, result = self.maps, self.result
        if index is not None:
            maps, result = maps[index : index + 1], result[index] if result.probs is None else result
        if renormalize and result.probs is None:
            regions = self.regions() if index is None else self.regions()[index : index + 1]
            heat = renormalize_in_boxes(maps, regions)
        else:
            heat = maps.max(0) if len(maps) else np.zeros(self.geometry.orig_hw, np.float32)
        image = overlay(result.orig_img, heat, alpha, colormap)
        if show_boxes:
            image = result.plot(img=image, masks=False, **plot_kwargs)
        return image
