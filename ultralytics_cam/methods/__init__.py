"""CAM methods: the built-in adapters, the registry and name lookup.

Every CAM class that the installed grad-cam exports is either adapted here or refused with the reason; a class that a
newer grad-cam adds and this version does not know is refused too, so nothing is silently ignored.
"""

from __future__ import annotations

import difflib

from ..errors import MethodError
from .base import CamMethod, LayerContext, MethodSpec
from .composite import FinerCAM, RefineCAM, ShapleyCAM
from .confidence import ConfidenceMap
from .eigen import EigenCAM, EigenGradCAM, SegEigenCAM
from .gradcam import (
    FEM,
    KPCA_CAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    RandomCAM,
    XGradCAM,
)
from .perturbation import AblationCAM, ScoreCAM

__all__ = [
    "BUILTIN_METHODS",
    "REFUSED_METHODS",
    "CamMethod",
    "LayerContext",
    "MethodSpec",
    "builtin_method_specs",
    "canonical",
    "create_method",
    "get_method_spec",
    "grad_cam_exports",
    "method_specs",
]

#: Adapters of grad-cam's classes, in grad-cam's export order, then our own baseline.
BUILTIN_METHODS: tuple[type[CamMethod], ...] = (
    GradCAM,
    FinerCAM,
    ShapleyCAM,
    FEM,
    HiResCAM,
    GradCAMElementWise,
    AblationCAM,
    XGradCAM,
    GradCAMPlusPlus,
    ScoreCAM,
    LayerCAM,
    EigenCAM,
    EigenGradCAM,
    KPCA_CAM,
    RandomCAM,
    SegEigenCAM,
    RefineCAM,
)

#: grad-cam classes that cannot explain Ultralytics predictions, with the reason users see.
REFUSED_METHODS: dict[str, str] = {
    "FullGrad": (
        "FullGrad ignores the target layers and hooks every bias layer of the network; on Ultralytics graphs grad-cam "
        "pairs those layers with the wrong gradients (it raises ValueError on yolo11n) and keeps copies of ~90 layers "
        "per prediction"
    ),
    "SESS": (
        "SESS explains sliding-window patches over 12 image scales (about 129 patches for a 640 px image) with "
        "classifier targets; per-prediction anchor, query and class targets do not survive the patching"
    ),
}


def canonical(name: str) -> str:
    """Return the lookup key of a method name: case-insensitive, ignoring ``_``, ``-``, spaces; ``++`` = PlusPlus."""
    return name.lower().replace("++", "plusplus").replace("_", "").replace("-", "").replace(" ", "")


def grad_cam_exports() -> list[str]:
    """Return the names of the CAM classes the installed grad-cam exports (importing grad-cam, ~2 s)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.base_cam import BaseCAM

    wrappers = {"FinerCAM", "RefineCAM", "SESS"}  # CAM methods that are not BaseCAM subclasses
    return [
        name
        for name, obj in vars(pytorch_grad_cam).items()
        if isinstance(obj, type) and (issubclass(obj, BaseCAM) or name in wrappers)
    ]


def builtin_method_specs() -> list[MethodSpec]:
    """Return the specs of the built-in methods, then of the refused grad-cam classes (with their reasons)."""
    specs = [MethodSpec.of(m) for m in BUILTIN_METHODS]
    specs.append(MethodSpec.of(ConfidenceMap, source="ultralytics-cam"))
    specs += [MethodSpec(name, None, True, "not available", refused=why) for name, why in REFUSED_METHODS.items()]
    return specs


def method_specs(include_unknown: bool = False) -> dict[str, MethodSpec]:
    """Return every known method by name (built-ins and plugins), refused ones included."""
    from ..plugins import registered_method_specs

    return {s.name: s for s in registered_method_specs(include_unknown=include_unknown)}


def get_method_spec(name: str) -> MethodSpec:
    """Look a method up by case-insensitive name.

    Raises:
        MethodError: the name is unknown (with close matches), or the method is refused (with the reason).
    """
    if not isinstance(name, str) or not name:
        raise MethodError(f"method must be a method name such as 'HiResCAM', got {name!r}.")
    specs = method_specs()
    by_key = {canonical(n): s for n, s in specs.items()}
    spec = by_key.get(canonical(name))
    if spec is None:
        specs = method_specs(include_unknown=True)  # a grad-cam class we do not know yet: say so instead of "unknown"
        spec = {canonical(n): s for n, s in specs.items()}.get(canonical(name))
    if spec is None:
        close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.5) or difflib.get_close_matches(
            canonical(name), list(by_key), n=3, cutoff=0.5
        )
        close = [by_key[c].name if c in by_key else c for c in close]
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        valid = ", ".join(n for n, s in specs.items() if s.refused is None)
        raise MethodError(f"method='{name}' is not a known CAM method.{hint} Available methods: {valid}.")
    if spec.refused:
        raise MethodError(f"method '{spec.name}' is not supported: {spec.refused}.")
    return spec


def create_method(name: str) -> CamMethod:
    """Return a new instance of the method called ``name`` (see :func:`get_method_spec`)."""
    return get_method_spec(name).factory()
