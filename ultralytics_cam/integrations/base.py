"""What the predict callbacks and the val hook both do with Ultralytics callbacks: mark, register, remove, guard.

Both integrations register a ``{event: fn}`` dict on a ``Model`` (Ultralytics' own integration shape) and follow the
same rules, kept here so they cannot drift apart:

- every function is marked as ours (:data:`MARK_ATTR`, which ``model.cam`` reads to keep our callbacks out of its own
  predictor) and with its integration's kind (:data:`KIND_ATTR`: ``"predict"`` or ``"val"``), so that removing one
  integration leaves the other, and every callback of anyone else, in place;
- registering replaces an earlier registration of the same kind, it never stacks;
- a CAM error never breaks the host run: it is logged with the image names, what stays unaffected and how to turn
  the integration off, and the run goes on (``strict=True`` raises instead, for tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .._logging import LOGGER, PREFIX

__all__ = ["KIND_ATTR", "MARK_ATTR", "Callbacks", "Guard", "mark", "register", "remove"]

#: Set (True) on every callback this package registers; ``api._callbacks_for`` reads it to skip them in ``model.cam``.
MARK_ATTR = "_ultralytics_cam"
#: Which integration a callback (or an instance-level wrapper) belongs to: ``"predict"`` or ``"val"``.
KIND_ATTR = "_ultralytics_cam_kind"

_T = TypeVar("_T")
#: An integration's ``{event: callback}`` dict, the shape of Ultralytics' own integrations.
Callbacks = dict[str, Callable[[Any], None]]


def mark(callbacks: Callbacks, kind: str) -> Callbacks:
    """Mark every function of ``callbacks`` as ours, of integration ``kind``; return the same dict."""
    for fn in callbacks.values():
        setattr(fn, MARK_ATTR, True)
        setattr(fn, KIND_ATTR, kind)
    return callbacks


def remove(model: Any, kind: str) -> None:
    """Remove the callbacks of integration ``kind`` from ``model``; everything else stays.

    The lists are edited in place: Ultralytics' predictors and validators hold the same lists.
    """
    for fns in model.callbacks.values():
        fns[:] = [f for f in fns if getattr(f, KIND_ATTR, None) != kind]


def register(model: Any, kind: str, callbacks: Mapping[str, Callable[[Any], None]]) -> None:
    """Register ``callbacks`` (made by :func:`mark` with ``kind``) on ``model``, replacing an earlier registration."""
    remove(model, kind)
    for event, fn in callbacks.items():
        model.add_callback(event, fn)


@dataclass(frozen=True)
class Guard:
    """How one integration survives a CAM error: log it and go on, or raise with ``strict``.

    The logged line reads ``<PREFIX><subject> <action> for <images>: <error>. <unaffected>; <off>``, for example
    ``ultralytics-cam: CAM failed for bus.jpg: RuntimeError: boom. The predictions are unaffected;
    remove_cam_callbacks(model) turns CAM off.``

    Attributes:
        subject: what failed (``"CAM"``, ``"failure analysis"``).
        unaffected: what the error does not touch, as a sentence start (``"The predictions are unaffected"``).
        off: how to turn the integration off, as a sentence (``"remove_cam_callbacks(model) turns CAM off."``).
        strict: raise instead of logging.
    """

    subject: str
    unaffected: str
    off: str
    strict: bool = False

    def __call__(self, fn: Callable[[], _T], images: Iterable[str] = (), action: str = "failed") -> _T | None:
        """Return ``fn()``; if it raises, log the error with ``images`` and return None (``strict``: raise)."""
        try:
            return fn()
        except Exception as e:
            if self.strict:
                raise
            self.log(e, images, action)
            return None

    def log(self, error: BaseException, images: Iterable[str] = (), action: str = "failed") -> None:
        """Log ``error`` as this integration's warning, naming the images (file names only) it happened for."""
        names = ", ".join(Path(str(p)).name for p in images)
        where = f" for {names}" if names else ""
        LOGGER.warning(
            f"{PREFIX}{self.subject} {action}{where}: {type(error).__name__}: {error}. {self.unaffected}; {self.off}"
        )
