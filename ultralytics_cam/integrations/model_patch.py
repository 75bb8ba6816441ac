"""The one thing ``import ultralytics_cam`` changes: it adds ``cam`` to Ultralytics' ``Model`` class.

``Model.cam`` is a class attribute, so it works on every ``YOLO``, ``RTDETR``, ``YOLOWorld`` and ``YOLOE`` instance,
existing or future (``YOLO(...)`` swaps its own class to those, so a subclass would be lost). Installing is idempotent
and :func:`uninstall` removes it again.
"""

from __future__ import annotations

from typing import Any

__all__ = ["install", "is_installed", "uninstall"]


def _model_cam(self: Any, source: Any = None, stream: bool = False, **kwargs: Any) -> Any:
    """Explain every prediction with a class activation map; see :func:`ultralytics_cam.cam`."""
    from ..api import cam

    return cam(self, source, stream=stream, **kwargs)


_model_cam.__name__ = "cam"
_model_cam.__qualname__ = "Model.cam"


def install() -> None:
    """Add ``Model.cam`` (idempotent)."""
    from ultralytics.engine.model import Model

    Model.cam = _model_cam  # type: ignore[attr-defined]  # adding Model.cam at run time is this module's job


def uninstall() -> None:
    """Remove ``Model.cam`` if this package added it."""
    from ultralytics.engine.model import Model

    if Model.__dict__.get("cam") is _model_cam:
        del Model.cam  # type: ignore[attr-defined]  # the attribute install() added at run time


def is_installed() -> bool:
    """Return True if ``Model.cam`` is ours."""
    from ultralytics.engine.model import Model

    return Model.__dict__.get("cam") is _model_cam
