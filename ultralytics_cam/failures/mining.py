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

Each object is reported once: an object that a wrong-class or poorly localised prediction covers is explained by
that failure, not again as missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "KINDS",
    "LOCALISATION_MIN_IOU",
    "MATCH_IOU",
    "TASK_KINDS",
    "Failure",
    "ImageCase",
    "mine_classification",
    "mine_detections",
]

#: Every failure kind, in the order reports list them.
KINDS = ("false_positive", "missed", "wrong_class", "poor_localisation", "misclassified")
#: The kinds each task can have.
TASK_KINDS = {
    **dict.fromkeys(("detect", "segment", "pose", "obb"), KINDS[:4]),
    "classify": ("misclassified",),
}
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
    _restore: tuple | None = None  # (dtype, device) when :attr:`input` is stored compactly as uint8

    @property
    def name(self) -> str:
        """The image's file name (or its position when the file is unknown)."""
        from pathlib import Path

        return Path(self.path).name if self.path else f"image{self.seq:06d}"

    @property
    def input_hw(self) -> tuple[int, int]:
        """(h, w) of the model input."""
        return tuple(self.input.shape[-2:])

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
        """Drop the image tensor once the image is explained (or will not be)."""
        self.input = self.input.new_zeros((0, *self.input.shape[-2:]))


def mine_detections(
    validator: Any, pred: dict, pbatch: dict, conf: float, kinds: tuple[str, ...]
) -> tuple[dict, list[Failure]]:
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
