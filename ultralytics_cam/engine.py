"""The CAM engine: one grad-enabled forward and one batched backward per batch explain every kept prediction.

Per batch of images the predictor calls:

1. :meth:`CamEngine.forward` instead of a plain inference: it leaves Ultralytics' ``inference_mode``, resets the head's
   anchor caches (inference tensors that autograd refuses), hooks the target layers and records the autograd graph
   only from the earliest target layer on: everything before it runs without grad, so gradients stop there and the
   backbone costs no extra memory.
2. Ultralytics' own postprocess (NMS, ``Results``), untouched.
3. :meth:`CamEngine.explain`: the head adapter traces every ``Results`` row back to its pre-NMS anchor / query and
   reads its target from the raw head tensors; ONE batched backward (``is_grads_batched``) gives every prediction's
   gradient at every target layer; the method turns activations and gradients into per-prediction maps, which are
   fused across layers and attached to the ``Results`` at the model-input size.

The batched backward packs predictions into "slots": slot j holds the j-th prediction of every image at once. Images
do not interact in an eval-mode forward, so the gradient of slot j at image b is exactly the gradient of image b's
j-th prediction, and the backward costs max(predictions per image) vector-Jacobian products instead of their total.
When those gradients would not fit in :data:`GRADIENT_BUDGET_BYTES`, the slots are split into chunks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ._logging import LOGGER, PREFIX
from .config import CamConfig
from .errors import LayerError, UnsupportedModelError
from .heads import Selection, adapter_for
from .layers import Layer, describe_layers, resolve_layers
from .methods import CamMethod, LayerContext, create_method
from .methods.base import minmax
from .targets import TargetContext, get_target_spec

__all__ = ["CPU_GRADIENT_BUDGET_BYTES", "GRADIENT_BUDGET_BYTES", "CamEngine", "ForwardPass"]

#: Upper bound on the per-prediction gradients one batched backward produces; more predictions are split into chunks
#: (one ``autograd.grad(..., is_grads_batched=True)`` call each). On the CPU large batched backwards are slower than
#: small ones: yolo11n, bus.jpg at 640 px, 55 predictions, 1 thread: 1, 2, 4, 8, 16, 32, 64, 512 MiB -> 1.16-1.36,
#: 1.17, 1.12-1.13, 1.17, 1.29, 1.56, 1.93, 2.41 s; peak memory grows with the chunk too (2 images x 70 predictions:
#: 512 MiB -> 2.6 GB RSS, 32 MiB -> 1.4 GB). Accelerators get a larger budget, where batching pays.
CPU_GRADIENT_BUDGET_BYTES = 8 * 2**20
GRADIENT_BUDGET_BYTES = 256 * 2**20

#: grad-cam's ``aug_smooth`` test-time augmentations (ttach): horizontal flip x brightness factors.
AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


@dataclass
class ForwardPass:
    """What one grad-enabled forward left behind for :meth:`CamEngine.explain`."""

    preds: Any  # model outputs, detached, as Ultralytics' postprocess expects them
    head_out: Any  # the head's own output (predictions, raw tensors), still attached to the graph
    acts: list[torch.Tensor]  # per target layer, (B, C, h, w)
    image: torch.Tensor  # (B, 3, H, W) model input


class CamEngine:
    """Explains the predictions of one predictor's model with one CAM method, target and set of layers."""

    def __init__(self, predictor: Any, config: CamConfig) -> None:
        """Check the model and options, resolve the layers and build the method.

        Raises:
            UnsupportedModelError: the predictor does not run a PyTorch model with a supported head.
            LayerError, MethodError, TargetError: the options do not fit this model.
        """
        from ultralytics.utils.torch_utils import unwrap_model

        backend = unwrap_model(predictor.model)
        if getattr(backend, "format", "pt") != "pt" or not getattr(backend, "base_model", True):
            raise UnsupportedModelError(
                f"CAM needs the PyTorch weights (.pt) of the model; this one is a '{getattr(backend, 'format', '?')}' "
                "export, which has no layers to read and no gradients. Load the .pt file instead."
            )
        self.predictor = predictor
        self.config = config
        self.backend = backend
        self.net = backend.model  # the predictor's own fused copy: the user's model is never touched
        self.task = predictor.args.task
        self.adapter = adapter_for(self.net, self.task)
        self.target = get_target_spec(config.target, self.task, type(self.adapter.head).__name__)
        if type(self.net).__name__.startswith("YOLOE") and not _has_prompts(self.net):
            raise UnsupportedModelError(
                "This YOLOE model has no class prompts, so its class scores do not depend on the image and there is "
                "nothing to explain. Set prompts first: model.set_classes(names, model.get_text_pe(names)), or use "
                "visual prompts."
            )
        self.method: CamMethod = create_method(config.method)
        self.method.check(self.task, len(predictor.model.names), config.target)
        self.layers: list[Layer] = (
            []
            if not self.method.uses_activations
            else resolve_layers(self.net, config.layers, imgsz=predictor.args.imgsz, verbose=predictor.args.verbose)
        )
        self.fp16 = bool(getattr(backend, "fp16", False))
        self._rematch = False  # set per explained pass: True on augmented inputs for non-positional heads

    @classmethod
    def for_model(
        cls, model: torch.nn.Module, task: str, config: CamConfig, *, imgsz: Any = 640, verbose: bool = False
    ) -> CamEngine:
        """Build an engine for a model that no predictor runs: a validator's ``AutoBackend`` or a native model.

        A native Ultralytics model (``DetectionModel``, ... such as the EMA model a trainer validates) is wrapped in
        the few ``AutoBackend`` attributes the engine reads. Raises what :class:`CamEngine` raises.
        """
        from types import SimpleNamespace

        from ultralytics.nn.tasks import BaseModel
        from ultralytics.utils.torch_utils import unwrap_model

        backend = unwrap_model(model)
        if isinstance(backend, BaseModel):
            backend = _NativeBackend(backend)
        host = SimpleNamespace(model=backend, args=SimpleNamespace(task=task, imgsz=imgsz, verbose=verbose))
        return cls(host, config)

    # -- forward -----------------------------------------------------------------------------------------------------
    def forward(self, im: torch.Tensor) -> ForwardPass:
        """Run the model on ``im`` with the target layers hooked and (for gradient methods) the graph recorded."""
        acts: dict[int, torch.Tensor] = {}
        captured: dict[str, Any] = {}
        grad = self.method.needs_gradients

        def layer_hook(i: int, layer: Layer):
            def hook(module, inputs, output):
                if not isinstance(output, torch.Tensor) or output.ndim != 4:
                    got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                    raise _NotAFeatureMapError(f"layer {layer.label!r} ({layer.type}) outputs {got}")
                if grad:
                    torch.set_grad_enabled(True)  # record the graph from the first target layer on
                    if not output.requires_grad:  # earlier layers ran without grad: gradients stop here
                        output = output.detach().requires_grad_(True)
                acts[i] = output
                return output

            return hook

        def head_hook(module, inputs, output):
            captured["head"] = output

        handles = [layer.module.register_forward_hook(layer_hook(i, layer)) for i, layer in enumerate(self.layers)]
        handles.append(self.adapter.head.register_forward_hook(head_hook))
        self.adapter.reset_caches()
        try:
            with torch.inference_mode(False), _grad_mode(False):
                x = im.clone()  # a normal tensor: the predictor's input is an inference tensor
                preds = self.backend(x)
        except _NotAFeatureMapError as e:
            bad = str(e)
        else:
            bad = None
        finally:
            for h in handles:
                h.remove()
        if bad:  # described only now: the description runs the model, which must not meet our hooks
            raise LayerError(f"{bad}, not a (B, C, H, W) feature map. Valid layers:\n{_describe(self.net, im)}")
        missing = [layer.label for i, layer in enumerate(self.layers) if i not in acts]
        if missing:
            raise LayerError(f"layers {missing} did not run in the model's forward pass; choose layers it uses.")
        return ForwardPass(_detach(preds), captured["head"], [acts[i] for i in range(len(self.layers))], x)

    # -- explain -----------------------------------------------------------------------------------------------------
    def explain(self, fwd: ForwardPass, selections: list[Selection]) -> list[torch.Tensor]:
        """Return, per image, the (n, H, W) maps in [0, 1] at the model-input size of its selected predictions.

        With ``aug_smooth`` the maps are averaged over grad-cam's six test-time augmentations (horizontal flip x
        brightness 0.9, 1, 1.1). grad-cam keeps its targets fixed, which on a detector would explain whatever sits at
        the same anchor of the flipped image; here each prediction is followed to its mirrored anchor (RT-DETR: to
        the query whose box best overlaps the mirrored box), and each map is flipped back before averaging.
        """
        with torch.inference_mode(False):
            sels = [s.to_autograd() for s in selections]
            maps = self._explain_once(fwd, sels)
            if not self.config.aug_smooth:
                return maps
            imgsz = tuple(fwd.image.shape[2:])
            for flip, factor in AUGMENTATIONS:
                if not flip and factor == 1.0:
                    continue  # the pass above
                x = fwd.image.detach() * factor
                aug = self.forward(x.flip(-1) if flip else x)
                aug_sels = [self.adapter.flip(s, aug.head_out, imgsz) if flip else s for s in sels]
                extra = self._explain_once(aug, aug_sels, rematch=True)
                maps = [total + (m.flip(-1) if flip else m) for total, m in zip(maps, extra)]
            return [m / len(AUGMENTATIONS) for m in maps]

    def _explain_once(self, fwd: ForwardPass, sels: list[Selection], rematch: bool = False) -> list[torch.Tensor]:
        """Explain one forward pass (``rematch``: the input was augmented, re-find non-positional predictions)."""
        self._rematch = rematch and self.adapter.rematch
        if not self.method.uses_activations:
            h, w = fwd.image.shape[2:]
            maps = [self.method.input_maps(s, self.task, (h, w)).to(fwd.image.device) for s in sels]
            return [m.flip(-1) if s.flipped else m for m, s in zip(maps, sels)]  # drawn at the mirrored boxes
        if self.method.needs_gradients:
            return self._explain_with_gradients(fwd, sels)
        return self._explain_without_gradients(fwd, sels)

    def _targets(self, fwd: ForwardPass, sels: list[Selection]) -> list[torch.Tensor]:
        """Each image's (n,) target values, differentiable, with the method's target transform applied."""
        with torch.enable_grad():
            values = self._target_values(fwd.head_out, sels, tuple(fwd.image.shape[2:]), self._rematch)
            if self.method.transforms_targets:
                logits = self.adapter.class_logits(fwd.head_out, sels)
                values = [self.method.transform_targets(v, lg, s.cls) for v, lg, s in zip(values, logits, sels)]
        return values

    def _explain_with_gradients(self, fwd: ForwardPass, sels: list[Selection]) -> list[torch.Tensor]:
        """One batched backward (chunked to the memory budget) for all predictions of the batch."""
        counts = [len(s) for s in sels]
        n_slots, n_img = max(counts, default=0), len(sels)
        out = [fwd.image.new_zeros((n, *fwd.image.shape[2:])) for n in counts]
        if n_slots == 0:
            return out
        values = self._targets(fwd, sels)
        if not any(v.requires_grad for v in values if len(v)):
            raise UnsupportedModelError(
                "The explained scores do not depend on the chosen layers, so there are no gradients to read. "
                "For YOLOE set prompts with model.set_classes(...); otherwise choose layers before the head."
            )
        # (B, J) targets, zero-padded where an image has fewer predictions than the batch's maximum
        table = torch.stack(
            [F.pad(v.float(), (0, n_slots - len(v))) if len(v) else v.new_zeros(n_slots) for v in values]
        )
        acts = fwd.acts
        per_slot = n_img * sum(a[0].numel() for a in acts) * 4 * (3 if self.method.second_order else 1)
        budget = CPU_GRADIENT_BUDGET_BYTES if table.device.type == "cpu" else GRADIENT_BUDGET_BYTES
        chunk = max(1, budget // max(per_slot, 1))
        scale = 1024.0 if self.fp16 else 1.0  # half-precision graphs underflow small gradients: scale as AMP does
        reached = False
        for j0 in range(0, n_slots, chunk):
            j1 = min(n_slots, j0 + chunk)
            seeds = table.new_zeros((j1 - j0, n_img, n_slots))
            for b, n in enumerate(counts):
                js = torch.arange(j0, max(j0, min(j1, n)))  # empty when image b has no prediction in this chunk
                seeds[js - j0, b, js] = scale
            last = j1 == n_slots
            grads = torch.autograd.grad(
                table.flatten(),
                acts,
                grad_outputs=seeds.flatten(1),
                is_grads_batched=True,
                retain_graph=not last or self.method.second_order,
                create_graph=self.method.second_order,
                allow_unused=True,
            )
            grads = [torch.zeros_like(a).expand(j1 - j0, *a.shape) if g is None else g for g, a in zip(grads, acts)]
            reached = reached or any(bool(g.detach().abs().amax() > 0) for g in grads)
            hvps = self._hvps(grads, acts, last) if self.method.second_order else [None] * len(acts)
            for b, n in enumerate(counts):
                if j0 >= n:
                    continue
                rows = slice(0, min(j1, n) - j0)
                sel = sels[b].subset(torch.arange(j0, min(j1, n)))
                layer_maps = []
                for li, layer in enumerate(self.layers):
                    g = grads[li][rows, b].detach().float() / scale
                    hvp = None if hvps[li] is None else hvps[li][rows, b].float() / scale
                    ctx = self._context(fwd, b, sel, layer, hvp)
                    raw = self.method.layer_map(acts[li][b : b + 1].detach().float(), g, ctx)
                    layer_maps.append(self._scaled(raw, fwd.image.shape[2:]))
                out[b][j0 : min(j1, n)] = self._fused(layer_maps)
            del grads, hvps
        if not reached:  # a legitimate choice (P3 predictions never reach the P5 input), but say why the maps are empty
            labels = [layer.label for layer in self.layers]
            LOGGER.warning(
                f"{PREFIX}the explained scores of this batch do not depend on layers {labels}: every gradient there is "
                "zero, so their maps are empty. Predictions of one pyramid level do not use the other levels' head "
                "inputs; layers='auto' reads all of them."
            )
        return out

    def _hvps(self, grads: list[torch.Tensor], acts: list[torch.Tensor], last: bool) -> list[torch.Tensor]:
        """Hessian-vector products along the activations, per layer, batched over slots (ShapleyCAM)."""
        out = []
        for li, (g, a) in enumerate(zip(grads, acts)):
            if not g.requires_grad:
                out.append(torch.zeros_like(g))
                continue
            s = (g * a.detach()).flatten(1).sum(1)  # (slots,)
            (h,) = torch.autograd.grad(
                s,
                a,
                grad_outputs=torch.eye(len(s), device=s.device, dtype=s.dtype),
                is_grads_batched=True,
                retain_graph=not last or li < len(acts) - 1,
                allow_unused=True,
            )
            out.append(torch.zeros_like(g) if h is None else h.detach())
        return out

    def _explain_without_gradients(self, fwd: ForwardPass, sels: list[Selection]) -> list[torch.Tensor]:
        """Gradient-free methods: per image, per layer, no backward (perturbation methods run forwards)."""
        out = []
        for b, sel in enumerate(sels):
            n = len(sel)
            if n == 0:
                out.append(fwd.image.new_zeros((0, *fwd.image.shape[2:])))
                continue
            layer_maps = []
            for li, layer in enumerate(self.layers):
                ctx = self._context(fwd, b, sel, layer, None)
                raw = self.method.layer_map(fwd.acts[li][b : b + 1].detach().float(), None, ctx)
                layer_maps.append(self._scaled(raw, fwd.image.shape[2:]))
            maps = self._fused(layer_maps)
            out.append(maps.expand(n, -1, -1) if len(maps) == 1 and n > 1 else maps)
        return out

    def _context(
        self, fwd: ForwardPass, b: int, sel: Selection, layer: Layer, hvp: torch.Tensor | None
    ) -> LayerContext:
        """Build the :class:`LayerContext` a method sees for image ``b`` and one layer."""
        image = fwd.image[b : b + 1].detach()

        def score(inputs: torch.Tensor, hook: Any = None) -> torch.Tensor:
            return self._score(inputs, sel, layer, hook)

        return LayerContext(image, sel, layer.label, self.config.eigen_smooth, score, hvp, self.config.target)

    def _score(self, inputs: torch.Tensor, sel: Selection, layer: Layer, hook: Any) -> torch.Tensor:
        """Target values (K, n) of one image's predictions on K modified copies of its input (no grad)."""
        captured: dict[str, Any] = {}
        handles = [self.adapter.head.register_forward_hook(lambda m, i, o: captured.__setitem__("head", o))]
        if hook is not None:
            handles.append(layer.module.register_forward_hook(hook))
        try:
            with torch.no_grad():
                self.backend(inputs.to(fwd_dtype(self.backend)))
                values = self._target_values(captured["head"], [sel] * len(inputs), tuple(inputs.shape[2:]), True)
        finally:
            for h in handles:
                h.remove()
        return torch.stack(values).float()

    def _target_values(self, head_out: Any, sels: list[Selection], imgsz: tuple, rematch: bool) -> list[torch.Tensor]:
        """The chosen target's (n,) values per image (``rematch``: re-find non-positional predictions)."""
        ctx = TargetContext(self.adapter, head_out, sels, imgsz, self.task, rematch and self.adapter.rematch)
        return self.target.values(ctx)

    @staticmethod
    def _scaled(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """ReLU, min-max and resize to the input size: grad-cam's per-layer ``scale_cam_image`` step."""
        maps = minmax(raw.float().clamp(min=0), inplace=True)
        return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]

    def _fused(self, layer_maps: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the layers (the method's rule, grad-cam's mean by default), then ReLU and min-max again."""
        fused = self.method.fuse(layer_maps).clamp_(min=0)
        return minmax(fused, inplace=True) if self.method.normalize else fused


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    """Set grad mode for the block and restore the previous mode afterwards, whatever the hooks set in between."""
    prev = torch.is_grad_enabled()
    torch.set_grad_enabled(enabled)
    try:
        yield
    finally:
        torch.set_grad_enabled(prev)


class _NativeBackend:
    """The ``AutoBackend`` attributes :class:`CamEngine` reads, around a native model (a trainer's EMA model)."""

    format = "pt"
    base_model = True
    fp16 = False  # a trainer validates its EMA model in float32 (fp16 only appears under autocast, not in weights)

    def __init__(self, net: torch.nn.Module) -> None:
        self.model = net
        self.names = net.names
        self.end2end = bool(getattr(net, "end2end", False))

    def __call__(self, x: torch.Tensor) -> Any:
        return self.model(x)


class _NotAFeatureMapError(Exception):
    """Raised inside a layer hook; turned into a LayerError once the hooks are gone."""


def _describe(net: torch.nn.Module, im: torch.Tensor) -> str:
    """The layer table for an error message, or a short note if the model cannot even run for it."""
    try:
        return describe_layers(net, tuple(im.shape[2:]))
    except Exception as e:  # the table is a courtesy; never let it hide the real error
        return f"  (could not list the layers: {type(e).__name__}: {e})"


def _has_prompts(net: torch.nn.Module) -> bool:
    """Whether a YOLOE network has prompt embeddings (without them it uses zeros and every score is constant)."""
    pe = getattr(net, "pe", None)
    return bool(isinstance(pe, torch.Tensor) and pe.numel() and pe.abs().sum() > 0) or hasattr(net.model[-1], "lrpc")


def _detach(x: Any) -> Any:
    """Detach every tensor in a nested output, keeping list/tuple/dict structure."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, dict):
        return {k: _detach(v) for k, v in x.items()}
    return x


def fwd_dtype(backend: Any) -> torch.dtype:
    """The dtype the backend's weights use."""
    return torch.float16 if getattr(backend, "fp16", False) else torch.float32
