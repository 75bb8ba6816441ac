"""Registries of methods, targets and writers, collected from every plugin's ``register_*`` hook.

Each plugin's hook is called on its own, so a plugin whose hook raises is reported with its name and skipped. Names
are compared case-insensitively (as users type them); a name registered twice is refused with an error that names both
providers and how to block one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from .._logging import LOGGER, PREFIX
from ..errors import PluginError
from .manager import _infos, get_plugin_manager

__all__ = ["call_result_ready", "clear_cache", "method_registry", "target_registry", "writer_registry"]


def _collect(hook_name: str, kind: str) -> dict[str, Any]:
    pm = get_plugin_manager()
    found: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():  # registration order: built-ins first
        try:
            specs = list(impl.function() or [])
        except Exception as e:
            LOGGER.warning(f"{PREFIX}plugin '{impl.plugin_name}' failed in {hook_name}: {type(e).__name__}: {e}")
            if impl.plugin_name in _infos:
                _infos[impl.plugin_name].error = f"{hook_name}: {type(e).__name__}: {e}"
            continue
        for spec in specs:
            key = _key(spec.name)
            if key in keys:
                first = found[keys[key]].provider
                raise PluginError(
                    f"{kind} '{spec.name}' is registered twice: by '{first}' and by '{impl.plugin_name}'. Uninstall "
                    f"one or block it with ULTRALYTICS_CAM_BLOCK_PLUGINS={impl.plugin_name}."
                )
            keys[key] = spec.name
            found[spec.name] = dataclasses.replace(spec, provider=impl.plugin_name)
            if impl.plugin_name in _infos:
                _infos[impl.plugin_name].registered.setdefault(kind, []).append(spec.name)
    return found


def _key(name: str) -> str:
    from ..methods import canonical

    return canonical(name)


@functools.cache
def method_registry() -> dict[str, Any]:
    """Every registered method spec by name, refused ones included."""
    return _collect("ultralytics_cam_register_methods", "method")


@functools.cache
def target_registry() -> dict[str, Any]:
    """Every registered target spec by name."""
    return _collect("ultralytics_cam_register_targets", "target")


@functools.cache
def writer_registry() -> dict[str, Any]:
    """Every registered writer spec by name."""
    return _collect("ultralytics_cam_register_writers", "writer")


def clear_cache() -> None:
    """Forget the collected registries."""
    for f in (method_registry, target_registry, writer_registry):
        f.cache_clear()


def call_result_ready(result: Any, cam: Any, config: Any) -> None:
    """Call every plugin's ``ultralytics_cam_result_ready``; a failing plugin is logged and the run goes on."""
    for impl in get_plugin_manager().hook.ultralytics_cam_result_ready.get_hookimpls():
        try:
            impl.function(result=result, cam=cam, config=config)
        except Exception as e:
            LOGGER.warning(f"{PREFIX}plugin '{impl.plugin_name}' failed in ultralytics_cam_result_ready: {e}")
