"""CAM methods: the built-in adapters and their specs.

Every CAM class that the installed grad-cam exports is either adapted here or refused with the reason; a class that a
newer grad-cam adds and this version does not know is refused too, so nothing is silently ignored. This package only
declares specs; looking a name up is :func:`ultralytics_cam.plugins.get_method_spec` (the registry sits above).
"""

from __future__ import annotations

from .base import CamMethod, LayerContext, MethodSpec
from .composite import FinerCAM, RefineCAM, ShapleyCAM
from .confidence import ConfidenceMap
from .drise import DRISE
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
    "grad_cam_exports",
]

#: Adapters of grad-cam's classes, in grad-cam's export order (our own ConfidenceMap and DRISE follow in the specs).
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
    specs.append(MethodSpec.of(DRISE, source="ultralytics-cam"))
    specs += [MethodSpec(name, None, True, "not available", refused=why) for name, why in REFUSED_METHODS.items()]
    return specs
