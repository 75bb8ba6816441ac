"""CAM options: one frozen dataclass, validated and resolved once.

``CamConfig(...)`` checks every option and resolves the names in it once: ``method_spec``, ``target_spec`` (looked up
in the registries the plugins fill) and ``layer_spec`` (the parsed ``layers=``). The engine receives the config and
reads those; nothing looks a name up or parses ``layers`` a second time.

Also splits ``model.cam(**kwargs)`` into CAM options and Ultralytics predict arguments, which Ultralytics validates
itself, with its own messages.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .layers import LayerSpec, parse_layers

if TYPE_CHECKING:
    from .methods.base import MethodSpec
    from .targets import TargetSpec

__all__ = [
    "CAM_DEFAULTS",
    "DEPRECATED_ULTRALYTICS_KEYS",
    "NUMERIC_ULTRALYTICS_KEYS",
    "REFUSED_ULTRALYTICS_KEYS",
    "CamConfig",
    "check_ultralytics_numbers",
    "parse_region",
    "renamed_ultralytics_keys",
    "split_kwargs",
]

#: Old Ultralytics argument names that its own ``get_cfg`` still maps onto current ones (``half`` -> ``quantize=16``).
DEPRECATED_ULTRALYTICS_KEYS = ("half", "int8", "end2end", "boxes", "hide_labels", "hide_conf", "line_thickness")

#: Ultralytics predict arguments that cannot be combined with a CAM run, and why.
REFUSED_ULTRALYTICS_KEYS = {
    "visualize": "it runs Ultralytics' own LayerCAM; model.cam(method='LayerCAM') gives per-prediction maps instead",
    "augment": "test-time augmentation merges flipped and rescaled passes, so a prediction has no single anchor",
    "embed": "it returns embeddings instead of predictions",
}


#: Default ``max_pixels``: 100 megapixels (every camera up to medium format). A saving run over one peaks at 2.2 GB on
#: CPU, about 14 bytes per pixel over the process (``benchmarks/memory.py --huge``: 1.0 GB at 16, 4.4 GB at 256
#: megapixels; docs/reliability.md). Decoding is refused above it, before any memory is spent on the image.
DEFAULT_MAX_PIXELS = 100_000_000
#: What ``oversize`` accepts.
OVERSIZE = ("skip", "downscale")


@dataclass(frozen=True)
class CamConfig:
    """What to explain and how to draw it.

    Attributes:
        method: CAM method name, case-insensitive (``yolo-cam methods`` lists them).
        target: what each map explains: "class", "box", "all", or per task "mask", "keypoints", "angle", and for
            depth "near", "far", "mean" (``yolo-cam methods`` lists the targets); matched case-insensitively.
        layers: "auto", indices (``[16, 19, 22]`` or ``"16,19,22"``) or module names (``"model.16"``).
        alpha: heatmap weight in overlays, in [0, 1].
        colormap: OpenCV colormap name for overlays.
        show_boxes: draw Ultralytics' annotations over overlays.
        renormalize: in overlays, scale each map to its own range inside its box and zero it outside.
        eigen_smooth: use the first principal component instead of the channel sum (grad-cam's ``eigen_smooth``).
        aug_smooth: average over six flipped / brightened inputs (grad-cam's ``aug_smooth``; six times the cost).
        save_maps: also save every prediction's own map when saving.
        region: semantic and depth models only: a box ``[x1, y1, x2, y2]`` in original-image pixels, a list of
            boxes, or (semantic) an (H, W) boolean mask of the image; ``None`` explains the whole image.
        head_replay: on YOLO anchor heads with ``layers="auto"``, compute gradients by the local head replay (exact,
            at about the cost of a predict); False forces the dense batched backward (for checking, or comparing).
        max_pixels: an image file with more pixels (width x height, read from its header before decoding) is not
            decoded: it is skipped with the reason, or downscaled with ``oversize="downscale"``. ``None`` or 0: no
            limit (OpenCV still refuses images over 2**30 pixels). See ``docs/reliability.md``.
        oversize: what happens to an image over ``max_pixels``: "skip" (listed in ``summary.json``) or "downscale"
            (decoded smaller when the format allows it, then resized to ``max_pixels``, with a note).
        drise_masks: ``method="DRISE"``: random masks per image (each one a forward pass; docs/drise.md: cost and
            stability against the number).
        drise_cell: ``method="DRISE"``: the side of a mask cell in model-input pixels (RISE's 224 / 7 = 32).
        drise_keep: ``method="DRISE"``: probability that a mask keeps a cell, in (0, 1).
        seed: seed of the random masks (``DRISE``): the same seed gives the same masks, hence the same maps.
    """

    method: str = "HiResCAM"
    target: str = "class"
    layers: Any = "auto"
    alpha: float = 0.5
    colormap: str = "jet"
    show_boxes: bool = True
    renormalize: bool = False
    eigen_smooth: bool = False
    aug_smooth: bool = False
    save_maps: bool = False
    head_replay: bool = True
    region: Any = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    oversize: str = "skip"
    drise_masks: int = 2500
    drise_cell: int = 32
    drise_keep: float = 0.5
    seed: int = 0
    #: Resolved from ``method``, ``target`` and ``layers`` once, in ``__post_init__``; not options themselves.
    method_spec: MethodSpec = field(init=False, repr=False, compare=False)
    target_spec: TargetSpec = field(init=False, repr=False, compare=False)
    layer_spec: LayerSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate every field and resolve the names; errors name the option and what it accepts."""
        from .plotting import colormap_id
        from .plugins import get_method_spec, get_target_spec

        object.__setattr__(self, "method_spec", get_method_spec(self.method))
        object.__setattr__(self, "target_spec", get_target_spec(self.target))
        object.__setattr__(self, "target", self.target_spec.name)  # "Class" -> "class": code compares the name
        object.__setattr__(self, "layer_spec", parse_layers(self.layers))
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha={self.alpha!r} is not valid: use a number between 0 and 1.")
        colormap_id(self.colormap)
        for name in ("show_boxes", "renormalize", "eigen_smooth", "aug_smooth", "save_maps", "head_replay"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}={getattr(self, name)!r} is not valid: use True or False.")
        object.__setattr__(self, "region", parse_region(self.region))
        pixels = None if self.max_pixels is None else _whole(self.max_pixels)
        if self.max_pixels is not None and (pixels is None or pixels < 0):
            raise ValueError(
                f"max_pixels={self.max_pixels!r} is not valid: use a whole number of pixels (width x height) >= 1, "
                "e.g. 100000000, or 0 or None for no limit."
            )
        object.__setattr__(self, "max_pixels", pixels or None)
        if self.oversize not in OVERSIZE:
            raise ValueError(f"oversize={self.oversize!r} is not valid: use one of {', '.join(OVERSIZE)}.")
        _check_drise(self)

    def display(self) -> dict[str, Any]:
        """The drawing options, as ``CamResult.plot`` takes them."""
        return {k: getattr(self, k) for k in ("alpha", "colormap", "show_boxes", "renormalize")}

    def to_dict(self) -> dict[str, Any]:
        """All options as a plain dict (the resolved specs are not options)."""
        return {name: getattr(self, name) for name in CAM_DEFAULTS}

    def __reduce__(self) -> tuple[Callable[[dict[str, Any]], CamConfig], tuple[dict[str, Any]]]:
        """Pickle the options only (plugin specs may hold closures); unpickling resolves them again."""
        return (_from_options, (self.to_dict(),))


def _check_drise(config: CamConfig) -> None:
    """Check the D-RISE options (whole numbers given as text or floats are read as the numbers they spell).

    Raises:
        ValueError: a value is out of range; the message names the option and what it accepts.
    """
    for name, low, allowed in (
        ("drise_masks", 1, "a whole number >= 1 (masks, hence forward passes, per image)"),
        ("drise_cell", 1, "a whole number >= 1 (the side of a mask cell in model-input pixels)"),
        ("seed", 0, "a whole number >= 0"),
    ):
        value = _whole(getattr(config, name))
        if value is None or value < low:
            raise ValueError(f"{name}={getattr(config, name)!r} is not valid: use {allowed}.")
        object.__setattr__(config, name, value)
    keep = config.drise_keep
    if isinstance(keep, str):
        try:
            keep = float(keep)
        except ValueError:
            keep = None
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep < 1:
        raise ValueError(f"drise_keep={config.drise_keep!r} is not valid: use a number between 0 and 1 (exclusive).")
    object.__setattr__(config, "drise_keep", float(keep))


def _from_options(options: dict[str, Any]) -> CamConfig:
    return CamConfig(**options)


#: CAM option names and their defaults.
CAM_DEFAULTS = {f.name: f.default for f in fields(CamConfig) if f.init}


def split_kwargs(kwargs: dict[str, Any]) -> tuple[CamConfig, dict[str, Any]]:
    """Split ``model.cam`` keyword arguments into a :class:`CamConfig` and Ultralytics predict arguments.

    Raises:
        ValueError: an argument is neither a CAM option nor an Ultralytics argument (with close matches), or is an
            Ultralytics argument that cannot be used with CAM.
    """
    from ultralytics.utils import DEFAULT_CFG_DICT

    cam = {k: v for k, v in kwargs.items() if k in CAM_DEFAULTS}
    rest = renamed_ultralytics_keys({k: v for k, v in kwargs.items() if k not in CAM_DEFAULTS})
    check_ultralytics_numbers(rest)
    for key, why in REFUSED_ULTRALYTICS_KEYS.items():
        if rest.get(key):
            raise ValueError(f"'{key}' cannot be used with CAM: {why}.")
    unknown = [k for k in rest if k not in DEFAULT_CFG_DICT]
    if unknown:
        valid = list(CAM_DEFAULTS) + list(DEFAULT_CFG_DICT)
        msgs = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=3, cutoff=0.6)
            msgs.append(f"'{k}'" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
        raise ValueError(
            f"{', '.join(msgs)} {'is not a valid argument' if len(msgs) == 1 else 'are not valid arguments'}. "
            f"CAM options: {', '.join(CAM_DEFAULTS)}; every Ultralytics predict argument (conf, iou, imgsz, device, "
            "batch, classes, max_det, half, save, project, name, ...) is accepted too."
        )
    return CamConfig(**cam), rest


def _whole(v: Any) -> int | None:
    """``v`` as an int when it is a whole number (``8``, ``8.0``, ``"8"``), else None; booleans are not numbers."""
    if isinstance(v, str):
        v = v.strip()
        return int(v) if v.lstrip("+-").isdigit() else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return int(v) if float(v).is_integer() else None


def _imgsz_ok(v: Any) -> bool:
    if isinstance(v, str):
        import ast

        try:
            v = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            return False
    if isinstance(v, (list, tuple)):
        return 1 <= len(v) <= 2 and all((_whole(x) or 0) >= 1 for x in v)
    return (_whole(v) or 0) >= 1


def _line_width_ok(v: Any) -> bool:
    whole = _whole(v)
    return v is None or (whole is not None and whole >= 0)


#: Numeric Ultralytics predict keys and what they accept: (check, allowed values in words). Ultralytics checks their
#: types (and ``max_det``, ``vid_stride``, ``iou`` ranges) only in its CLI, and ``batch=0`` ends in a ZeroDivisionError
#: deep in its loader, so both ``model.cam`` and ``yolo-cam`` check them here, before any work.
NUMERIC_ULTRALYTICS_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "batch": (lambda v: (_whole(v) or 0) >= 1, "a whole number >= 1 (images per forward pass)"),
    "imgsz": (_imgsz_ok, "a whole number >= 1, or [height, width] of whole numbers >= 1 (e.g. 640 or [480, 640])"),
    "max_det": (lambda v: (_whole(v) or 0) >= 1, "a whole number >= 1 (predictions kept per image)"),
    "vid_stride": (lambda v: (_whole(v) or 0) >= 1, "a whole number >= 1 (1 reads every video frame)"),
    "line_width": (
        _line_width_ok,
        "a whole number >= 1 (pixels), or 0 or None for a width scaled to the image",
    ),
    "iou": (
        lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1,
        "a number between 0.0 and 1.0",
    ),
}


def check_ultralytics_numbers(args: dict[str, Any]) -> None:
    """Check the numeric Ultralytics predict keys in ``args`` (:data:`NUMERIC_ULTRALYTICS_KEYS`).

    Raises:
        ValueError: a value is out of range or not a number; the message names the key and what it accepts.
    """
    for key, (ok, allowed) in NUMERIC_ULTRALYTICS_KEYS.items():
        if key in args and not ok(args[key]):
            raise ValueError(f"{key}={args[key]!r} is not valid: use {allowed}.")


def renamed_ultralytics_keys(args: dict[str, Any]) -> dict[str, Any]:
    """Map deprecated Ultralytics keys onto their current names with Ultralytics' own rules (and its warning).

    ``model.predict(half=True)`` works because Ultralytics renames ``half`` to ``quantize=16``; ``model.cam`` and
    ``yolo-cam`` accept the same spellings. The mapping function is private to Ultralytics, hence looked up
    defensively: without it the keys are left as they are (and then refused as unknown).
    """
    if not any(k in args for k in DEPRECATED_ULTRALYTICS_KEYS):
        return args
    from ultralytics import cfg

    handle = getattr(cfg, "_handle_deprecation", None)
    return handle(dict(args)) if handle is not None else args


#: What ``region=`` accepts, for its error messages.
REGION_HELP = (
    "use a box [x1, y1, x2, y2] in original-image pixels (x1 < x2, y1 < y2), a list of such boxes, an (H, W) boolean "
    "mask of the image (semantic), or None for the whole image"
)


def parse_region(region: Any) -> Any:
    """Normalise ``region=``: None, a tuple of (x1, y1, x2, y2) float boxes, or an (H, W) bool array.

    A string (from the command line) such as ``"10,20,300,400"`` or ``"[[10,20,300,400],[0,0,50,50]]"`` is read as the
    list it spells.

    Raises:
        ValueError: anything else; the message names ``region`` and what it accepts.
    """
    import ast

    if region is None:
        return None
    original = region
    if isinstance(region, str):
        text = region.strip()
        try:
            region = ast.literal_eval(text if text.startswith(("[", "(")) else f"[{text}]")
        except (ValueError, SyntaxError):
            raise ValueError(f"region={original!r} is not valid: {REGION_HELP}.") from None
    if hasattr(region, "shape") and hasattr(region, "dtype") and len(region.shape) == 2 and region.shape[1] != 4:
        import numpy as np

        mask = np.asarray(region)
        if mask.dtype != bool or mask.size == 0:
            raise ValueError(f"region= mask must be a non-empty boolean (H, W) array; got dtype {mask.dtype}.")
        return mask
    if hasattr(region, "tolist"):
        region = region.tolist()
    if not isinstance(region, (list, tuple)) or not region:
        raise ValueError(f"region={original!r} is not valid: {REGION_HELP}.")
    boxes = [region] if not isinstance(region[0], (list, tuple)) else list(region)
    out = []
    for box in boxes:
        ok = isinstance(box, (list, tuple)) and len(box) == 4
        ok = ok and all(not isinstance(v, bool) and isinstance(v, (int, float)) and not math.isnan(v) for v in box)
        if not ok or not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError(f"region={original!r} is not valid: {box!r} is not a box; {REGION_HELP}.")
        out.append(tuple(float(v) for v in box))
    return tuple(out)
