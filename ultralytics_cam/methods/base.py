"""The contract between the CAM engine and a CAM method.

The engine owns everything Ultralytics-specific: the grad-enabled forward, the kept predictions, the one batched
backward, fusing layers and mapping back to the original image. A method only turns one layer's activations (and,
when it needs them, each prediction's gradients) into one raw map per prediction. That split lets us reuse grad-cam's
weighting code on our own per-prediction gradients instead of running grad-cam's one-image-at-a-time loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from ..heads import Selection
    from ..maps import CamMaps

__all__ = ["CamMethod", "LayerContext", "LocalGradients", "MethodSpec", "minmax"]

#: Upper bound on the dense (m, C, h, w) gradient stack the generic local fallback builds at once.
LOCAL_DENSE_BUDGET_BYTES = 32 * 2**20


@dataclass
class LayerContext:
    """What a method may need besides activations and gradients, for one image and one layer.

    Attributes:
        image: (1, 3, H, W) model input of the image.
        selection: the image's explained predictions (the chunk being processed).
        layer: the layer's label (index or module name).
        eigen_smooth: replace the channel sum by the first principal component (grad-cam's ``eigen_smooth``).
        score: ``score(inputs, hook=None) -> (K, n)``: the target values of the image's predictions on K modified
            copies of the input, with an optional forward hook on this layer (perturbation methods).
        hvp: (n, C, h, w) Hessian-vector products along the activations (only for ``second_order`` methods).
        target: the target name.
    """

    image: torch.Tensor
    selection: Selection
    layer: int | str
    eigen_smooth: bool = False
    score: Callable[..., torch.Tensor] | None = None
    hvp: torch.Tensor | None = None
    target: str = "class"


@dataclass
class LocalGradients:
    """Exact per-prediction gradients on one head-input level, as windows (the local head replay's output).

    The gradient of prediction i is zero outside the (k, k) window centred on its anchor (ys[i], xs[i]); ``grads``
    holds that window, ``windows`` the activations under it (zero where the window leaves the map). Everything a
    gradient method needs follows exactly from these and the level's full activations.

    Attributes:
        acts: (B, C, h, w) the level's activations for the whole batch, detached, float32.
        image: (m,) the image of each prediction.
        windows: (m, C, k, k) activation windows.
        grads: (m, C, k, k) gradient windows.
        inside: (m, 1, k, k) 1 where a window position lies on the map.
        ys: (m,) row of each window's centre on the map.
        xs: (m,) column of each window's centre.
    """

    acts: torch.Tensor
    image: torch.Tensor
    windows: torch.Tensor
    grads: torch.Tensor
    inside: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor

    @property
    def radius(self) -> int:
        """Half the window size."""
        return (self.grads.shape[-1] - 1) // 2

    def place(self, window_maps: torch.Tensor) -> torch.Tensor:
        """Put (m, k, k) window maps into zero (m, h, w) maps at their positions (off-map parts dropped)."""
        m, k = len(window_maps), window_maps.shape[-1]
        h, w = self.acts.shape[-2:]
        r = self.radius
        out = window_maps.new_zeros((m, h + 2 * r, w + 2 * r))
        rows = (self.ys[:, None] + torch.arange(k, device=out.device)[None]).long()
        cols = (self.xs[:, None] + torch.arange(k, device=out.device)[None]).long()
        out[torch.arange(m, device=out.device)[:, None, None], rows[:, :, None], cols[:, None, :]] = window_maps
        return out[:, r : r + h, r : r + w]

    def dense_grads(self, rows: torch.Tensor) -> torch.Tensor:
        """The full (len(rows), C, h, w) gradients of predictions ``rows`` (zero outside their windows)."""
        c, (h, w), r = self.acts.shape[1], self.acts.shape[-2:], self.radius
        g = self.grads[rows]
        out = g.new_zeros((len(rows), c, h + 2 * r, w + 2 * r))
        k = g.shape[-1]
        ar = torch.arange(k, device=g.device)
        rr = (self.ys[rows][:, None] + ar[None]).long()
        cc = (self.xs[rows][:, None] + ar[None]).long()
        idx = torch.arange(len(rows), device=g.device)
        out.permute(0, 2, 3, 1)[idx[:, None, None], rr[:, :, None], cc[:, None, :]] = g.permute(0, 2, 3, 1)
        return out[:, :, r : r + h, r : r + w]


class CamMethod:
    """Base class of a CAM method adapter. Capabilities are class attributes so they can be read without running."""

    #: Name shown to users and used for lookup (case-insensitive).
    name: ClassVar[str] = ""
    #: One-line description for ``yolo-cam methods``.
    summary: ClassVar[str] = ""
    #: The engine runs the batched backward only for methods that need per-prediction gradients.
    needs_gradients: ClassVar[bool] = True
    #: Methods that also need Hessian-vector products (ShapleyCAM).
    second_order: ClassVar[bool] = False
    #: False: the method ignores the prediction and gives every prediction of an image the same map (EigenCAM).
    per_prediction: ClassVar[bool] = True
    #: False: the method draws maps in input space without reading any layer (ConfidenceMap).
    uses_activations: ClassVar[bool] = True
    #: Scale each prediction's map to [0, 1] (False keeps absolute values, e.g. confidences).
    normalize: ClassVar[bool] = True
    #: Targets the method supports; ``None`` means every target of the task.
    targets: ClassVar[tuple[str, ...] | None] = None
    #: The method runs extra forward passes of its own (ScoreCAM, AblationCAM): the engine then leaves Ultralytics'
    #: inference mode for the whole batch.
    runs_forwards: ClassVar[bool] = False
    #: The method reads only the model's post-processed predictions on perturbed inputs (DRISE): it runs through
    #: :class:`~ultralytics_cam.blackbox.BlackBoxEngine` on any backend Ultralytics loads, exported models included.
    black_box: ClassVar[bool] = False

    def layer_map(self, acts: torch.Tensor, grads: torch.Tensor | None, ctx: LayerContext) -> torch.Tensor:
        """Return the raw (n, h, w) map of each prediction on one layer, before ReLU and normalisation.

        Args:
            acts: (1, C, h, w) activations of the image at this layer (detached, float32).
            grads: (n, C, h, w) gradient of each prediction's target with respect to ``acts`` (None for methods
                that do not need gradients).
            ctx: the rest of what a method may need.

        Returns:
            (n, h, w) raw maps, or (1, h, w) when the method is not per prediction.
        """
        raise NotImplementedError

    def local_layer_map(
        self, local: LocalGradients, context: Callable[[int, torch.Tensor], LayerContext]
    ) -> torch.Tensor:
        """Return the raw (m, h, w) maps of the predictions of one head-input level from their gradient windows.

        The default is exact for every gradient method: it rebuilds each image's dense gradients (zero outside the
        windows, a chunk at a time) and calls :meth:`layer_map`. Methods override it to work on the windows alone.

        Args:
            local: the level's activations and the predictions' gradient windows.
            context: ``context(b, rows)`` builds the :class:`LayerContext` of image ``b``'s predictions ``rows``.
        """
        c, (h, w) = local.acts.shape[1], local.acts.shape[-2:]
        out = local.acts.new_zeros((len(local.image), h, w))
        chunk = max(1, LOCAL_DENSE_BUDGET_BYTES // max(c * h * w * 4, 1))
        for b in torch.unique(local.image).tolist():
            rows = (local.image == b).nonzero().view(-1)
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                grads = local.dense_grads(part)
                out[part] = self.layer_map(local.acts[b : b + 1], grads, context(b, part))
        return out

    @property
    def fuses_by_mean(self) -> bool:
        """Whether :meth:`fuse` is grad-cam's mean of the layer maps (maps then stay compact patches until drawn).

        Derived from whether the class overrides :meth:`fuse`, so an override always takes effect.
        """
        return type(self).fuse is CamMethod.fuse

    def fuse(self, layer_maps: list[torch.Tensor]) -> torch.Tensor:
        """Combine the per-layer maps (each (n, H, W) in [0, 1] at input size) as grad-cam does: their mean.

        Summed in place into the first map (the engine's own tensor): stacking L full-size map sets first cost a
        third of the time of a 50-prediction 640 px image.
        """
        total = layer_maps[0]
        for m in layer_maps[1:]:
            total += m
        return total / len(layer_maps)

    def transform_targets(self, values: torch.Tensor, logits: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """Optionally replace each prediction's target value; ``logits`` are its (n, nc) class logits."""
        return values

    @property
    def transforms_targets(self) -> bool:
        """Whether the class overrides :meth:`transform_targets` (the engine then fetches the class logits)."""
        return type(self).transform_targets is not CamMethod.transform_targets

    def input_maps(self, selection: Selection, task: str, imgsz: tuple[int, int]) -> torch.Tensor:
        """Return (n, H, W) maps drawn directly in input space (only for ``uses_activations = False``)."""
        raise NotImplementedError

    def lazy_input_maps(self, selection: Selection, task: str, imgsz: tuple[int, int]) -> CamMaps:
        """Return the maps of :meth:`input_maps` as :class:`~ultralytics_cam.maps.CamMaps` (default: drawn now)."""
        from ..maps import CamMaps

        maps = self.input_maps(selection, task, imgsz)
        return CamMaps.from_dense(maps.flip(-1) if selection.flipped else maps, path="forward")

    def check(self, task: str, nc: int, target: str) -> None:
        """Raise :class:`~ultralytics_cam.errors.MethodError` if the method cannot run on this model and target."""
        from ..errors import MethodError

        if self.targets is not None and target not in self.targets:
            raise MethodError(
                f"method '{self.name}' explains only target {', '.join(repr(t) for t in self.targets)}; "
                f"got target='{target}'."
            )


@dataclass(frozen=True)
class MethodSpec:
    """A CAM method as the registry knows it.

    Attributes:
        name: the user-facing name, looked up case-insensitively.
        factory: builds a fresh :class:`CamMethod`; ``None`` for a refused method.
        needs_gradients: whether the method runs a backward pass.
        summary: one line for ``yolo-cam methods``.
        refused: why the method cannot run on Ultralytics models (``None`` if it can).
        source: where the mathematics comes from ("grad-cam" or "ultralytics-cam").
        per_prediction: whether each prediction gets its own map.
        black_box: whether the method needs only the model's predictions (it then runs on exported models too).
        provider: the plugin or package that registered it.
    """

    name: str
    factory: Callable[[], CamMethod] | None
    needs_gradients: bool
    summary: str
    refused: str | None = None
    source: str = "grad-cam"
    per_prediction: bool = True
    black_box: bool = False
    provider: str = field(default="ultralytics-cam", compare=False)

    @classmethod
    def of(cls, method: type[CamMethod], source: str = "grad-cam") -> MethodSpec:
        """Build the spec of a :class:`CamMethod` subclass from its class attributes."""
        return cls(
            name=method.name,
            factory=method,
            needs_gradients=method.needs_gradients,
            summary=method.summary,
            source=source,
            per_prediction=method.per_prediction,
            black_box=method.black_box,
        )


def minmax(maps: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Scale each (h, w) map of an (n, h, w) stack to [0, 1] as grad-cam's ``scale_cam_image`` does.

    grad-cam divides by ``1e-7 + max``, an absolute epsilon that keeps maps with small gradients from reaching 1 (see
    the methods notes); here a map is divided by its own range and an all-constant map becomes exactly zero.
    ``inplace`` overwrites ``maps`` (full-size map stacks are the engine's largest tensors).
    """
    if maps.numel() == 0:
        return maps
    lo, hi = torch.aminmax(maps.flatten(1), dim=1)
    rng = (hi - lo)[:, None, None]
    out = maps.sub_(lo[:, None, None]) if inplace else maps - lo[:, None, None]
    return out.div_(rng.clamp(min=torch.finfo(maps.dtype).tiny)).mul_(rng > 0)
