"""Failures explained by a black-box method (DRISE): the validation of an exported model gets maps too.

The validator runs the model on whatever backend it loaded (``AutoBackend``: ``yolo val model=best.onnx``), so there is
no layer and no gradient to read. D-RISE needs neither: each failure becomes a D-RISE target in model-input pixels, and
the masked copies of the image run through the validator's own model and postprocess (NMS as the validator applies it):

- a prediction (false positive, poor localisation): its box and class;
- a wrong class: its box with the predicted class, and with the true class (two maps, side by side);
- a missed object: its ground-truth box and class: "what in the image makes the model find this object here?";
  its score is the D-RISE score of that target in the unmasked image, and its candidate the best matching proposal;
- a misclassified image (classify): the predicted class and the true class.

Masks cover the image, not the validator's letterbox padding, as in ``model.cam`` (:mod:`ultralytics_cam.blackbox`).
"""

from __future__ import annotations

from typing import Any

import torch

from ...blackbox import mask_batch
from ...methods.drise import MaskSet, SaliencyAccumulator
from ...similarity import Detections, drise_similarity
from .mining import ImageCase

__all__ = ["BlackBoxFailures"]


class BlackBoxFailures:
    """Explains a validator's failures with a black-box method, through the validator's model and postprocess.

    Args:
        model: the model the validator runs (an ``AutoBackend``, or a trainer's EMA model).
        validator: the Ultralytics validator (its ``postprocess`` turns raw outputs into proposals).
        config: the CAM options (``method`` is a black-box one).

    Raises:
        MethodError: the method does not fit the task or target.
    """

    black_box = True

    def __init__(self, model: Any, validator: Any, config: Any) -> None:
        factory = config.method_spec.factory
        assert factory is not None  # CamConfig refuses the methods without a factory
        self.method = factory()
        self.task = validator.args.task
        self.method.check(self.task, len(validator.names), config.target)
        self.model, self.validator, self.config = model, validator, config
        self.layers: list[Any] = []
        self.batch = mask_batch(model)

    def explain_cases(self, cases: list[ImageCase]) -> list[torch.Tensor]:
        """Per case, its failures' maps at the model-input size: (m, h, w), failure by failure, 1 or 2 each."""
        return [self._explain(case) for case in cases]

    def _explain(self, case: ImageCase) -> torch.Tensor:
        device = getattr(self.model, "device", None) or torch.device("cpu")
        x = case.model_input(device)[None]
        if getattr(self.model, "fp16", False):
            x = x.half()
        targets = self._targets(case)
        found = self._proposals(x)[0]
        scores = drise_similarity(targets, found)
        self._record(case, targets, found, scores)
        h, w = case.input_hw
        out = torch.zeros((len(targets), h, w))
        if not len(targets):
            return out
        y0, y1, x0, x1 = _content(case)
        cfg = self.config
        masks = MaskSet(cfg.drise_masks, (y1 - y0, x1 - x0), cfg.drise_cell, cfg.drise_keep, cfg.seed)
        accumulator = SaliencyAccumulator(len(targets), masks.hw)
        for start in range(0, len(masks), self.batch):
            stop = min(start + self.batch, len(masks))
            chunk = masks.masks(start, stop, x.device)
            full = x.new_ones((stop - start, 1, h, w))
            full[:, 0, y0:y1, x0:x1] = chunk.to(x.dtype)
            weights = torch.stack([drise_similarity(targets, f) for f in self._proposals(x * full)])
            accumulator.add(chunk.float().cpu(), weights)
        out[:, y0:y1, x0:x1] = accumulator.maps()
        return out

    def _targets(self, case: ImageCase) -> Detections:
        """The D-RISE targets of the case's failures, in order (a wrong class gives two)."""
        cls, conf, boxes = [], [], []
        width = case.gt_boxes.shape[-1] if len(case.gt_boxes) else case.pred_boxes.shape[-1]
        for f in case.failures:
            rows: list[tuple[int | None, torch.Tensor | None]]
            if f.kind == "misclassified":
                rows = [(f.cls, None), (f.true_cls, None)]
            elif f.kind == "missed":
                assert f.gt is not None  # a missed failure names its object (mine_detections)
                rows = [(f.cls, case.gt_boxes[f.gt])]
            else:
                assert f.pred is not None  # every other detection failure is a prediction's
                pred_box = case.pred_boxes[f.pred]
                rows = [(f.cls, pred_box)] + ([(f.true_cls, pred_box)] if f.kind == "wrong_class" else [])
            for c, box in rows:
                cls.append(int(c if c is not None else -1))
                conf.append(1.0)
                boxes.append(torch.zeros(0) if box is None else box.float().cpu())
        if self.task == "classify":
            return Detections(torch.tensor(cls, dtype=torch.long), torch.tensor(conf), torch.zeros((len(cls), 0)))
        stacked = torch.stack(boxes) if boxes else torch.zeros((0, width or 4))
        return Detections(torch.tensor(cls, dtype=torch.long), torch.tensor(conf), stacked)

    def _record(self, case: ImageCase, targets: Detections, found: Detections, scores: torch.Tensor) -> None:
        """Each failure's explained scores; a missed object's candidate (the best matching proposal)."""
        k = 0
        for f in case.failures:
            n = 2 if f.kind in {"misclassified", "wrong_class"} else 1
            f.map_conf = [round(float(s), 5) for s in scores[k : k + n]]
            if f.kind == "missed":
                f.conf = float(scores[k])
                best = _best_proposal(targets, found, k)
                if best is not None:
                    f.candidate_box, f.iou = found.boxes[best].float(), _iou(targets.boxes[k], found.boxes[best])
            k += n

    def _proposals(self, x: torch.Tensor) -> list[Detections]:
        """The validator's own postprocess of the model's outputs on ``x``, as D-RISE proposals."""
        v = self.validator
        saved = v.args.conf
        v.args.conf = max(float(saved), self.method.proposal_conf)
        try:
            with torch.inference_mode():
                preds = v.postprocess(self.model(x))
        finally:
            v.args.conf = saved
        if self.task == "classify":
            probs = preds[0] if isinstance(preds, (list, tuple)) else preds
            none = torch.zeros(0, dtype=torch.long)
            return [Detections(none, torch.zeros(0), torch.zeros((0, 0)), p[None].float().cpu()) for p in probs]
        out = []
        for p in preds:
            masks = p.get("masks")
            out.append(
                Detections(
                    p["cls"].long().cpu(),
                    p["conf"].float().cpu(),
                    p["bboxes"].float().cpu(),
                    None,
                    None if masks is None else masks.cpu(),
                )
            )
        return out


