"""The Eigen family (EigenCAM, EigenGradCAM, SegEigenCAM) on the fast projection.

Their weighting is grad-cam's (activations; gradient x activation; |gradient| x activation), their projection is
:func:`~ultralytics_cam.methods.projection.project`, which replaces grad-cam's full SVD (seconds per map) and fixes the
arbitrary sign that grad-cam leaves to the solver.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import CamMethod, LayerContext, LocalGradients
from .projection import project, project_windows

__all__ = ["EigenCAM", "EigenGradCAM", "SegEigenCAM"]


class EigenCAM(CamMethod):
    """Muhammad & Yeasin 2020: the first principal component of the activations (class-agnostic)."""

    name = "EigenCAM"
    summary = "first principal component of the activations, one map per image (Muhammad & Yeasin 2020)"
    needs_gradients = False
    per_prediction = False

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Project the image's activations."""
        return project(acts)


class EigenGradCAM(CamMethod):
    """grad-cam's variant: the first principal component of gradient x activation, per prediction."""

    name = "EigenGradCAM"
    summary = "first principal component of gradient x activation (grad-cam)"

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Project grads * activations."""
        assert grads is not None  # needs_gradients: the engine always passes them
        return project(grads * acts)

    def local_layer_map(
        self, local: LocalGradients, context: Callable[[int, torch.Tensor], LayerContext]
    ) -> torch.Tensor:
        """Project the window of grads * activations (exactly, see ``project_windows``)."""
        out = project_windows(local.grads * local.windows, local)
        return super().local_layer_map(local, context) if out is None else out


class SegEigenCAM(CamMethod):
    """Chung & Ying 2025: the first principal component of |gradient| x activation, sign-corrected."""

    name = "SegEigenCAM"
    summary = "first principal component of |gradient| x activation (Chung & Ying 2025)"

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Project |grads| * activations."""
        assert grads is not None  # needs_gradients: the engine always passes them
        return project(grads.abs() * acts)

    def local_layer_map(
        self, local: LocalGradients, context: Callable[[int, torch.Tensor], LayerContext]
    ) -> torch.Tensor:
        """Project the window of |grads| * activations (exactly, see ``project_windows``)."""
        out = project_windows(local.grads.abs() * local.windows, local)
        return super().local_layer_map(local, context) if out is None else out
