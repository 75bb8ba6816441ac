"""The D-RISE similarity: how well a prediction is found again among the predictions of a perturbed image, per task.

Petsiuk et al. (CVPR 2021) score a target detection ``t`` against a proposal ``j`` of the perturbed image as the product
of localisation, objectness and classification, ``s(t, j) = IoU(t, j) * O_j * cos(P_t, P_j)``, and a perturbed image
by its best proposal, ``max_j s(t, j)``. Per task here:

- **overlap**: box IoU (detect, pose); mask IoU for segment (box IoU when a side has no masks); Ultralytics'
  ``batch_probiou`` for obb. Pose uses the box: OKS needs per-keypoint sigmas, which Ultralytics knows only for COCO's
  17 keypoints, while the box is what the class score of a pose prediction is attached to.
- **objectness** ``O_j``: the proposal's confidence. YOLO heads since v8 have no objectness output; the class
  probability's magnitude carries it, and the cosine below throws magnitude away, so the confidence takes its place
  (Microsoft's ``vision-explanation-methods`` multiplies objectness in the same way).
- **classification**: the cosine of the two class-probability vectors where the head outputs them (YOLO anchor heads
  without end-to-end NMS: every class's sigmoid score at the proposal's anchor); otherwise the vector is the one-hot
  class, and the cosine is 1 for the same class, 0 for another.
- **classify**: no boxes: the weight is the probability of the explained class in the perturbed image, as in RISE.

The same similarity, with one-hot class vectors, scores the deletion and insertion curves of
:mod:`ultralytics_cam.metrics` (the best same-class prediction's overlap x confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Detections", "drise_similarity"]


@dataclass
class Detections:
    """What the D-RISE similarity reads of one image's predictions (original-image pixels).

    Attributes:
        cls: (n,) class of each prediction, long.
        conf: (n,) its confidence.
        boxes: (n, 4) xyxy boxes, (n, 5) xywhr rotated boxes (obb), or (n, 0) for classify.
        probs: (n, nc) class-probability vectors, or None (the one-hot class is used). For classify: (1, nc), the
            image's class probabilities.
        masks: (n, h, w) instance masks (segment), or None.
    """

    cls: torch.Tensor
    conf: torch.Tensor
    boxes: torch.Tensor
    probs: torch.Tensor | None = None
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        """Return the number of predictions."""
        return len(self.cls)

    @classmethod
    def from_results(cls, result: Any, probs: torch.Tensor | None = None) -> Detections:
        """Read an Ultralytics ``Results``: its boxes (rotated for obb), masks and classes; ``probs`` if known.

        Classify results give the top-5 classes as the predictions (as ``model.cam`` explains them) and the full
        probability vector as ``probs``.
        """
        if result.probs is not None:
            data = result.probs.data.float().cpu()
            top5 = torch.as_tensor(result.probs.top5, dtype=torch.long)
            return cls(top5, data[top5], torch.zeros((len(top5), 0)), data[None])
        if result.obb is not None:
            obb = result.obb
            return cls(obb.cls.long().cpu(), obb.conf.float().cpu(), obb.xywhr.float().cpu(), probs)
        boxes = result.boxes
        if boxes is None:
            return cls(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros((0, 4)), probs)
        masks = result.masks.data.cpu() if result.masks is not None else None
        return cls(boxes.cls.long().cpu(), boxes.conf.float().cpu(), boxes.xyxy.float().cpu(), probs, masks)


def drise_similarity(target: Detections, found: Detections) -> torch.Tensor:
    """(n,) D-RISE score of each ``target`` prediction in a perturbed image whose predictions are ``found``.

    For each target, the best proposal's ``overlap x confidence x cosine of the class vectors``; 0 when the perturbed
    image has no prediction. Classify targets (``boxes`` with no columns) read the class's probability instead.
    """
    n = len(target)
    if target.boxes.shape[-1] == 0:  # classify: the explained classes' probabilities in the perturbed image
        if found.probs is None or n == 0:
            return torch.zeros(n)
        return found.probs[0, target.cls].float()
    if n == 0 or len(found) == 0:
        return torch.zeros(n)
    overlap = _overlap(target, found)
    cosine = _cosine(target, found)
    return (overlap * found.conf[None, :].float() * cosine).amax(1)


def _overlap(a: Detections, b: Detections) -> torch.Tensor:
    """(n, m) overlap: rotated-box probabilistic IoU, mask IoU, or box IoU (Ultralytics' own measures)."""
    from ultralytics.utils.metrics import batch_probiou, box_iou, mask_iou

    if a.boxes.shape[-1] == 5:
        return batch_probiou(a.boxes.float(), b.boxes.float()).clamp(0, 1)
    if a.masks is not None and b.masks is not None and a.masks.shape[1:] == b.masks.shape[1:]:
        return mask_iou(a.masks.flatten(1).float(), b.masks.flatten(1).float())
    return box_iou(a.boxes.float(), b.boxes.float())


def _cosine(a: Detections, b: Detections) -> torch.Tensor:
    """(n, m) cosine of the class-probability vectors; a side without vectors stands for its one-hot class."""
    if a.probs is None and b.probs is None:
        return (a.cls[:, None] == b.cls[None, :]).float()
    if a.probs is None:  # one-hot(c) . P / |P| = P[c] / |P|
        pb = _unit(b.probs)
        return pb[:, a.cls].T
    if b.probs is None:
        pa = _unit(a.probs)
        return pa[:, b.cls]
    return _unit(a.probs) @ _unit(b.probs).T


def _unit(p: Any) -> torch.Tensor:
    """Rows scaled to unit length (a zero row stays zero)."""
    rows = torch.as_tensor(p).float()
    out: torch.Tensor = rows / rows.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return out
