"""Perturbation methods (ScoreCAM, AblationCAM): channel weights from extra forward passes, not gradients.

grad-cam's classes cannot be reused here:

- both run ``C`` forwards per (image, target) pair, i.e. ``n x C`` forwards for n predictions, where the same ``C``
  forwards can score all n predictions of the image at once (what we do);
- grad-cam's AblationCAM swaps the target module in the model tree, which breaks Ultralytics' ``_predict_once``
  (the stand-in has no ``.f``) and leaves the model modified; we ablate through a forward hook that returns the changed
  output instead;
- both show tqdm progress bars from library code.

The mathematics is grad-cam's, with the deviations named in each class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import CamMethod, LayerContext

__all__ = ["AblationCAM", "ScoreCAM"]

#: Modified copies of the input run per forward pass.
PERTURBATION_BATCH = 32


class ScoreCAM(CamMethod):
    """Wang et al. 2020: mask the input with each upsampled channel, weight channels by the softmax of the scores.

    As in grad-cam: bilinear upsampling with ``align_corners=True``, per-channel min-max with eps 1e-8, softmax over
    the channels' target scores. Targets are logits (a softmax over sigmoid confidences would be nearly uniform).
    """

    name = "ScoreCAM"
    summary = "channels weighted by the score of the input masked with each channel (Wang et al. 2020); slow"
    needs_gradients = False
    runs_forwards = True

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Score the input masked by every channel, in batches; all predictions are scored on each forward."""
        image, score = ctx.image, ctx.score
        assert score is not None  # runs_forwards: the engine always passes score
        up = F.interpolate(acts, size=image.shape[-2:], mode="bilinear", align_corners=True)[0]  # (C, H, W)
        flat = up.flatten(1)
        lo, hi = flat.amin(1)[:, None, None], flat.amax(1)[:, None, None]
        up = (up - lo) / (hi - lo + 1e-8)
        scores = torch.cat(
            [score(image * up[i : i + PERTURBATION_BATCH, None]) for i in range(0, len(up), PERTURBATION_BATCH)]
        )  # (C, n)
        weights = torch.softmax(scores.T.float(), dim=-1)  # (n, C)
        return torch.einsum("nc,chw->nhw", weights, acts[0])


class AblationCAM(CamMethod):
    """Desai & Ramaswamy 2020: weight of a channel = relative drop of the target when the channel is zeroed.

    Deviations from grad-cam, on purpose: a channel is set to zero (the paper's ablation); grad-cam sets it to
    ``min - 1e7`` whenever the layer's minimum is not 0, which is always the case for YOLO's SiLU features and is not an
    ablation. The drop is divided by ``|score|`` instead of ``score``, so a negative logit does not flip the sign.
    """

    name = "AblationCAM"
    summary = "channels weighted by the score drop when each channel is zeroed (Desai & Ramaswamy 2020); slow"
    needs_gradients = False
    runs_forwards = True

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Zero one channel per copy of the input through a forward hook on the layer."""
        channels, score = acts.shape[1], ctx.score
        assert score is not None  # runs_forwards: the engine always passes score
        base = score(ctx.image)[0]  # (n,)
        drops = []
        for start in range(0, channels, PERTURBATION_BATCH):
            chans = torch.arange(start, min(start + PERTURBATION_BATCH, channels), device=acts.device)

            def ablate(
                module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor, chans: torch.Tensor = chans
            ) -> torch.Tensor:
                output = output.clone()
                output[torch.arange(len(chans), device=output.device), chans] = 0
                return output

            drops.append(score(ctx.image.expand(len(chans), -1, -1, -1), hook=ablate))
        ablated = torch.cat(drops)  # (C, n)
        weights = (base[None] - ablated) / base[None].abs().clamp(min=1e-7)  # (C, n)
        return torch.einsum("cn,chw->nhw", weights.float(), acts[0])
