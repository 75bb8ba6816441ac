"""Does a CAM explain the prediction? Detector-aware faithfulness (deletion and insertion) and localisation, every task.

The question the curves answer (docs/eval.md says why): **which pixels make the model find this object**. A pixel
ranking is faithful when removing its top pixels makes the object disappear from the model's output fast (deletion:
a low area under the curve is good) and revealing only its top pixels brings the object back fast (insertion: a high
area is good). "The object" in a perturbed image is the best prediction of the same class there, its confidence
weighted by its overlap with the original prediction (box IoU; mask IoU for segment; Ultralytics' ``batch_probiou``
for obb; for classify the class probability), as D-RISE scores detections; the curve is divided by the prediction's
score in the unperturbed image, so every prediction weighs the same.

The protocol, fixed before any map was tuned against it:

- two levels: ``image`` (fractions of the whole image, :data:`IMAGE_SCHEDULE`, dense at small fractions where objects
  live) and ``box`` (fractions of the prediction's own box or rotated box, the rest untouched,
  :data:`BOX_SCHEDULE`): a map that only knows where the box is does well at the image level, the box level asks which
  parts of the object matter;
- areas by the trapezoid rule over the schedule's fractions (0..1), and the values at :data:`POINTS`;
- fills (:data:`FILLS`): Ultralytics' gray 114, a blur, or ROAD's noisy linear imputation
  (:mod:`ultralytics_cam.imputation`), which hides the outline of the removed region; insertion reveals the top
  pixels onto a blurred copy (``road``: the unrevealed pixels imputed from the revealed ones, ROAD's LeRF order);
- baselines scored the same way on the same predictions: a random map (smooth blobs, one per image, which is also
  the order of equal map values, so an empty or flat map scores exactly as the random map), ``ConfidenceMap`` (each
  box filled with its confidence) and the centre prior (a Gaussian centred on the box, sigma a quarter of its sides),
  and on request each map inverted;
- ``protocol="odexai"``: the settings of the ODExAI benchmark (black fill, 2,000 model-input pixels per step, insertion
  from a 51 x 51 Gaussian blur, image level only, their D-RISE-style similarity: IoU x ``sqrt(exp(-d^2 / 0.25^2))`` of
  the class-score vectors' cosine distance ``d``, unnormalised, perturbed predictions at conf 0.25 with class-agnostic
  NMS at IoU 0.45), so numbers can be set beside their published tables (detect only).

Shortcuts (tests/test_metrics.py compares each with the full computation):

- exact: a curve point is scored once per distinct perturbed image: images are keyed by their bytes, so every curve,
  map and prediction that asks for the same pixels shares one forward, and one forward scores every prediction of
  the image (the random baseline is one map per image, so its image-level curves are shared by all predictions);
- exact: detect and pose images are post-processed once per batch with Ultralytics' own NMS, without ``Results``;
- on request (``early_stop=True``), not exact: a deletion curve stops once the prediction is not found at all
  (score 0) when its end (everything removed) scores 0 too, the remaining points set to 0. It equals the full curve
  wherever a vanished object stays vanished as more pixels go; on the synthetic test model 4 of 11 stopped curves
  came back (areas off by up to 0.037), so it is off by default.

Localisation (the pointing game, the energy in the box) lives in :mod:`ultralytics_cam.localisation`, re-exported here.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .baselines import (
    BASELINES,
    baseline_maps,
    centre_maps,
    confidence_maps,
    inverted_maps,
    random_maps,
    sample_predictions,
)
from .localisation import LocalisationScores, box_iou, localisation, own_region_scores

__all__ = [
    "BASELINES",
    "BOX_SCHEDULE",
    "FILLS",
    "IMAGE_SCHEDULE",
    "LEVELS",
    "POINTS",
    "PROTOCOLS",
    "FaithfulnessScorer",
    "LocalisationScores",
    "PredictionCurves",
    "baseline_maps",
    "box_iou",
    "centre_maps",
    "confidence_maps",
    "faithfulness",
    "inverted_maps",
    "localisation",
    "own_region_scores",
    "random_maps",
    "sample_predictions",
    "summarise",
]

#: Perturbation variants: steps as fractions of the whole image, or of the prediction's own box.
LEVELS = ("image", "box")
KINDS = ("deletion", "insertion")
#: What deleted pixels become: Ultralytics' letterbox gray (114), the blurred image, or ROAD's imputation.
FILLS = ("gray", "blur", "road")
#: ``default`` (this module's protocol) or ``odexai`` (the ODExAI benchmark's settings).
PROTOCOLS = ("default", "odexai")
#: Fractions of the image removed or revealed: dense where objects live (a person is 1-30 % of a photo), roughly
#: doubling up to 20 %, so the steep start of a deletion curve is resolved; 9 scored points per curve.
IMAGE_SCHEDULE = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
#: Fractions of the prediction's box (the object fills most of it): 5 scored points per curve.
BOX_SCHEDULE = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
#: Fixed points reported beside the areas (they are on the schedules).
POINTS = {"image": (0.01, 0.05, 0.1, 0.2), "box": (0.05, 0.25, 0.5)}
GRAY = 114
#: ODExAI's settings (their metrics/del_ins.py and eval scripts).
ODEXAI: dict[str, float] = {"pixels_per_step": 2000, "blur_kernel": 51, "kernel_width": 0.25, "conf": 0.25, "iou": 0.45}


# -- curves ------------------------------------------------------------------------------------------------------------
@dataclass
class PredictionCurves:
    """Deletion and insertion curves of one prediction under one map.

    Attributes:
        fractions: ``{level: (m,) fractions}``: share of the image (or of the box) removed or revealed at each point.
        curves: ``{(level, kind): (m,) array}`` for level in :data:`LEVELS`, kind ``deletion``/``insertion``; the
            score divided by the prediction's score in the unperturbed image (``odexai``: the raw similarity).
    """

    fractions: dict[str, np.ndarray]
    curves: dict[tuple[str, str], np.ndarray]

    def auc(self, level: str, kind: str) -> float:
        """Area under one curve (trapezoid over the fractions, 0..1)."""
        y = self.curves.get((level, kind))
        if y is None:
            return float("nan")
        return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(self.fractions[level])))

    def aucs(self) -> dict[str, float]:
        """``{"image_deletion": ..., "image_insertion": ..., "box_deletion": ..., "box_insertion": ...}``."""
        return {f"{level}_{kind}": self.auc(level, kind) for level, kind in self.curves}

    def points(self) -> dict[str, float]:
        """The curves at :data:`POINTS`: ``{"image_deletion@5%": ..., "box_insertion@25%": ...}`` where scheduled."""
        out = {}
        for (level, kind), y in self.curves.items():
            fr = self.fractions[level]
            for p in POINTS.get(level, ()):
                hit = np.flatnonzero(np.isclose(fr, p))
                if hit.size:
                    out[f"{level}_{kind}@{p * 100:g}%"] = float(y[hit[0]])
        return out


@dataclass
class _Case:
    """One image prepared for scoring: its pixels, the explained predictions and the map-independent end points."""

    image: np.ndarray
    blurred: np.ndarray
    filled: np.ndarray  # the fully deleted image (gray, black or blurred; ROAD: imputed from nothing)
    task: str
    cls: np.ndarray
    ref: dict[str, Any]
    regions: list[np.ndarray | None]  # flat indices of each prediction's box (None: the whole image)
    base_score: np.ndarray  # (n,) score in the unperturbed image (1 for odexai: unnormalised)
    fractions: dict[str, np.ndarray] = field(default_factory=dict)
    tiebreak: np.ndarray | None = None  # (H, W) the random baseline's map: the order of equal map values
    ends: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (level, kind, i) -> score at the far end
    seen: dict[bytes, np.ndarray] = field(default_factory=dict)  # image key -> (n,) raw scores of every prediction
    index: int = 0  # the image's position in the run (seeds ROAD's noise)


@dataclass
class _Curve:
    """One curve being scored point by point (the scorer advances many at once to fill its batches)."""

    i: int
    level: str
    kind: str
    counts: np.ndarray  # pixels changed at each point
    order: np.ndarray  # flat pixel indices, the map's top first
    values: np.ndarray
    work: np.ndarray  # (H*W, C) the current image (gray / blur fills) or the changed-pixel mask (road)
    source: np.ndarray | None  # (H*W, C) what changed pixels become (None for road)
    k: int = 1
    stop_at_zero: bool = False

    @property
    def done(self) -> bool:
        return self.k >= len(self.counts) - 1


class FaithfulnessScorer:
    """Deletion and insertion curves of many maps on many images, the model's perturbed predictions batched.

    Args:
        model: the Ultralytics model whose predictions are explained (it is copied; the original is not touched).
        protocol: ``default`` or ``odexai`` (:data:`PROTOCOLS`; ``odexai`` fixes fill, schedule, levels and score).
        steps: None for the fine schedules (:data:`IMAGE_SCHEDULE`, :data:`BOX_SCHEDULE`), or a number of equal steps.
        fill: what deleted pixels become (:data:`FILLS`).
        levels: which variants to compute (:data:`LEVELS`).
        batch: perturbed images per forward pass.
        conf: confidence threshold of the perturbed predictions (low, so scores fade rather than vanish).
        imgsz, device: as in ``model.predict``; use those of the CAM run so the predictions match.
        seed: seed of the random map that orders equal map values (the ``random`` baseline) and of ROAD's noise.
        early_stop: stop a deletion curve once the prediction is gone (not exact: see the module docstring).
        share: score a perturbed image once however many curves ask for it (False: every point gets its own forward,
            the reference computation the tests compare with).
        threads: CPU threads of the perturbed forwards; None keeps torch's setting (on CPU Ultralytics leaves one core
            free). More threads than idle cores is far slower, not faster: on this project's 2-core machine under
            load, 2 threads ran a batch 10-20x slower than 1 (measured), so nothing is raised by default;
            :meth:`time_forward` can time both and keep the faster (eval does).
    """

    def __init__(
        self,
        model: Any,
        *,
        protocol: str = "default",
        steps: int | None = None,
        fill: str = "gray",
        levels: tuple[str, ...] = LEVELS,
        batch: int = 16,
        conf: float = 0.01,
        imgsz: Any = None,
        device: Any = None,
        seed: int = 0,
        early_stop: bool = False,
        share: bool = True,
        threads: int | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r} is not a protocol; use one of {', '.join(PROTOCOLS)}.")
        if fill not in FILLS:
            raise ValueError(f"fill={fill!r} is not a fill; use one of {', '.join(FILLS)}.")
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 2):
            raise ValueError(f"steps={steps!r} must be an integer >= 2, or None for the fine schedules.")
        bad = [lv for lv in levels if lv not in LEVELS]
        if bad or not levels:
            raise ValueError(f"levels={levels!r}: use one or more of {', '.join(LEVELS)}.")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r} must be a positive integer.")
        self.task = model.task
        iou: float | None = None
        if protocol == "odexai":
            if self.task != "detect":
                raise ValueError(f"protocol=odexai scores detections (ODExAI's setting); this model's task is "
                                 f"'{self.task}'. Use protocol=default.")  # fmt: skip
            fill, levels, conf, iou = "black", ("image",), ODEXAI["conf"], ODEXAI["iou"]
        self.protocol, self.steps, self.fill, self.levels = protocol, steps, fill, tuple(levels)
        self.batch, self.seed, self.early_stop = batch, seed, early_stop
        self.threads, self.share = threads, share
        #: post-process with Ultralytics' NMS alone, without ``Results`` (detect and pose; False: the reference path)
        self.raw = self.task in ("detect", "pose")
        args = {**model.overrides, "conf": conf, "batch": batch, "save": False, "verbose": False, "mode": "predict"}
        args.update({k: v for k, v in {"imgsz": imgsz, "device": device}.items() if v is not None})
        if iou is not None:
            args.update(iou=iou, agnostic_nms=True)
        args["rect"] = True  # Ultralytics' Python default (model.predict), as model.cam
        for k in ("source", "name", "project", "resume"):
            args.pop(k, None)
        self.predictor = model._smart_load("predictor")(overrides=args, _callbacks=defaultdict(list))
        self.predictor.setup_model(model=copy.deepcopy(model.model), verbose=False)
        self.forwards = 0  # images run through the model so far (for tests and timing)
        self.requested = 0  # curve points asked for (forwards + the ones shared or skipped)
        self.seconds = 0.0  # time spent in forwards

    # -- model ------------------------------------------------------------------------------------------------------
    @contextmanager
    def _cores(self) -> Iterator[None]:
        import torch

        if self.threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _predict(self, images: list[np.ndarray]) -> Iterator[Any]:
        """Ultralytics' predictor on ``images`` in batches of ``self.batch``; yields one ``Results`` per image."""
        import time

        for i in range(0, len(images), self.batch):
            chunk = images[i : i + self.batch]
            self.forwards += len(chunk)
            t0 = time.perf_counter()
            with self._cores():
                out = self.predictor(source=chunk, stream=False)
            self.seconds += time.perf_counter() - t0
            yield from out

    def _predict_raw(self, images: list[np.ndarray]) -> Iterator[dict[str, Any]]:
        """As :meth:`_predict` for detect and pose, without ``Results``, from the predictor's own steps.

        Yields:
            Per image its xyxy boxes (original pixels), confidences, classes and class-score vectors (None for an
            end-to-end head), from the predictor's own preprocess, model and NMS.
        """
        import time

        import torch
        from ultralytics.utils import ops
        from ultralytics.utils.nms import non_max_suppression

        p = self.predictor
        for i in range(0, len(images), self.batch):
            chunk = images[i : i + self.batch]
            self.forwards += len(chunk)
            t0 = time.perf_counter()
            with self._cores(), torch.inference_mode():
                im = p.preprocess(chunk)
                preds = p.inference(im)
                raw = preds[0] if isinstance(preds, (list, tuple)) else preds
                dets, keep = non_max_suppression(
                    raw,
                    p.args.conf,
                    p.args.iou,
                    p.args.classes,
                    p.args.agnostic_nms,
                    max_det=p.args.max_det,
                    nc=0 if self.task == "detect" else len(p.model.names),
                    end2end=getattr(p.model, "end2end", False),
                    return_idxs=True,
                )
            self.seconds += time.perf_counter() - t0
            nc = len(p.model.names)
            for b, (det, kept) in enumerate(zip(dets, keep)):
                xyxy = ops.scale_boxes(im.shape[2:], det[:, :4].clone(), chunk[b].shape)
                probs: np.ndarray | None = None
                if not getattr(p.model, "end2end", False) and raw.dim() == 3:  # (b, 4 + nc + extra, anchors)
                    probs = raw[b, 4 : 4 + nc, kept.long().view(-1)].T.float().cpu().numpy()
                yield {
                    "xyxy": xyxy.float().cpu().numpy(),  # type: ignore[union-attr]  # a tensor in, a tensor out
                    "conf": det[:, 4].float().cpu().numpy(),
                    "cls": det[:, 5].long().cpu().numpy(),
                    "probs": probs,
                }

    def time_forward(self, image: np.ndarray, n: int = 4, choose_threads: bool = False) -> float:
        """Milliseconds per image of a batch of ``n`` copies of ``image`` (the second of two runs: warm).

        With ``choose_threads`` (and no ``threads`` given), torch's thread count and every core are both timed and
        the faster is kept for the run: on an idle machine all cores are faster, on a busy one far slower.
        """
        import time

        import torch

        self._ensure_setup(image)
        run = self._predict_raw if self.raw else self._predict
        m = min(n, self.batch)
        options: list[int | None] = [self.threads]
        if choose_threads and self.threads is None and (os.cpu_count() or 1) > torch.get_num_threads():
            options.append(os.cpu_count())
        best: tuple[float, int | None] = (float("inf"), self.threads)
        for threads in options:
            self.threads = threads
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                list(run([image] * m))
                times.append(time.perf_counter() - t0)
            self.forwards -= 2 * m  # timing runs, not scored points
            best = min(best, (times[-1] * 1000 / m, threads), key=lambda t: t[0])
        self.threads = best[1]
        return best[0]

    def _ensure_setup(self, image: np.ndarray) -> None:
        """The predictor's source and input size are set by its first call (``_predict_raw`` needs them)."""
        if getattr(self.predictor, "imgsz", None) is None or self.predictor.dataset is None:
            list(self._predict([image]))
            self.forwards -= 1  # a set-up call, not a scored point

    def _similarity(self, ref: dict[str, Any], res: Any) -> np.ndarray:
        """(n,) score of every reference prediction in one perturbed image's output (``Results`` or raw dict).

        D-RISE's similarity (:mod:`ultralytics_cam.similarity`) with one-hot class vectors: the best same-class
        prediction's overlap (box IoU, mask IoU for segment, ``batch_probiou`` for obb) times its confidence; classify:
        the class's probability. ``protocol=odexai`` scores raw outputs its own way (:meth:`_similarity_raw`).
        """
        import torch

        from .similarity import Detections, drise_similarity

        if isinstance(res, dict):
            if self.protocol == "odexai":
                return self._similarity_raw(ref, res)
            found = Detections(torch.as_tensor(res["cls"]).long(), torch.as_tensor(res["conf"]).float(),
                               torch.as_tensor(res["xyxy"]).float())  # fmt: skip
        else:
            found = Detections.from_results(res)
        cls = torch.as_tensor(ref["cls"]).long()
        if self.task == "classify":
            boxes = torch.zeros((len(cls), 0))
        else:
            boxes = torch.as_tensor(ref["xywhr"] if "xywhr" in ref else ref["xyxy"]).float()
        target = Detections(cls, torch.ones(len(cls)), boxes, masks=ref.get("masks"))
        scores: np.ndarray = drise_similarity(target, found).numpy().astype(np.float32)
        return scores

    def _similarity_raw(self, ref: dict[str, Any], det: dict[str, Any]) -> np.ndarray:
        """ODExAI's score (their ``metrics/del_ins.py``).

        The same-class detection with the largest IoU: its IoU x a kernel of the class vectors' distance.
        """
        import torch
        from ultralytics.utils.metrics import box_iou as torch_box_iou

        cls = np.asarray(ref["cls"])
        n = len(cls)
        if not len(det["cls"]) or not n:
            return np.zeros(n, np.float32)
        iou = torch_box_iou(torch.as_tensor(ref["xyxy"]).float(), torch.as_tensor(det["xyxy"])).numpy()
        iou = iou * (cls[:, None] == det["cls"][None, :])
        best = iou.argmax(1)
        a, b = ref["probs"], det["probs"][best]
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        weight = np.sqrt(np.exp(-((1 - cos) ** 2) / ODEXAI["kernel_width"] ** 2))
        out: np.ndarray = (iou[np.arange(n), best] * weight).astype(np.float32)
        return out

    def _scores(self, case: _Case, images: list[np.ndarray]) -> list[np.ndarray]:
        """(n,) raw scores of every prediction in each image; an image seen before is not run again."""
        if not self.share:  # the reference: one forward per point
            keys = [os.urandom(16) for _ in images]
        else:
            keys = [hashlib.blake2b(im.data, digest_size=16).digest() for im in images]
        todo, todo_keys = [], []
        for key, im in zip(keys, images):
            if key not in case.seen and key not in todo_keys:
                todo.append(im)
                todo_keys.append(key)
        if todo:
            run = self._predict_raw if self.raw else self._predict
            for key, res in zip(todo_keys, run(todo)):
                case.seen[key] = self._similarity(case.ref, res)
        self.requested += len(images)
        return [case.seen[k] for k in keys]

    # -- images -----------------------------------------------------------------------------------------------------
    def _fractions(self, level: str, hw: tuple[int, int]) -> np.ndarray:
        if self.protocol == "odexai":  # 2,000 pixels of the model input per step, as ODExAI steps its 640 x 640 input
            h, w = hw
            gain = min(self.predictor.imgsz[0] / h, self.predictor.imgsz[1] / w)
            step = ODEXAI["pixels_per_step"] / max(round(h * gain) * round(w * gain), 1)
            fractions: np.ndarray = np.minimum(np.arange(math.ceil(1 / step) + 1) * step, 1.0)
            return fractions
        if self.steps is not None:
            return np.linspace(0.0, 1.0, self.steps + 1)
        return np.asarray(IMAGE_SCHEDULE if level == "image" else BOX_SCHEDULE)

    def prepare(self, result: Any, index: int = 0) -> _Case:
        """Prepare one explained image: its references, the fills and the map-independent end-point scores.

        Args:
            result: the image's ``Results`` with ``.cam``.
            index: the image's position in the run (seeds ROAD's noise).
        """
        import cv2
        import torch

        image = np.ascontiguousarray(result.orig_img)
        h, w = image.shape[:2]
        if self.protocol == "odexai":
            k = ODEXAI["blur_kernel"]
            blurred = cv2.GaussianBlur(image, (int(k), int(k)), 0)
        else:
            blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=max(h, w) / 40)  # RISE blurs 224 px images with sigma 5
        self._ensure_setup(image)
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
        rng = np.random.default_rng([self.seed, index, 0])
        if self.fill == "road":
            filled = _road(image, np.ones((h, w), bool), rng)
        elif self.fill == "blur":
            filled = blurred.copy()
        else:
            filled = np.full_like(image, 0 if self.fill == "black" else GRAY)
        case = _Case(image, blurred, filled, self.task, cls, ref, regions, np.ones(len(cls), np.float32), index=index)
        case.fractions = {lv: self._fractions(lv, (h, w)) for lv in self.levels}
        case.tiebreak = random_maps(1, (h, w), seed=self.seed)[0]
        # The unperturbed image: the reference score; segment: the reference masks; odexai: the class vectors.
        if self.raw:
            (orig,) = list(self._predict_raw([image]))
            if self.protocol == "odexai":
                ref["probs"] = _matched_probs(ref, orig)
            base = self._similarity(ref, orig)
        else:
            (orig,) = list(self._predict([image]))
            if self.task == "segment" and orig.masks is not None and len(cls):
                cand = orig.boxes
                iou = _torch_box_iou(torch.as_tensor(ref["xyxy"]), cand.xyxy.float().cpu())
                iou = iou * (torch.as_tensor(cls)[:, None] == cand.cls.cpu()[None, :].long())
                best = iou.argmax(1)
                masks = orig.masks.data.cpu()[best].clone()
                masks[iou.amax(1) < 0.5] = 0  # the prediction is not found again: no mask overlaps it
                ref["masks"] = masks
            base = self._similarity(ref, orig)
        case.base_score = np.ones(len(cls), np.float32) if self.protocol == "odexai" else np.maximum(base, 1e-6)
        case.ends.update({("start", "unperturbed", i): float(base[i] / case.base_score[i]) for i in range(len(cls))})
        # Far ends: everything deleted, or nothing revealed, of the image or of each box.
        jobs, images = [], []
        for level in self.levels:
            if level == "image":
                jobs += [("image", "deletion", -1), ("image", "insertion", -1)]
                images += [filled, filled if self.fill == "road" else blurred]
            elif self.task != "classify":
                for i, region in enumerate(regions):
                    if region is not None:
                        deleted, revealed = self._box_bases(case, region)
                        jobs += [("box", "deletion", i), ("box", "insertion", i)]
                        images += [deleted, revealed]
        for (level, kind, i), raw_scores in zip(jobs, self._scores(case, images)):
            scores = raw_scores / case.base_score
            for j in range(len(cls)) if i < 0 else [i]:
                case.ends[(level, kind, j)] = float(scores[j])
        return case

    def _box_bases(self, case: _Case, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image with the box fully deleted, and with the box at insertion's start (blurred; road: imputed)."""
        h, w = case.image.shape[:2]
        if self.fill == "road":
            missing = np.zeros(h * w, bool)
            missing[region] = True
            rng = np.random.default_rng([self.seed, case.index, 1, int(region[0])])
            deleted = _road(case.image, missing.reshape(h, w), rng)
            return deleted, deleted
        deleted = case.image.reshape(h * w, -1).copy()
        deleted[region] = case.filled.reshape(h * w, -1)[region]
        revealed = case.image.reshape(h * w, -1).copy()
        revealed[region] = case.blurred.reshape(h * w, -1)[region]
        return deleted.reshape(case.image.shape), revealed.reshape(case.image.shape)

    def _order(self, m: np.ndarray, region: np.ndarray | None, tiebreak: np.ndarray) -> np.ndarray:
        """Flat pixel indices (of the region) from the map's highest value down; ties in the random baseline's order.

        Breaking ties by the random map (smooth blobs), not by independent per-pixel noise, makes a map without
        information (constant, or empty) score exactly as the random map does: scattered single pixels hurt a
        detector far less than blobs, which would otherwise reward flat maps.
        """
        flat = m.reshape(-1)
        idx = np.arange(flat.size) if region is None else region
        return idx[np.lexsort((-tiebreak[idx], -flat[idx]))]

    def _start(self, case: _Case, i: int, level: str, kind: str, order: np.ndarray) -> _Curve:
        h, w = case.image.shape[:2]
        fr = case.fractions[level]
        values = np.full(len(fr), np.nan, np.float32)
        unperturbed = case.ends[("start", "unperturbed", i)]
        far = case.ends[(level, kind, i)]
        values[0], values[-1] = (unperturbed, far) if kind == "deletion" else (far, unperturbed)
        counts = np.round(fr * order.size).astype(int)
        flat = case.image.reshape(h * w, -1)
        if self.fill == "road":
            work, source = np.zeros(h * w, bool), None  # the pixels changed so far
        elif kind == "deletion":
            work, source = flat.copy(), case.filled.reshape(h * w, -1)
        else:
            region = case.regions[i] if level == "box" else None
            base = case.blurred if region is None else self._box_bases(case, region)[1]
            work, source = base.reshape(h * w, -1).copy(), flat
        stop = self.early_stop and kind == "deletion" and far == 0.0
        return _Curve(i, level, kind, counts, order, values, work, source, stop_at_zero=stop)

    def _next_image(self, case: _Case, c: _Curve) -> np.ndarray:
        """Apply the curve's next step and return the perturbed image."""
        part = c.order[c.counts[c.k - 1] : c.counts[c.k]]
        if c.source is not None:
            c.work[part] = c.source[part]
            image: np.ndarray = c.work.reshape(case.image.shape).copy()
            return image
        h, w = case.image.shape[:2]
        c.work[part] = True  # road: removed (deletion) or revealed (insertion) so far
        if c.kind == "deletion":
            missing = c.work
        else:
            missing = np.zeros(h * w, bool)
            missing[case.regions[c.i] if c.level == "box" else slice(None)] = True
            missing &= ~c.work
        rng = np.random.default_rng([self.seed, case.index, 2, c.i, LEVELS.index(c.level), KINDS.index(c.kind), c.k])
        return _road(case.image, missing.reshape(h, w), rng)

    def curves(self, case: _Case, maps: np.ndarray, rows: Any = None) -> list[PredictionCurves]:
        """Deletion and insertion curves of the explained predictions of ``case`` under their rows of ``maps``.

        Args:
            case: from :meth:`prepare`.
            maps: (n, H, W) one map per explained prediction, at the original size.
            rows: the predictions to score (default all); the others get no curves (empty ``curves``).

        Raises:
            ValueError: ``maps`` does not hold one map per explained prediction at the image's size.
        """
        n = len(case.cls)
        if len(maps) != n:
            raise ValueError(f"maps has {len(maps)} rows but the image has {n} explained predictions.")
        shape = case.image.shape[:2]
        if n and tuple(maps.shape[1:]) != shape:
            raise ValueError(f"maps are {tuple(maps.shape[1:])}, the image is {shape}: give maps at the original size.")
        assert case.tiebreak is not None  # prepare() sets it on every case
        tiebreak = case.tiebreak.reshape(-1)  # the same for every map: a fair comparison
        rows = range(n) if rows is None else rows
        out = [PredictionCurves(case.fractions, {}) for _ in range(n)]
        pending: list[_Curve] = []
        for i in rows:
            for level in self.levels:
                if level == "box" and (self.task == "classify" or case.regions[i] is None):
                    continue
                order = self._order(maps[i], case.regions[i] if level == "box" else None, tiebreak)
                for kind in KINDS:
                    c = self._start(case, i, level, kind, order)
                    out[i].curves[(level, kind)] = c.values
                    if not c.done:
                        pending.append(c)
        # Advance up to `batch` curves in step, one point each per round, so that a curve that stops early frees its
        # place in the batch for the next one.
        active: list[_Curve] = []
        while pending or active:
            while pending and len(active) < self.batch:
                active.append(pending.pop(0))
            images = [self._next_image(case, c) for c in active]
            for c, scores in zip(active, self._scores(case, images)):
                v = float(scores[c.i] / case.base_score[c.i])
                c.values[c.k] = v
                c.k += 1
                if c.stop_at_zero and v == 0.0:
                    c.values[c.k : -1] = 0.0
                    c.k = len(c.counts) - 1
            active = [c for c in active if not c.done]
        return out


def _road(image: np.ndarray, missing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from .imputation import road_impute

    return road_impute(image, missing, rng)


def _matched_probs(ref: dict[str, Any], det: dict[str, Any]) -> np.ndarray:
    """Class-score vectors of the reference predictions: those of their same-class match in the unperturbed output."""
    import torch
    from ultralytics.utils.metrics import box_iou as torch_box_iou

    n = len(ref["cls"])
    if det["probs"] is None or not len(det["cls"]):
        raise ValueError("protocol=odexai needs the class scores of every detection (a YOLO detect head with NMS).")
    iou = torch_box_iou(torch.as_tensor(ref["xyxy"]).float(), torch.as_tensor(det["xyxy"])).numpy()
    iou = iou * (np.asarray(ref["cls"])[:, None] == det["cls"][None, :])
    probs: np.ndarray = det["probs"][iou.argmax(1)] if n else np.zeros((0, det["probs"].shape[1]), np.float32)
    return probs


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
            ``imgsz``, ``device``, ``protocol``, ...).

    Returns:
        One dict per explained prediction: ``image`` (index in ``results``), ``prediction``, ``class``, ``name`` and,
        for ``map`` and every baseline, its areas and points (``{"map": {"image_deletion": ..., ...}, ...}``).

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
        case = scorer.prepare(r, index=j)
        maps = r.cam.maps
        sets = {"map": maps, **baseline_maps(r, maps, baselines, seed=scorer.seed)}
        areas = {name: [{**c.aucs(), **c.points()} for c in scorer.curves(case, m)] for name, m in sets.items()}
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


def summarise(rows: list[dict[str, Any]], names: tuple[str, ...] = ("map", *BASELINES)) -> dict[str, dict[str, float]]:
    """Mean areas (and points) over predictions: ``{name: {"image_deletion": ..., ..., "faithfulness": ...}}``.

    ``faithfulness`` is insertion minus deletion, averaged over the variants present (higher is better).
    """
    out = {}
    for name in names:
        per = [r[name] for r in rows if name in r]
        if not per:
            continue
        keys = sorted({k for p in per for k in p})
        mean = {k: _nanmean([p.get(k, np.nan) for p in per]) for k in keys}
        diffs = [mean[f"{lv}_insertion"] - mean[f"{lv}_deletion"] for lv in LEVELS if f"{lv}_deletion" in mean]
        mean["faithfulness"] = float(np.mean(diffs)) if diffs else float("nan")
        out[name] = mean
    return out


def prediction_faithfulness(areas: dict[str, float]) -> float:
    """One prediction's faithfulness: insertion minus deletion area, the mean over its levels (NaN if none)."""
    diffs = [areas[f"{lv}_insertion"] - areas[f"{lv}_deletion"] for lv in LEVELS if f"{lv}_deletion" in areas]
    diffs = [d for d in diffs if not math.isnan(d)]
    return float(np.mean(diffs)) if diffs else float("nan")


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, np.float64)
    return float(arr[~np.isnan(arr)].mean()) if (~np.isnan(arr)).any() else float("nan")
