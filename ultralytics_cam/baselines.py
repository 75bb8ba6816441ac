"""Baseline maps for the faithfulness eval, and the stratified sample of predictions it scores.

Every candidate map is scored beside maps that know nothing, or nothing but the box: a random map (smooth blobs at a
CAM's scale), ``ConfidenceMap`` (the box filled with its confidence) and the centre prior (a Gaussian on the box);
:mod:`ultralytics_cam.metrics` scores them and re-exports these functions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

__all__ = [
    "CENTRE_SIGMA",
    "baseline_maps",
    "centre_maps",
    "confidence_maps",
    "inverted_maps",
    "random_maps",
    "sample_predictions",
]

#: The centre prior's sigma, as a share of the box's width and height (the box spans +-2 sigma).
CENTRE_SIGMA = 0.25
#: Baseline maps: reported beside every map (``inverted`` on request).
BASELINES = ("random", "confidence", "centre", "inverted")


def random_maps(n: int, hw: tuple[int, int], seed: int = 0, cell: int = 32) -> np.ndarray:
    """(n, H, W) random maps: uniform noise on a grid of ``cell`` px (a CAM's resolution), smoothly upsampled.

    Smooth blobs rather than per-pixel noise, so the baseline removes contiguous regions as a CAM does.
    """
    import cv2

    h, w = hw
    rng = np.random.default_rng(seed)
    gh, gw = max(h // cell, 2), max(w // cell, 2)
    return (
        np.stack(
            [
                cv2.resize(rng.random((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
                for _ in range(n)
            ]
        )
        if n
        else np.zeros((0, h, w), np.float32)
    )


def _boxes_of(result: Any) -> tuple[str, Any]:
    """The task kind ConfidenceMap draws and the explained predictions' boxes (xyxy, or xywhr for obb)."""
    import torch

    n = len(result.cam.conf)
    if result.probs is not None:
        return "classify", torch.zeros((n, 0))
    if result.obb is not None:
        return "obb", result.obb.xywhr.float().cpu()
    return "detect", result.boxes.xyxy.float().cpu()


def confidence_maps(result: Any) -> np.ndarray:
    """(n, H, W) ``ConfidenceMap`` maps of the explained predictions of ``result``, at the original size."""
    import torch

    from .heads import Selection
    from .methods.confidence import ConfidenceMap

    cam = result.cam
    h, w = cam.geometry.orig_hw
    n = len(cam.conf)
    task, boxes = _boxes_of(result)
    # ConfidenceMap reads only the confidences and boxes; index is the prediction's position in the result.
    selection = Selection(torch.arange(n), cam.cls.long(), cam.conf.float(), boxes)
    with torch.no_grad():
        maps: np.ndarray = ConfidenceMap().input_maps(selection, task, (h, w)).numpy().astype(np.float32)
    return maps


def centre_maps(result: Any, sigma: float = CENTRE_SIGMA) -> np.ndarray:
    """(n, H, W) centre prior: a Gaussian centred on each explained prediction's box, ``sigma`` x its sides.

    It knows where the object is and that objects are denser at their centres, nothing else: a map that cannot beat it
    says no more than the box. Rotated boxes get a rotated Gaussian; classify (no box) one centred on the image.
    """
    h, w = result.cam.geometry.orig_hw
    task, boxes = _boxes_of(result)
    n = len(result.cam.conf)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    out = np.zeros((n, h, w), np.float32)
    for i in range(n):
        if task == "classify":
            cx, cy, bw, bh, angle = w / 2, h / 2, float(w), float(h), 0.0
        elif task == "obb":
            cx, cy, bw, bh, angle = (float(v) for v in boxes[i])
        else:
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            cx, cy, bw, bh, angle = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0
        c, s = math.cos(angle), math.sin(angle)
        u, v = (xs - cx) * c + (ys - cy) * s, -(xs - cx) * s + (ys - cy) * c
        su, sv = max(sigma * bw, 1.0), max(sigma * bh, 1.0)
        out[i] = np.exp(-0.5 * ((u / su) ** 2 + (v / sv) ** 2))
    return out


def inverted_maps(maps: np.ndarray) -> np.ndarray:
    """(n, H, W) ``max - map``: the same map with its ranking reversed."""
    return (maps.max(axis=(1, 2), keepdims=True) - maps).astype(np.float32) if len(maps) else maps


def baseline_maps(
    result: Any, maps: np.ndarray, baselines: tuple[str, ...] = BASELINES, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{name: (n, H, W) maps}`` of the requested baselines for ``result``'s explained predictions.

    The random baseline is one map per image (seed ``seed``), repeated for every prediction: with the scorer's
    ``seed`` it is also the order of equal map values, so its image-level curves are shared by every prediction.
    """
    out = {}
    for name in baselines:
        if name == "random":
            out[name] = np.repeat(random_maps(1, maps.shape[1:], seed=seed), len(maps), axis=0)
        elif name == "confidence":
            out[name] = confidence_maps(result)
        elif name == "centre":
            out[name] = centre_maps(result)
        elif name == "inverted":
            out[name] = inverted_maps(maps)
    return out


def sample_predictions(result: Any, per_image: int | None, seed: int = 0) -> np.ndarray:
    """Indices of at most ``per_image`` explained predictions, stratified by class and size; all when None.

    Strata are (class, size) with COCO's size bins (box area below 32^2, below 96^2, above, in original pixels);
    predictions are drawn in turn from every stratum (a seeded shuffle inside each), so rare classes and small
    objects keep their share.
    """
    n = len(result.cam.conf)
    if per_image is None or n <= per_image:
        return np.arange(n)
    cls = result.cam.cls.numpy().astype(int)
    regions = result.cam.regions()
    area = regions.reshape(n, -1).sum(1) if result.probs is None else np.zeros(n)
    size = np.digitize(area, [32**2, 96**2])
    rng = np.random.default_rng(seed)
    strata: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in rng.permutation(n):
        strata[(int(cls[i]), int(size[i]))].append(int(i))
    queues = [strata[k] for k in sorted(strata)]
    picked: list[int] = []
    while len(picked) < per_image:
        for q in queues:
            if q and len(picked) < per_image:
                picked.append(q.pop(0))
    return np.sort(np.asarray(picked))
