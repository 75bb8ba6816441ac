"""Head adapters: which pre-NMS head outputs each kept prediction came from, and the scalar a target explains.

Ultralytics heads differ in what they return, but the CAM engine only needs three things from each:

1. :meth:`HeadAdapter.select`: for every image, the pre-NMS anchor (or query, or class) index, class and confidence
   of each prediction that became a row of the image's ``Results``, in the same order as those rows.
2. :meth:`HeadAdapter.target_values`: for every selected prediction, a differentiable scalar read from the raw head
   tensors (never from detached ``Results``): its class logit, its box regression, its mask, keypoints or angle.
3. :meth:`HeadAdapter.class_logits`: the full class-logit vector of each prediction (FinerCAM compares classes).

Adapters are chosen by the head's type, never by the model's file name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .errors import UnsupportedModelError

__all__ = [
    "AnchorHeadAdapter",
    "ClassifyHeadAdapter",
    "DenseHeadAdapter",
    "DenseSelection",
    "DepthHeadAdapter",
    "HeadAdapter",
    "RTDETRHeadAdapter",
    "Selection",
    "SemanticHeadAdapter",
    "adapter_for",
]

#: Targets every task understands, and the extra ones each task adds.
COMMON_TARGETS = ("class", "box", "all")
TASK_TARGETS = {
    "detect": COMMON_TARGETS,
    "segment": (*COMMON_TARGETS, "mask"),
    "pose": (*COMMON_TARGETS, "keypoints"),
    "obb": (*COMMON_TARGETS, "angle"),
    "classify": ("class",),
    "semantic": ("class",),
    "depth": ("near", "far", "mean"),
}


@dataclass
class Selection:
    """The explained predictions of one image, described by where they sit in the head's pre-NMS outputs.

    Attributes:
        index: (n,) anchor index (YOLO heads), query index (RT-DETR) or class id (classify), long.
        cls: (n,) class id of each prediction, long.
        conf: (n,) confidence of each prediction, float.
        boxes: (n, 4) xyxy box in model-input pixels ((n, 5) xywhr for OBB; empty for classify).
        flipped: the selection describes the predictions in a horizontally flipped input (``aug_smooth``).
    """

    index: torch.Tensor
    cls: torch.Tensor
    conf: torch.Tensor
    boxes: torch.Tensor
    flipped: bool = False

    def __len__(self) -> int:
        """Return the number of selected predictions."""
        return len(self.index)

    def subset(self, keep: torch.Tensor) -> Selection:
        """Return the selection restricted to the rows ``keep`` (an index or boolean tensor)."""
        return Selection(self.index[keep], self.cls[keep], self.conf[keep], self.boxes[keep], self.flipped)

    def to_autograd(self) -> Selection:
        """Return a copy made of normal tensors.

        The selection is computed inside Ultralytics' ``inference_mode``; indexing a graph tensor with inference
        tensors makes autograd refuse the backward ("Inference tensors cannot be saved for backward"), so the engine
        clones them outside inference mode first.
        """
        return Selection(self.index.clone(), self.cls.clone(), self.conf.clone(), self.boxes.clone(), self.flipped)

    def mirrored(self, index: torch.Tensor, width: int) -> Selection:
        """The same predictions in the horizontally flipped input: new pre-NMS ``index``, boxes mirrored."""
        boxes = self.boxes.clone()
        if boxes.shape[-1] == 5:  # xywhr: the centre mirrors and the rotation changes sign
            boxes[:, 0] = width - boxes[:, 0]
            boxes[:, 4] = -boxes[:, 4]
        elif len(boxes):
            boxes[:, [0, 2]] = width - self.boxes[:, [2, 0]]
        return Selection(index, self.cls, self.conf, boxes, not self.flipped)


def align_rows(sel_conf: torch.Tensor, sel_cls: torch.Tensor, res_conf: torch.Tensor, res_cls: torch.Tensor) -> list:
    """Return, for every ``Results`` row, the index of the selected (NMS) row it came from.

    Ultralytics keeps NMS rows in order but may drop some (segmentation drops predictions whose mask is empty), so the
    ``Results`` rows are an order-preserving subsequence of the NMS rows. They carry the very same confidence and class
    values, which identifies them.
    """
    rows, j = [], 0
    for conf, cls in zip(res_conf.tolist(), res_cls.tolist()):
        while j < len(sel_conf) and not (sel_conf[j].item() == conf and int(sel_cls[j]) == int(cls)):
            j += 1
        if j == len(sel_conf):
            raise RuntimeError(
                "ultralytics-cam could not match a Results row to the head's predictions; please report this with "
                "your model and ultralytics version."
            )
        rows.append(j)
        j += 1
    return rows


class HeadAdapter:
    """Base class: the interface the CAM engine uses to talk to one kind of head."""

    #: Whether a perturbed input needs its predictions re-identified by box overlap (queries are not positional).
    rematch: ClassVar[bool] = False

    def __init__(self, net: torch.nn.Module, task: str) -> None:
        """Bind the adapter to the native (fused) network that the predictor runs and to the model's task."""
        self.net = net
        self.head = net.model[-1]
        self.task = task

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def reset_caches(self) -> None:
        """Drop cached anchors: created by an earlier forward in inference mode, they break the autograd graph."""
        from .layers import reset_head_caches

        reset_head_caches(self.head)

    # -- per batch ---------------------------------------------------------------------------------------------------
    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Return one :class:`Selection` per image, aligned row by row with ``results``."""
        raise NotImplementedError

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """Return, per image, an (n,) tensor of the scalar each selected prediction's target reads.

        ``rematch`` asks heads whose predictions are not tied to a position (RT-DETR queries) to find each prediction
        again by box overlap, because the input was perturbed (ScoreCAM, AblationCAM).
        """
        raise NotImplementedError

    # -- candidates: predictions that were not kept (failure analysis) ------------------------------------------------
    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return every anchor's (query's) decoded box and class probabilities, detached.

        Returns:
            ``boxes`` (B, A, 4) xyxy in model-input pixels ((B, A, 5) xywhr for OBB) and ``scores`` (B, A, nc) in
            [0, 1], for all A anchors (queries) before any confidence threshold or NMS.
        """
        raise NotImplementedError

    def candidates(
        self,
        head_out: Any,
        boxes: torch.Tensor,
        cls: torch.Tensor,
        imgsz: tuple[int, int],
        image: int = 0,
        min_iou: float = 0.5,
    ) -> Selection:
        """Return, for each given box and class, the strongest candidate prediction the model made there.

        Used to explain objects the model missed ("what did the model see where the object is?"): among the anchors
        (queries) whose decoded box overlaps the box by at least ``min_iou``, the one with the highest score for the
        given class; when none overlaps that much, the best-overlapping one.

        Args:
            head_out: the head output of :meth:`CamEngine.forward <ultralytics_cam.engine.CamEngine.forward>`.
            boxes: (n, 4) xyxy boxes in model-input pixels ((n, 5) xywhr for OBB), e.g. ground truth.
            cls: (n,) class of each box; the candidate's score (and later its target) is read for this class.
            imgsz: (h, w) of the model input.
            image: which image of the batch.
            min_iou: overlap a candidate's box needs (probabilistic rotated IoU for OBB).

        Returns:
            One :class:`Selection` row per box: the candidate's anchor, the given class, the candidate's score for that
            class and the candidate's own decoded box.
        """
        dec, scores = self.decode(head_out, imgsz)
        dec, scores = dec[image], scores[image]
        cls = cls.long().view(-1).to(dec.device)
        if len(cls) == 0:
            return _empty_selection(dec)
        iou = self._iou(boxes.to(dec), dec)  # (n, A)
        score = scores[:, cls].T  # (n, A): each box's class score at every anchor
        inside = torch.where(iou >= min_iou, score, torch.full_like(score, -1.0))
        best = torch.where(inside.amax(1) >= 0, inside.argmax(1), iou.argmax(1))
        rows = torch.arange(len(cls), device=dec.device)
        return Selection(best, cls, score[rows, best], dec[best])

    def locate(
        self,
        head_out: Any,
        boxes: torch.Tensor,
        cls: torch.Tensor,
        conf: torch.Tensor,
        imgsz: tuple[int, int],
        image: int = 0,
    ) -> Selection:
        """Return the anchor (query) that produced each given prediction, found by its decoded box and score.

        For predictions made outside a predictor (a validator's own NMS settings, custom postprocessing), where
        :meth:`select` cannot repeat the row choice: the producing anchor decodes to exactly the prediction's box
        (IoU 1) with exactly its confidence, so it minimises ``|score - conf| + (1 - IoU)``.

        Args:
            head_out: the head output of the forward pass that made the predictions (or an identical one).
            boxes: (n, 4) xyxy boxes in model-input pixels ((n, 5) xywhr for OBB).
            cls: (n,) predicted classes.
            conf: (n,) confidences.
            imgsz: (h, w) of the model input.
            image: which image of the batch.
        """
        dec, scores = self.decode(head_out, imgsz)
        dec, scores = dec[image], scores[image]
        cls = cls.long().view(-1).to(dec.device)
        if len(cls) == 0:
            return _empty_selection(dec)
        score = scores[:, cls].T  # (n, A)
        cost = (score - conf.view(-1, 1).to(score)).abs() + (1 - self._iou(boxes.to(dec), dec))
        return Selection(cost.argmin(1), cls, conf.view(-1).to(score), boxes.to(dec))

    def _iou(self, boxes: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """(n, A) IoU of boxes with decoded anchor boxes: probabilistic rotated IoU for OBB, box IoU otherwise."""
        from ultralytics.utils.metrics import batch_probiou, box_iou

        if self.task == "obb":
            return batch_probiou(boxes.float(), decoded.float()).to(decoded.dtype)
        return box_iou(boxes, decoded)

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """Return, per image, the (n, nc) class logits of each selected prediction."""
        raise NotImplementedError

    def flip(self, sel: Selection, head_out: Any, imgsz: tuple[int, int]) -> Selection:
        """Return ``sel`` as it appears in the horizontally flipped input (queries and classes do not move)."""
        return sel.mirrored(sel.index, imgsz[1])


class AnchorHeadAdapter(HeadAdapter):
    """YOLO anchor heads: Detect (v3-v12), v10Detect, YOLO26, Segment, Pose, OBB, WorldDetect and YOLOEDetect."""

    def branch(self, head_out: Any) -> dict:
        """Return the raw dict of the branch the predictions came from (one-to-one when the head runs end-to-end)."""
        raw = head_out[1]
        if "one2one" in raw:
            raw = raw["one2one" if self.head.end2end else "one2many"]
        if "index" in raw:  # YOLOE prompt-free (LRPC) heads keep only a subset of anchors
            raise UnsupportedModelError(
                "This YOLOE prompt-free model filters its anchors inside the head, so kept predictions cannot be "
                "traced back to the feature maps. Set text or visual prompts with model.set_classes(...) first."
            )
        return raw

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Re-run the predictor's own NMS with ``return_idxs=True`` to learn the anchor of every kept row."""
        from ultralytics.utils.nms import non_max_suppression

        args = predictor.args
        end2end = bool(getattr(predictor.model, "end2end", False))
        dets, keep = non_max_suppression(
            preds[0] if isinstance(preds, (list, tuple)) else preds,
            args.conf,
            args.iou,
            args.classes,
            args.agnostic_nms,
            max_det=args.max_det,
            nc=0 if args.task == "detect" else len(predictor.model.names),
            end2end=end2end,
            rotated=args.task == "obb",
            return_idxs=True,
        )
        if end2end:  # NMS returns rows of the head's top-k output: map them back to anchors as the head chose them
            scores = self.branch(head_out)["scores"].detach().sigmoid().permute(0, 2, 1)
            topk = self.head.get_topk_index(scores, self.head.max_det)[2]
        sels = []
        for b, (det, k) in enumerate(zip(dets, keep)):
            k = k.long().view(-1)
            index = topk[b][k] if end2end else k
            box = det[:, [0, 1, 2, 3, 6]] if args.task == "obb" else det[:, :4]
            sel = Selection(index, det[:, 5].long(), det[:, 4], box)
            res = results[b].obb if args.task == "obb" else results[b].boxes
            if res is None or len(res) != len(sel):
                n = 0 if res is None else len(res)
                sel = sel.subset(torch.as_tensor(align_rows(sel.conf, sel.cls, *_conf_cls(res, n)), dtype=torch.long))
            sels.append(sel)
        return sels

    #: The raw head outputs each anchor target reads (the local head replay replays exactly these branches); "mask"
    #: is absent: it also reads the prototypes, which span the whole box.
    TARGET_BLOCKS: ClassVar[dict[str, tuple[str, ...]]] = {
        "class": ("scores",),
        "box": ("boxes",),
        "all": ("scores", "boxes"),
        "keypoints": ("kpts",),
        "angle": ("angle",),
    }

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """Read each prediction's target from the raw (pre-NMS, differentiable) head tensors.

        - ``class``: the class logit at the prediction's anchor.
        - ``box``: the box regression, as the sum of the four side distances in grid cells (width + height of the box
          over the anchor's stride), i.e. what the model used to decide how large the box is.
        - ``all``: class + box.
        - ``mask``: the mean mask logit inside the prediction's box (through both coefficients and prototypes).
        - ``keypoints``: the sum of the keypoint visibility logits (the raw keypoint outputs when they have no
          visibility channel).
        - ``angle``: the raw angle output.
        """
        raw = self.branch(head_out)
        out = []
        for b, s in enumerate(sels):
            if target == "mask":
                out.append(self._mask_values(head_out, raw, b, s, imgsz))
            else:
                out.append(self.anchor_value(target, lambda key, b=b, a=s.index: raw[key][b][:, a].T, s.cls, s.flipped))
        return out

    def anchor_value(self, target: str, read: Any, cls: torch.Tensor, flipped: bool) -> torch.Tensor:
        """A target from the raw outputs at the predictions' anchors.

        ``read(key)`` gives (n, channels) of output ``key`` ("scores", "boxes", "kpts", "angle"), from the full head
        tensors (dense path) or from the local replay alike, so both paths compute every target the same way.
        """
        if target in ("class", "all"):
            value = read("scores").gather(1, cls.long().view(-1, 1))[:, 0]
        if target in ("box", "all"):
            box = self.head.dfl(read("boxes").T[None]).sum(1)[0]  # (n,) l + t + r + b in grid cells
            value = box if target == "box" else value + box
        if target == "keypoints":
            kpts = read("kpts").T  # (nk * ndim, n)
            ndim = self.head.kpt_shape[1]
            value = (kpts[2::ndim] if ndim == 3 else kpts).sum(0)
        elif target == "angle":
            value = read("angle")[:, 0] * (-1 if flipped else 1)  # a mirrored box turns the other way
        return value

    def anchor_cells(self, index: torch.Tensor, shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        """(level, row, column) of each anchor index, the anchors being numbered level by level, row-major."""
        sizes = torch.tensor([h * w for h, w in shapes], device=index.device)
        starts = torch.cumsum(sizes, 0) - sizes
        level = torch.bucketize(index, torch.cumsum(sizes, 0), right=True)
        widths = torch.tensor([w for _, w in shapes], device=index.device)[level]
        local = index - starts[level]
        return level, local // widths, local % widths

    def _mask_values(self, head_out: Any, raw: dict, b: int, s: Selection, imgsz: tuple[int, int]) -> torch.Tensor:
        """Mean mask logit of each prediction inside its box, at the prototype resolution."""
        proto = head_out[0][1]  # the prototypes the predictions used; e2e heads detach the copy in the raw dict
        proto = proto[0] if isinstance(proto, (list, tuple)) else proto
        nm, ph, pw = proto.shape[1:]
        coef = raw["mask_coefficient"][b][:, s.index]  # (nm, n)
        masks = (coef.T @ proto[b].reshape(nm, -1)).view(-1, ph, pw)  # (n, ph, pw) mask logits
        gain = torch.tensor([pw / imgsz[1], ph / imgsz[0]] * 2, device=masks.device)
        box = s.boxes[:, :4] * gain
        ys = torch.arange(ph, device=masks.device, dtype=box.dtype)[None, :, None] + 0.5
        xs = torch.arange(pw, device=masks.device, dtype=box.dtype)[None, None, :] + 0.5
        inside = (
            (xs >= box[:, 0, None, None])
            & (xs <= box[:, 2, None, None])
            & (ys >= box[:, 1, None, None])
            & (ys <= box[:, 3, None, None])
        ).to(masks.dtype)
        return (masks * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)

    def flip(self, sel: Selection, head_out: Any, imgsz: tuple[int, int]) -> Selection:
        """Mirror each anchor inside its pyramid level: cell (y, x) of a w-wide level becomes (y, w - 1 - x).

        The letterboxed input's width is a multiple of every stride, so the anchor grid is symmetric and the mirrored
        cell centre is exactly the mirrored point.
        """
        shapes = [f.shape[-2:] for f in self.branch(head_out)["feats"]]
        index = sel.index.clone()
        start = 0
        for h, w in shapes:
            inside = (sel.index >= start) & (sel.index < start + h * w)
            y, x = (sel.index[inside] - start) // w, (sel.index[inside] - start) % w
            index[inside] = start + y * w + (w - 1 - x)
            start += h * w
        return sel.mirrored(index, imgsz[1])

    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every anchor with the head's own ``_inference``, on the branch the predictions come from."""
        from ultralytics.utils import ops

        raw = self.branch(head_out)
        with torch.no_grad():
            y = self.head._inference(raw).detach()  # (B, 4 + nc + extra, A): boxes, sigmoid scores, extras
        nc = self.head.nc
        boxes, scores = y[:, :4].transpose(1, 2), y[:, 4 : 4 + nc].transpose(1, 2)
        if self.task == "obb":  # xywh + the angle channel the head appends last, as NMS reads it
            return torch.cat([boxes, y[:, -1:].transpose(1, 2)], -1), scores
        if not (self.head.end2end or self.head.xyxy):  # end-to-end heads decode straight to xyxy
            boxes = ops.xywh2xyxy(boxes)
        return boxes, scores

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """Return the class-logit vector at each prediction's anchor."""
        raw = self.branch(head_out)
        return [raw["scores"][b][:, s.index].T for b, s in enumerate(sels)]


class RTDETRHeadAdapter(HeadAdapter):
    """RT-DETR decoder: predictions are (query, class) pairs picked by a top-k over all query scores."""

    rematch = True  # a perturbed image re-ranks the queries, so its predictions are found again by box overlap

    @staticmethod
    def _last(head_out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the last decoder layer's boxes (B, nq, 4 normalised xywh) and class logits (B, nq, nc)."""
        dec_bboxes, dec_scores = head_out[1][:2]
        return dec_bboxes[-1], dec_scores[-1]

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Repeat ``RTDETRPredictor.postprocess``'s row choice and trace each row back to its query."""
        from ultralytics.nn.modules.head import Detect
        from ultralytics.utils import ops

        args = predictor.args
        y = (preds[0] if isinstance(preds, (list, tuple)) else preds).detach()
        logits = self._last(head_out)[1]
        nc = logits.shape[-1]
        k = min(self.head.num_queries, logits.shape[1] * nc)
        topk = Detect._grouped_topk(logits.detach().sigmoid().flatten(1), k, 1)[1]
        h, w = imgsz
        sels = []
        for b in range(len(y)):
            keep = y[b, :, 4] > args.conf
            if args.classes is not None:
                keep &= (y[b, :, 5:6] == torch.tensor(args.classes, device=y.device)).any(1)
            rows = keep.nonzero().view(-1)[: args.max_det]
            idx = topk[b][rows]
            box = ops.xywh2xyxy(y[b, rows, :4]) * torch.tensor([w, h, w, h], device=y.device)
            sel = Selection(idx // nc, idx % nc, y[b, rows, 4], box)
            res = results[b].boxes
            if res is None or len(res) != len(sel):
                n = 0 if res is None else len(res)
                sel = sel.subset(torch.as_tensor(align_rows(sel.conf, sel.cls, *_conf_cls(res, n)), dtype=torch.long))
            sels.append(sel)
        return sels

    def _queries(self, head_out: Any, sels: list[Selection], rematch: bool, imgsz: tuple[int, int]) -> list:
        """Return each prediction's query index, re-found by best box IoU when the input was perturbed."""
        if not rematch:
            return [s.index for s in sels]
        from ultralytics.utils import ops
        from ultralytics.utils.metrics import box_iou

        boxes = self._last(head_out)[0]
        h, w = imgsz
        scale = torch.tensor([w, h, w, h], device=boxes.device)
        return [box_iou(s.boxes[:, :4], ops.xywh2xyxy(boxes[b]) * scale).argmax(1) for b, s in enumerate(sels)]

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """Class logit of the prediction's query and class; box = width + height of its normalised box."""
        boxes, logits = self._last(head_out)
        out = []
        for b, (s, q) in enumerate(zip(sels, self._queries(head_out, sels, rematch, imgsz))):
            value = logits[b, q, s.cls] if target in ("class", "all") else 0
            if target in ("box", "all"):
                value = value + boxes[b, q, 2:4].sum(-1)
            out.append(value)
        return out

    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every query's box of the last decoder layer (normalised xywh, scaled to pixels) and class probabilities."""
        from ultralytics.utils import ops

        boxes, logits = (t.detach() for t in self._last(head_out))
        h, w = imgsz
        return ops.xywh2xyxy(boxes) * boxes.new_tensor([w, h, w, h]), logits.sigmoid()

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """Return the class-logit vector of each prediction's query."""
        logits = self._last(head_out)[1]
        return [logits[b, s.index] for b, s in enumerate(sels)]


class ClassifyHeadAdapter(HeadAdapter):
    """Classification: the explained "predictions" are the top-k classes of each image."""

    topk: int = 5

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Select the ``Results.probs.top5`` classes (fewer when the model has fewer classes)."""
        sels = []
        for r in results:
            probs = r.probs.data
            top = torch.as_tensor(r.probs.top5[: self.topk], dtype=torch.long, device=probs.device)
            sels.append(Selection(top, top, probs[top], probs.new_zeros((len(top), 4))))
        return sels

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """Return the class logits of the selected classes."""
        logits = head_out[1]
        return [logits[b, s.cls] for b, s in enumerate(sels)]

    def candidates(
        self,
        head_out: Any,
        boxes: torch.Tensor,
        cls: torch.Tensor,
        imgsz: tuple[int, int],
        image: int = 0,
        min_iou: float = 0.5,
    ) -> Selection:
        """Return the given classes of one image (a classifier has one candidate per class); ``boxes`` is ignored."""
        probs = head_out[0][image].detach()
        cls = cls.long().view(-1).to(probs.device)
        return Selection(cls, cls, probs[cls], probs.new_zeros((len(cls), 4)))

    def locate(
        self,
        head_out: Any,
        boxes: torch.Tensor,
        cls: torch.Tensor,
        conf: torch.Tensor,
        imgsz: tuple[int, int],
        image: int = 0,
    ) -> Selection:
        """Return the given classes of one image: a classifier's prediction is its class."""
        return self.candidates(head_out, boxes, cls, imgsz, image)

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """Return the image's class logits once per selected class."""
        logits = head_out[1]
        return [logits[b].expand(len(s), -1) for b, s in enumerate(sels)]


# -- dense heads: semantic segmentation and depth ----------------------------------------------------------------------
@dataclass
class DenseSelection(Selection):
    """The explained "predictions" of a dense head: pixel regions of one image rather than anchors.

    Attributes:
        masks: (n, H, W) bool at the model-input size: the pixels each row's target reads (fixed at selection, so
            perturbed and augmented inputs explain the very same pixels).
        info: one dict per row describing it (``r.cam.rows``, ``cam.json``).
    """

    masks: torch.Tensor | None = None
    info: list = field(default_factory=list)

    def subset(self, keep: torch.Tensor) -> DenseSelection:
        """Return the selection restricted to the rows ``keep`` (an index or boolean tensor)."""
        keep = torch.as_tensor(keep)
        rows = keep.nonzero().view(-1) if keep.dtype == torch.bool else keep.view(-1).long()
        base = super().subset(rows)
        info = [self.info[i] for i in rows.tolist()] if self.info else []
        return DenseSelection(base.index, base.cls, base.conf, base.boxes, base.flipped, self.masks[rows], info)

    def to_autograd(self) -> DenseSelection:
        """Return a copy made of normal tensors (see :meth:`Selection.to_autograd`)."""
        base = super().to_autograd()
        return DenseSelection(base.index, base.cls, base.conf, base.boxes, base.flipped, self.masks.clone(), self.info)

    def mirrored(self, index: torch.Tensor, width: int) -> DenseSelection:
        """The same regions in the horizontally flipped input: boxes and pixel masks mirrored."""
        base = super().mirrored(index, width)
        return DenseSelection(index, base.cls, base.conf, base.boxes, base.flipped, self.masks.flip(-1), self.info)


class DenseHeadAdapter(HeadAdapter):
    """Heads that predict every pixel (SemanticSegment, Depth): a "prediction" is a region of pixels.

    A row's pixels are fixed when the rows are chosen (semantic: the pixels ``r.semantic_mask`` paints as the class;
    depth: the nearest / farthest share, or all pixels), restricted to the image content (never the letterbox padding)
    and, with ``region=``, to the given boxes or mask. Each target sums or averages the raw head output, upsampled to
    the model input exactly as Ultralytics' predictor upsamples it, over those pixels: it is differentiable, and
    perturbed or flipped inputs are explained on the same pixels.
    """

    #: ``region=`` boxes (original-image pixels) or an (H, W) mask; set by the engine from the CAM options.
    region: Any = None
    #: The ``target=`` option as given (``class`` is the default; a head may read it as its own default target).
    requested_target: str = "class"
    #: The bilinear resize the predictor applies to the head output before removing the letterbox.
    align_corners: ClassVar[bool] = False

    def default_target(self, target: str) -> str:
        """The target a default ``target='class'`` means for this head."""
        return target

    def check_method(self, method: Any) -> None:
        """Refuse methods that draw boxes instead of reading the network (their maps would mean nothing here)."""
        from .errors import MethodError

        if not method.uses_activations:
            raise MethodError(
                f"method '{method.name}' draws each prediction's box; {self.task} predictions are pixel regions "
                "without a box. Use a method that reads the network (HiResCAM, GradCAM, EigenCAM, ...)."
            )

    def upsampled(self, out: torch.Tensor, imgsz: tuple[int, int]) -> torch.Tensor:
        """The head output (B, C, h, w) at the model-input size, as the predictor resizes it."""
        import torch.nn.functional as F

        if tuple(out.shape[-2:]) == tuple(imgsz):
            return out
        return F.interpolate(out.float(), imgsz, mode="bilinear", align_corners=self.align_corners)

    def output(self, head_out: Any) -> torch.Tensor:
        """The head's (B, C, h, w) output tensor (eval mode returns it as is)."""
        return head_out[0] if isinstance(head_out, (list, tuple)) else head_out

    # -- where the pixels are ----------------------------------------------------------------------------------------
    @staticmethod
    def content(predictor: Any, orig_hw: tuple[int, int], imgsz: tuple[int, int]) -> Any:
        """The image's content at the model input: the letterbox's (or stretch's) geometry of this predictor."""
        from .geometry import Geometry
        from .predictor import CamPredictorMixin

        try:
            kind = CamPredictorMixin.geometry_kind(predictor)
        except AttributeError:  # a host without a source (validator): Ultralytics letterboxes
            kind = "stretch" if getattr(predictor, "scale_fill", False) else "letterbox"
        return Geometry(kind, tuple(imgsz), tuple(orig_hw))

    def base_mask(self, geometry: Any, device: Any) -> torch.Tensor:
        """(H, W) bool at the model input: True on the image content (the letterbox padding is never explained)."""
        oy, ox, ch, cw = geometry.canvas()
        h, w = geometry.input_hw
        mask = torch.zeros((h, w), dtype=torch.bool, device=device)
        mask[max(oy, 0) : max(oy, 0) + ch, max(ox, 0) : max(ox, 0) + cw] = True
        return mask

    def region_masks(self, geometry: Any, device: Any) -> list[tuple[torch.Tensor, list | None]]:
        """Each ``region=`` entry as an (H, W) bool mask at the model input, with its box in original pixels."""
        import numpy as np

        region = self.region
        oy, ox, ch, cw = geometry.canvas()
        (h0, w0), (h, w) = geometry.orig_hw, geometry.input_hw
        sy, sx = ch / h0, cw / w0
        if isinstance(region, np.ndarray) and region.ndim == 2:
            m = torch.as_tensor(region.astype(bool), device=device)[None, None].float()
            if m.shape[-2:] != (h0, w0):
                raise ValueError(
                    f"region= mask has shape {tuple(m.shape[-2:])}, but the image is {h0}x{w0}: a mask must have the "
                    "original image's height and width."
                )
            import torch.nn.functional as F

            canvas = F.interpolate(m, (ch, cw), mode="nearest")[0, 0] > 0.5
            out = torch.zeros((h, w), dtype=torch.bool, device=device)
            out[oy : oy + ch, ox : ox + cw] = canvas
            return [(out, None)]
        out = []
        for x1, y1, x2, y2 in region:
            mask = torch.zeros((h, w), dtype=torch.bool, device=device)
            c0, c1 = round(x1 * sx + ox), round(x2 * sx + ox)
            r0, r1 = round(y1 * sy + oy), round(y2 * sy + oy)
            mask[max(r0, 0) : max(r1, 0), max(c0, 0) : max(c1, 0)] = True
            out.append((mask, [float(x1), float(y1), float(x2), float(y2)]))
        return out

    def region_record(self) -> Any:
        """``region=`` as recorded in ``r.cam.rows``: None, the boxes, or "mask"."""
        if self.region is None:
            return None
        return "mask" if hasattr(self.region, "shape") else [list(box) for box in self.region]

    @staticmethod
    def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
        """(n, 4) xyxy bounding box (model-input pixels) of each (H, W) mask (zeros for an empty mask)."""
        boxes = masks.new_zeros((len(masks), 4), dtype=torch.float32)
        for i, m in enumerate(masks):
            ys, xs = m.nonzero(as_tuple=True)
            if len(ys):
                boxes[i] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        return boxes

    def masked_mean(self, values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(n,) mean of (n or 1, H, W) values over each (n, H, W) mask."""
        m = masks.to(values.dtype)
        return (values * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)

    # -- not anchors: the failure analysis reads regions, not candidates ----------------------------------------------
    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense heads have no candidate boxes."""
        raise UnsupportedModelError(
            f"{self.task} heads predict pixels, not candidate boxes: there is nothing to decode."
        )

    def candidates(self, head_out: Any, boxes: Any, cls: Any, imgsz: Any, image: int = 0, min_iou: float = 0.5):
        """Dense heads have no candidate predictions."""
        self.decode(head_out, imgsz)

    def locate(self, head_out: Any, boxes: Any, cls: Any, conf: Any, imgsz: Any, image: int = 0):
        """Dense heads have no candidate predictions."""
        self.decode(head_out, imgsz)


class SemanticHeadAdapter(DenseHeadAdapter):
    """SemanticSegment: one row per class present in the predicted class map, largest area first.

    The rows are the classes ``r.semantic_mask`` paints (``classes=`` applied, restricted to ``region=``), ordered by
    their area there. A row's pixels are the model-input pixels that cover the class's pixels (letterbox padding
    excluded); its target is the class's logits, upsampled as the predictor upsamples them, summed over them.
    """

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """One row per class ``r.semantic_mask`` paints (inside ``region=``), its largest area first."""
        logits = self.output(head_out).detach()
        names = getattr(predictor.model, "names", {}) or {}
        sels = []
        for b, r in enumerate(results):
            geometry = self.content(predictor, r.orig_shape, imgsz)
            up = self.upsampled(logits[b : b + 1], imgsz)[0]  # (nc, H, W)
            keep = self.base_mask(geometry, up.device)
            if self.region is not None:
                any_region = torch.zeros_like(keep)
                for m, _ in self.region_masks(geometry, up.device):
                    any_region |= m
                keep &= any_region
            painted = self.painted(r, geometry, up, getattr(predictor.args, "classes", None))
            ids, counts = painted.unique(return_counts=True)
            valid = ids < up.shape[0]  # 255: Ultralytics' ignore label (classes= left those pixels out)
            ids, counts = ids[valid], counts[valid]
            order = counts.argsort(descending=True, stable=True)
            ids, counts = ids[order], counts[order]
            masks = torch.stack([self.to_input(painted == c, geometry) for c in ids]) if len(ids) else keep[None][:0]
            masks &= keep[None]
            prob = up.softmax(0) if up.shape[0] > 1 else up.sigmoid()
            conf = self.masked_mean(prob[ids], masks) if len(ids) else prob.new_zeros(0)
            total = max(int((painted != 256).sum()), 1)
            info = [
                {
                    "class": int(c),
                    "name": names.get(int(c), str(int(c))) if isinstance(names, dict) else str(int(c)),
                    "area": round(int(n) / total, 6),
                    "region": self.region_record(),
                }
                for c, n in zip(ids.tolist(), counts.tolist())
            ]
            sels.append(DenseSelection(ids.long(), ids.long(), conf, self.mask_boxes(masks), False, masks, info))
        return sels

    def painted(self, result: Any, geometry: Any, up: torch.Tensor, classes: Any) -> torch.Tensor:
        """The class map the user sees, at the original size, with pixels outside ``region=`` set to 256.

        ``r.semantic_mask`` when the result has one (the rows are then exactly the classes it shows); otherwise the
        argmax of the logits, taken at the input and brought to the original size.
        """
        import torch.nn.functional as F

        mask = getattr(result, "semantic_mask", None)
        if mask is not None:
            data = torch.as_tensor(mask.data, device=up.device).long()
        else:
            cls = up.argmax(0) if up.shape[0] > 1 else up[0].gt(0).long()
            if classes is not None:
                allowed = torch.as_tensor(classes, device=cls.device).view(-1)
                cls = torch.where((cls[..., None] == allowed).any(-1), cls, torch.full_like(cls, 255))
            oy, ox, ch, cw = geometry.canvas()
            crop = cls[oy : oy + ch, ox : ox + cw].float()[None, None]
            data = F.interpolate(crop, geometry.orig_hw, mode="nearest")[0, 0].long()
        if self.region is None:
            return data
        h0, w0 = geometry.orig_hw
        inside = torch.zeros((h0, w0), dtype=torch.bool, device=data.device)
        if hasattr(self.region, "shape"):
            inside |= torch.as_tensor(self.region, device=data.device)
        else:
            for x1, y1, x2, y2 in self.region:
                inside[max(round(y1), 0) : max(round(y2), 0), max(round(x1), 0) : max(round(x2), 0)] = True
        return torch.where(inside, data, torch.full_like(data, 256))

    @staticmethod
    def to_input(mask: torch.Tensor, geometry: Any) -> torch.Tensor:
        """(H, W) bool at the model input: every input pixel whose footprint holds a pixel of the original-size mask.

        Area resampling covers every original pixel, so a class that ``Results`` shows on a few pixels keeps a row.
        """
        import torch.nn.functional as F

        oy, ox, ch, cw = geometry.canvas()
        h, w = geometry.input_hw
        out = torch.zeros((h, w), dtype=torch.bool, device=mask.device)
        out[oy : oy + ch, ox : ox + cw] = F.interpolate(mask.float()[None, None], (ch, cw), mode="area")[0, 0] > 0
        return out

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """``class``: each row's class logits (upsampled as the predictor does) summed over the row's pixels."""
        logits = self.output(head_out)
        out = []
        for b, s in enumerate(sels):
            up = self.upsampled(logits[b : b + 1, s.cls], imgsz)[0]  # (n, H, W): only the rows' classes
            out.append((up * s.masks.to(up.dtype)).sum((1, 2)))
        return out

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """Every class's logits summed over each row's pixels, (n, nc) (FinerCAM compares classes on them)."""
        logits = self.output(head_out)
        out = []
        for b, s in enumerate(sels):
            up = self.upsampled(logits[b : b + 1], s.masks.shape[-2:])[0]  # (nc, H, W)
            out.append(torch.einsum("chw,nhw->nc", up, s.masks.to(up.dtype)))
        return out


class DepthHeadAdapter(DenseHeadAdapter):
    """Depth: one row per target region, the target reading the raw (calibrated) depth the head outputs.

    - ``near``: the mean depth of the nearest 10 % of the pixels, negated ("what makes the model think this is close").
    - ``far``: the mean depth of the farthest 10 %.
    - ``mean``: the mean depth of all pixels.
    - with ``region=`` boxes: one row per box, the target computed on the box's pixels (by default the mean depth).
    """

    align_corners = True  # DepthPredictor's resize (and the depth loss's)
    #: The share of pixels ``near`` and ``far`` average.
    share: ClassVar[float] = 0.1

    def default_target(self, target: str) -> str:
        """``class`` (the option's default) means ``near`` for a whole image and ``mean`` for ``region=`` boxes."""
        if target != "class":
            return target
        return "mean" if self.region is not None else "near"

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list, imgsz: tuple[int, int]
    ) -> list[Selection]:
        """One row per image (or per ``region=`` box) with the pixels the target averages."""
        depth = self.output(head_out).detach()
        target = self.default_target(self.requested_target)
        sels = []
        for b, r in enumerate(results):
            geometry = self.content(predictor, r.orig_shape, imgsz)
            up = self.upsampled(depth[b : b + 1], imgsz)[0, 0]  # (H, W) metres
            content = self.base_mask(geometry, up.device)
            areas = (
                [(m & content, box) for m, box in self.region_masks(geometry, up.device)]
                if self.region is not None
                else [(content, None)]
            )
            masks = torch.stack([self.pick(up, m, target) for m, _ in areas])
            value = self.masked_mean(up[None], masks)
            n = len(masks)
            index = torch.arange(n, device=up.device)
            boxes = self.mask_boxes(torch.stack([m for m, _ in areas]))
            info = [{"target": target, "region": box, "depth": round(float(v), 6)} for (_, box), v in zip(areas, value)]
            sels.append(DenseSelection(index, torch.zeros_like(index), value, boxes, False, masks, info))
        return sels

    def pick(self, depth: torch.Tensor, area: torch.Tensor, target: str) -> torch.Tensor:
        """The pixels of ``area`` the target averages: the nearest / farthest :attr:`share` of them, or all.

        Pixels tied with the k-th nearest (farthest) value are all included, so the pick does not depend on the order
        of equal values.
        """
        if target not in ("near", "far") or not bool(area.any()):
            return area  # mean, and plugin targets: every pixel of the area
        values = depth[area]
        k = max(1, round(self.share * len(values)))
        if target == "near":
            cut = values.kthvalue(k).values
            return area & (depth <= cut)
        cut = values.kthvalue(len(values) - k + 1).values
        return area & (depth >= cut)

    def target_values(
        self, head_out: Any, sels: list[Selection], target: str, imgsz: tuple[int, int], rematch: bool = False
    ) -> list:
        """The mean upsampled depth over each row's pixels; negated for ``near``."""
        depth = self.output(head_out)
        sign = -1.0 if self.default_target(target) == "near" else 1.0
        out = []
        for b, s in enumerate(sels):
            up = self.upsampled(depth[b : b + 1], imgsz)[0]  # (1, H, W)
            out.append(sign * self.masked_mean(up, s.masks))
        return out

    def class_logits(self, head_out: Any, sels: list[Selection]) -> list:
        """A depth head has no classes."""
        raise UnsupportedModelError("depth models have no class logits to compare.")


def _empty_selection(like: torch.Tensor) -> Selection:
    """A selection without rows whose box columns are shaped like ``like``'s."""
    index = torch.zeros(0, dtype=torch.long, device=like.device)
    return Selection(index, index.clone(), like.new_zeros(0), like.new_zeros((0, like.shape[-1])))


def _conf_cls(res: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the confidence and class columns of a ``Boxes``/``OBB`` object (empty when there is none)."""
    if res is None or n == 0:
        return torch.zeros(0), torch.zeros(0)
    return res.conf, res.cls


def adapter_for(net: torch.nn.Module, task: str) -> HeadAdapter:
    """Return the adapter for the head of ``net`` (the native, fused network the predictor runs)."""
    from ultralytics.nn.modules.head import Classify, Detect, RTDETRDecoder

    head = net.model[-1]
    dense = _dense_adapter(head, task)
    if dense is not None:
        return dense(net, task)
    if isinstance(head, RTDETRDecoder):
        return RTDETRHeadAdapter(net, task)
    if isinstance(head, Classify):
        return ClassifyHeadAdapter(net, task)
    if isinstance(head, Detect) and task in TASK_TARGETS:
        return AnchorHeadAdapter(net, task)
    raise UnsupportedModelError(
        f"ultralytics-cam cannot explain a {type(head).__name__} head (task '{task}'). Supported: detect, segment, "
        "semantic, depth, pose, obb and classify models of the YOLO families, RT-DETR, YOLO-World and YOLOE."
    )


def _dense_adapter(head: torch.nn.Module, task: str) -> type | None:
    """The adapter class of a dense-prediction head (heads Ultralytics versions without these tasks lack: None)."""
    from ultralytics.nn.modules import head as heads

    for name, adapter in (("SemanticSegment", SemanticHeadAdapter), ("Depth", DepthHeadAdapter)):
        cls = getattr(heads, name, None)
        if cls is not None and isinstance(head, cls) and task in TASK_TARGETS:
            return adapter
    return None
