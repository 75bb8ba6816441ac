"""Which layers a CAM reads: ``layers="auto"``, indices, or module names, resolved on the model's own metadata.

``auto`` follows the head's ``.f`` (the layers it reads from): the feature maps entering a YOLO head (one per pyramid
level), the decoder inputs of RT-DETR, the last spatial layer feeding a Classify head. No magic negative offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ._logging import LOGGER, PREFIX
from .errors import LayerError

__all__ = ["Layer", "LayerSpec", "describe_layers", "parse_layers", "resolve_layers"]

#: A parsed ``layers=`` value (:func:`parse_layers`): "auto", or indices and module names in the user's order.
LayerSpec = Literal["auto"] | list[int | str]


@dataclass(frozen=True)
class Layer:
    """A layer to read: its label (the top-level index, or the module name) and the module itself.

    ``head_input`` is set for ``layers="auto"`` on heads: the layer is read as the head's input number
    ``head_input``, as the head sees it. Gradients are then taken with respect to the head's inputs (the head is the
    function explained), so a prediction's map comes from the level it is made on, and on YOLO anchor heads the local
    head replay applies. An explicitly listed layer is read as grad-cam reads a target layer: its output, with
    gradients through every path from it to the score (for a head input, also through the neck into the other
    levels).
    """

    label: int | str
    module: torch.nn.Module
    head_input: int | None = None

    @property
    def type(self) -> str:
        """The module's class name."""
        return type(self.module).__name__


def parse_layers(spec: Any) -> LayerSpec:
    """Normalise a ``layers=`` value: "auto", an int, a list of ints / names, or a comma-separated string.

    Raises:
        LayerError: the value has the wrong type or is empty.
    """
    if isinstance(spec, str):
        spec = spec.strip()
        if spec.lower() == "auto":
            return "auto"
        items = [s.strip() for s in spec.strip("[]()").split(",") if s.strip()]
    elif isinstance(spec, int) and not isinstance(spec, bool):
        items = [spec]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    else:
        items = None
    if not items:
        raise LayerError(
            f"layers={spec!r} is not valid: use 'auto', a layer index such as 16, a list such as [16, 19, 22] or "
            "'16,19,22', or module names such as 'model.16'."
        )
    out: list[int | str] = []
    for item in items:
        layer = int(item) if isinstance(item, str) and item.lstrip("-").isdigit() else item
        if isinstance(layer, bool) or not isinstance(layer, (int, str)):
            raise LayerError(f"layers={spec!r}: {layer!r} is neither a layer index nor a module name.")
        out.append(layer)
    return out


def reset_head_caches(head: torch.nn.Module) -> None:
    """Drop a head's cached anchors (``Detect.shape``, ``RTDETRDecoder.shapes``) so the next forward rebuilds them.

    Anchors built during an earlier forward in inference mode are inference tensors, which autograd refuses to save.
    """
    for name in ("shape", "shapes"):
        if hasattr(head, name):
            setattr(head, name, None)


def _blocks(net: torch.nn.Module) -> Any:
    """Return ``net.model``, the ``nn.Sequential`` of top-level layers Ultralytics' ``parse_model`` builds.

    Typed ``Any``: its layers carry the ``.i`` / ``.f`` attributes ``parse_model`` sets, which torch's
    ``Module.__getattr__`` would type as ``Tensor | Module``.
    """
    return net.model


def auto_layers(net: torch.nn.Module) -> list[int]:
    """Return the indices of the layers the head reads (its ``.f``), made non-negative."""
    head = _blocks(net)[-1]
    f = [head.f] if isinstance(head.f, int) else list(head.f)
    if type(head).__name__ == "SemanticSegment":
        f = f[:1]  # its second input feeds only the auxiliary head, which runs in training alone
    return [head.i + j if j < 0 else j for j in f]


