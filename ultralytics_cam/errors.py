"""Exceptions raised by ultralytics-cam.

Every error subclasses a built-in type as well (``ValueError``, ``TypeError``, or ``RuntimeError`` for plugin
clashes), so callers that already catch those keep working, and :class:`CamError` catches everything this package
raises on purpose.
"""

from __future__ import annotations

__all__ = [
    "CamError",
    "LayerError",
    "MethodError",
    "PluginError",
    "TargetError",
    "UnsupportedModelError",
]


class CamError(Exception):
    """Base class of every error this package raises on purpose."""


class UnsupportedModelError(CamError, TypeError):
    """The model cannot be explained (exported format, a head that does not pass gradients, SAM, ...)."""


class MethodError(CamError, ValueError):
    """An unknown CAM method, or one that cannot run on this model or with these options."""


class TargetError(CamError, ValueError):
    """An unknown target, or one that this task does not have."""


class LayerError(CamError, ValueError):
    """A layer specification that does not name a usable layer of the model."""


class PluginError(CamError, RuntimeError):
    """A plugin registered something that clashes (a duplicate name) or cannot be used.

    Attributes:
        plugin: the name of the plugin at fault (the entry point name, or "ultralytics-cam"), or None if unknown.
    """

    def __init__(self, message: str, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
