"""Adapters that reuse grad-cam's own weighting code on our per-prediction activations and gradients.

grad-cam computes one map per input row: it would need the image repeated once per prediction, a hook per layer and a
backward over the whole batch. We compute the gradients ourselves (one batched backward for all predictions), then hand
grad-cam's ``get_cam_weights`` / ``get_cam_image`` the arrays it expects: numpy float32, activations (1, C, h, w) that
broadcast against gradients (n, C, h, w). Those functions are pure given the arrays, so the maps equal grad-cam's
(checked by the oracle tests).

What we replace, and why:

- the default ``get_cam_image`` materialises ``weights * activations`` as an (n, C, h, w) array (315 MiB for 100
  predictions on an 80 x 80 map); a weights-only method's map is the same einsum without it;
- ``eigen_smooth`` goes through :func:`~ultralytics_cam.methods.projection.project` instead of grad-cam's full SVD.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from .._logging import LOGGER, PREFIX
from .base import CamMethod, LayerContext, LocalGradients
from .projection import project

__all__ = [
    "FEM",
    "KPCA_CAM",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "RandomCAM",
    "XGradCAM",
    "grad_cam_host",
]


@functools.cache
def grad_cam_host(class_name: str) -> Any:  # a grad-cam instance: grad-cam ships no types
    """Return an inert instance of a grad-cam class whose pure weighting methods we can call.

    It is built on a one-parameter dummy module with no target layers, so it registers no hooks anywhere; its
    constructor still sets the attributes some methods read (``KPCA_CAM.kernel``, ``FEM.k``).
    """
    import pytorch_grad_cam  # imported here: it pulls in matplotlib, sklearn and scipy (~2 s)

    return getattr(pytorch_grad_cam, class_name)(torch.nn.Conv2d(1, 1, 1), [])


def _np(t: torch.Tensor, bits: int = 32) -> np.ndarray:
    """grad-cam's math is numpy-only (torch tensors raise in several methods): hand it host arrays."""
    t = t.detach().cpu()
    return (t.double() if bits == 64 else t.float()).numpy()


class _WeightsMethod(CamMethod):
    """A method that weights each channel: map = sum_c w[n, c] * A[c] (grad-cam's ``get_cam_weights``)."""

    grad_cam_class: ClassVar[str] = ""

    def weights(self, acts: torch.Tensor, grads: torch.Tensor | None) -> torch.Tensor:
        """Return the (n, C) channel weights from grad-cam, computed in float64.

        Its formulas sum n x C x h x w terms (GradCAM++ divides by a sum of activations times g^3); in float32 the
        rounding alone moved GradCAM++ maps by 3e-5, more than the 1e-5 the local and dense routes must agree to.
        """
        assert grads is not None  # a weights method needs gradients: the engine passes them (RandomCAM a placeholder)
        w = grad_cam_host(self.grad_cam_class).get_cam_weights(None, None, None, _np(acts, 64), _np(grads, 64))
        return torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(acts.device)

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Weight the channels; project instead of summing with ``eigen_smooth``."""
        w = self.weights(acts, grads)
        if ctx.eigen_smooth:
            return project(w[:, :, None, None] * acts)
        return torch.einsum("nc,chw->nhw", w, acts[0])

    def window_weights(self, local: LocalGradients, sums: torch.Tensor, area: int) -> torch.Tensor:
        """The (m, C) weights from gradient windows; ``sums`` (m, C) are the channel sums of each image's whole map.

        grad-cam computes them on the full (h, w) gradient, which is zero outside the window: each method below is its
        grad-cam formula with the spatial sums taken over the window (the oracle tests compare both routes).
        """
        raise NotImplementedError

    def local_layer_map(
        self, local: LocalGradients, context: Callable[[int, torch.Tensor], LayerContext]
    ) -> torch.Tensor:
        """Weights from the windows, then the channel sum over each image's whole map (one einsum per image)."""
        if context(int(local.image[0]), local.image.new_zeros(1)).eigen_smooth:  # row 0 of the window batch
            return super().local_layer_map(local, context)  # projects (m, C, h, w) weighted maps: the dense route
        sums = local.acts.double().sum((2, 3))[local.image]  # (m, C), in float64 as the dense route's weights
        double = LocalGradients(
            local.acts, local.image, local.windows.double(), local.grads.double(), local.inside, local.ys, local.xs
        )
        w = self.window_weights(double, sums, local.acts.shape[-2] * local.acts.shape[-1]).float()
        out = local.acts.new_zeros((len(w), *local.acts.shape[-2:]))
        for b in torch.unique(local.image).tolist():
            rows = (local.image == b).nonzero().view(-1)
            out[rows] = torch.einsum("nc,chw->nhw", w[rows], local.acts[b])
        return out


class GradCAM(_WeightsMethod):
    """Selvaraju et al. 2017: channel weight = spatial mean of the gradient."""

    name = "GradCAM"
    summary = "channel weights = spatial mean of the gradient (Selvaraju et al. 2017)"
    grad_cam_class = "GradCAM"

    def window_weights(self, local: LocalGradients, sums: torch.Tensor, area: int) -> torch.Tensor:
        """np.mean(grads, axis=(2, 3)) over the whole map."""
        return local.grads.sum((2, 3)) / area


class GradCAMPlusPlus(_WeightsMethod):
    """Chattopadhyay et al. 2018: pixel-wise weighted positive gradients."""

    name = "GradCAMPlusPlus"
    summary = "pixel-weighted positive gradients (Chattopadhyay et al. 2018)"
    grad_cam_class = "GradCAMPlusPlus"

    def window_weights(self, local: LocalGradients, sums: torch.Tensor, area: int) -> torch.Tensor:
        """grad-cam's equation 19: alpha = g^2 / (2 g^2 + sum(A) g^3 + 1e-6), zero where g = 0; sum(relu(g) alpha)."""
        g = local.grads
        g2 = g * g
        aij = g2 / (2 * g2 + sums[:, :, None, None] * g2 * g + 0.000001)
        aij = torch.where(g != 0, aij, torch.zeros_like(aij))
        return (g.clamp(min=0) * aij).sum((2, 3))


