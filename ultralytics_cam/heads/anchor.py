"""YOLO anchor heads: every prediction is one anchor (a cell of one pyramid level) of the head's raw outputs.

Detect (v3-v12), v10Detect, YOLO26, Segment, Pose, OBB, WorldDetect and YOLOEDetect all keep their raw outputs in one
dict per branch ("scores", "boxes", "mask_coefficient", "kpts", "angle"), (B, channels, anchors) each. Each building
block reads its outputs at the predictions' anchors through a reader, so the same code serves the full head output
(dense path) and the few anchors the local head replay recomputes (``replay.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..errors import UnsupportedModelError
from .base import Block, HeadAdapter, Selection, _conf_cls, align_rows, xywh2xyxy

__all__ = ["AnchorHeadAdapter"]

#: ``read(key)``: the (n, channels) raw output ``key`` at each prediction's anchor.
Reader = Callable[[str], torch.Tensor]


class AnchorHeadAdapter(HeadAdapter):
    """YOLO anchor heads: Detect (v3-v12), v10Detect, YOLO26, Segment, Pose, OBB, WorldDetect and YOLOEDetect."""

    tasks = ("detect", "segment", "pose", "obb")

    @property
    def rotated(self) -> bool:
        """OBB heads (and their YOLO26 variant) predict xywhr boxes."""
        from ultralytics.nn.modules.head import OBB

        return isinstance(self.head, OBB)

    def branch(self, head_out: Any) -> dict[str, Any]:
        """Return the raw dict of the branch the predictions came from (one-to-one when the head runs end-to-end)."""
        raw: dict[str, Any] = head_out[1]
        if "one2one" in raw:
            raw = raw["one2one" if self.head.end2end else "one2many"]
        if "index" in raw:  # YOLOE prompt-free (LRPC) heads keep only a subset of anchors
            raise UnsupportedModelError(
                "This YOLOE prompt-free model filters its anchors inside the head, so kept predictions cannot be "
                "traced back to the feature maps. Set text or visual prompts with model.set_classes(...) first."
            )
        return raw

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
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
            rotated=self.rotated,
            return_idxs=True,
        )
        if end2end:  # NMS returns rows of the head's top-k output: map them back to anchors as the head chose them
            scores = self.branch(head_out)["scores"].detach().sigmoid().permute(0, 2, 1)
            topk = self.head.get_topk_index(scores, self.head.max_det)[2]
        sels: list[Selection] = []
        for b, (det, kept) in enumerate(zip(dets, keep)):
            k = kept.long().view(-1)
            index = topk[b][k] if end2end else k
            box = det[:, [0, 1, 2, 3, 6]] if self.rotated else det[:, :4]
            sel = Selection(index, det[:, 5].long(), det[:, 4], box)
            res = results[b].obb if self.rotated else results[b].boxes
            if res is None or len(res) != len(sel):
                n = 0 if res is None else len(res)
                sel = sel.subset(torch.as_tensor(align_rows(sel.conf, sel.cls, *_conf_cls(res, n)), dtype=torch.long))
            sels.append(sel)
        return sels

    #: The raw head outputs each block reads: the local head replay recomputes exactly these branches.
    REPLAY_OUTPUTS: ClassVar[dict[Block, tuple[str, ...]]] = {
        Block.CLASS_LOGIT: ("scores",),
        Block.BOX_SIZE: ("boxes",),
        Block.KEYPOINTS: ("kpts",),
        Block.ANGLE: ("angle",),
    }
    #: Blocks the replay cannot recompute from windows, and why.
    NOT_LOCAL: ClassVar[dict[Block, str]] = {Block.MASK_LOGIT: "it reads the mask prototypes, which span the box"}

    # -- building blocks (see Block) ---------------------------------------------------------------------------------
    def _at_anchors(
        self, head_out: Any, sels: list[Selection], term: Callable[[Reader, Selection], torch.Tensor]
    ) -> list[torch.Tensor]:
        """Apply ``term(read, sel)`` to every image, ``read`` giving the raw outputs at the selection's anchors."""
        raw = self.branch(head_out)
        out = []
        for b, s in enumerate(sels):

            def read(key: str, b: int = b, a: torch.Tensor = s.index) -> torch.Tensor:
                value: torch.Tensor = raw[key][b][:, a].T
                return value

            out.append(term(read, s))
        return out

    def class_logit(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The class logit at the prediction's anchor."""

        def term(read: Reader, s: Selection) -> torch.Tensor:
            return read("scores").gather(1, s.cls.long().view(-1, 1))[:, 0]

        return self._at_anchors(head_out, sels, term)

    def box_size(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The box regression: the sum of the four side distances in grid cells.

        That is the width + height of the box over the anchor's stride: what the model used to decide how large the
        box is.
        """
        return self._at_anchors(head_out, sels, lambda read, s: self.head.dfl(read("boxes").T[None]).sum(1)[0])

    def keypoint_visibility(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The sum of the keypoint visibility logits (the raw keypoint outputs when they have no visibility channel)."""
        ndim = self.head.kpt_shape[1]

        def term(read: Reader, s: Selection) -> torch.Tensor:
            kpts = read("kpts").T  # (nk * ndim, n)
            return (kpts[2::ndim] if ndim == 3 else kpts).sum(0)

        return self._at_anchors(head_out, sels, term)

    def angle(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The raw angle output (negated for a flipped input: a mirrored box turns the other way)."""
        return self._at_anchors(head_out, sels, lambda read, s: read("angle")[:, 0] * (-1 if s.flipped else 1))

    def mask_logit(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The mean mask logit inside the prediction's box, through both coefficients and prototypes."""
        raw = self.branch(head_out)
        return [self._mask_values(head_out, raw, b, s, imgsz) for b, s in enumerate(sels)]

    # -- local head replay -------------------------------------------------------------------------------------------
    def replay_outputs(self, blocks: tuple[Block, ...]) -> tuple[set[str] | None, str]:
        """The raw outputs ``blocks`` read, or None and why one of them cannot be replayed."""
        needed: set[str] = set()
        for block in blocks:
            if block not in self.REPLAY_OUTPUTS:
                return None, self.NOT_LOCAL.get(block, f"its '{block.value}' block is not local")
            needed.update(self.REPLAY_OUTPUTS[block])
        return needed, ""

    @staticmethod
    def replayed(outs: dict[str, torch.Tensor], cls: torch.Tensor, flipped: bool) -> tuple[Any, Selection]:
        """A head output and selection through which the blocks read the replayed rows.

        ``outs`` holds the (N, channels) raw outputs the replay recomputed at N anchors: they become a one-image head
        output whose N "anchors" are those rows, so every block (and so every composed target) computes its value on
        the replay exactly as on the full head output.
        """
        raw = {key: value.T[None] for key, value in outs.items()}  # (1, channels, N)
        index = torch.arange(len(cls), device=cls.device)
        empty = torch.zeros((len(cls), 4), device=cls.device)
        return (None, raw), Selection(index, cls, empty[:, 0], empty, flipped)

    def anchor_cells(self, index: torch.Tensor, shapes: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        """(level, row, column) of each anchor index, the anchors being numbered level by level, row-major."""
        sizes = torch.tensor([h * w for h, w in shapes], device=index.device)
        starts = torch.cumsum(sizes, 0) - sizes
        level = torch.bucketize(index, torch.cumsum(sizes, 0), right=True)
        widths = torch.tensor([w for _, w in shapes], device=index.device)[level]
        local = index - starts[level]
        return level, local // widths, local % widths

    def _mask_values(
        self, head_out: Any, raw: dict[str, Any], b: int, s: Selection, imgsz: tuple[int, int]
    ) -> torch.Tensor:
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
        mean: torch.Tensor = (masks * inside).sum((1, 2)) / inside.sum((1, 2)).clamp(min=1)
        return mean

    def flip(self, sel: Selection, head_out: Any, imgsz: tuple[int, int]) -> Selection:
        """Mirror each anchor inside its pyramid level: cell (y, x) of a w-wide level becomes (y, w - 1 - x).

        The letterboxed input's width is a multiple of every stride, so the anchor grid is symmetric and the mirrored
        cell centre is exactly the mirrored point.
        """
        shapes = [(int(f.shape[-2]), int(f.shape[-1])) for f in self.branch(head_out)["feats"]]
        level, _, x = self.anchor_cells(sel.index, shapes)
        widths = torch.tensor([w for _, w in shapes], device=sel.index.device)[level]
        # start + y * w + x becomes start + y * w + (w - 1 - x)
        return sel.mirrored(sel.index + (widths - 1 - 2 * x), imgsz[1])

    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every anchor with the head's own ``_inference``, on the branch the predictions come from."""
        raw = self.branch(head_out)
        with torch.no_grad():
            y = self.head._inference(raw).detach()  # (B, 4 + nc + extra, A): boxes, sigmoid scores, extras
        nc = self.head.nc
        boxes, scores = y[:, :4].transpose(1, 2), y[:, 4 : 4 + nc].transpose(1, 2)
        if self.rotated:  # xywh + the angle channel the head appends last, as NMS reads it
            return torch.cat([boxes, y[:, -1:].transpose(1, 2)], -1), scores
        if not (self.head.end2end or self.head.xyxy):  # end-to-end heads decode straight to xyxy
            boxes = xywh2xyxy(boxes)
        return boxes, scores

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """Return the class-logit vector at each prediction's anchor."""
        raw = self.branch(head_out)
        return [raw["scores"][b][:, s.index].T for b, s in enumerate(sels)]
