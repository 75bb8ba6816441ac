"""RT-DETR decoders: every prediction is a (query, class) pair of the last decoder layer."""

from __future__ import annotations

from typing import Any

import torch

from .base import HeadAdapter, Selection, _conf_cls, align_rows, xywh2xyxy

__all__ = ["RTDETRHeadAdapter"]


class RTDETRHeadAdapter(HeadAdapter):
    """RT-DETR decoder: predictions are (query, class) pairs picked by a top-k over all query scores."""

    tasks = ("detect",)
    rematch = True  # a perturbed image re-ranks the queries, so its predictions are found again by box overlap

    @staticmethod
    def _last(head_out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the last decoder layer's boxes (B, nq, 4 normalised xywh) and class logits (B, nq, nc)."""
        dec_bboxes, dec_scores = head_out[1][:2]
        return dec_bboxes[-1], dec_scores[-1]

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Repeat ``RTDETRPredictor.postprocess``'s row choice and trace each row back to its query."""
        from ultralytics.nn.modules.head import Detect

        args = predictor.args
        y = (preds[0] if isinstance(preds, (list, tuple)) else preds).detach()
        logits = self._last(head_out)[1]
        nc = logits.shape[-1]
        k = min(self.head.num_queries, logits.shape[1] * nc)
        topk = Detect._grouped_topk(logits.detach().sigmoid().flatten(1), k, 1)[1]
        h, w = imgsz
        sels: list[Selection] = []
        for b in range(len(y)):
            keep = y[b, :, 4] > args.conf
            if args.classes is not None:
                keep &= (y[b, :, 5:6] == torch.tensor(args.classes, device=y.device)).any(1)
            rows = keep.nonzero().view(-1)[: args.max_det]
            idx = topk[b][rows]
            box = xywh2xyxy(y[b, rows, :4]) * torch.tensor([w, h, w, h], device=y.device)
            sel = Selection(idx // nc, idx % nc, y[b, rows, 4], box)
            res = results[b].boxes
            if res is None or len(res) != len(sel):
                n = 0 if res is None else len(res)
                sel = sel.subset(torch.as_tensor(align_rows(sel.conf, sel.cls, *_conf_cls(res, n)), dtype=torch.long))
            sels.append(sel)
        return sels

    def _queries(
        self, head_out: Any, sels: list[Selection], rematch: bool, imgsz: tuple[int, int]
    ) -> list[torch.Tensor]:
        """Return each prediction's query index, re-found by best box IoU when the input was perturbed."""
        if not rematch:
            return [s.index for s in sels]
        from ultralytics.utils.metrics import box_iou

        boxes = self._last(head_out)[0]
        h, w = imgsz
        scale = torch.tensor([w, h, w, h], device=boxes.device)
        return [box_iou(s.boxes[:, :4], xywh2xyxy(boxes[b]) * scale).argmax(1) for b, s in enumerate(sels)]

    # -- building blocks (see Block) ---------------------------------------------------------------------------------
    def class_logit(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """The class logit of the prediction's query and class."""
        logits = self._last(head_out)[1]
        queries = self._queries(head_out, sels, rematch, imgsz)
        return [logits[b, q, s.cls] for b, (s, q) in enumerate(zip(sels, queries))]

    def box_size(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """Width + height of the prediction's query's normalised box."""
        boxes = self._last(head_out)[0]
        return [boxes[b, q, 2:4].sum(-1) for b, q in enumerate(self._queries(head_out, sels, rematch, imgsz))]

    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every query's box of the last decoder layer (normalised xywh, scaled to pixels) and class probabilities."""
        boxes, logits = (t.detach() for t in self._last(head_out))
        h, w = imgsz
        return xywh2xyxy(boxes) * boxes.new_tensor([w, h, w, h]), logits.sigmoid()

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """Return the class-logit vector of each prediction's query (re-found by box overlap with ``rematch``)."""
        if rematch and imgsz is None:
            raise ValueError("RT-DETR class_logits(rematch=True) needs imgsz=(h, w), the input size the boxes are in.")
        logits = self._last(head_out)[1]
        queries = [s.index for s in sels] if imgsz is None else self._queries(head_out, sels, rematch, imgsz)
        return [logits[b, q] for b, q in enumerate(queries)]
