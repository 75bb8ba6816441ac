"""Targets: the scalar each map explains, as registered specs (built-in ones and plugins' alike).

A target reads, for every selected prediction, one differentiable value from the head's raw (pre-NMS) tensors. The
built-in targets delegate to the head adapter, which knows where each head keeps its class logits, box regression,
mask coefficients, keypoints and angles; a plugin target gets the same :class:`TargetContext` and may use the adapter
too (``ctx.adapter.class_logits(...)``) or read ``ctx.head_out`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import TargetError
from .heads import TASK_TARGETS, HeadAdapter, Selection

__all__ = ["BUILTIN_TARGET_SUMMARIES", "TargetContext", "TargetSpec", "builtin_target_specs", "get_target_spec"]


@dataclass(frozen=True)
class TargetContext:
    """What a target function receives.

    Attributes:
        adapter: the head adapter (``class_logits``, ``target_values``, ``branch`` for YOLO heads...).
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


#: One line per built-in target.
BUILTIN_TARGET_SUMMARIES = {
    "class": (
        "the prediction's class logit (classify: the class logit of each top-5 class; semantic: the class's logits "
        "summed over its pixels; depth: means 'near', or 'mean' with region=)"
    ),
    "box": "the box regression: sum of the four side distances in grid cells (RT-DETR: normalised w + h)",
    "all": "class + box",
    "mask": "the mean mask logit inside the prediction's box (segment)",
    "keypoints": "the sum of the keypoint visibility logits (pose)",
    "angle": "the raw rotation output (obb)",
    "near": "minus the mean depth of the nearest 10% of the pixels (depth; of each region= box)",
    "far": "the mean depth of the farthest 10% of the pixels (depth; of each region= box)",
    "mean": "the mean depth of all pixels (depth; of each region= box)",
}


def _builtin(name: str) -> Callable[[TargetContext], list[torch.Tensor]]:
    def values(ctx: TargetContext) -> list[torch.Tensor]:
        return ctx.adapter.target_values(ctx.head_out, ctx.selections, name, ctx.imgsz, rematch=ctx.rematch)

    values.__name__ = f"{name}_target"
    return values


def builtin_target_specs() -> list[TargetSpec]:
    """The built-in targets, with the tasks each applies to."""
    specs = []
    for name, summary in BUILTIN_TARGET_SUMMARIES.items():
        tasks = tuple(t for t, names in TASK_TARGETS.items() if name in names)
        specs.append(TargetSpec(name, _builtin(name), tasks=tasks, summary=summary))
    return specs


def get_target_spec(name: str, task: str | None = None, head: str | None = None) -> TargetSpec:
    """Look a target up by name (built-in or plugin) and, given a task and head class name, check that it applies.

    Raises:
        TargetError: unknown name (with close matches), or a target this task / head does not have (listing the valid
            ones).
    """
    import difflib

    from .plugins import registered_target_specs

    specs = {s.name: s for s in registered_target_specs()}
    spec = specs.get(name) if isinstance(name, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(name), list(specs), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise TargetError(f"target={name!r} is not a target.{hint} Valid targets: {', '.join(specs)}.")
    if task is not None and not spec.supports(task, head or ""):
        valid = [s.name for s in specs.values() if s.supports(task, head or "")]
        raise TargetError(
            f"target='{name}' is not available for task '{task}' ({head} head). Valid targets: {', '.join(valid)}."
        )
    return spec
