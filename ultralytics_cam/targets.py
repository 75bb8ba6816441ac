"""Targets: the scalar each map explains, as registered specs (built-in ones and plugins' alike).

A target reads, for every selected prediction, one differentiable value from the head's raw (pre-NMS) tensors. The
built-in targets delegate to the head adapter, which knows where each head keeps its class logits, box regression,
mask coefficients, keypoints and angles; a plugin target gets the same :class:`TargetContext` and may use the adapter
too (``ctx.adapter.class_logits(...)``) or read ``ctx.head_out`` directly. This module only declares specs; looking a
name up is :func:`ultralytics_cam.plugins.get_target_spec` (the registry sits above).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .heads import Block, HeadAdapter, Selection

__all__ = [
    "BUILTIN_TARGETS",
    "ComposedTarget",
    "TargetContext",
    "TargetSpec",
    "builtin_target_specs",
]


@dataclass(frozen=True)
class TargetContext:
    """What a target function receives.

    Attributes:
        adapter: the head adapter (``class_logits``, the building blocks ``block(Block.CLASS_LOGIT, ...)``,
            ``branch`` for YOLO heads...).
        head_out: the head's own output for the batch (predictions, raw tensors), attached to the autograd graph.
        selections: per image, the predictions to explain.
        imgsz: (h, w) of the model input.
        task: the model's task.
        rematch: the input was perturbed or augmented; heads whose predictions are not positional (RT-DETR) should
            find each prediction again by box overlap.
    """

    adapter: HeadAdapter
    head_out: Any
    selections: list[Selection]
    imgsz: tuple[int, int]
    task: str
    rematch: bool = False


@dataclass(frozen=True)
class TargetSpec:
    """A target as the registry knows it.

    Attributes:
        name: what users pass as ``target=``.
        values: ``values(ctx) -> list[Tensor]``: per image, an (n,) tensor with one differentiable value per
            selected prediction.
        tasks: the tasks it applies to (``None``: every task).
        heads: the head class names it applies to (``None``: every head of those tasks).
        summary: one line for listings.
        provider: the plugin that registered it (filled in by the registry).
    """

    name: str
    values: Callable[[TargetContext], list[torch.Tensor]]
    tasks: tuple[str, ...] | None = None
    heads: tuple[str, ...] | None = None
    summary: str = ""
    provider: str = field(default="ultralytics-cam", compare=False)

    def supports(self, task: str, head: str) -> bool:
        """Whether this target applies to a model of ``task`` whose head class is named ``head``."""
        return (self.tasks is None or task in self.tasks) and (self.heads is None or head in self.heads)


@dataclass(frozen=True)
class ComposedTarget:
    """A target's values as the (signed) sum of head-adapter building blocks, e.g. ``all`` = class logit + box size.

    Every head family computes each :class:`~ultralytics_cam.heads.Block` its own way (``ctx.adapter.block``), so one
    composition serves every head that has its blocks, and the local head replay can tell from :attr:`blocks` which
    head outputs to recompute. Plugins may compose their own targets from the same blocks.

    Attributes:
        blocks: the blocks added together, per selected prediction.
        sign: multiplies the sum (``near`` explains minus the depth: "what makes it close").
    """

    blocks: tuple[Block, ...]
    sign: float = 1.0

    def __call__(self, ctx: TargetContext) -> list[torch.Tensor]:
        """Per image, an (n,) tensor: the sum of the blocks for every selected prediction."""
        parts = [ctx.adapter.block(b, ctx.head_out, ctx.selections, ctx.imgsz, ctx.rematch) for b in self.blocks]
        values = [functools.reduce(operator.add, per_image) for per_image in zip(*parts)]
        return values if self.sign == 1 else [self.sign * v for v in values]


_BOXES = ("detect", "segment", "pose", "obb")  # tasks whose predictions are boxes (RT-DETR's too: task detect)

#: The built-in targets: what each composes and the tasks it applies to. This is the one list of target names; adding
#: a built-in target is one entry here (plus, for a new kind of value, a :class:`~ultralytics_cam.heads.Block`).
#: The order is the order of listings and "Valid targets" messages.
BUILTIN_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "class",
        ComposedTarget((Block.CLASS_LOGIT,)),
        tasks=(*_BOXES, "classify", "semantic"),
        summary=(
            "the prediction's class logit (classify: the class logit of each top-5 class; semantic: the class's logits "
            "summed over its pixels; depth: means 'near', or 'mean' with region=)"
        ),
    ),
    TargetSpec(
        "box",
        ComposedTarget((Block.BOX_SIZE,)),
        tasks=_BOXES,
        summary="the box regression: sum of the four side distances in grid cells (RT-DETR: normalised w + h)",
    ),
    TargetSpec("all", ComposedTarget((Block.CLASS_LOGIT, Block.BOX_SIZE)), tasks=_BOXES, summary="class + box"),
    TargetSpec(
        "mask",
        ComposedTarget((Block.MASK_LOGIT,)),
        tasks=("segment",),
        summary="the mean mask logit inside the prediction's box (segment)",
    ),
    TargetSpec(
        "keypoints",
        ComposedTarget((Block.KEYPOINTS,)),
        tasks=("pose",),
        summary="the sum of the keypoint visibility logits (pose)",
    ),
    TargetSpec("angle", ComposedTarget((Block.ANGLE,)), tasks=("obb",), summary="the raw rotation output (obb)"),
    # depth: which pixels a row averages (nearest / farthest 10 %, all) is chosen with the rows (DepthHeadAdapter.pick)
    TargetSpec(
        "near",
        ComposedTarget((Block.DEPTH,), sign=-1.0),
        tasks=("depth",),
        summary="minus the mean depth of the nearest 10% of the pixels (depth; of each region= box)",
    ),
    TargetSpec(
        "far",
        ComposedTarget((Block.DEPTH,)),
        tasks=("depth",),
        summary="the mean depth of the farthest 10% of the pixels (depth; of each region= box)",
    ),
    TargetSpec(
        "mean",
        ComposedTarget((Block.DEPTH,)),
        tasks=("depth",),
        summary="the mean depth of all pixels (depth; of each region= box)",
    ),
)


def builtin_target_specs() -> list[TargetSpec]:
    """The built-in targets, with the tasks each applies to."""
    return list(BUILTIN_TARGETS)
