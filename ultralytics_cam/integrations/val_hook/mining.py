"""The failures of one validation image, found with Ultralytics' own matching of predictions to ground truth.

Only predictions at or above the user's ``conf`` count (the validator keeps everything above 0.001 for its mAP, far
below what anyone deploys). Ultralytics' ``_process_batch`` then says which of them are correct: same class and
IoU >= 0.5 (rotated IoU for OBB), matched greedily by confidence, each object at most once. Every other prediction,
and every object no prediction covers, is a failure of one kind:

``false_positive``
    a prediction on background, or a duplicate of an object another prediction already matched.
``wrong_class``
    a prediction on an unmatched object (IoU >= 0.5) of another class.
``poor_localisation``
    a prediction of the right class on an unmatched object, but with 0.1 <= IoU < 0.5.
``missed``
    an object that no prediction matched or covered as above.
``misclassified`` (classify)
    an image whose top-1 class is not its label.
``low_iou`` (semantic)
    a class whose IoU in this image is below 0.5, counted on the validator's own class map and label mask (the pixels
    Ultralytics' ``SemanticMetrics`` scores: label not 255); the :data:`PER_IMAGE` worst classes of an image.
``depth_error`` (depth)
    a cell of a 4 x 4 grid over the image whose mean absolute relative error is at least 0.25, measured as
    Ultralytics' ``DepthMetrics`` measures (valid pixels only, the same per-image median alignment); the
    :data:`PER_IMAGE` cells with the largest mean absolute error (metres) of an image.

Each object is reported once: an object that a wrong-class or poorly localised prediction covers is explained by
that failure, not again as missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DEPTH_GRID",
    "DEPTH_MIN_ABS_REL",
    "KINDS",
    "LOCALISATION_MIN_IOU",
    "LOW_IOU",
    "MATCH_IOU",
    "PER_IMAGE",
    "TASK_KINDS",
    "DenseFailures",
    "Failure",
    "ImageCase",
    "mine_classification",
    "mine_depth",
    "mine_detections",
    "mine_semantic",
]

#: Every failure kind, in the order reports list them.
KINDS = ("false_positive", "missed", "wrong_class", "poor_localisation", "misclassified", "low_iou", "depth_error")
#: The kinds each task can have.
TASK_KINDS = {
    **dict.fromkeys(("detect", "segment", "pose", "obb"), KINDS[:4]),
    "classify": ("misclassified",),
    "semantic": ("low_iou",),
    "depth": ("depth_error",),
}
#: Dense tasks (semantic, depth): at most this many failures (classes, cells) per image, the worst first.
PER_IMAGE = 3
#: Semantic: a class whose IoU in an image is below this fails there (the IoU at which a detection is correct).
LOW_IOU = 0.5
#: Depth: the image is split into DEPTH_GRID x DEPTH_GRID cells of the model input (the validator stretches the image
#: to the input, so they are the same cells of the original image).
DEPTH_GRID = 4
#: Depth: a cell fails when its mean absolute relative error (Ultralytics' abs_rel) is at least this: its depth is
#: off by a quarter on average, the ratio past which Ultralytics' delta1 counts a pixel wrong (1.25).
DEPTH_MIN_ABS_REL = 0.25
#: Depth: cells (and images) with fewer valid label pixels are not scored (DepthMetrics' own floor per image).
DEPTH_MIN_PIXELS = 10
#: IoU at which a prediction matches an object: Ultralytics' mAP50 threshold.
MATCH_IOU = 0.5
#: Below this overlap a prediction is not "about" an object at all, so it is a false positive, not a poor localisation.
LOCALISATION_MIN_IOU = 0.1


@dataclass
class Failure:
    """One failure of one image.

    Attributes:
        kind: one of :data:`KINDS`.
        cls: the class explained: the predicted class, or the true class of a missed object.
        true_cls: the ground-truth class involved (None for a false positive on background).
        conf: the prediction's confidence (None for a missed object until its candidate is known).
        iou: overlap of the prediction with the object involved (best overlap for a false positive; for a missed
            object, of its strongest candidate).
        pred: row of the prediction in :attr:`ImageCase.pred_cls` (None for a missed object).
        gt: row of the object in :attr:`ImageCase.gt_cls` (None for a false positive on background).
        files: the files written for it, relative to ``cam_failures/``.
        map_conf: the score each of its maps explains (filled when explained).
        candidate_box: a missed object's strongest candidate's box, in model-input pixels (filled when explained).
        error: depth: the cell's mean absolute error in metres (after the validator's alignment).
        abs_rel: depth: the cell's mean absolute relative error.
        pixels: dense tasks: (H, W) bool at the model input, the pixels the map explains (semantic: the class's
            predicted and true pixels; depth: the cell).
    """

    kind: str
    cls: int
    true_cls: int | None = None
    conf: float | None = None
    iou: float | None = None
    pred: int | None = None
    gt: int | None = None
    files: list[str] = field(default_factory=list)
    map_conf: list[float] = field(default_factory=list)
    candidate_box: torch.Tensor | None = None
    error: float | None = None
    abs_rel: float | None = None
    pixels: torch.Tensor | None = None

    @property
    def explains_two_classes(self) -> bool:
        """Whether it gets two maps, predicted class and true class side by side."""
        return self.kind in ("wrong_class", "misclassified")


@dataclass
class ImageCase:
    """One validation image with failures: what the hook keeps of it until it is explained and saved.

    Boxes are in model-input pixels (xyxy, or xywhr for OBB), as the validator holds them; tensors are on the CPU
    except :attr:`input` before :meth:`compact`.
    """

    seq: int  # position in validation order; among equally bad images the earlier one comes first
    path: str | None  # the image file (None when a classification loader does not say which file it read)
    ori_shape: tuple[int, int] | None  # (h, w) of the file; None (classify) until the file is read
    ratio_pad: Any  # the validator's letterbox ((gain_h, gain_w), (pad_w, pad_h)); None for classify
    input: torch.Tensor  # (3, h, w) model input
    gt_cls: torch.Tensor
    gt_boxes: torch.Tensor
    pred_cls: torch.Tensor
    pred_conf: torch.Tensor
    pred_boxes: torch.Tensor
    pred_kpts: torch.Tensor | None = None  # (P, nk, 2 or 3) for pose
    failures: list[Failure] = field(default_factory=list)
    severity: float | None = None  # dense tasks: how bad the worst failure is (1 - IoU; metres of error)
    pred_labels: list[str] | None = None  # dense tasks: the label of each pred box (instead of class and conf)
    _restore: tuple[torch.dtype, torch.device] | None = None  # set when :attr:`input` is stored compactly as uint8

    @property
    def name(self) -> str:
        """The image's file name (or its position when the file is unknown)."""
        from pathlib import Path

        return Path(self.path).name if self.path else f"image{self.seq:06d}"

    @property
    def rank(self) -> tuple[float, float]:
        """How bad the image is, for "the worst first": most failures; dense tasks: the worst failure first."""
        if self.severity is not None:
            return (self.severity, len(self.failures))
        return (len(self.failures), 0.0)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(h, w) of the model input."""
        h, w = self.input.shape[-2:]
        return int(h), int(w)

    def compact(self) -> None:
        """Keep the model input on the CPU, as uint8 when that is exact (4x smaller; inputs are uint8 / 255)."""
        x = self.input.detach()
        u = (x.float() * 255).round_().clamp_(0, 255).to(torch.uint8)
        if torch.equal(u.to(x.dtype) / 255, x):
            self.input, self._restore = u.cpu(), (x.dtype, x.device)
        else:
            self.input = x.cpu()

    def model_input(self, device: Any) -> torch.Tensor:
        """The (3, h, w) model input on ``device``, bit-identical to what the validator ran."""
        if self._restore is None:
            return self.input.to(device)
        dtype, _ = self._restore
        return self.input.to(device).to(dtype) / 255

    def release(self) -> None:
        """Drop the image tensor (and dense failures' pixels) once the image is explained (or will not be)."""
        self.input = self.input.new_zeros((0, *self.input.shape[-2:]))
        for f in self.failures:
            f.pixels = None


def mine_detections(
    validator: Any, pred: dict[str, Any], pbatch: dict[str, Any], conf: float, kinds: tuple[str, ...]
) -> tuple[dict[str, Any], list[Failure]]:
    """Return the predictions at or above ``conf`` and the failures of one detect/segment/pose/obb image.

    Args:
        validator: the running Ultralytics validator; its ``_process_batch`` does the matching.
        pred: the image's postprocessed predictions (``bboxes``, ``conf``, ``cls``, and ``masks``/``keypoints``).
        pbatch: the image's ground truth from the validator's ``_prepare_batch``.
        conf: confidence threshold.
        kinds: the failure kinds to report (objects are still covered by unreported kinds).
    """
    n = len(pred["conf"])
    keep = pred["conf"] >= conf
    predn = {k: v[keep] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v for k, v in pred.items()}
    correct = torch.as_tensor(validator._process_batch(predn, pbatch)["tp"][:, 0]).cpu()  # Ultralytics' own match
    gt_cls = pbatch["cls"].long().view(-1).cpu()
    pred_cls = predn["cls"].long().view(-1).cpu()
    iou = _iou(validator.args.task, pbatch["bboxes"], predn["bboxes"]).float().cpu()  # (G, P)
    same = gt_cls[:, None] == pred_cls[None]
    claimed = _claims(correct, iou * same)

    failures: list[Failure] = []
    covered = claimed >= 0
    k: int | None  # the object a failing prediction is about (None: background)
    for j in torch.nonzero(~correct).view(-1).tolist():
        c, score = int(pred_cls[j]), float(predn["conf"][j])
        col, col_same = iou[:, j], iou[:, j] * same[:, j]
        other = torch.where(~same[:, j] & ~covered, col, torch.zeros_like(col))
        loose = torch.where(~covered, col_same, torch.zeros_like(col))
        if len(col) and col_same.max() >= MATCH_IOU:  # its object is taken by a better prediction: a duplicate
            k, kind = int(col_same.argmax()), "false_positive"
        elif len(col) and other.max() >= MATCH_IOU:
            k, kind = int(other.argmax()), "wrong_class"
        elif len(col) and loose.max() >= LOCALISATION_MIN_IOU:
            k, kind = int(loose.argmax()), "poor_localisation"
        else:
            k, kind = (int(col.argmax()) if len(col) else None), "false_positive"
        if kind in ("wrong_class", "poor_localisation"):
            assert k is not None  # both kinds come from an object's overlap above
            covered[k] = True
        on_object = k is not None and float(col[k]) >= LOCALISATION_MIN_IOU  # else: background, whatever is near
        failure = Failure(
            kind,
            c,
            true_cls=int(gt_cls[k]) if on_object else None,
            conf=score,
            iou=float(col[k]) if k is not None else 0.0,
            pred=j,
            gt=k if on_object else None,
        )
        if kind in kinds:
            failures.append(failure)
    if "missed" in kinds:
        failures += [Failure("missed", int(gt_cls[k]), true_cls=int(gt_cls[k]), gt=k) for k in _missed(covered)]
    return predn, failures


def mine_classification(probs: torch.Tensor, true_cls: int, kinds: tuple[str, ...]) -> list[Failure]:
    """Return the failure of one classified image: top-1 class is not the label."""
    top1 = int(probs.argmax())
    if top1 == true_cls or "misclassified" not in kinds:
        return []
    return [Failure("misclassified", top1, true_cls=true_cls, conf=float(probs[top1]))]


@dataclass
class DenseFailures:
    """The failures of one semantic or depth image, with the boxes drawn for them (model-input pixels, xyxy).

    Semantic: ``pred_boxes`` are the bounding boxes of each failing class's predicted pixels and ``gt_boxes`` of its
    true pixels (a failure's ``pred`` / ``gt`` index them). Depth: ``pred_boxes`` are the failing cells.
    """

    failures: list[Failure]
    gt_cls: torch.Tensor
    gt_boxes: torch.Tensor
    pred_cls: torch.Tensor
    pred_boxes: torch.Tensor
    pred_labels: list[str]
    severity: float | None


def mine_semantic(
    pred: torch.Tensor,
    true: torch.Tensor,
    nc: int,
    names: dict[int, str],
    kinds: tuple[str, ...],
    content: torch.Tensor,
) -> DenseFailures:
    """Return the classes with the lowest IoU of one semantic image (IoU below :data:`LOW_IOU`, the worst first).

    Args:
        pred: (H, W) class map the validator scores (its ``postprocess``), at the label's size.
        true: (H, W) label mask of the batch (255: ignored).
        nc: number of classes of the model; a binary model (one class) paints 1 for its class, 0 for background.
        names: class names, for the drawn labels.
        kinds: the failure kinds to report.
        content: (H, W) bool, the image content (never the letterbox padding).

    Pixels count as Ultralytics' ``SemanticMetrics.update_stats`` counts them (label not 255, both ids in range), so
    a class's IoU here is its per-image IoU by Ultralytics' confusion matrix. A class counts when it is in the label or
    in the prediction. Each failure's ``pixels`` are the class's predicted and true pixels: the map explains what made
    the model paint, or not paint, them as the class.
    """
    pred, true = pred.long().cpu(), true.long().cpu()
    cm_nc = 2 if nc == 1 else nc
    valid = content.cpu() & (true != 255) & (pred >= 0) & (pred < cm_nc) & (true >= 0) & (true < cm_nc)
    values = [(1, 0)] if nc == 1 else [(c, c) for c in range(nc)]  # (value in the maps, class id = logit channel)
    scored = []
    for value, cls in values:
        p, t = (pred == value) & valid, (true == value) & valid
        union = int((p | t).sum())
        if union == 0:
            continue  # neither in the label nor in the prediction
        iou = int((p & t).sum()) / union
        if iou < LOW_IOU:
            scored.append((iou, cls, p, t))
    scored.sort(key=lambda e: (e[0], e[1]))
    if "low_iou" not in kinds:
        scored = []
    failures: list[Failure] = []
    gt_boxes: list[torch.Tensor] = []
    pred_boxes: list[torch.Tensor] = []
    gt_cls: list[int] = []
    pred_cls: list[int] = []
    labels: list[str] = []
    for iou, cls, p, t in scored[:PER_IMAGE]:
        f = Failure("low_iou", cls, true_cls=cls if bool(t.any()) else None, iou=round(iou, 5), pixels=p | t)
        name = str(names.get(cls, cls)) if isinstance(names, dict) else str(cls)
        if bool(p.any()):
            f.pred = len(pred_boxes)
            pred_boxes.append(_mask_box(p))
            pred_cls.append(cls)
            labels.append(f"{name} IoU {iou:.2f}")
        if bool(t.any()):
            f.gt = len(gt_boxes)
            gt_boxes.append(_mask_box(t))
            gt_cls.append(cls)
        failures.append(f)
    return DenseFailures(
        failures,
        torch.tensor(gt_cls, dtype=torch.long),
        torch.stack(gt_boxes) if gt_boxes else torch.zeros((0, 4)),
        torch.tensor(pred_cls, dtype=torch.long),
        torch.stack(pred_boxes) if pred_boxes else torch.zeros((0, 4)),
        labels,
        1.0 - (failures[0].iou or 0.0) if failures else None,  # a low_iou failure always has its IoU
    )


def mine_depth(
    pred: torch.Tensor,
    true: torch.Tensor,
    kinds: tuple[str, ...],
    min_depth: float = 0.001,
    max_depth: float = 100.0,
    align: str = "median",
) -> DenseFailures:
    """Return the grid cells with the largest depth error of one image.

    Args:
        pred: (H, W) predicted depth in metres, resized to the label as the validator resizes it.
        true: (H, W) label depth in metres.
        kinds: the failure kinds to report.
        min_depth: the validator's ``DepthMetrics.min_depth``.
        max_depth: its ``max_depth``.
        align: its ``align`` (``median`` or ``none``).

    The error is measured as ``DepthMetrics.update_stats`` measures it: only pixels whose label lies inside
    (``min_depth``, ``max_depth``), the prediction scaled by median(label) / median(prediction) over them (when the
    metrics align by median) and clamped to that range. Each of the :data:`DEPTH_GRID` x :data:`DEPTH_GRID` cells with
    at least :data:`DEPTH_MIN_PIXELS` valid pixels gets its mean absolute error (metres) and its mean absolute
    relative error; cells with an abs_rel of at least :data:`DEPTH_MIN_ABS_REL` fail, the :data:`PER_IMAGE` with the
    largest absolute error are reported, the largest first.
    """
    pred, true = pred.float().cpu(), true.float().cpu()
    valid = (true > min_depth) & (true < max_depth)
    empty = DenseFailures(
        [], torch.zeros(0, dtype=torch.long), torch.zeros((0, 4)), torch.zeros(0), torch.zeros((0, 4)), [], None
    )
    if int(valid.sum()) < DEPTH_MIN_PIXELS or "depth_error" not in kinds:
        return empty
    p = pred.clone()
    if align == "median":
        finite = torch.isfinite(p[valid])
        if finite.any():
            p = p * (torch.median(true[valid][finite]) / torch.median(p[valid][finite].clamp_min(min_depth)))
    p = torch.nan_to_num(p, nan=max_depth, posinf=max_depth, neginf=min_depth).clamp(min_depth, max_depth)
    err = (p - true).abs()
    h, w = true.shape
    ys = [round(i * h / DEPTH_GRID) for i in range(DEPTH_GRID + 1)]
    xs = [round(i * w / DEPTH_GRID) for i in range(DEPTH_GRID + 1)]
    cells = []
    for r in range(DEPTH_GRID):
        for c in range(DEPTH_GRID):
            y0, y1, x0, x1 = ys[r], ys[r + 1], xs[c], xs[c + 1]
            v = valid[y0:y1, x0:x1]
            if int(v.sum()) < DEPTH_MIN_PIXELS:
                continue
            e = err[y0:y1, x0:x1][v]
            abs_rel = float((e / true[y0:y1, x0:x1][v]).mean())
            if abs_rel >= DEPTH_MIN_ABS_REL:
                cells.append((float(e.mean()), abs_rel, (x0, y0, x1, y1)))
    cells.sort(key=lambda e: -e[0])
    failures, boxes, labels = [], [], []
    for j, (error, abs_rel, (x0, y0, x1, y1)) in enumerate(cells[:PER_IMAGE]):
        pixels = torch.zeros((h, w), dtype=torch.bool)
        pixels[y0:y1, x0:x1] = True
        failures.append(
            Failure("depth_error", 0, pred=j, error=round(error, 5), abs_rel=round(abs_rel, 5), pixels=pixels)
        )
        boxes.append(torch.tensor([x0, y0, x1, y1], dtype=torch.float32))
        labels.append(f"err {error:.2f} m")
    if not failures:
        return empty
    return DenseFailures(
        failures,
        torch.zeros(0, dtype=torch.long),
        torch.zeros((0, 4)),
        torch.zeros(len(failures), dtype=torch.long),
        torch.stack(boxes),
        labels,
        failures[0].error,
    )


def _mask_box(mask: torch.Tensor) -> torch.Tensor:
    """The xyxy bounding box (pixels) of a non-empty (H, W) bool mask."""
    ys, xs = mask.nonzero(as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


def _claims(correct: torch.Tensor, iou_same: torch.Tensor) -> torch.Tensor:
    """Which prediction claimed each object: ``BaseValidator.match_predictions`` at IoU 0.5, replayed.

    Ultralytics reports which predictions are correct, not which object each one matched; missed objects need the
    latter. The replay walks the correct predictions in confidence order (their row order) and gives each the best
    unclaimed object of its class, exactly as the greedy matcher does.
    """
    claimed = torch.full((iou_same.shape[0],), -1, dtype=torch.long)
    for j in torch.nonzero(correct).view(-1).tolist():
        free = torch.where(claimed < 0, iou_same[:, j], torch.zeros_like(iou_same[:, j]))
        if len(free) and free.max() >= MATCH_IOU:
            claimed[free.argmax()] = j
    return claimed


def _missed(covered: torch.Tensor) -> list[int]:
    """Objects that no prediction matched or covered."""
    return torch.nonzero(~covered).view(-1).tolist()


def _iou(task: str, gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """(G, P) overlaps as the task's validator measures them: rotated (probabilistic) IoU for OBB, box IoU else."""
    from ultralytics.utils.metrics import batch_probiou, box_iou

    if len(gt) == 0 or len(pred) == 0:
        return torch.zeros((len(gt), len(pred)))
    return batch_probiou(gt, pred) if task == "obb" else box_iou(gt, pred)
