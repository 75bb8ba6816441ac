"""Plugins: pluggy hooks for methods, targets and writers, discovered through the ``ultralytics_cam`` entry points.

Everything that lists or looks up methods, targets or writers goes through the functions below; the built-ins are
registered through the same hooks as third-party plugins (:mod:`ultralytics_cam.plugins.builtin`).
"""

from __future__ import annotations

from ..methods.base import MethodSpec
from .hookspecs import hookimpl
from .manager import block_plugin, get_plugin_manager, plugin_infos, reset
from .registry import call_result_ready, method_registry, target_registry, writer_registry

__all__ = [
    "block_plugin",
    "call_result_ready",
    "get_plugin_manager",
    "hookimpl",
    "plugin_infos",
    "registered_method_specs",
    "registered_target_specs",
    "registered_writer_specs",
    "reset",
]


def registered_method_specs(include_unknown: bool = False) -> list[MethodSpec]:
    """Return every registered method spec, refused ones included.

    Args:
        include_unknown: also list grad-cam exports this version has no adapter for (imports grad-cam).
    """
    specs = list(method_registry().values())
    if include_unknown:
        from ..methods import canonical, grad_cam_exports

        known = {canonical(s.name) for s in specs}
        specs += [
            MethodSpec(name, None, True, "not available", refused="not adapted to Ultralytics heads by this version")
            for name in grad_cam_exports()
            if canonical(name) not in known
        ]
    return specs


def registered_target_specs() -> list:
    """Return every registered target spec."""
    return list(target_registry().values())


def registered_writer_specs() -> list:
    """Return every registered writer spec."""
    return list(writer_registry().values())
