"""Do two models look at the same things? Per-prediction agreement of their maps on one image (``yolo-cam compare``).

The predictions of the reference model are matched one to one with the other model's (same class, box IoU at least
:data:`MATCH_IOU`, rotated IoU for obb, greedily from the highest IoU; classify: the same class among the explained
top-5), and each matched pair's maps are compared at the original image size by their Pearson correlation. A ``.pt``
and its fp32 export should agree almost exactly (correlation near 1); a quantised export, a fine-tune or a different
model shows where and how much its evidence moved.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MATCH_IOU", "map_agreement", "summarise_agreement"]

#: Two predictions of different models are the same object when their boxes overlap at least this much.
MATCH_IOU = 0.5


def map_agreement(reference: Any, other: Any) -> list[dict[str, Any]]:
    """One entry per explained prediction of ``reference`` (``Results`` with ``r.cam``): its match in ``other``.

    Each entry has ``prediction`` (the row in ``reference``), ``match`` (the row in ``other``, or None), ``class``,
    ``iou`` of the two boxes (None for classify) and ``correlation`` of the two maps (None without a match, or when a
    map is constant).
    """
    pairs = _match(reference, other)
    out = []
    for i in range(len(reference.cam)):
        j, iou = pairs.get(i, (None, None))
        corr = None if j is None else _pearson(reference.cam.map(i), other.cam.map(j))
        out.append(
            {
                "prediction": i,
                "match": j,
                "class": int(reference.cam.cls[i]),
                "iou": None if iou is None else round(float(iou), 4),
                "correlation": round(corr, 4) if corr is not None and math.isfinite(corr) else None,
            }
        )
    return out


def summarise_agreement(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean and minimum correlation over matched predictions, and how many matched."""
    corrs = [e["correlation"] for e in entries if e["correlation"] is not None]
    return {
        "predictions": len(entries),
        "matched": sum(e["match"] is not None for e in entries),
        "mean_correlation": round(float(np.mean(corrs)), 4) if corrs else None,
        "min_correlation": round(float(np.min(corrs)), 4) if corrs else None,
    }


def _match(a: Any, b: Any) -> dict[int, tuple[int, float | None]]:
    """Greedy one-to-one matching of ``a``'s explained rows to ``b``'s: {row in a: (row in b, IoU)}."""
    import torch

    ca, cb = a.cam.cls.long(), b.cam.cls.long()
    if not len(ca) or not len(cb):
        return {}
    if a.probs is not None:  # classify: the same class among the explained ones
        rows = {int(c): j for j, c in enumerate(cb.tolist())}
        return {i: (rows[int(c)], None) for i, c in enumerate(ca.tolist()) if int(c) in rows}
    iou = _overlap(a, b) * (ca[:, None] == cb[None, :])
    pairs: dict[int, tuple[int, float | None]] = {}
    order = torch.argsort(iou.flatten(), descending=True).tolist()
    taken: set[int] = set()
    for k in order:
        i, j = divmod(k, iou.shape[1])
        value = float(iou[i, j])
        if value < MATCH_IOU:
            break
        if i in pairs or j in taken:
            continue
        pairs[i] = (j, value)
        taken.add(j)
    return pairs


def _overlap(a: Any, b: Any) -> Any:
    """(n, m) IoU of the two results' boxes: rotated (probabilistic) for obb, else axis-aligned."""
    from ultralytics.utils.metrics import batch_probiou, box_iou

    if a.obb is not None:
        return batch_probiou(a.obb.xywhr.float().cpu(), b.obb.xywhr.float().cpu())
    return box_iou(a.boxes.xyxy.float().cpu(), b.boxes.xyxy.float().cpu())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two maps (NaN when either is constant)."""
    x, y = x.ravel().astype(np.float64), y.ravel().astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom > 0 else float("nan")
