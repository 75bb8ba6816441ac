"""Does a CAM explain the prediction? Detector-aware faithfulness and localisation metrics, for every task.

Faithfulness (deletion and insertion, as RISE and D-RISE define them) asks whether the pixels a map ranks highest are
the ones the model needs:

- **deletion**: remove the map's top pixels in ``steps`` steps (filled with Ultralytics' gray 114, or a blur) and
  follow the prediction's score; a faithful map makes it fall fast (a low area under the curve is good);
- **insertion**: reveal the map's top pixels onto a blurred image; a faithful map makes the score rise fast (a high
  area is good).

The score of a prediction in a perturbed image is detector-aware, as in D-RISE: the best prediction of the same class
in that image, its confidence weighted by its overlap with the original prediction (box IoU; mask IoU for segment;
rotated-box probabilistic IoU, Ultralytics' ``batch_probiou``, for obb; for classify the probability of the class).
Curves are divided by the prediction's score in the unperturbed image, so every prediction weighs the same.

Two variants are always computed:

- ``image``: the steps are fractions of the whole image;
- ``box``: the steps are fractions of the prediction's own box (rotated box for obb), the rest of the image untouched.
  A map that only fills the box with a constant scores high on image-level deletion; the box-level variant shows
  whether a map knows which parts of the object matter. (Classify has no box: only ``image``.)

Every number comes with baselines computed the same way: a random map (smooth blobs at the scale of a CAM grid),
``ConfidenceMap`` (each box filled with its confidence) and the inverted map (``1 - map``).

All perturbed images of an image go through the model in batches (Ultralytics' own predictor on lists of arrays), never
one forward per step per prediction; the map-independent end points (the unperturbed image, the fully filled image or
box, the fully blurred image or box) are scored once per image and shared by every map.

Localisation: the pointing game (the map's peak inside the object) and the energy in the box or mask, against
labelled objects (:func:`localisation`) or the prediction's own region (:func:`own_region_scores`).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BASELINES",
    "FILLS",
    "LEVELS",
    "FaithfulnessScorer",
    "LocalisationScores",
    "PredictionCurves",
    "box_iou",
    "confidence_maps",
    "faithfulness",
    "inverted_maps",
    "localisation",
    "own_region_scores",
    "random_maps",
    "summarise",
]

#: Perturbation variants: steps as fractions of the whole image, or of the prediction's own box.
LEVELS = ("image", "box")
#: What deleted pixels become: Ultralytics' letterbox gray (114), or the blurred image.
FILLS = ("gray", "blur")
#: Baseline maps reported beside every map.
BASELINES = ("random", "confidence", "inverted")
GRAY = 114


# -- localisation (moved here from ultralytics_cam.evaluation) ---------------------------------------------------------
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


# -- baseline maps -----------------------------------------------------------------------------------------------------
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


def confidence_maps(result: Any) -> np.ndarray:
    """(n, H, W) ``ConfidenceMap`` maps of the explained predictions of ``result``, at the original size."""
    import torch

    from .heads import Selection
    from .methods.confidence import ConfidenceMap

    cam = result.cam
    h, w = cam.geometry.orig_hw
    n = len(cam.conf)
    if result.probs is not None:
        task, boxes = "classify", torch.zeros((n, 0))  # ConfidenceMap fills the whole image: no boxes read
    elif result.obb is not None:
        task, boxes = "obb", result.obb.xywhr.float().cpu()
    else:
        task, boxes = "detect", result.boxes.xyxy.float().cpu()
    # ConfidenceMap reads only the confidences and boxes; index is the prediction's position in the result.
    selection = Selection(torch.arange(n), cam.cls.long(), cam.conf.float(), boxes)
    with torch.no_grad():
        maps: np.ndarray = ConfidenceMap().input_maps(selection, task, (h, w)).numpy().astype(np.float32)
    return maps


def inverted_maps(maps: np.ndarray) -> np.ndarray:
    """(n, H, W) ``max - map``: the same map with its ranking reversed."""
    return (maps.max(axis=(1, 2), keepdims=True) - maps).astype(np.float32) if len(maps) else maps


# -- faithfulness ------------------------------------------------------------------------------------------------------
@dataclass
class PredictionCurves:
    """Deletion and insertion curves of one prediction under one map.

    Attributes:
        fractions: (steps + 1,) share of the image (or of the box) removed or revealed at each step.
        curves: ``{(level, kind): (steps + 1,) array}`` for level in :data:`LEVELS`, kind ``deletion``/``insertion``;
            the score divided by the prediction's score in the unperturbed image.
    """

    fractions: np.ndarray
    curves: dict[tuple[str, str], np.ndarray]

    def auc(self, level: str, kind: str) -> float:
        """Area under one curve (trapezoid over the fractions, 0..1)."""
        y = self.curves.get((level, kind))
        if y is None:
            return float("nan")
        return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(self.fractions)))

    def aucs(self) -> dict[str, float]:
        """``{"image_deletion": ..., "image_insertion": ..., "box_deletion": ..., "box_insertion": ...}``."""
        return {f"{level}_{kind}": self.auc(level, kind) for level, kind in self.curves}


@dataclass
class _Case:
    """One image prepared for scoring: its pixels, the explained predictions and the map-independent end points."""

    image: np.ndarray
    blurred: np.ndarray
    task: str
    cls: np.ndarray
    ref: dict[str, Any]
    regions: list[np.ndarray | None]  # flat indices of each prediction's box (None: the whole image)
    base_score: np.ndarray  # (n,) score in the unperturbed image
    tiebreak: np.ndarray | None = None  # (H, W) the random baseline's map: the order of equal map values
    ends: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (level, kind, i) -> score at the far end


class FaithfulnessScorer:
    """Deletion and insertion curves of many maps on many images, with the model's perturbed predictions batched.

    Args:
        model: the Ultralytics model whose predictions are explained (it is copied; the original is not touched).
        steps: number of steps of each curve (curves have ``steps + 1`` points, from 0 to 100 %).
        fill: what deleted pixels become: ``"gray"`` (114, Ultralytics' letterbox colour) or ``"blur"``.
        levels: which variants to compute (:data:`LEVELS`).
        batch: perturbed images per forward pass.
        conf: confidence threshold of the perturbed predictions (low, so scores fade rather than vanish).
        imgsz, device: as in ``model.predict``; use those of the CAM run so the predictions match.
        seed: seed of the random map that orders equal map values (the ``random`` baseline with the same seed).
    """

    def __init__(
        self,
        model: Any,
        *,
        steps: int = 10,
        fill: str = "gray",
        levels: tuple[str, ...] = LEVELS,
        batch: int = 16,
        conf: float = 0.01,
        imgsz: Any = None,
        device: Any = None,
        seed: int = 0,
    ) -> None:
        if fill not in FILLS:
            raise ValueError(f"fill={fill!r} is not a fill; use one of {', '.join(FILLS)}.")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
            raise ValueError(f"steps={steps!r} must be an integer >= 2.")
        bad = [lv for lv in levels if lv not in LEVELS]
        if bad or not levels:
            raise ValueError(f"levels={levels!r}: use one or more of {', '.join(LEVELS)}.")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r} must be a positive integer.")
        self.steps, self.fill, self.levels, self.batch, self.seed = steps, fill, tuple(levels), batch, seed
        self.fractions = np.linspace(0.0, 1.0, steps + 1)
        self.task = model.task
        args = {**model.overrides, "conf": conf, "batch": batch, "save": False, "verbose": False, "mode": "predict"}
        args.update({k: v for k, v in {"imgsz": imgsz, "device": device}.items() if v is not None})
        args["rect"] = True  # Ultralytics' Python default (model.predict), as model.cam
        for k in ("source", "name", "project", "resume"):
            args.pop(k, None)
        self.predictor = model._smart_load("predictor")(overrides=args, _callbacks=defaultdict(list))
        self.predictor.setup_model(model=copy.deepcopy(model.model), verbose=False)
        self.forwards = 0  # images scored so far (for tests and timing)

    # -- model ------------------------------------------------------------------------------------------------------
    def _predict(self, images: list[np.ndarray]) -> Iterator[Any]:
        """Ultralytics' predictor on ``images`` in batches of ``self.batch``; yields one ``Results`` per image."""
        for i in range(0, len(images), self.batch):
            chunk = images[i : i + self.batch]
            self.forwards += len(chunk)
            yield from self.predictor(source=chunk, stream=False)

    def _similarity(self, ref: dict[str, Any], res: Any) -> np.ndarray:
        """(n,) score of every reference prediction in the perturbed image's ``Results`` (D-RISE's similarity)."""
        import torch

        cls = torch.as_tensor(ref["cls"])
        n = len(cls)
        if self.task == "classify":
            probs: np.ndarray = res.probs.data.float().cpu()[cls].numpy()
            return probs
        if self.task == "obb":
            if res.obb is None or not len(res.obb):
                return np.zeros(n, np.float32)
            from ultralytics.utils.metrics import batch_probiou

            cand_cls, cand_conf = res.obb.cls.cpu(), res.obb.conf.float().cpu()
            overlap = batch_probiou(torch.as_tensor(ref["xywhr"]).float(), res.obb.xywhr.float().cpu())
        else:
            if res.boxes is None or not len(res.boxes):
                return np.zeros(n, np.float32)
            from ultralytics.utils.metrics import box_iou as torch_box_iou
            from ultralytics.utils.metrics import mask_iou

            cand_cls, cand_conf = res.boxes.cls.cpu(), res.boxes.conf.float().cpu()
            ref_masks = ref.get("masks")
            if ref_masks is not None and res.masks is not None and res.masks.data.shape[1:] == ref_masks.shape[1:]:
                overlap = mask_iou(ref_masks.flatten(1).float(), res.masks.data.cpu().flatten(1).float())
            else:
                overlap = torch_box_iou(torch.as_tensor(ref["xyxy"]).float(), res.boxes.xyxy.float().cpu())
        same = cls[:, None] == cand_cls[None, :].long()
        scores: np.ndarray = (overlap * cand_conf[None, :] * same).amax(1).numpy()
        return scores

    # -- images -----------------------------------------------------------------------------------------------------
    def prepare(self, result: Any) -> _Case:
        """Prepare one explained image: its references, the blurred copy and the map-independent end-point scores."""
        import cv2
        import torch

        image = np.ascontiguousarray(result.orig_img)
        h, w = image.shape[:2]
        sigma = max(h, w) / 40  # RISE blurs 224 px images with sigma 5
        blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
        cam = result.cam
        cls = cam.cls.numpy().astype(int)
        ref: dict[str, Any] = {"cls": cls}
        if result.obb is not None:
            ref["xywhr"] = result.obb.xywhr.float().cpu().numpy()
        elif result.boxes is not None:
            ref["xyxy"] = result.boxes.xyxy.float().cpu().numpy()
        if self.task == "classify" or "box" not in self.levels:
            regions: list[np.ndarray | None] = [None] * len(cls)
        else:
            regions = [np.flatnonzero(r) if r.any() else None for r in cam.regions()]
        case = _Case(image, blurred, self.task, cls, ref, regions, np.zeros(len(cls), np.float32))
        case.tiebreak = random_maps(1, (h, w), seed=self.seed)[0]
        # The unperturbed image: the reference score, and for segment the reference masks in the predictor's space.
        (orig_res,) = list(self._predict([image]))
        if self.task == "segment" and orig_res.masks is not None and len(cls):
            cand = orig_res.boxes
            iou = _torch_box_iou(torch.as_tensor(ref["xyxy"]), cand.xyxy.float().cpu())
            iou = iou * (torch.as_tensor(cls)[:, None] == cand.cls.cpu()[None, :].long())
            best = iou.argmax(1)
            masks = orig_res.masks.data.cpu()[best].clone()
            masks[iou.amax(1) < 0.5] = 0  # the prediction is not found again: no mask overlaps it
            ref["masks"] = masks
        case.base_score = np.maximum(self._similarity(ref, orig_res), 1e-6)
        # Far ends: everything filled (deletion) or blurred (insertion), of the image or of each box.
        jobs, images = [], []
        for level in self.levels:
            if level == "image" or self.task == "classify":
                if level != "image":
                    continue
                jobs += [("image", "deletion", -1), ("image", "insertion", -1)]
                images += [self._filled(case), blurred]
            else:
                for i, region in enumerate(regions):
                    if region is None:
                        continue
                    deleted, revealed = self._box_bases(case, region)
                    jobs += [("box", "deletion", i), ("box", "insertion", i)]
                    images += [deleted, revealed]
        for job, res in zip(jobs, self._predict(images)):
            scores = self._similarity(ref, res) / case.base_score
            level, kind, i = job
            if i < 0:
                for j in range(len(cls)):
                    case.ends[(level, kind, j)] = float(scores[j])
            else:
                case.ends[(level, kind, i)] = float(scores[i])
        return case

    def _filled(self, case: _Case) -> np.ndarray:
        return case.blurred.copy() if self.fill == "blur" else np.full_like(case.image, GRAY)

    def _box_bases(self, case: _Case, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image with the box fully deleted, and with the box fully blurred (insertion's start)."""
        h, w = case.image.shape[:2]
        deleted = case.image.reshape(h * w, -1).copy()
        deleted[region] = case.blurred.reshape(h * w, -1)[region] if self.fill == "blur" else GRAY
        revealed = case.image.reshape(h * w, -1).copy()
        revealed[region] = case.blurred.reshape(h * w, -1)[region]
        return deleted.reshape(case.image.shape), revealed.reshape(case.image.shape)

    def _order(self, m: np.ndarray, region: np.ndarray | None, tiebreak: np.ndarray) -> np.ndarray:
        """Flat pixel indices (of the region) from the map's highest value down; ties in the random baseline's order.

        Breaking ties by the random map (smooth blobs), not by independent per-pixel noise, makes a map without
        information (constant, or empty) score as a random map does: scattered single pixels hurt a
        detector far less than blobs, which would otherwise reward flat maps.
        """
        flat = m.reshape(-1)
        idx = np.arange(flat.size) if region is None else region
        return idx[np.lexsort((-tiebreak[idx], -flat[idx]))]

    def _perturbations(self, case: _Case, maps: np.ndarray) -> Iterator[tuple[tuple[str, str, int, int], np.ndarray]]:
        """Yield ``((level, kind, prediction, step), image)`` for the inner steps (1 .. steps-1) of every curve."""
        h, w = case.image.shape[:2]
        flat_img = case.image.reshape(h * w, -1)
        flat_fill = self._filled(case).reshape(h * w, -1)
        assert case.tiebreak is not None  # prepare() sets it on every case
        tiebreak = case.tiebreak.reshape(-1)  # the same for every map: a fair comparison
        for i, m in enumerate(maps):
            for level in self.levels:
                if level == "box" and (self.task == "classify" or case.regions[i] is None):
                    continue
                region = case.regions[i] if level == "box" else None
                order = self._order(m, region, tiebreak)
                counts = np.round(self.fractions * order.size).astype(int)
                if level == "image":
                    deleted, revealed = flat_img.copy(), case.blurred.reshape(h * w, -1).copy()
                else:
                    assert region is not None  # level "box" skipped the predictions without a region above
                    d, r = self._box_bases(case, region)
                    deleted, revealed = flat_img.copy(), r.reshape(h * w, -1)
                for k in range(1, self.steps):
                    part = order[counts[k - 1] : counts[k]]
                    deleted[part] = flat_fill[part] if level == "image" else d.reshape(h * w, -1)[part]
                    revealed[part] = flat_img[part]
                    yield (level, "deletion", i, k), deleted.reshape(case.image.shape).copy()
                    yield (level, "insertion", i, k), revealed.reshape(case.image.shape).copy()

    def curves(self, case: _Case, maps: np.ndarray) -> list[PredictionCurves]:
        """Deletion and insertion curves of every explained prediction of ``case`` under its row of ``maps``."""
        n = len(case.cls)
        if len(maps) != n:
            raise ValueError(f"maps has {len(maps)} rows but the image has {n} explained predictions.")
        shape = case.image.shape[:2]
        if n and tuple(maps.shape[1:]) != shape:
            raise ValueError(f"maps are {tuple(maps.shape[1:])}, the image is {shape}: give maps at the original size.")
        levels = [lv for lv in self.levels if not (lv == "box" and self.task == "classify")]
        out = []
        for i in range(n):
            curves = {}
            for level in levels:
                if level == "box" and case.regions[i] is None:
                    continue
                dele = np.full(self.steps + 1, np.nan, np.float32)
                ins = np.full(self.steps + 1, np.nan, np.float32)
                dele[0], ins[-1] = 1.0, 1.0  # the unperturbed image: the reference score itself
                dele[-1], ins[0] = case.ends[(level, "deletion", i)], case.ends[(level, "insertion", i)]
                curves[(level, "deletion")], curves[(level, "insertion")] = dele, ins
            out.append(PredictionCurves(self.fractions, curves))
        keys: list[tuple[str, str, int, int]] = []
        batch: list[np.ndarray] = []

        def flush() -> None:
            for (level, kind, i, k), res in zip(keys, self._predict(batch)):
                out[i].curves[(level, kind)][k] = self._similarity(case.ref, res)[i] / case.base_score[i]
            keys.clear()
            batch.clear()

        for key, image in self._perturbations(case, maps):
            keys.append(key)
            batch.append(image)
            if len(batch) >= self.batch:
                flush()
        flush()
        return out


def _torch_box_iou(a: Any, b: Any) -> Any:
    """Box IoU matrix of two sets of xyxy boxes (Ultralytics' ``box_iou``)."""
    from ultralytics.utils.metrics import box_iou as _box_iou

    return _box_iou(a.float(), b.float())


def faithfulness(
    model: Any,
    results: list[Any],
    *,
    baselines: tuple[str, ...] = BASELINES,
    scorer: FaithfulnessScorer | None = None,
    **scorer_kwargs: Any,
) -> list[dict[str, Any]]:
    """Deletion and insertion areas of every explained prediction in ``results`` (from ``model.cam``), with baselines.

    Args:
        model: the model that produced ``results``.
        results: ``Results`` with ``r.cam``.
        baselines: which baselines to compute beside each map (:data:`BASELINES`).
        scorer: a :class:`FaithfulnessScorer` to reuse; else one is built from ``scorer_kwargs``.
        **scorer_kwargs: :class:`FaithfulnessScorer` options (``steps``, ``fill``, ``levels``, ``batch``, ``conf``,
            ``imgsz``, ``device``).

    Returns:
        One dict per explained prediction: ``image`` (index in ``results``), ``prediction``, ``class``, ``name`` and,
        for ``map`` and every baseline, its areas (``{"map": {"image_deletion": ..., ...}, "random": {...}, ...}``).

    Raises:
        ValueError: a baseline is not one of :data:`BASELINES`, or a result has no ``.cam``.
    """
    bad = [b for b in baselines if b not in BASELINES]
    if bad:
        raise ValueError(f"baselines={bad!r}: use any of {', '.join(BASELINES)}.")
    scorer = scorer or FaithfulnessScorer(model, **scorer_kwargs)
    rows = []
    for j, r in enumerate(results):
        if getattr(r, "cam", None) is None:
            raise ValueError(f"results[{j}] has no .cam: pass the results of model.cam(...).")
        if not len(r.cam):
            continue
        case = scorer.prepare(r)
        maps = r.cam.maps
        sets = {"map": maps, **baseline_maps(r, maps, baselines, seed=j)}
        areas = {name: [c.aucs() for c in scorer.curves(case, m)] for name, m in sets.items()}
        for i in range(len(r.cam)):
            c = int(r.cam.cls[i])
            rows.append(
                {
                    "image": j,
                    "prediction": i,
                    "class": c,
                    "name": r.names.get(c, str(c)),
                    **{name: areas[name][i] for name in sets},
                }
            )
    return rows


def baseline_maps(
    result: Any, maps: np.ndarray, baselines: tuple[str, ...] = BASELINES, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{name: (n, H, W) maps}`` of the requested baselines for ``result``'s explained predictions."""
    out = {}
    for name in baselines:
        if name == "random":
            out[name] = random_maps(len(maps), maps.shape[1:], seed=seed)
        elif name == "confidence":
            out[name] = confidence_maps(result)
        elif name == "inverted":
            out[name] = inverted_maps(maps)
    return out


def summarise(rows: list[dict[str, Any]], names: tuple[str, ...] = ("map", *BASELINES)) -> dict[str, dict[str, float]]:
    """Mean areas over predictions: ``{name: {"image_deletion": ..., ..., "faithfulness": ...}}``.

    ``faithfulness`` is insertion minus deletion, averaged over the variants present (higher is better).
    """
    out = {}
    for name in names:
        per = [r[name] for r in rows if name in r]
        if not per:
            continue
        keys = sorted({k for p in per for k in p})
        mean = {k: float(np.nanmean([p.get(k, np.nan) for p in per])) for k in keys}
        diffs = [mean[f"{lv}_insertion"] - mean[f"{lv}_deletion"] for lv in LEVELS if f"{lv}_deletion" in mean]
        mean["faithfulness"] = float(np.mean(diffs)) if diffs else float("nan")
        out[name] = mean
    return out
