"""Methods that grad-cam builds around a base method or a second derivative: ShapleyCAM, FinerCAM and RefineCAM.

None of them can be called as a pure function on precomputed arrays (ShapleyCAM needs the live autograd graph,
FinerCAM and RefineCAM are wrappers that run their base method themselves), so each is expressed here through the
engine's hooks: a second-order gradient, a target transform, or a different way of fusing layers. The arithmetic
follows grad-cam 1.5.7 line by line; the oracle tests compare against grad-cam's own classes.
"""

from __future__ import annotations

import torch

from .base import CamMethod, LayerContext, minmax
from .gradcam import GradCAM, GradCAMPlusPlus

__all__ = ["FinerCAM", "RefineCAM", "ShapleyCAM"]


class ShapleyCAM(CamMethod):
    """Cai 2025: channel weight = spatial mean of (gradient - 1/2 Hessian-vector product along the activations).

    grad-cam supports a single target layer (its HVP frees the graph); the engine computes the HVP per layer with one
    more batched backward, so several layers work.
    """

    name = "ShapleyCAM"
    summary = "gradient minus half the Hessian-vector product, a Shapley-value view of CAM (Cai 2025)"
    second_order = True

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Weights from grad - hvp / 2, summed over channels with the activations."""
        assert grads is not None  # needs_gradients: the engine always passes them
        hvp = ctx.hvp if ctx.hvp is not None else 0
        w = (grads - 0.5 * hvp).mean((2, 3))
        return torch.einsum("nc,chw->nhw", w, acts[0])


class FinerCAM(GradCAM):
    """Zhang et al. 2025: explain a class against its most similar classes (base method: GradCAM).

    The target becomes ``sum_k p_k (y_main - alpha * y_k) / sum_k p_k`` over the three classes whose logits are closest
    to the predicted one, with ``p`` the softmax of the prediction's class logits and ``alpha = 1`` (grad-cam's
    ``FinerWeightedTarget``).
    """

    name = "FinerCAM"
    summary = "GradCAM of the predicted class against its three most similar classes (Zhang et al. 2025)"
    targets = ("class",)
    alpha = 1.0
    comparisons = (1, 2, 3)

    def check(self, task: str, nc: int, target: str) -> None:
        """Refuse single-class models: there is no other class to compare with."""
        from ..errors import MethodError

        super().check(task, nc, target)
        if nc < 2:
            raise MethodError(
                "method 'FinerCAM' compares the predicted class with similar classes; this model has one."
            )

    def transform_targets(self, values: torch.Tensor, logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """Replace each class logit by grad-cam's Finer-weighted difference."""
        main = logits.gather(1, cls[:, None])  # (n, 1)
        order = (logits - main).abs().argsort(1)  # most similar first, the class itself at position 0
        comp = order[:, [c for c in self.comparisons if c < logits.shape[1]]]
        prob = logits.softmax(1).gather(1, comp)
        diff = main - self.alpha * logits.gather(1, comp)
        return (prob * diff).sum(1) / (prob.sum(1) + 1e-9)


class RefineCAM(GradCAMPlusPlus):
    """Domeniconi et al.: the product of the per-layer maps of a base method (GradCAMPlusPlus), which denoises them.

    A layer that the prediction's gradient does not reach (YOLO's P4/P5 head inputs for a P3 prediction) has an
    all-zero map and would zero the product; such layers are left out of that prediction's product.
    """

    name = "RefineCAM"
    summary = "product of the per-layer GradCAM++ maps, denoising multi-layer maps (Domeniconi et al.)"

    def fuse(self, layer_maps: list[torch.Tensor]) -> torch.Tensor:
        """Multiply the layer maps, skipping each prediction's all-zero layers."""
        # grad-cam multiplies each layer's finished map, i.e. scaled to [0, 1] again after the resize
        stack = torch.stack([minmax(m) for m in layer_maps])  # (L, n, H, W)
        empty = stack.flatten(2).amax(2) <= 0  # (L, n)
        product = torch.where(empty[..., None, None], torch.ones_like(stack), stack).prod(0)
        return product * (~empty).any(0)[:, None, None]  # a prediction no layer sees stays all zero