def resolve_layers(
    net: torch.nn.Module, spec: LayerSpec, *, imgsz: int | Sequence[int] = 640, verbose: bool = True
) -> list[Layer]:
    """Turn a parsed ``layers=`` value (:func:`parse_layers`, ``CamConfig.layer_spec``) into :class:`Layer` objects.

    Args:
        net: the native Ultralytics model.
        spec: "auto", or a list of indices and module names.
        imgsz: the model input size, for the layer listing in errors.
        verbose: log which layers were chosen.

    Raises:
        LayerError: an index or name does not exist, or names the head; the message lists every valid layer with its
            module type and output shape.
    """
    blocks = _blocks(net)
    head = blocks[-1]
    labels = auto_layers(net) if spec == "auto" else spec
    layers = []
    for position, requested in enumerate(labels):
        module, label = None, requested  # a negative index is reported as the index it resolves to
        if isinstance(label, int):
            i = label + len(blocks) if label < 0 else label
            if 0 <= i < len(blocks) - 1:
                module, label = blocks[i], i
        else:
            try:
                module = net.get_submodule(label)
            except AttributeError:
                module = None
            if module is head or (module is not None and any(module is m for m in head.modules())):
                module = None  # the head returns tuples and dicts, not feature maps
        if module is None:
            raise LayerError(
                f"layers={label!r} is not a layer this model can explain (the head is not either). Valid layers:\n"
                + describe_layers(net, imgsz)
            )
        layers.append(Layer(label, module, position if spec == "auto" else None))
    if verbose:
        what = {
            "Classify": "the last spatial layer, feeding the Classify head",
            "RTDETRDecoder": "the feature maps entering the RT-DETR decoder",
            "SemanticSegment": "the map entering the SemanticSegment classifier (its P4 input is training-only)",
        }.get(type(head).__name__, f"the feature maps entering the {type(head).__name__} head, fused across levels")
        chosen = ", ".join(f"{layer.label} ({layer.type})" for layer in layers)
        LOGGER.info(
            f"{PREFIX}layers={'auto' if spec == 'auto' else spec} -> {chosen}" + (f": {what}" if spec == "auto" else "")
        )
    return layers


def layer_table(net: torch.nn.Module, imgsz: int | Sequence[int] = 640) -> list[dict[str, Any]]:
    """Run one forward on a blank image and return every top-level layer's index, type and output shape."""
    size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
    blocks = _blocks(net)
    shapes: dict[int, tuple[int, ...] | str] = {}

    def shape_of(x: object) -> tuple[int, ...] | str:
        if isinstance(x, torch.Tensor):
            return tuple(x.shape)
        if isinstance(x, (list, tuple)):
            return type(x).__name__
        return type(x).__name__

    handles = [
        m.register_forward_hook(lambda mod, inp, out, i=i: shapes.__setitem__(i, shape_of(out)))
        for i, m in enumerate(blocks)
    ]
    try:
        p = next(net.parameters())
        with torch.inference_mode(False), torch.no_grad():
            reset_head_caches(blocks[-1])  # anchors cached in inference mode would be reused at another size
            net(torch.zeros((1, getattr(net, "channels", 3) or 3, *size), device=p.device, dtype=p.dtype))
            reset_head_caches(blocks[-1])
    finally:
        for h in handles:
            h.remove()
    auto = set(auto_layers(net))
    rows = []
    for i, m in enumerate(blocks):
        shape = shapes.get(i, "not run")
        usable = isinstance(shape, tuple) and len(shape) == 4 and i < len(blocks) - 1
        rows.append(
            {"index": i, "type": type(m).__name__, "from": m.f, "shape": shape, "usable": usable, "auto": i in auto}
        )
    return rows


def describe_layers(net: torch.nn.Module, imgsz: int | Sequence[int] = 640) -> str:
    """Return a text table of the layers (index, type, output shape at ``imgsz``), ``auto`` ones marked."""
    rows = layer_table(net, imgsz)
    lines = [f"  {'index':>5}  {'type':<16} {'output shape':<22} note"]
    for r in rows:
        shape = "x".join(map(str, r["shape"])) if isinstance(r["shape"], tuple) else str(r["shape"])
        note = "auto" if r["auto"] else ("" if r["usable"] else "not a feature map")
        lines.append(f"  {r['index']:>5}  {r['type']:<16} {shape:<22} {note}")
    return "\n".join(lines)
