"""What every head adapter shares: the selection of explained predictions and the :class:`HeadAdapter` interface.

An adapter answers three questions about one family of Ultralytics heads:

1. :meth:`HeadAdapter.select`: for every image, the pre-NMS anchor (or query, or class) index, class and confidence
   of each prediction that became a row of the image's ``Results``, in the same order as those rows.
2. Its **building blocks** (:class:`Block`): for every selected prediction, one differentiable scalar read from the
   raw head tensors (never from detached ``Results``): its class logit, box size, mask logit, keypoint visibility,
   angle or depth. A target (``ultralytics_cam.targets``) is a composition of these blocks; an adapter implements the
   blocks its head has, as methods named after them.
3. :meth:`HeadAdapter.class_logits`: the full class-logit vector of each prediction (FinerCAM compares classes).

Properties such as :attr:`HeadAdapter.rotated` (the boxes carry an angle) and :attr:`HeadAdapter.dense` (the
predictions are pixel regions) are the one place the rest of the package learns what kind of head it runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import UnsupportedModelError

__all__ = ["Block", "BlockFn", "HeadAdapter", "Selection", "align_rows"]


class Block(str, enum.Enum):  # not enum.StrEnum: Python 3.10 is supported
    """A building block of targets: one differentiable value per selected prediction, read from the raw head output.

    Each value names the adapter method that computes it, with the signature of :data:`BlockFn`. To add a block, add a
    member here and the method to every adapter whose head has it.
    """

    #: the prediction's class logit (semantic heads: the class's logits summed over the row's pixels).
    CLASS_LOGIT = "class_logit"
    #: how large the predicted box is (anchor heads: the four side distances in grid cells; RT-DETR: normalised w + h).
    BOX_SIZE = "box_size"
    #: the mean mask logit inside the prediction's box (segmentation heads).
    MASK_LOGIT = "mask_logit"
    #: the sum of the keypoint visibility logits (pose heads; the raw keypoint outputs without a visibility channel).
    KEYPOINTS = "keypoint_visibility"
    #: the raw rotation output (OBB heads).
    ANGLE = "angle"
    #: the mean depth over the row's pixels (depth heads).
    DEPTH = "depth_mean"


#: A block method: ``(head_out, selections, imgsz, rematch) -> per image, an (n,) tensor``.
BlockFn = Callable[[Any, list["Selection"], tuple[int, int], bool], list[torch.Tensor]]


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


def align_rows(
    sel_conf: torch.Tensor, sel_cls: torch.Tensor, res_conf: torch.Tensor, res_cls: torch.Tensor
) -> list[int]:
    """Return, for every ``Results`` row, the index of the selected (NMS) row it came from.

    Ultralytics keeps NMS rows in order but may drop some (segmentation drops predictions whose mask is empty), so the
    ``Results`` rows are an order-preserving subsequence of the NMS rows. They carry the very same confidence and class
    values, which identifies them.

    Raises:
        RuntimeError: a ``Results`` row matches no selected row (a bug: the message asks to report it).
    """
    rows: list[int] = []
    j = 0
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
    """Base class: the interface the CAM engine uses to talk to one family of heads.

    To add a head family: subclass this in a module of ``ultralytics_cam/heads/``, set :attr:`tasks`, implement
    :meth:`select`, :meth:`decode`, :meth:`class_logits` and the :class:`Block` methods the head has, and add the head
    class to ``HEAD_ADAPTERS`` in ``ultralytics_cam/heads/__init__.py``. Targets need no change: each built-in target
    reads its blocks through :meth:`block`.
    """

    #: The model tasks this family explains (the union over all families is what ``model.cam`` accepts).
    tasks: ClassVar[tuple[str, ...]] = ()
    #: Whether a perturbed input needs its predictions re-identified by box overlap (queries are not positional).
    rematch: ClassVar[bool] = False
    #: Whether a prediction is a region of pixels rather than a box (semantic, depth): ``region=`` applies.
    dense: ClassVar[bool] = False

    def __init__(self, net: torch.nn.Module, task: str) -> None:
        """Bind the adapter to the native (fused) network that the predictor runs and to the model's task."""
        self.net = net
        layers: Any = net.model  # Ultralytics models are untyped; each family reads its own head attributes
        self.head: Any = layers[-1]
        self.task = task

    # -- lifecycle ---------------------------------------------------------------------------------------------------
    def reset_caches(self) -> None:
        """Drop cached anchors: created by an earlier forward in inference mode, they break the autograd graph."""
        from ..layers import reset_head_caches

        reset_head_caches(self.head)

    # -- per batch ---------------------------------------------------------------------------------------------------
    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Return one :class:`Selection` per image, aligned row by row with ``results``."""
        raise NotImplementedError

    @property
    def rotated(self) -> bool:
        """Whether the head predicts rotated boxes (xywhr, OBB), read from the head's type (never from the task)."""
        return False

    # -- building blocks of targets ------------------------------------------------------------------------------------
    def block(
        self, block: Block, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """Return, per image, an (n,) tensor: the building block ``block`` of each selected prediction.

        ``rematch`` asks heads whose predictions are not tied to a position (RT-DETR queries) to find each prediction
        again by box overlap, because the input was perturbed (ScoreCAM, AblationCAM).

        Raises:
            UnsupportedModelError: this head has no such block (a target spec that declares a task whose head lacks
                one of its blocks).
        """
        name = Block(block).value  # a plain string names the same block
        fn: BlockFn | None = getattr(self, name, None)
        if fn is None:
            raise UnsupportedModelError(f"{type(self.head).__name__} heads have no '{name}' to read.")
        return fn(head_out, sels, imgsz, rematch)

    def replay_outputs(self, blocks: tuple[Block, ...]) -> tuple[set[str] | None, str]:
        """The raw head outputs the local head replay must recompute for ``blocks``, or None and why it cannot.

        Only anchor heads compute their outputs from small windows of the head input (see ``replay.py``).
        """
        return None, f"{type(self.head).__name__} predictions do not come from windows of the head input"

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

        if self.rotated:
            return batch_probiou(boxes.float(), decoded.float()).to(decoded.dtype)
        return box_iou(boxes, decoded)

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """Return, per image, the (n, nc) class logits of each selected prediction.

        ``imgsz`` and ``rematch`` mean what they mean for :meth:`block`: on a perturbed or augmented input, heads whose
        predictions are not tied to a position (RT-DETR queries) read each prediction where :meth:`block` reads it, so
        a target and the class logits it is compared with (FinerCAM) come from the same prediction.
        """
        raise NotImplementedError

    def flip(self, sel: Selection, head_out: Any, imgsz: tuple[int, int]) -> Selection:
        """Return ``sel`` as it appears in the horizontally flipped input (queries and classes do not move)."""
        return sel.mirrored(sel.index, imgsz[1])


def xywh2xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Ultralytics' ``ops.xywh2xyxy`` (centre + size to corners), with the types it lacks."""
    from ultralytics.utils import ops

    out: torch.Tensor = ops.xywh2xyxy(boxes)  # type: ignore[no-untyped-call]  # Ultralytics has no annotations
    return out


def _empty_selection(like: torch.Tensor) -> Selection:
    """A selection without rows whose box columns are shaped like ``like``'s."""
    index = torch.zeros(0, dtype=torch.long, device=like.device)
    return Selection(index, index.clone(), like.new_zeros(0), like.new_zeros((0, like.shape[-1])))


def _conf_cls(res: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the confidence and class columns of a ``Boxes``/``OBB`` object (empty when there is none)."""
    if res is None or n == 0:
        return torch.zeros(0), torch.zeros(0)
    return res.conf, res.cls
