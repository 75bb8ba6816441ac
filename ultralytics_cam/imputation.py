"""ROAD's noisy linear imputation: fill removed pixels from their neighbours, so a deletion hides no shape.

Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods" (ROAD, ICML 2022): filling
removed pixels with a constant (gray, black) draws the mask's outline into the image, and a model may read that
outline (the mask "leaks" the map). Their remedy, used here as ``fill=road``: every removed pixel becomes the weighted
mean of its 8 neighbours (direct neighbours 1/6, diagonal ones 1/12; weights of neighbours outside the image dropped),
removed neighbours being unknowns too, so the removed pixels solve one sparse linear system per channel; then
Gaussian noise is added (their ``noise=0.01`` on [0, 1] images, 2.55 grey levels here). This is their
``NoisyLinearImputer`` (``road/imputations.py`` of the authors' code) on uint8 BGR images, solved with SciPy's sparse
direct solver.

A removed region with no known pixel around it (everything removed) has no solution; it is filled with the image's
mean colour, ROAD's ``ChannelMeanImputer``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NEIGHBOURS", "road_impute"]

#: ROAD's neighbour weights: (dy, dx) -> weight.
NEIGHBOURS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)
#: ROAD's noise, 0.01 on [0, 1] images, in grey levels.
NOISE = 0.01 * 255


def road_impute(image: np.ndarray, missing: np.ndarray, rng: np.random.Generator, noise: float = NOISE) -> np.ndarray:
    """``image`` (H, W, C uint8) with the ``missing`` (H, W bool) pixels imputed as ROAD does; a new array.

    Args:
        image: the image; its pixels under ``missing`` are ignored.
        missing: True where the pixel was removed.
        rng: the noise's random generator (seeded by the caller, so curves are reproducible).
        noise: standard deviation of the Gaussian noise added to the imputed values, in grey levels.
    """
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    h, w = missing.shape
    out: np.ndarray = image.copy()
    flat_missing = missing.reshape(-1)
    unknown = np.flatnonzero(flat_missing)
    if unknown.size == 0:
        return out
    pixels = image.reshape(h * w, -1).astype(np.float64)
    if unknown.size == flat_missing.size:  # nothing known: ROAD's channel-mean imputer (of the image as given)
        values = np.broadcast_to(pixels.mean(0), (unknown.size, pixels.shape[1])).copy()
    else:
        var = np.full(h * w, -1, np.int64)
        var[unknown] = np.arange(unknown.size)
        ys, xs = np.divmod(unknown, w)
        rows, cols, vals = [], [], []
        rhs = np.zeros((unknown.size, pixels.shape[1]))
        total = np.zeros(unknown.size)
        for (dy, dx), weight in NEIGHBOURS:
            ny, nx = ys + dy, xs + dx
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            eq = np.flatnonzero(inside)
            nb = ny[eq] * w + nx[eq]
            total[eq] += weight
            is_unknown = flat_missing[nb]
            rows.append(eq[is_unknown])
            cols.append(var[nb[is_unknown]])
            vals.append(np.full(int(is_unknown.sum()), weight))
            rhs[eq[~is_unknown]] -= weight * pixels[nb[~is_unknown]]
        rows.append(np.arange(unknown.size))
        cols.append(np.arange(unknown.size))
        vals.append(-total)
        a = csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), (unknown.size,) * 2)
        values = np.asarray(spsolve(a, rhs)).reshape(unknown.size, -1)
    values = values + rng.normal(0.0, noise, values.shape)
    out.reshape(h * w, -1)[unknown] = np.clip(np.rint(values), 0, 255).astype(image.dtype)
    return out