class XGradCAM(_WeightsMethod):
    """Fu et al. 2020: gradients weighted by normalised activations."""

    name = "XGradCAM"
    summary = "axiom-based weights: sum(g * A) / sum(A) (Fu et al. 2020)"
    grad_cam_class = "XGradCAM"

    def window_weights(self, local: LocalGradients, sums: torch.Tensor, area: int) -> torch.Tensor:
        """sum(g * A / (sum(A) + 1e-7)) over the map."""
        return (local.grads * local.windows / (sums[:, :, None, None] + 1e-7)).sum((2, 3))


class RandomCAM(_WeightsMethod):
    """Random channel weights in [-1, 1]: a sanity-check baseline (needs no backward; grad-cam runs one anyway)."""

    name = "RandomCAM"
    summary = "random channel weights in [-1, 1], a sanity-check baseline"
    grad_cam_class = "RandomCAM"
    needs_gradients = False

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """grad-cam only reads the gradients' shape, so a placeholder stands in for them."""
        placeholder = torch.empty((len(ctx.selection), acts.shape[1], 1, 1))
        return super().layer_map(acts, placeholder, ctx)


class _ImageMethod(CamMethod):
    """A method that combines gradients and activations element-wise (grad-cam's ``get_cam_image``)."""

    grad_cam_class: ClassVar[str] = ""

    def weighted(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Return the (n, C, h, w) weighted activations the method sums (used for ``eigen_smooth``)."""
        raise NotImplementedError

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Call grad-cam's ``get_cam_image``; project the weighted activations with ``eigen_smooth``.

        grad-cam's own ``eigen_smooth`` path would run its slow full SVD (and HiResCAM prints a warning to stdout).
        """
        assert grads is not None  # an element-wise method needs gradients: the engine always passes them
        if ctx.eigen_smooth:
            return project(self.weighted(acts, grads))
        cam = grad_cam_host(self.grad_cam_class).get_cam_image(None, None, None, _np(acts), _np(grads), False)
        return torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32)).to(acts.device)

    def local_layer_map(
        self, local: LocalGradients, context: Callable[[int, torch.Tensor], LayerContext]
    ) -> torch.Tensor:
        """The channel sum of the weighted window, placed on the map: zero elsewhere, where the gradient is zero."""
        if context(int(local.image[0]), local.image.new_zeros(1)).eigen_smooth:  # row 0 of the window batch
            return super().local_layer_map(local, context)
        return local.place(self.weighted(local.windows, local.grads).sum(1))


class HiResCAM(_ImageMethod):
    """Draelos & Carin 2020: sum over channels of gradient x activation."""

    name = "HiResCAM"
    summary = "sum of gradient x activation, faithful to the score (Draelos & Carin 2020)"
    grad_cam_class = "HiResCAM"

    def weighted(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Grads * activations."""
        return grads * acts


class LayerCAM(_ImageMethod):
    """Jiang et al. 2021: positive gradients x activations (what Ultralytics' ``visualize=True`` uses)."""

    name = "LayerCAM"
    summary = "positive gradients x activations, also for shallow layers (Jiang et al. 2021)"
    grad_cam_class = "LayerCAM"

    def weighted(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """relu(grads) * activations."""
        return grads.clamp(min=0) * acts


class GradCAMElementWise(_ImageMethod):
    """grad-cam's variant: ReLU of gradient x activation, then the channel sum."""

    name = "GradCAMElementWise"
    summary = "sum of relu(gradient x activation), grad-cam's element-wise variant"
    grad_cam_class = "GradCAMElementWise"

    def weighted(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """relu(grads * activations)."""
        return (grads * acts).clamp(min=0)


class _ActivationOnlyMethod(CamMethod):
    """A gradient-free method computed from one image's activations: the same map for all its predictions."""

    grad_cam_class: ClassVar[str] = ""
    needs_gradients = False
    per_prediction = False

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Call grad-cam's ``get_cam_image`` on the (1, C, h, w) activations."""
        cam = grad_cam_host(self.grad_cam_class).get_cam_image(None, None, None, _np(acts), None, False)
        return torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32)).to(acts.device)


class KPCA_CAM(_ActivationOnlyMethod):  # noqa: N801 - grad-cam's class name
    """Karmani et al. 2024: kernel PCA of the activations (sigmoid kernel)."""

    name = "KPCA_CAM"
    summary = "first kernel-PCA component of the activations, one map per image (Karmani et al. 2024)"
    grad_cam_class = "KPCA_CAM"

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """grad-cam's kernel PCA; an empty map where the activations are (nearly) constant.

        Then the centred kernel is numerically zero and sklearn's ARPACK solver raises ("Starting vector is zero",
        seen on a random-weight yolo11n at 640 px) instead of returning the zero projection.
        """
        from scipy.sparse.linalg import ArpackError

        try:
            return super().layer_map(acts, grads, ctx)
        except ArpackError as e:
            LOGGER.warning(f"{PREFIX}KPCA_CAM found no structure at layer {ctx.layer} ({e}); its map there is empty")
            return acts.new_zeros((1, *acts.shape[2:]))


class FEM(_ActivationOnlyMethod):
    """Fuad et al. 2020: channels weighted by how often they exceed mean + k * std."""

    name = "FEM"
    summary = "feature explanation method: k-sigma channel weights, one map per image (Fuad et al. 2020)"
    grad_cam_class = "FEM"
