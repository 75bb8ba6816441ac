"""One CAM pass for a batch of failure images: what did the model see where it failed?

Every failure is explained at the place in the head where it happened:

- a prediction (false positive, wrong class, poor localisation): the anchor (query) that produced it, found again by
  its box and confidence (:meth:`HeadAdapter.locate <ultralytics_cam.heads.HeadAdapter.locate>`); a wrong class also
  gets the true class's map at the same anchor, side by side;
- a missed object: the strongest candidate for its true class at its ground-truth box
  (:meth:`HeadAdapter.candidates <ultralytics_cam.heads.HeadAdapter.candidates>`);
- a misclassified image: the predicted class and the true class;
- a semantic class with a low IoU: the class target (its logits summed) over the class's predicted and true pixels;
- a depth cell with a large error: the engine's depth target (``mean`` by default) over the cell.

All maps of a batch come from one forward and one batched backward of :class:`~ultralytics_cam.engine.CamEngine`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...heads import Selection
from .mining import ImageCase

__all__ = ["explain_cases", "to_original"]


def explain_cases(engine: Any, cases: list[ImageCase]) -> list[torch.Tensor]:
    """Return, per case, its failures' maps at the model-input size: (m, h, w), failure by failure, 1 or 2 each.

    The cases must share one input size (a validator batch does). Sets each failure's ``map_conf`` (the score each
    map explains) and, for a missed object, its ``conf`` (the candidate's score).
    """
    if getattr(engine, "black_box", False):  # DRISE (integrations.val_hook.drise): masked forwards, no backward
        maps: list[torch.Tensor] = engine.explain_cases(cases)
        return maps
    device = next(engine.net.parameters()).device
    x = torch.stack([case.model_input(device) for case in cases])
    fwd = engine.forward(x)
    try:
        imgsz = (int(x.shape[2]), int(x.shape[3]))
        pick = _dense_selection if engine.adapter.dense else _selection
        sels = [pick(engine, fwd.head_out, case, b, imgsz) for b, case in enumerate(cases)]
        return [m.dense() for m in engine.explain(fwd, sels)]  # a failure has one or two maps: dense is small
    finally:
        del fwd  # the autograd graph of the batch


def to_original(maps: torch.Tensor, case: ImageCase, orig_hw: tuple[int, int]) -> np.ndarray:
    """Bring (m, h, w) input-size maps onto the original image, undoing the validator's own resizing."""
    orig_hw = (int(orig_hw[0]), int(orig_hw[1]))  # an image's shape[:2] or a torch.Size: plain ints
    if tuple(maps.shape[-2:]) == tuple(orig_hw) or len(maps) == 0:
        out = maps if len(maps) else maps.new_zeros((0, *orig_hw))
    elif case.ratio_pad is None:  # classification: short-side resize + centre crop, as in predict
        from ...geometry import Geometry

        out = Geometry("center_crop", case.input_hw, orig_hw).to_original(maps)
    else:  # the validator's letterbox, with its exact gains and padding
        from ultralytics.utils import ops

        out = ops.scale_masks(maps[:, None].float(), orig_hw, ratio_pad=case.ratio_pad)[:, 0]
    return out.clamp(0, 1).float().cpu().numpy()


def _dense_selection(engine: Any, head_out: Any, case: ImageCase, b: int, imgsz: tuple[int, int]) -> Selection:
    """The rows of a semantic or depth image: one per failure, on the failure's pixels.

    Semantic rows read the failing class's logits; their score is the class's mean probability there. Depth rows take
    the engine's target on the cell (``mean``: every pixel; ``near`` / ``far``: the cell's nearest / farthest share,
    as ``region=`` does); their score is the mean predicted depth (metres) of those pixels.

    Raises:
        ValueError: a failure of ``case`` has no pixels (the semantic and depth miners give every failure its pixels).
    """
    from ...heads import DenseSelection

    adapter = engine.adapter
    out = adapter.output(head_out)[b : b + 1].detach()
    up = adapter.upsampled(out, imgsz)[0]  # (C, H, W) as the predictor and validator resize it
    areas = []
    for f in case.failures:
        if f.pixels is None:  # mine_semantic / mine_depth give every failure its pixels
            raise ValueError(f"the {f.kind} failure of {case.name} has no pixels to explain")
        areas.append(f.pixels.to(up.device))
    if engine.task == "semantic":
        cls = torch.tensor([f.cls for f in case.failures], dtype=torch.long, device=up.device)
        masks = torch.stack(areas)
        prob = up.softmax(0) if up.shape[0] > 1 else up.sigmoid()
        conf = adapter.masked_mean(prob[cls], masks)
        index = cls
    else:
        masks = torch.stack([adapter.pick(up[0], area, engine.target.name) for area in areas])
        conf = adapter.masked_mean(up, masks)
        index = torch.arange(len(areas), device=up.device)
        cls = torch.zeros_like(index)
    for f, c in zip(case.failures, conf.tolist()):
        f.map_conf = [round(float(c), 5)]
    return DenseSelection(index, cls, conf, adapter.mask_boxes(masks), False, masks, [])


def _selection(engine: Any, head_out: Any, case: ImageCase, b: int, imgsz: tuple[int, int]) -> Selection:
    """All rows explained for one image, failure by failure."""
    adapter = engine.adapter
    rows = []
    for f in case.failures:
        if f.kind == "missed":
            assert f.gt is not None  # a missed failure always names its object (mine_detections)
            gt = case.gt_boxes[f.gt : f.gt + 1]
            s = adapter.candidates(head_out, gt, torch.tensor([f.cls]), imgsz, b)
            f.conf, f.candidate_box = float(s.conf[0]), s.boxes[0].detach().float().cpu()
            f.iou = float(_overlap(gt, f.candidate_box[None])[0, 0])
        elif f.kind == "misclassified":
            s = adapter.candidates(head_out, torch.zeros((2, 4)), torch.tensor([f.cls, f.true_cls]), imgsz, b)
        else:
            assert f.pred is not None  # every other detection failure is a prediction's (mine_detections)
            box, cls, conf = case.pred_boxes[f.pred : f.pred + 1], torch.tensor([f.cls]), torch.tensor([f.conf])
            s = adapter.locate(head_out, box, cls, conf, imgsz, b)
            if f.kind == "wrong_class":  # and what the same anchor says about the true class
                scores = adapter.decode(head_out, imgsz)[1][b]
                true = torch.tensor([f.true_cls], device=s.index.device)
                s = _cat([s, Selection(s.index, true, scores[s.index, true], s.boxes)])
        f.map_conf = [round(float(c), 5) for c in s.conf]
        rows.append(s)
    return _cat(rows)


def _overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) IoU of two sets of boxes: rotated (probabilistic) IoU for xywhr boxes, box IoU for xyxy."""
    from ultralytics.utils.metrics import batch_probiou, box_iou

    return batch_probiou(a.float(), b.float()) if a.shape[-1] == 5 else box_iou(a.float(), b.float())


def _cat(sels: list[Selection]) -> Selection:
    """Concatenate selections of one image."""
    index, cls, conf, boxes = (torch.cat([getattr(s, k) for s in sels]) for k in ("index", "cls", "conf", "boxes"))
    return Selection(index, cls, conf, boxes)
