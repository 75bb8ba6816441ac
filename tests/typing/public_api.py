"""The public API as a type checker sees it (stamina's way): this file is checked by mypy in ``.ci/run``, never run.

Each ``assert_type`` fails the type check if a public signature loses or changes its types; ``# type: ignore`` lines
prove that wrong uses are caught. ``tests/test_typing.py`` runs the same check under pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import assert_type
from ultralytics.engine.results import Results
from ultralytics.models.yolo import YOLO

import ultralytics_cam
from ultralytics_cam import (
    CamConfig,
    CamError,
    CamMethod,
    CamResult,
    LayerContext,
    MethodSpec,
    PluginError,
    TargetContext,
    TargetSpec,
    hookimpl,
)
from ultralytics_cam.registry import Registry

# -- options ---------------------------------------------------------------------------------------------------------
config = CamConfig(method="HiResCAM", target="class", layers=[16, 19, 22], alpha=0.4, save_maps=True)
assert_type(config.method, str)
assert_type(config.alpha, float)
assert_type(config.save_maps, bool)
assert_type(config.method_spec, MethodSpec)
assert_type(config.target_spec, TargetSpec)
assert_type(config.to_dict(), dict[str, Any])
CamConfig(alpha="high")  # type: ignore[arg-type]
CamConfig(methd="HiResCAM")  # type: ignore[call-arg]

# -- the call: a list by default, an iterator with stream=True (api.cam's overloads) ----------------------------------


def run(model: YOLO, src: str) -> None:
    assert_type(ultralytics_cam.cam(model, src), list[Results])
    assert_type(ultralytics_cam.cam(model, src, stream=True), Iterator[Results])
    assert_type(ultralytics_cam.cam(model, src, True), Iterator[Results])
    assert_type(ultralytics_cam.cam(model, src, stream=False, conf=0.25), list[Results])


# -- results ---------------------------------------------------------------------------------------------------------


def read(cam: CamResult) -> None:
    assert_type(len(cam), int)
    assert_type(cam.heatmap, np.ndarray)
    assert_type(cam.maps, np.ndarray)
    assert_type(cam.map(0), np.ndarray)
    assert_type(cam.maps_input, torch.Tensor)
    assert_type(cam.stats(), list[dict[str, Any]])
    assert_type(cam.save("out"), list[Path])
    assert_type(cam.plot(), np.ndarray)
    cam.save(3)  # type: ignore[arg-type]


# -- errors ----------------------------------------------------------------------------------------------------------
error = PluginError("method 'X' is registered twice", plugin="dup")
assert_type(error.plugin, str | None)
assert isinstance(error, CamError)

# -- plugins: a method, a target and the hook that registers them ------------------------------------------------------


class AbsGradCAM(CamMethod):
    name = "AbsGradCAM"
    needs_gradients = True
    summary = "sum of |gradient| x activation"

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        assert grads is not None
        return (grads.abs() * acts).sum(1)


def margin(ctx: TargetContext) -> list[torch.Tensor]:
    return [torch.zeros(len(s)) for s in ctx.selections]


@hookimpl
def ultralytics_cam_register_methods() -> list[MethodSpec]:
    return [MethodSpec.of(AbsGradCAM, source="my-plugin")]


@hookimpl
def ultralytics_cam_register_targets() -> list[TargetSpec]:
    return [TargetSpec("margin", margin, tasks=("detect",), summary="top-1 minus top-2 logit")]


registry: Registry[MethodSpec] = Registry("method", CamError)
stored = registry.add(MethodSpec.of(AbsGradCAM), provider="my-plugin")
assert_type(stored, MethodSpec)
assert_type(registry.get("absgradcam"), MethodSpec)
assert_type(registry.find("nothing"), MethodSpec | None)
assert_type(ultralytics_cam.is_installed(), bool)
