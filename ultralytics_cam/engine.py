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

On YOLO anchor heads read through ``layers="auto"`` (the head's inputs), gradient methods take the **local path**
instead (:mod:`ultralytics_cam.replay`): a plain inference forward keeps the head inputs, and each prediction's exact
gradient comes from replaying its head branch on its small window of the input, all predictions as one tiny batch.
The dense backward stays the general path (other layers, mask and plugin targets, RT-DETR, classify, second-order
methods); both give the same maps (oracle tests). The path taken is logged and recorded in ``cam.json``.

Maps come out as :class:`~ultralytics_cam.maps.CamMaps`: per-layer maps at each layer's own resolution, upsampled,
fused and normalised only when asked for, patch by patch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import torch
import torch.nn.functional as F

from ._logging import LOGGER, PREFIX
from .config import CamConfig
from .errors import LayerError, MethodError, UnsupportedModelError
from .heads import AnchorHeadAdapter, DenseHeadAdapter, Selection, adapter_for
from .layers import Layer, describe_layers, resolve_layers
from .maps import CamMaps
from .methods import CamMethod, LayerContext
from .methods.base import LocalGradients, minmax
from .plugins import check_target, target_registry
from .targets import TargetContext

if TYPE_CHECKING:
    from .replay import Branch

__all__ = [
    "CPU_GRADIENT_BUDGET_BYTES",
    "GRADIENT_BUDGET_BYTES",
    "CamEngine",
    "ForwardPass",
    "HeadOutput",
    "PredictorArgs",
    "PredictorLike",
]

#: Upper bound on the per-prediction gradients one batched backward produces; more predictions are split into chunks
#: (one ``autograd.grad(..., is_grads_batched=True)`` call each). On the CPU large batched backwards are slower than
#: small ones: yolo11n, bus.jpg at 640 px, 55 predictions, 1 thread: 1, 2, 4, 8, 16, 32, 64, 512 MiB -> 1.16-1.36,
#: 1.17, 1.12-1.13, 1.17, 1.29, 1.56, 1.93, 2.41 s; peak memory grows with the chunk too (2 images x 70 predictions:
#: 512 MiB -> 2.6 GB RSS, 32 MiB -> 1.4 GB). Accelerators get a larger budget, where batching pays.
CPU_GRADIENT_BUDGET_BYTES = 8 * 2**20
GRADIENT_BUDGET_BYTES = 256 * 2**20

#: grad-cam's ``aug_smooth`` test-time augmentations (ttach): horizontal flip x brightness factors.
AUGMENTATIONS = [(flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1)]


class PredictorArgs(Protocol):
    """The run settings :class:`CamEngine` reads from a predictor's ``args`` (Ultralytics' ``get_cfg`` namespace)."""

    @property
    def task(self) -> str:
        """The model's task: "detect", "segment", "classify", ..."""

    @property
    def imgsz(self) -> int | Sequence[int]:
        """The input size as the user gave it: an int or [h, w]."""

    @property
    def verbose(self) -> bool:
        """Whether layer resolution logs what it chose."""


class PredictorLike(Protocol):
    """What :class:`CamEngine` needs from a predictor: its model and its run settings, nothing else.

    An Ultralytics predictor after ``setup_model`` is one; :meth:`CamEngine.for_model` builds one around a validator's
    or trainer's model.
    """

    @property
    def model(self) -> Any:
        """The AutoBackend (an nn.Module whose names, fp16, format, ... are set at run time, so typed Any)."""

    @property
    def args(self) -> PredictorArgs:
        """The run settings."""


#: What a head's forward returns in eval mode, as its forward hook captures it: a tuple (decoded predictions, raw
#: outputs) for anchor heads (raw: a dict of branch tensors), Classify and RT-DETR; one tensor for semantic and depth
#: heads. Head adapters (:mod:`ultralytics_cam.heads`) know how their family's output is laid out.
HeadOutput: TypeAlias = "torch.Tensor | tuple[Any, Any]"


@dataclass
class ForwardPass:
    """What one grad-enabled forward left behind for :meth:`CamEngine.explain`."""

    preds: Any  # model outputs, detached, as Ultralytics' postprocess expects them (a tensor or nested tuples/lists)
    head_out: HeadOutput  # the head's own output, still attached to the graph
    acts: list[torch.Tensor]  # per target layer, (B, C, h, w)
    image: torch.Tensor  # (B, 3, H, W) model input
    graph: bool = True  # whether the autograd graph was recorded (False on the local path)


class CamEngine:
    """Explains the predictions of one predictor's model with one CAM method, target and set of layers."""

    def __init__(self, predictor: PredictorLike, config: CamConfig) -> None:
        """Check the model and options, resolve the layers and build the method.

        Raises:
            UnsupportedModelError: the predictor does not run a PyTorch model with a supported head.
            LayerError: the layers do not fit this model.
            MethodError: the method does not fit this model or task.
            TargetError: the target does not fit this model's task or head.
            ValueError: ``region`` is given for a model that is neither semantic nor depth.
        """
        from ultralytics.utils.torch_utils import unwrap_model

        # AutoBackend (or _NativeBackend): its names, fp16, format, ... are set at run time, so typing sees them as Any
        backend: Any = unwrap_model(predictor.model)
        if getattr(backend, "format", "pt") != "pt" or not getattr(backend, "base_model", True):
            raise UnsupportedModelError(
                f"CAM needs the PyTorch weights (.pt) of the model; this one is a '{getattr(backend, 'format', '?')}' "
                "export, which has no layers to read and no gradients. Load the .pt file instead."
            )
        self.predictor = predictor
        self.config = config
        self.backend = backend
        self.net: torch.nn.Module = backend.model  # the predictor's own fused copy: the user's model is never touched
        self.task = predictor.args.task
        self.adapter = adapter_for(self.net, self.task)
        spec = config.target_spec
        if isinstance(self.adapter, DenseHeadAdapter):  # semantic / depth: region= and the task's default target
            self.adapter.region = config.region
            default = self.adapter.default_target(config.target)  # depth reads target="class" as near (or mean)
            if default != config.target:  # the one name the config cannot resolve: it depends on the model's head
                spec = target_registry().get(default)
        self.target = check_target(spec, self.task, type(self.adapter.head).__name__)
        if isinstance(self.adapter, DenseHeadAdapter):
            self.adapter.target = self.target.name
        if type(self.net).__name__.startswith("YOLOE") and not _has_prompts(self.net):
            raise UnsupportedModelError(
                "This YOLOE model has no class prompts, so its class scores do not depend on the image and there is "
                "nothing to explain. Set prompts first: model.set_classes(names, model.get_text_pe(names)), or use "
                "visual prompts."
            )
        factory = config.method_spec.factory
        assert factory is not None  # CamConfig refuses the methods without a factory (refused ones)
        if config.method_spec.black_box:  # its maps come from masked forwards through a predictor (blackbox.py)
            raise MethodError(
                f"method '{config.method_spec.name}' is a black-box method: it runs through model.cam, yolo-cam "
                "predict or the val failure hook (ultralytics_cam.blackbox), not through CamEngine."
            )
        self.method: CamMethod = factory()
        self.method.check(self.task, len(predictor.model.names), self.target.name)
        if isinstance(self.adapter, DenseHeadAdapter):
            self.adapter.check_method(self.method)
        elif config.region is not None:
            raise ValueError(
                f"region= applies to semantic and depth models; this model's task is '{self.task}' (its predictions "
                "are explained one by one already)."
            )
        self.layers: list[Layer] = (
            []
            if not self.method.uses_activations
            else resolve_layers(self.net, config.layer_spec, imgsz=predictor.args.imgsz, verbose=predictor.args.verbose)
        )
        self.fp16 = bool(getattr(backend, "fp16", False))
        self._rematch = False  # set per explained pass: True on augmented inputs for non-positional heads
        self._warned_unreached = False
        self.blocks, reason = self._local_plan()
        self.path = "forward" if not self.method.needs_gradients else "local" if self.blocks else "dense"
        LOGGER.debug(f"{PREFIX}{self.method.name} takes the {self.path} path: {reason}")

    def _local_plan(self) -> tuple[dict[str, list[Branch]], str]:
        """The head branches the local head replay runs for this method, target and layers, or {} and why not."""
        from .replay import BranchError, head_blocks
        from .targets import ComposedTarget

        method, adapter, target = self.method, self.adapter, self.target
        if not method.needs_gradients:
            return {}, "the method needs no backward (one forward pass)"
        if method.second_order:
            return {}, f"{method.name} needs second derivatives"
        if not self.config.head_replay:
            return {}, "head_replay=False"
        if not self.layers or any(layer.head_input is None for layer in self.layers):
            return {}, "explicit layers are read through every path to the score (layers='auto' reads the head inputs)"
        if not isinstance(target.values, ComposedTarget):
            return {}, f"target '{target.name}': a plugin target that is not composed of the heads' building blocks"
        needed, why = adapter.replay_outputs(target.values.blocks)
        if needed is None:
            return {}, f"target '{target.name}': {why}"
        needed = {*needed, "scores"} if method.transforms_targets else set(needed)
        try:
            blocks = head_blocks(adapter.head)
        except BranchError as e:
            return {}, str(e)
        missing = sorted(needed - blocks.keys())
        if missing:
            return {}, f"the head's {', '.join(missing)} branch is not provably local"
        if len(self.layers) != adapter.head.nl:
            return {}, "not every head input is read"
        return {k: blocks[k] for k in needed}, "every prediction replays its head branch on its window"

    @classmethod
    def for_model(
        cls, model: torch.nn.Module, task: str, config: CamConfig, *, imgsz: Any = 640, verbose: bool = False
    ) -> CamEngine:
        """Build an engine for a model that no predictor runs: a validator's ``AutoBackend`` or a native model.

        A native Ultralytics model (``DetectionModel``, ... such as the EMA model a trainer validates) is wrapped in
        the few ``AutoBackend`` attributes the engine reads. Raises what :class:`CamEngine` raises.
        """
        from ultralytics.nn.tasks import BaseModel
        from ultralytics.utils.torch_utils import unwrap_model

        backend: Any = unwrap_model(model)
        if isinstance(backend, BaseModel):
            backend = _NativeBackend(backend)
        return cls(_ModelHost(backend, _HostArgs(task, imgsz, verbose)), config)

    # -- forward -----------------------------------------------------------------------------------------------------
    def forward(self, im: torch.Tensor, graph: bool | None = None) -> ForwardPass:
        """Run the model on ``im`` with the target layers hooked.

        ``graph`` (default: the method needs the dense backward) records the autograd graph from the first target
        layer on; without it the forward is a plain inference forward (the local path, methods without gradients).

        Raises:
            LayerError: a target layer does not output a feature map (N, C, H, W).
        """
        graph = self.path == "dense" if graph is None else graph
        acts: dict[int, torch.Tensor] = {}
        captured: dict[str, HeadOutput] = {}
        head_inputs = {layer.head_input: i for i, layer in enumerate(self.layers) if layer.head_input is not None}

        def keep(i: int, layer: Layer, output: Any) -> torch.Tensor:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise _NotAFeatureMapError(f"layer {layer.label!r} ({layer.type}) outputs {got}")
            feature: torch.Tensor = output
            if graph:
                torch.set_grad_enabled(True)  # record the graph from the first target layer on
                if not feature.requires_grad or layer.head_input is not None:
                    feature = feature.detach().requires_grad_(True)  # gradients stop here
            acts[i] = feature
            return feature

        def layer_hook(i: int, layer: Layer) -> Callable[[torch.nn.Module, Any, Any], torch.Tensor]:
            return lambda module, inputs, output: keep(i, layer, output)

        def head_pre_hook(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            # The head's inputs as the head sees them; with a graph they become leaves, so that gradients are taken
            # with respect to the head's arguments and never run back through the neck into the other levels.
            feats = args[0]
            items = [feats] if isinstance(feats, torch.Tensor) else list(feats)
            for level, i in head_inputs.items():
                items[level] = keep(i, self.layers[i], items[level])
            if not graph:
                return None
            return (items[0] if isinstance(feats, torch.Tensor) else type(feats)(items), *args[1:])

        def head_hook(module: torch.nn.Module, inputs: Any, output: HeadOutput) -> None:
            captured["head"] = output

        handles = [
            layer.module.register_forward_hook(layer_hook(i, layer))
            for i, layer in enumerate(self.layers)
            if layer.head_input is None
        ]
        if head_inputs:
            handles.append(self.adapter.head.register_forward_pre_hook(head_pre_hook))
        handles.append(self.adapter.head.register_forward_hook(head_hook))
        stay = not graph and not self.method.runs_forwards  # a plain forward may stay in Ultralytics' inference mode
        try:
            if stay:
                x = im
                preds = self.backend(x)
            else:
                self.adapter.reset_caches()
                with torch.inference_mode(False), _grad_mode(False):
                    x = im.clone()  # a normal tensor: the predictor's input is an inference tensor
                    preds = self.backend(x)
        except _NotAFeatureMapError as e:
            bad: str | None = str(e)
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
        return ForwardPass(_detach(preds), captured["head"], [acts[i] for i in range(len(self.layers))], x, graph)

    # -- explain -----------------------------------------------------------------------------------------------------
    def explain(self, fwd: ForwardPass, selections: list[Selection]) -> list[CamMaps]:
        """Return, per image, the :class:`~ultralytics_cam.maps.CamMaps` of its selected predictions.

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
            imgsz = _hw(fwd.image)
            total = [m.dense() for m in maps]
            for flip, factor in AUGMENTATIONS:
                if not flip and factor == 1.0:
                    continue  # the pass above
                x = fwd.image.detach() * factor
                aug = self.forward(x.flip(-1) if flip else x)
                aug_sels = [self.adapter.flip(s, aug.head_out, imgsz) if flip else s for s in sels]
                extra = self._explain_once(aug, aug_sels, rematch=True)
                total = [t + (m.dense().flip(-1) if flip else m.dense()) for t, m in zip(total, extra)]
            return [CamMaps.from_dense(t / len(AUGMENTATIONS), path=m.path) for t, m in zip(total, maps)]

    def _explain_once(self, fwd: ForwardPass, sels: list[Selection], rematch: bool = False) -> list[CamMaps]:
        """Explain one forward pass (``rematch``: the input was augmented, re-find non-positional predictions)."""
        self._rematch = rematch and self.adapter.rematch
        hw = _hw(fwd.image)
        if not self.method.uses_activations:
            return [self.method.lazy_input_maps(s, self.task, hw) for s in sels]
        if self.method.needs_gradients and self.path == "local" and not fwd.graph:
            try:
                return self._explain_local(fwd, sels)
            except _ReplayMismatchError as e:
                LOGGER.warning(
                    f"{PREFIX}the local head replay does not reproduce this head's outputs ({e}); "
                    "taking the dense backward from now on. Please report this with your model."
                )
                self.path = "dense"
                fwd = self.forward(fwd.image, graph=True)
        if self.method.needs_gradients:
            return self._explain_with_gradients(fwd, sels)
        return self._explain_without_gradients(fwd, sels)

    def _explain_local(self, fwd: ForwardPass, sels: list[Selection]) -> list[CamMaps]:
        """The local head replay: every prediction's gradient from its window, all predictions as one small batch."""
        from .replay import cut_windows

        hw = _hw(fwd.image)
        counts = [len(s) for s in sels]
        stacks = [
            [a.new_zeros((n, *a.shape[-2:]), dtype=torch.float32) for a in fwd.acts] for n in counts
        ]  # per image, per layer: (n, h, w) layer maps
        adapter = self.adapter
        assert isinstance(adapter, AnchorHeadAdapter)  # _local_plan: only anchor heads replay their branches
        if sum(counts):
            by_level = {layer.head_input: _hw(a) for layer, a in zip(self.layers, fwd.acts)}
            shapes = [by_level[level] for level in range(len(self.layers))]  # every level is read (_local_plan)
            index = torch.cat([s.index for s in sels])
            image = torch.cat([torch.full((n,), b, dtype=torch.long) for b, n in enumerate(counts)]).to(index.device)
            row = torch.cat([torch.arange(n) for n in counts]).to(index.device)
            cls = torch.cat([s.cls for s in sels])
            flipped = any(s.flipped for s in sels)
            level, ys, xs = adapter.anchor_cells(index, shapes)
            raw = adapter.branch(fwd.head_out)
            scale = 1024.0 if self.fp16 else 1.0  # half-precision graphs underflow small gradients: scale as AMP does
            for li, layer in enumerate(self.layers):
                head_input = layer.head_input
                assert head_input is not None  # _local_plan: every layer is a head input
                rows = (level == head_input).nonzero().view(-1)
                if len(rows) == 0:
                    continue
                branches = {k: v[head_input] for k, v in self.blocks.items()}
                radius = max(b.radius for b in branches.values())
                acts = fwd.acts[li]
                windows, inside = cut_windows(acts, image[rows], ys[rows], xs[rows], radius)
                windows = windows.detach().requires_grad_(True)
                with torch.enable_grad():
                    outs = {k: _run_cropped(b, windows, inside, radius) for k, b in branches.items()}
                    _check_replay(outs, raw, image[rows], index[rows], self.fp16)
                    replayed, sel = adapter.replayed(outs, cls[rows], flipped)  # the target reads the replay
                    (values,) = self._target_values(replayed, [sel], hw, False)
                    if self.method.transforms_targets:
                        values = self.method.transform_targets(values, outs["scores"], cls[rows])
                    (grads,) = torch.autograd.grad(values.float().sum() * scale, windows)
                local = LocalGradients(
                    acts.detach().float(),
                    image[rows],
                    windows.detach().float(),
                    grads.float() / scale,
                    inside.float(),
                    ys[rows],
                    xs[rows],
                )

                def context(b: int, part: torch.Tensor, li: int = li, rows: torch.Tensor = rows) -> LayerContext:
                    return self._context(fwd, b, sels[b].subset(row[rows[part]]), self.layers[li], None)

                layer_maps = minmax(self.method.local_layer_map(local, context).float().clamp(min=0), inplace=True)
                for b in torch.unique(image[rows]).tolist():
                    mine = (image[rows] == b).nonzero().view(-1)
                    stacks[b][li][row[rows[mine]]] = layer_maps[mine].to(stacks[b][li].device)
        return [self._maps(layers, hw, "local") for layers in stacks]

    def _maps(
        self, layers: list[torch.Tensor], hw: tuple[int, int], path: str, shared: bool = False, n: int = 0
    ) -> CamMaps:
        """Wrap per-layer maps (ReLU'd, min-max scaled) in :class:`CamMaps` with the method's fusion rule."""
        fuse = None if self.method.fuses_by_mean else self.method.fuse
        return CamMaps.from_layers(
            layers, hw, fuse=fuse, normalize=self.method.normalize, shared=shared, n=n if shared else None, path=path
        )

    def _targets(self, fwd: ForwardPass, sels: list[Selection]) -> list[torch.Tensor]:
        """Each image's (n,) target values, differentiable, with the method's target transform applied."""
        with torch.enable_grad():
            values = self._target_values(fwd.head_out, sels, _hw(fwd.image), self._rematch)
            if self.method.transforms_targets:
                logits = self.adapter.class_logits(fwd.head_out, sels, _hw(fwd.image), self._rematch)
                values = [self.method.transform_targets(v, lg, s.cls) for v, lg, s in zip(values, logits, sels)]
        return values

    def _explain_with_gradients(self, fwd: ForwardPass, sels: list[Selection]) -> list[CamMaps]:
        """One batched backward (chunked to the memory budget) for all predictions of the batch."""
        counts = [len(s) for s in sels]
        n_slots, n_img = max(counts, default=0), len(sels)
        hw = _hw(fwd.image)
        stacks = [[a.new_zeros((n, *a.shape[-2:]), dtype=torch.float32) for a in fwd.acts] for n in counts]
        if n_slots == 0:
            return [self._maps(layers, hw, "dense") for layers in stacks]
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
            found = torch.autograd.grad(
                table.flatten(),
                acts,
                grad_outputs=seeds.flatten(1),
                is_grads_batched=True,
                retain_graph=not last or self.method.second_order,
                create_graph=self.method.second_order,
                allow_unused=True,
            )
            grads = [torch.zeros_like(a).expand(j1 - j0, *a.shape) if g is None else g for g, a in zip(found, acts)]
            reached = reached or any(bool(g.detach().abs().amax() > 0) for g in grads)
            hvps: list[torch.Tensor | None] = (
                list(self._hvps(grads, acts, last)) if self.method.second_order else [None] * len(acts)
            )
            for b, n in enumerate(counts):
                if j0 >= n:
                    continue
                rows = slice(0, min(j1, n) - j0)
                sel = sels[b].subset(torch.arange(j0, min(j1, n)))
                for li, layer in enumerate(self.layers):
                    g = grads[li][rows, b].detach().float() / scale
                    h = hvps[li]
                    hvp = None if h is None else h[rows, b].float() / scale
                    ctx = self._context(fwd, b, sel, layer, hvp)
                    raw = self.method.layer_map(acts[li][b : b + 1].detach().float(), g, ctx)
                    stacks[b][li][j0 : min(j1, n)] = self._normalised(raw)
            del grads, hvps
        if not reached and not self._warned_unreached:  # legitimate (P3 predictions never reach the P5 input): say why
            self._warned_unreached = True  # once per predictor (engine), not once per batch
            labels = [layer.label for layer in self.layers]
            LOGGER.warning(
                f"{PREFIX}the explained scores of this batch do not depend on layers {labels}: every gradient there is "
                "zero, so their maps are empty. Predictions of one pyramid level do not use the other levels' head "
                "inputs; layers='auto' reads all of them."
            )
        return [self._maps(layers, hw, "dense") for layers in stacks]

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

    def _explain_without_gradients(self, fwd: ForwardPass, sels: list[Selection]) -> list[CamMaps]:
        """Gradient-free methods: per image, per layer, no backward (perturbation methods run forwards)."""
        hw = _hw(fwd.image)
        out = []
        for b, sel in enumerate(sels):
            n = len(sel)
            if n == 0:
                out.append(self._maps([a.new_zeros((0, *a.shape[-2:])) for a in fwd.acts], hw, "forward"))
                continue
            layers = []
            for li, layer in enumerate(self.layers):
                ctx = self._context(fwd, b, sel, layer, None)
                layers.append(
                    self._normalised(self.method.layer_map(fwd.acts[li][b : b + 1].detach().float(), None, ctx))
                )
            shared = len(layers[0]) == 1 and n > 1  # one map for every prediction (EigenCAM, FEM, KPCA_CAM)
            out.append(self._maps(layers, hw, "forward", shared=shared, n=n))
        return out

    def _context(
        self, fwd: ForwardPass, b: int, sel: Selection, layer: Layer, hvp: torch.Tensor | None
    ) -> LayerContext:
        """Build the :class:`LayerContext` a method sees for image ``b`` and one layer."""
        image = fwd.image[b : b + 1].detach()

        def score(inputs: torch.Tensor, hook: Any = None) -> torch.Tensor:
            return self._score(inputs, sel, layer, hook)

        return LayerContext(image, sel, layer.label, self.config.eigen_smooth, score, hvp, self.target.name)

    def _score(self, inputs: torch.Tensor, sel: Selection, layer: Layer, hook: Any) -> torch.Tensor:
        """Target values (K, n) of one image's predictions on K modified copies of its input (no grad)."""
        captured: dict[str, HeadOutput] = {}
        handles = [self.adapter.head.register_forward_hook(lambda m, i, o: captured.__setitem__("head", o))]
        if hook is not None:
            handles.append(layer.module.register_forward_hook(hook))
        try:
            with torch.no_grad():
                self.backend(inputs.to(fwd_dtype(self.backend)))
                values = self._target_values(captured["head"], [sel] * len(inputs), _hw(inputs), True)
        finally:
            for h in handles:
                h.remove()
        return torch.stack(values).float()

    def _target_values(
        self, head_out: HeadOutput, sels: list[Selection], imgsz: tuple[int, int], rematch: bool
    ) -> list[torch.Tensor]:
        """The chosen target's (n,) values per image (``rematch``: re-find non-positional predictions)."""
        ctx = TargetContext(self.adapter, head_out, sels, imgsz, self.task, rematch and self.adapter.rematch)
        return self.target.values(ctx)

    @staticmethod
    def _normalised(raw: torch.Tensor) -> torch.Tensor:
        """ReLU and min-max at the layer's resolution: grad-cam's per-layer ``scale_cam_image`` before its resize."""
        return minmax(raw.float().clamp(min=0), inplace=True)


@contextlib.contextmanager
def _grad_mode(enabled: bool) -> Iterator[None]:
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


@dataclass(frozen=True)
class _HostArgs:
    """The :class:`PredictorArgs` of :meth:`CamEngine.for_model`'s stand-in predictor."""

    task: str
    imgsz: int | Sequence[int]
    verbose: bool


@dataclass(frozen=True)
class _ModelHost:
    """The :class:`PredictorLike` stand-in :meth:`CamEngine.for_model` builds around a model no predictor runs."""

    model: Any  # an AutoBackend or a _NativeBackend
    args: _HostArgs


class _NotAFeatureMapError(Exception):
    """Raised inside a layer hook; turned into a LayerError once the hooks are gone."""


class _ReplayMismatchError(Exception):
    """The local replay's head outputs differ from the head's own: never trust its gradients then."""


def _run_cropped(branch: Branch, windows: torch.Tensor, inside: torch.Tensor, radius: int) -> torch.Tensor:
    """Run a branch on the centre of windows cut for a (possibly larger) radius."""
    d = radius - branch.radius
    if d:
        k = windows.shape[-1]
        windows, inside = windows[..., d : k - d, d : k - d], inside[..., d : k - d, d : k - d]
    return branch(windows, inside)


def _check_replay(
    outs: dict[str, torch.Tensor], raw: dict[str, Any], image: torch.Tensor, index: torch.Tensor, fp16: bool
) -> None:
    """Compare the replayed outputs with the head's own at the same anchors (cheap; guards every batch)."""
    tol = 1e-2 if fp16 else 1e-3
    for key, got in outs.items():
        want = raw[key][image, :, index].to(got.dtype)
        err = float((got.detach() - want).abs().max()) if got.numel() else 0.0
        if err > tol * max(1.0, float(want.abs().max()) if want.numel() else 1.0):
            raise _ReplayMismatchError(f"'{key}' differs by {err:.3g}")


def _describe(net: torch.nn.Module, im: torch.Tensor) -> str:
    """The layer table for an error message, or a short note if the model cannot even run for it."""
    try:
        return describe_layers(net, _hw(im))
    except Exception as e:  # the table is a courtesy; never let it hide the real error
        return f"  (could not list the layers: {type(e).__name__}: {e})"


def _has_prompts(net: torch.nn.Module) -> bool:
    """Whether a YOLOE network has prompt embeddings (without them it uses zeros and every score is constant)."""
    pe = getattr(net, "pe", None)
    layers: Any = net.model  # an nn.Sequential, which nn.Module's __getattr__ types as Tensor | Module
    return bool(isinstance(pe, torch.Tensor) and pe.numel() and pe.abs().sum() > 0) or hasattr(layers[-1], "lrpc")


def _hw(x: torch.Tensor) -> tuple[int, int]:
    """The (height, width) of an image or feature-map tensor."""
    h, w = x.shape[-2:]
    return int(h), int(w)


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
