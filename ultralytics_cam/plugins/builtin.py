"""ultralytics-cam's own methods, targets and writers, registered through the same hooks as any plugin."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl

__all__ = [
    "ultralytics_cam_register_methods",
    "ultralytics_cam_register_targets",
    "ultralytics_cam_register_writers",
]


@hookimpl
def ultralytics_cam_register_methods() -> list[Any]:
    """Every adapted grad-cam method, the refused ones (with their reasons) and ConfidenceMap."""
    from ..methods import builtin_method_specs

    return builtin_method_specs()


@hookimpl
def ultralytics_cam_register_targets() -> list[Any]:
    """class, box, all, mask, keypoints, angle."""
    from ..targets import builtin_target_specs

    return builtin_target_specs()


@hookimpl
def ultralytics_cam_register_writers() -> list[Any]:
    """The per-image and per-run files of the output layout."""
    from ..writers import builtin_writer_specs

    return builtin_writer_specs()
