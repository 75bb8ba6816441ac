"""Plugins: pluggy hooks for methods, targets and writers, discovered through the ``ultralytics_cam`` entry points.

Everything that lists or looks up methods, targets or writers goes through the functions below; the built-ins are
registered through the same hooks as third-party plugins (:mod:`ultralytics_cam.plugins.builtin`).

Layers (``docs/architecture.md``): the modules that declare specs (methods, targets, writers) sit below this package
and never import it; :mod:`ultralytics_cam.registry` is the generic container; this package fills one registry per kind
from the hooks (:mod:`.manager`) and looks names up in them (:mod:`.lookup`).
"""

from __future__ import annotations

from ..methods.base import MethodSpec
from ..targets import TargetSpec
from ..writers import WriterSpec
from .hookspecs import hookimpl
from .lookup import (
    check_target,
    get_method_spec,
    get_target_spec,
    method_registry,
    method_specs,
    target_registry,
    writer_registry,
)
from .manager import block_plugin, call_result_ready, get_plugin_manager, plugin_infos, reset

__all__ = [
    "block_plugin",
    "call_result_ready",
    "check_target",
    "get_method_spec",
    "get_plugin_manager",
    "get_target_spec",
    "hookimpl",
    "method_registry",
    "method_specs",
    "plugin_infos",
    "registered_method_specs",
    "registered_target_specs",
    "registered_writer_specs",
    "reset",
    "target_registry",
    "writer_registry",
]


def registered_method_specs(include_unknown: bool = False) -> list[MethodSpec]:
    """Return every registered method spec, refused ones included (see :func:`method_specs`)."""
    return list(method_specs(include_unknown=include_unknown).values())


def registered_target_specs() -> list[TargetSpec]:
    """Return every registered target spec."""
    return target_registry().values()


def registered_writer_specs() -> list[WriterSpec]:
    """Return every registered writer spec, in the order they run."""
    return writer_registry().values()
