"""Head adapters, one module per family of Ultralytics heads, and the table that picks one for a model.

- ``base.py``: :class:`Selection`, the :class:`Block` building blocks of targets and the :class:`HeadAdapter` interface.
- ``anchor.py``: YOLO anchor heads (Detect, Segment, Pose, OBB and their v10 / YOLO26 / World / YOLOE variants).
- ``rtdetr.py``: RT-DETR decoders. ``classify.py``: classification heads.
- ``dense.py``: heads that predict every pixel (SemanticSegment, Depth).

Adding a head family is one place: its adapter module and one entry of :data:`HEAD_ADAPTERS`. Adapters are chosen by
the head's type (the most specific Ultralytics class it derives from), never by the model's file name or task.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UnsupportedModelError
from .anchor import AnchorHeadAdapter
from .base import Block, HeadAdapter, Selection, align_rows
from .classify import ClassifyHeadAdapter
from .dense import DenseHeadAdapter, DenseSelection, DepthHeadAdapter, SemanticHeadAdapter
from .rtdetr import RTDETRHeadAdapter

__all__ = [
    "HEAD_ADAPTERS",
    "SUPPORTED_TASKS",
    "AnchorHeadAdapter",
    "Block",
    "ClassifyHeadAdapter",
    "DenseHeadAdapter",
    "DenseSelection",
    "DepthHeadAdapter",
    "HeadAdapter",
    "RTDETRHeadAdapter",
    "Selection",
    "SemanticHeadAdapter",
    "adapter_class",
    "adapter_for",
    "align_rows",
]

#: Ultralytics head class name (in ``ultralytics.nn.modules.head``) -> adapter. A head is served by the entry of the
#: most specific class it derives from (Segment, Pose, OBB, v10Detect, YOLOEDetect... all derive from Detect). Names
#: missing from the installed Ultralytics (SemanticSegment and Depth are recent) are skipped.
HEAD_ADAPTERS: dict[str, type[HeadAdapter]] = {
    "Detect": AnchorHeadAdapter,
    "RTDETRDecoder": RTDETRHeadAdapter,
    "Classify": ClassifyHeadAdapter,
    "SemanticSegment": SemanticHeadAdapter,
    "Depth": DepthHeadAdapter,
}

#: Every task some head family explains, in table order (what ``model.cam`` accepts).
SUPPORTED_TASKS: tuple[str, ...] = tuple(dict.fromkeys(t for a in HEAD_ADAPTERS.values() for t in a.tasks))


def adapter_class(head: torch.nn.Module) -> type[HeadAdapter] | None:
    """The adapter class of ``head`` from :data:`HEAD_ADAPTERS`, or None when no family serves it."""
    from ultralytics.nn.modules import head as ultralytics_heads

    known = {getattr(ultralytics_heads, name, None): adapter for name, adapter in HEAD_ADAPTERS.items()}
    known.pop(None, None)
    return next((known[cls] for cls in type(head).__mro__ if cls in known), None)


def adapter_for(net: torch.nn.Module, task: str) -> HeadAdapter:
    """Return the adapter for the head of ``net`` (the native, fused network the predictor runs).

    Raises:
        UnsupportedModelError: no family serves this head, or the family does not explain ``task``.
    """
    layers: Any = net.model  # Ultralytics models are untyped
    head = layers[-1]
    adapter = adapter_class(head)
    if adapter is None or task not in adapter.tasks:
        raise UnsupportedModelError(
            f"ultralytics-cam cannot explain a {type(head).__name__} head (task '{task}'). Supported: detect, segment, "
            "semantic, depth, pose, obb and classify models of the YOLO families, RT-DETR, YOLO-World and YOLOE."
        )
    return adapter(net, task)