def _content(case: ImageCase) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the image inside the validator's letterbox (the whole input for classify)."""
    h, w = case.input_hw
    if case.ratio_pad is None or case.ori_shape is None:
        return 0, h, 0, w
    ratio, (pad_w, pad_h) = case.ratio_pad
    gain = ratio[0] if isinstance(ratio, (list, tuple)) else ratio
    top, left = round(float(pad_h) - 0.1), round(float(pad_w) - 0.1)  # Ultralytics' own rounding of the padding
    ch, cw = round(case.ori_shape[0] * float(gain)), round(case.ori_shape[1] * float(gain))
    return max(top, 0), min(top + ch, h), max(left, 0), min(left + cw, w)


def _best_proposal(targets: Detections, found: Detections, k: int) -> int | None:
    """The proposal that gives target ``k`` its D-RISE score (None without a proposal)."""
    if not len(found):
        return None
    one = Detections(targets.cls[k : k + 1], targets.conf[k : k + 1], targets.boxes[k : k + 1])
    scores = [float(drise_similarity(one, _row(found, j))[0]) for j in range(len(found))]
    best = max(range(len(scores)), key=scores.__getitem__)
    return best if scores[best] > 0 else None


def _row(d: Detections, j: int) -> Detections:
    return Detections(d.cls[j : j + 1], d.conf[j : j + 1], d.boxes[j : j + 1])


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    from ultralytics.utils.metrics import batch_probiou, box_iou

    if a.shape[-1] == 5:
        return float(batch_probiou(a[None].float(), b[None].float())[0, 0])
    return float(box_iou(a[None].float(), b[None].float())[0, 0])
