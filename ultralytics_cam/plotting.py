"""Drawing heatmaps: OpenCV colormaps by name, overlays, and per-box renormalisation."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["COLORMAPS", "colorize", "colormap_id", "overlay", "renormalize_in_boxes"]

#: OpenCV colormap names users may pass (``colormap="jet"``, ``"COLORMAP_TURBO"``, ...), lower case without prefix.
COLORMAPS: dict[str, int] = {
    name[len("COLORMAP_") :].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")
}


def colormap_id(name: str | int) -> int:
    """Return the OpenCV colormap constant for a name such as "jet", "turbo" or "COLORMAP_VIRIDIS".

    Raises:
        ValueError: the name is not an OpenCV colormap (the message lists them).
    """
    if isinstance(name, int) and not isinstance(name, bool) and name in COLORMAPS.values():
        return name
    key = str(name).lower().removeprefix("colormap_")
    if key not in COLORMAPS:
        raise ValueError(f"colormap={name!r} is not an OpenCV colormap. Valid: {', '.join(sorted(COLORMAPS))}.")
    return COLORMAPS[key]


def colorize(heatmap: np.ndarray, colormap: str | int = "jet") -> np.ndarray:
    """Return the BGR uint8 colour image of a (H, W) map in [0, 1] (values outside are clipped, never wrapped)."""
    colored: np.ndarray = cv2.applyColorMap(
        np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8), colormap_id(colormap)
    )
    return colored


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, colormap: str | int = "jet") -> np.ndarray:
    """Blend the coloured ``heatmap`` over the BGR ``image`` (same height and width); ``alpha`` is the map's weight."""
    blended: np.ndarray = cv2.addWeighted(image, 1.0 - alpha, colorize(heatmap, colormap), alpha, 0.0)
    return blended


def renormalize_in_boxes(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Scale each map to [0, 1] inside its own region (``masks``: (n, H, W) bool), zero outside; max over maps."""
    if len(maps) == 0:
        return np.zeros(maps.shape[1:], np.float32)
    out = np.zeros(maps.shape[1:], np.float32)
    for m, inside in zip(maps, masks):
        if not inside.any():
            continue
        vals = m[inside]
        lo, hi = float(vals.min()), float(vals.max())
        scaled = np.zeros_like(m)
        scaled[inside] = (vals - lo) / (hi - lo) if hi > lo else 0.0
        out = np.maximum(out, scaled)
    return out
