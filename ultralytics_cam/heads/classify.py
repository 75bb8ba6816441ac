"""Classification heads: the explained "predictions" are the top-k classes of each image."""

from __future__ import annotations

from typing import Any

import torch

from .base import HeadAdapter, Selection

__all__ = ["ClassifyHeadAdapter"]


class ClassifyHeadAdapter(HeadAdapter):
    """Classification: the explained "predictions" are the top-k classes of each image."""

    tasks = ("classify",)
    topk: int = 5

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
    ) -> list[Selection]:
        """Select the ``Results.probs.top5`` classes (fewer when the model has fewer classes)."""
        sels = []
        for r in results:
            probs = r.probs.data
            top = torch.as_tensor(r.probs.top5[: self.topk], dtype=torch.long, device=probs.device)
            sels.append(Selection(top, top, probs[top], probs.new_zeros((len(top), 4))))
        return sels

    def class_logit(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """Building block (see Block): the class logits of the selected classes."""
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

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """Return the image's class logits once per selected class."""
        logits = head_out[1]
        return [logits[b].expand(len(s), -1) for b, s in enumerate(sels)]
