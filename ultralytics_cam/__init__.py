"""ultralytics-cam: class activation maps for every prediction of every Ultralytics YOLO task.

``import ultralytics_cam`` adds ``cam`` to Ultralytics' ``Model`` class (documented, idempotent, reversible with
:func:`uninstall`) and does nothing else: grad-cam and the plugins load on first use.

Example:
    >>> import ultralytics_cam
    >>> from ultralytics import YOLO
    >>> results = YOLO("best.pt").cam(source="imgs/", method="HiResCAM")
    >>> results[0].cam.maps  # (N, H, W): row i explains results[0].boxes[i]
"""

from __future__ import annotations

from typing import Any

from .api import cam
from .config import CAM_DEFAULTS, CamConfig
from .errors import CamError, LayerError, MethodError, PluginError, TargetError, UnsupportedModelError
from .integrations.model_patch import install, is_installed, uninstall
from .integrations.predict_callbacks import add_cam_callbacks, remove_cam_callbacks
from .integrations.train_cam import add_train_cam_callback, remove_train_cam_callback
from .integrations.val_hook import add_val_failure_hook, remove_val_failure_hook
from .methods.base import CamMethod, LayerContext, MethodSpec
from .plugins.hookspecs import hookimpl
from .result import CamResult
from .targets import TargetContext, TargetSpec

__all__ = [
    "CAM_DEFAULTS",
    "CamConfig",
    "CamError",
    "CamMethod",
    "CamResult",
    "LayerContext",
    "LayerError",
    "MethodError",
    "MethodSpec",
    "PluginError",
    "TargetContext",
    "TargetError",
    "TargetSpec",
    "UnsupportedModelError",
    "__version__",
    "add_cam_callbacks",
    "add_train_cam_callback",
    "add_val_failure_hook",
    "cam",
    "compare",
    "evaluate",
    "hookimpl",
    "install",
    "is_installed",
    "remove_cam_callbacks",
    "remove_train_cam_callback",
    "remove_val_failure_hook",
    "uninstall",
]

install()


def __getattr__(name: str) -> Any:
    """Resolve ``__version__`` (from the installed distribution's metadata), ``evaluate`` and ``compare`` lazily."""
    if name in ("evaluate", "compare"):  # lazily: the ranking pulls in the metrics only when used
        from . import ranking

        return getattr(ranking, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ultralytics-cam")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'ultralytics_cam' has no attribute {name!r}")
