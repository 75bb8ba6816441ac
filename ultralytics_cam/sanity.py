"""The model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains a prediction must depend on the weights that made it. Here the weights of the model's head (its
last module: the Detect / Segment / Pose / OBB / Classify head, Ultralytics' DFL decoding excepted, which is fixed, not
learned) are redrawn at random, each tensor from a normal distribution with its own mean and standard deviation (so
activations keep their scale), and the **same predictions** are explained again: the same image, the same anchor and
class, as the head adapter selected them in the trained model. The Spearman rank correlation between each trained map
and its randomised twin says how much of the pixel ranking survives without what the head learned: near 0 for a map
that reads the head, 1 for one that never does (EigenCAM at the head input, ``ConfidenceMap``).

Correlations are computed on the maps shrunk to at most :data:`SIDE` pixels on their long side (area averaging): CAM
maps are smooth at the head's stride, so the ranking of the shrunk map is the ranking of the map. They are taken
over the pixels where at least one of the two maps is non-zero, a deviation from Adebayo et al. (whole maps) with a
reason: a map read at the head input is zero outside the explained anchor's receptive window whatever the weights
(that window is the architecture's, not learned), and those pixels, tied at zero in both maps, would make any such
map look insensitive to the weights (on the demo model HiResCAM's whole-map correlation was 0.90 for that reason
alone). Dense maps (EigenCAM, ConfidenceMap) are compared on every pixel.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

__all__ = ["SIDE", "randomised_head", "rank_correlation", "sanity_correlations"]

#: Long side of the maps compared (pixels).
SIDE = 128


def randomised_head(model: Any, seed: int = 0) -> Any:
    """A copy of ``model`` whose head's learned weights are redrawn (each tensor ~ N(its mean, its std))."""
    import torch

    # the model's Ultralytics predictor and trainer (locks, data loaders) are not copied: nothing here uses them
    skip: dict[int, Any] = {
        id(v): None for k, v in vars(model).items() if k in ("predictor", "trainer") and v is not None
    }
    rand = copy.deepcopy(model, memo=skip)
    head = rand.model.model[-1]
    fixed = {id(p) for m in head.modules() if type(m).__name__ == "DFL" for p in m.parameters()}
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            if id(p) in fixed or p.numel() < 2:
                continue
            std = float(p.float().std())
            p.copy_(torch.randn(p.shape, generator=gen) * (std or 1e-3) + float(p.float().mean()))
    return rand


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps where either is non-zero (ties: average rank); NaN if one is constant."""
    import cv2
    from scipy.stats import rankdata

    h, w = a.shape
    scale = min(1.0, SIDE / max(h, w))
    if scale < 1:
        size = (max(round(w * scale), 1), max(round(h * scale), 1))
        a = cv2.resize(a.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        b = cv2.resize(b.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    a, b = a.reshape(-1), b.reshape(-1)
    support = (a > 0) | (b > 0)
    if support.sum() < 2:
        return float("nan")
    ra, rb = rankdata(a[support]), rankdata(b[support])
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def sanity_correlations(
    model: Any, images: list[np.ndarray], method: str, layers: str, cam_kwargs: dict[str, Any], seed: int = 0
) -> list[float]:
    """Rank correlation of every explained prediction's map with its map under the randomised head.

    Both models explain each image with the same options; the randomised model is made to explain the trained
    model's selection (anchor and class), not its own predictions.
    """
    from .api import cam_predictor

    kwargs = {**cam_kwargs, "method": method, "layers": layers, "batch": 1}
    trained = cam_predictor(model, **kwargs)
    randomised = cam_predictor(randomised_head(model, seed), **kwargs)
    assert trained.cam_engine is not None  # built by cam_predictor
    assert randomised.cam_engine is not None
    chosen: list[Any] = []
    select = trained.cam_engine.adapter.select

    def remember(*args: Any, **kw: Any) -> Any:
        sels = select(*args, **kw)
        chosen[:] = sels
        return sels

    trained.cam_engine.adapter.select = remember  # the instance's own adapter: nothing shared is patched
    randomised.cam_engine.adapter.select = lambda *args, **kw: list(chosen)
    out: list[float] = []
    for im in images:
        (r0,) = trained(source=[im], stream=False)
        if not len(r0.cam):
            continue
        (r1,) = randomised(source=[im], stream=False)
        a, b = r0.cam.maps, r1.cam.maps
        out += [rank_correlation(a[i], b[i]) for i in range(len(a))]
    return out
