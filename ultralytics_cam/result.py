"""``CamResult``: the class activation maps of one image, attached to Ultralytics' ``Results`` as ``r.cam``.

The maps stay compact (:class:`~ultralytics_cam.maps.CamMaps`: per-layer maps at each layer's resolution, small
patches where a map is non-zero only on a window) and are brought to the original image size only when asked for.
``heatmap``, ``plot``, ``stats`` and the writers work one map (one patch) at a time, so neither their time nor their
memory grows with N x H x W; only ``maps``, the dense (N, H, W) array, costs that, and only when it is read.

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
from .maps import CamMaps, Patch
from .plotting import overlay

__all__ = ["CamResult"]


class CamResult:
    """Class activation maps of one image, one per explained prediction.

    Attributes:
        method: the CAM method's name.
        layers: the layers read (indices or module names).
        target: what was explained ("class", "box", ...).
        path: how the gradients were computed: "local" (head replay), "dense" (batched backward) or "forward" (no
            backward).
        cls: (n,) class id of each explained prediction.
        conf: (n,) its confidence (classify: probability).
        index: (n,) where it sits in the head's pre-NMS output: anchor (YOLO), query (RT-DETR) or class (classify).
        names: the model's class names.
        geometry: how the image was fitted to the model input.
        compact: the maps at the model-input size, computed on demand (:class:`~ultralytics_cam.maps.CamMaps`).
        rows: semantic and depth models: one dict per row saying which region it explains (set by the predictor,
            written to ``cam.json``); None for the other tasks.
    """

    rows: list[dict[str, Any]] | None = None

    def __init__(
        self,
        maps: CamMaps | torch.Tensor,
        geometry: Geometry,
        result: Any,
        *,
        method: str,
        layers: list[int | str],
        target: str,
        cls: torch.Tensor,
        conf: torch.Tensor,
        index: torch.Tensor | None = None,
        display: dict[str, Any] | None = None,
    ) -> None:
        """Create the result from the engine's maps (or a dense (n, h, w) stack in [0, 1] at the model-input size)."""
        self.compact = maps if isinstance(maps, CamMaps) else CamMaps.from_dense(maps.detach().cpu())
        self.path = self.compact.path
        self.geometry = geometry
        self.result = result
        self.method, self.layers, self.target = method, list(layers), target
        self.cls = cls.detach().long().cpu()
        self.conf = conf.detach().float().cpu()
        self.index = self.cls.clone() if index is None else index.detach().long().cpu()
        self.names = result.names
        self.display = {"alpha": 0.5, "colormap": "jet", "show_boxes": True, "renormalize": False, **(display or {})}
        self._maps: np.ndarray | None = None
        self._shared_patch: Patch | None = None

    def __len__(self) -> int:
        """Return the number of explained predictions."""
        return len(self.compact)

    def __repr__(self) -> str:
        """Summarise the result."""
        h, w = self.geometry.orig_hw
        shape = f"({len(self)}, {h}, {w})"
        return f"CamResult(method={self.method!r}, target={self.target!r}, layers={self.layers}, maps={shape})"

    # -- maps --------------------------------------------------------------------------------------------------------
    @property
    def maps_input(self) -> torch.Tensor:
        """(n, h, w) float32 maps at the model-input size (dense; computed when read)."""
        return self.compact.dense()

    def patch(self, i: int) -> Patch:
        """Map ``i`` at the original size as a :class:`~ultralytics_cam.maps.Patch` (zero outside it)."""
        if self.compact.shared and self._shared_patch is not None:
            return self._shared_patch
        p = self.geometry.patch_to_original(self.compact.patch(i))
        p = Patch(p.y0, p.x0, p.values.clamp(0, 1))
        if self.compact.shared:  # one map for every prediction: computed once
            self._shared_patch = p
        return p

    def patches(self, rows: Any = None, chunk: int = 64) -> Any:
        """Yield (i, patch at the original size) for maps ``rows`` (default all), computed ``chunk`` at a time."""
        rows = list(range(len(self))) if rows is None else list(rows)
        if self.compact.shared:
            for i in rows:
                yield i, self.patch(i)
            return
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            for i, compact in zip(part, self.compact.patches(part)):
                p = self.geometry.patch_to_original(compact)
                yield i, Patch(p.y0, p.x0, p.values.clamp(0, 1))

    def map(self, i: int) -> np.ndarray:
        """(H, W) float32 map of prediction ``i`` at the original size."""
        out = np.zeros(self.geometry.orig_hw, np.float32)
        p = self.patch(i)
        out[p.y0 : p.y1, p.x0 : p.x1] = p.values.numpy()
        return out

    @property
    def maps(self) -> np.ndarray:
        """(n, H, W) float32 maps in [0, 1] at the original image size; row i explains prediction i.

        Dense: n x H x W floats, built when first read and kept. ``heatmap``, ``plot``, ``stats`` and ``save`` never
        need it.
        """
        if self._maps is None:
            out = np.zeros((len(self), *self.geometry.orig_hw), np.float32)
            for i, p in self.patches():
                out[i, p.y0 : p.y1, p.x0 : p.x1] = p.values.numpy()
            self._maps = out
        return self._maps

    @property
    def heatmap(self) -> np.ndarray:
        """(H, W) float32 map of all explained predictions combined (their maximum), at the original size."""
        out = np.zeros(self.geometry.orig_hw, np.float32)
        for _, p in self.patches(range(min(len(self), 1)) if self.compact.shared else None):
            region = out[p.y0 : p.y1, p.x0 : p.x1]
            np.maximum(region, p.values.numpy(), out=region)
        return out

    # -- geometry of the predictions ---------------------------------------------------------------------------------
    def region(self, i: int) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
        """Prediction ``i``'s region at the original size.

        Returns its bounding rectangle (y0, y1, x0, x1) and, for rotated boxes and semantic / depth rows, the mask
        inside that rectangle (None: the whole rectangle; classify: the whole image).
        """
        h, w = self.geometry.orig_hw
        r = self.result
        dense = self._dense_region(i)
        if dense is not None:
            return dense
        if r.obb is not None:
            poly = r.obb.xyxyxyxy[i].cpu().numpy()
            x0, y0 = np.floor(poly.min(0)).astype(int).clip(0, [w, h])
            x1, y1 = np.ceil(poly.max(0)).astype(int).clip(0, [w, h]) + 1
            x1, y1 = min(x1, w), min(y1, h)
            mask = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), np.uint8)
            cv2.fillPoly(mask, [np.round(poly - [x0, y0]).astype(np.int32)], 1)
            return (int(y0), int(y1), int(x0), int(x1)), mask.astype(bool)
        if r.boxes is not None:
            x1, y1, x2, y2 = r.boxes.xyxy[i].cpu().numpy()
            box = (max(int(y1), 0), min(int(np.ceil(y2)), h), max(int(x1), 0), min(int(np.ceil(x2)), w))
            return box, None
        return (0, h, 0, w), None

    def _dense_region(self, i: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """Semantic and depth rows: the pixels row ``i`` explains, at the original size (None for the other tasks).

        Read from what the row records (``rows``) and the ``Results`` the user sees. Semantic: the pixels
        ``r.semantic_mask`` paints as the row's class, inside the ``region=`` boxes (a ``region=`` mask is not
        recorded: the class's pixels in the whole image). Depth: the row's ``region=`` box (or the image), and for
        ``near`` / ``far`` the nearest / farthest share of ``r.depth`` there, ties included, as the target picks them.
        """
        rows = getattr(self, "rows", None)
        if not rows or i >= len(rows):
            return None
        info, r = rows[i], self.result
        h, w = self.geometry.orig_hw
        region = info.get("region")
        boxes = None  # no region=, or a mask ("mask")
        if isinstance(region, (list, tuple)) and region:  # semantic: its boxes; depth: this row's box
            boxes = region if isinstance(region[0], (list, tuple)) else [region]
        from .heads.dense import DepthHeadAdapter, boxes_mask, extreme_share  # the adapters' own pixel rules

        inside = boxes_mask(boxes, (h, w)).numpy() if boxes is not None else np.ones((h, w), bool)
        if "class" in info and getattr(r, "semantic_mask", None) is not None:
            pixels = inside & (r.semantic_mask.data.cpu().numpy() == int(info["class"]))
        elif "target" in info and getattr(r, "depth", None) is not None:
            depth = r.depth.data.float().cpu()
            share = DepthHeadAdapter.share
            pixels = extreme_share(depth, torch.from_numpy(inside), str(info["target"]), share).numpy()
        else:
            return None
        ys, xs = np.nonzero(pixels)
        if not len(ys):
            return (0, 0, 0, 0), np.zeros((0, 0), bool)
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        return (y0, y1, x0, x1), pixels[y0:y1, x0:x1]

    def regions(self) -> np.ndarray:
        """(n, H, W) bool: each prediction's box (rotated box for OBB; the whole image for classify)."""
        out = np.zeros((len(self), *self.geometry.orig_hw), bool)
        for i in range(len(self)):
            (y0, y1, x0, x1), mask = self.region(i)
            out[i, y0:y1, x0:x1] = True if mask is None else mask
        return out

    def stats(self) -> list[dict[str, Any]]:
        """Per prediction: class, name, confidence, box, its map's peak (x, y) and its share of energy in the box.

        The "box" of the energy is the prediction's region (:meth:`region`): its box, rotated box, or for semantic and
        depth rows their own pixels (the class's pixels, the ``region=`` box, the nearest / farthest share).
        """
        r = self.result
        boxes = (
            r.obb.xywhr.cpu().numpy().tolist()
            if r.obb is not None
            else r.boxes.xyxy.cpu().numpy().tolist()
            if r.boxes is not None
            else [None] * len(self)
        )
        out = []
        for i, p in self.patches():
            vals = p.values.numpy()
            total = float(vals.sum())
            if vals.size:
                iy, ix = np.unravel_index(int(vals.argmax()), vals.shape)
                y, x = int(iy) + p.y0, int(ix) + p.x0
            else:  # an all-zero map peaks at its first pixel, as argmax of zeros does
                y = x = 0
            c = int(self.cls[i])
            energy = None
            if total > 0 and r.probs is None:
                energy = round(self._inside(i, p) / total, 5)
            out.append(
                {
                    "class": c,
                    "name": self.names.get(c, str(c)) if isinstance(self.names, dict) else str(c),
                    "confidence": round(float(self.conf[i]), 5),
                    "box": [round(v, 2) for v in boxes[i]] if boxes[i] is not None else None,
                    "peak": [int(x), int(y)],
                    "energy_in_box": energy,
                }
            )
        return out

    def _inside(self, i: int, p: Patch) -> float:
        """The sum of map ``i`` (given as its patch) inside prediction ``i``'s region."""
        (y0, y1, x0, x1), mask = self.region(i)
        a0, a1, b0, b1 = max(y0, p.y0), min(y1, p.y1), max(x0, p.x0), min(x1, p.x1)
        if a1 <= a0 or b1 <= b0:
            return 0.0
        vals = p.values[a0 - p.y0 : a1 - p.y0, b0 - p.x0 : b1 - p.x0].numpy()
        if mask is not None:
            vals = vals * mask[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
        return float(vals.sum())

    def save(self, folder: str | Path, save_maps: bool = False) -> list[Path]:
        """Write this image's files of the output layout (SPEC §6) into ``folder``; return the written paths.

        ``detection.png``, ``heatmap.png``, ``heatmap.npy`` and ``cam.json`` (plus ``maps.npy`` and ``maps/*.png``
        with ``save_maps``). Each file is written atomically and the folder appears complete or not at all;
        same-named files already in ``folder`` are replaced, anything else in it is left alone.
        """
        from .saving import write_image_folder
        from .writers import SaveConfig

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
        result = self.result
        rows = range(len(self)) if index is None else [index]
        if index is not None and result.probs is None:
            result = result[index]
        if renormalize and self.result.probs is None:
            heat = self._renormalized(rows)
        elif index is None:
            heat = self.heatmap
        else:
            heat = self.map(index)
        image = overlay(result.orig_img, heat, alpha, colormap)
        if show_boxes:
            image = result.plot(img=image, masks=False, **plot_kwargs)
        return image

    def _renormalized(self, rows: Any) -> np.ndarray:
        """Each map scaled to [0, 1] inside its own region and zero outside, combined by their maximum."""
        out = np.zeros(self.geometry.orig_hw, np.float32)
        for i, p in self.patches(rows):
            (y0, y1, x0, x1), mask = self.region(i)
            if y1 <= y0 or x1 <= x0:
                continue
            vals = np.zeros((y1 - y0, x1 - x0), np.float32)
            a0, a1, b0, b1 = max(y0, p.y0), min(y1, p.y1), max(x0, p.x0), min(x1, p.x1)
            if a1 > a0 and b1 > b0:
                vals[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = p.values[a0 - p.y0 : a1 - p.y0, b0 - p.x0 : b1 - p.x0]
            inside = np.ones(vals.shape, bool) if mask is None else mask[: vals.shape[0], : vals.shape[1]]
            if not inside.any():
                continue
            lo, hi = float(vals[inside].min()), float(vals[inside].max())
            scaled = np.where(inside, (vals - lo) / (hi - lo) if hi > lo else 0.0, 0.0).astype(np.float32)
            region = out[y0:y1, x0:x1]
            np.maximum(region, scaled, out=region)
        return out
