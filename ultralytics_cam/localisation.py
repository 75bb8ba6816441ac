"""Does a map point at the prediction? The pointing game and the energy in the box, against labels or the prediction.

Against labelled objects (:func:`localisation`) or the prediction's own box or mask (:func:`own_region_scores`, no
labels needed). Re-exported by :mod:`ultralytics_cam.metrics` (and :mod:`ultralytics_cam.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LocalisationScores", "box_iou", "localisation", "own_region_scores"]


@dataclass
class LocalisationScores:
    """Accumulated localisation scores over many images."""

    predictions: int = 0
    hits: list[bool] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)

    @property
    def matched(self) -> int:
        """Explained predictions that matched a labelled object."""
        return len(self.hits)

    @property
    def pointing_game(self) -> float:
        """Share of matched predictions whose map peaks inside the object."""
        return float(np.mean(self.hits)) if self.hits else float("nan")

    @property
    def energy_in_box(self) -> float:
        """Mean share of a matched prediction's map inside its own region."""
        return float(np.mean(self.energy)) if self.energy else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """The scores as a plain dict."""
        return {
            "predictions": self.predictions,
            "matched": self.matched,
            "pointing_game": round(self.pointing_game, 4),
            "energy_in_box": round(self.energy_in_box, 4),
        }


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(point: tuple[int, int], obj: dict[str, Any]) -> bool:
    import cv2

    x, y = point
    if obj.get("polygon") is not None:
        poly = np.asarray(obj["polygon"], np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= -1.0  # 1 px tolerance for rasterisation
    x1, y1, x2, y2 = np.asarray(obj["box_xyxy"], float)
    return bool(x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1)


def localisation(
    result: Any, objects: list[dict[str, Any]], scores: LocalisationScores | None = None
) -> LocalisationScores:
    """Score one image's ``result.cam`` against its labelled ``objects`` and add to ``scores``.

    For every explained prediction that matches a labelled object (same class, box IoU >= 0.5): the pointing game
    (the map's peak inside the object's polygon when given, else its box) and the energy in the prediction's own
    region. Classification maps are matched to the labelled object of the predicted class.

    Args:
        result: an Ultralytics ``Results`` with ``.cam`` (from ``model.cam``).
        objects: the image's labelled objects: dicts with ``cls``, ``box_xyxy`` and optionally ``polygon``
            (pixels of the original image).
        scores: scores to add to (a new one by default).
    """
    scores = scores or LocalisationScores()
    cam = result.cam
    stats = cam.stats()
    if result.probs is not None:  # classify: the object labelled with the explained class
        boxes = [None] * len(cam)
    elif result.obb is not None:
        boxes = [np.r_[p.min(0), p.max(0)] for p in result.obb.xyxyxyxy.cpu().numpy()]
    else:
        boxes = list(result.boxes.xyxy.cpu().numpy())
    for i, box in enumerate(boxes):
        scores.predictions += 1
        cls = int(cam.cls[i])
        candidates = [o for o in objects if int(o["cls"]) == cls]
        if box is None:
            best = candidates[0] if candidates else None
        else:
            best = max(candidates, key=lambda o: box_iou(box, np.asarray(o["box_xyxy"], float)), default=None)
            if best is not None and box_iou(box, np.asarray(best["box_xyxy"], float)) < 0.5:
                best = None
        if best is None or cam.maps[i].max() <= 0:
            continue
        scores.hits.append(_inside(stats[i]["peak"], best))
        if stats[i]["energy_in_box"] is not None:
            scores.energy.append(stats[i]["energy_in_box"])
        else:  # classify has no predicted box: the share inside the labelled object's box
            x1, y1, x2, y2 = np.round(np.asarray(best["box_xyxy"], float)).astype(int)
            m = cam.maps[i]
            scores.energy.append(float(m[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1].sum() / m.sum()))
    return scores


def _own_regions(result: Any) -> np.ndarray:
    """(n, H, W) bool: each explained prediction's mask (segment) or box (rotated for obb); all True for classify."""
    regions: np.ndarray = result.cam.regions()
    if result.masks is not None and len(result.masks) == len(regions):
        import cv2

        h, w = regions.shape[1:]
        for i, poly in enumerate(result.masks.xy):
            if len(poly) >= 3:
                mask = np.zeros((h, w), np.uint8)
                cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
                regions[i] = mask.astype(bool)
    return regions


def own_region_scores(result: Any, maps: np.ndarray | None = None) -> dict[str, list[float]]:
    """Per explained prediction, localisation against the prediction itself (no labels needed).

    ``pointing_game``: 1.0 when the map's peak lies in the prediction's mask (segment) or box, else 0.0;
    ``energy_in_box``: the share of the map's sum inside that region. Classify predictions have no region (NaN).
    """
    maps = result.cam.maps if maps is None else maps
    n = len(maps)
    if result.probs is not None:
        return {"pointing_game": [float("nan")] * n, "energy_in_box": [float("nan")] * n}
    regions = _own_regions(result)
    hits, energy = [], []
    for m, region in zip(maps, regions):
        total = float(m.sum())
        y, x = np.unravel_index(int(m.argmax()), m.shape)
        hits.append(float(region[y, x]) if total > 0 else float("nan"))
        energy.append(float(m[region].sum()) / total if total > 0 else float("nan"))
    return {"pointing_game": hits, "energy_in_box": energy}
