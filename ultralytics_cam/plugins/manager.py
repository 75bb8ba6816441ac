"""The plugin manager and the registries it fills: built lazily on first use, never at import.

It registers the built-ins, then every entry point of the ``ultralytics_cam`` group, one at a time so that a broken
plugin is reported with its name and skipped instead of taking the built-ins down. Each ``register_*`` hook is then
collected into one :class:`~ultralytics_cam.registry.Registry` per kind (methods, targets, writers), also plugin by
plugin, and cached until :func:`reset`.

Environment:
    ULTRALYTICS_CAM_DISABLE_PLUGINS=1: load no third-party plugin (built-ins only).
    ULTRALYTICS_CAM_BLOCK_PLUGINS=name1,name2: skip these entry points by name.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from .._logging import LOGGER, PREFIX
from ..errors import MethodError, PluginError, TargetError
from ..registry import Registry
from . import builtin, hookspecs

__all__ = [
    "BUILTIN_NAME",
    "GROUP",
    "KINDS",
    "PluginInfo",
    "block_plugin",
    "call_result_ready",
    "get_plugin_manager",
    "get_registry",
    "plugin_infos",
    "reset",
]

GROUP = "ultralytics_cam"
BUILTIN_NAME = "ultralytics-cam"
#: Entry points that are the package itself (it declares itself in the group so tools can discover it).
SELF_ENTRY_POINTS = {"ultralytics_cam"}

#: kind -> (the hook that registers it, the error a failed lookup raises, what messages call one).
KINDS: dict[str, tuple[str, type, str]] = {
    "method": ("ultralytics_cam_register_methods", MethodError, "CAM method"),
    "target": ("ultralytics_cam_register_targets", TargetError, "target"),
    "writer": ("ultralytics_cam_register_writers", PluginError, "writer"),
}

_lock = threading.RLock()  # the registries are built under it and build the manager under it too
_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}
_registries: dict[str, Registry[Any]] = {}
_blocked: set[str] = set()


@dataclass
class PluginInfo:
    """Where a plugin came from, and whether it loaded."""

    name: str
    dist: str = ""
    version: str = ""
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, building it on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = _build()
        return _manager


def get_registry(kind: str) -> Registry[Any]:
    """Return the registry of ``kind`` ("method", "target" or "writer"), collecting it from the plugins on first use.

    Raises:
        PluginError: two plugins register the same name; ``error.plugin`` is the one that came second.
    """
    with _lock:
        if kind not in _registries:
            _registries[kind] = _collect(kind)
        return _registries[kind]


def reset() -> None:
    """Forget the manager and every registry built from it (tests; after installing a plugin at run time)."""
    global _manager
    with _lock:
        _manager = None
        _infos.clear()
        _registries.clear()


def block_plugin(name: str) -> None:
    """Never load the entry point ``name`` (takes effect on the next :func:`reset` or first use)."""
    _blocked.add(name)
    if _manager is not None:
        reset()


def plugin_infos() -> list[PluginInfo]:
    """Every plugin the manager saw, with what it registered: the built-ins first, then entry points, failed ones too.

    A registry that cannot be built (two plugins registering the same name) is recorded as an error of the plugin
    that came second, so the listing still shows everything else.
    """
    get_plugin_manager()
    for kind in KINDS:
        try:
            get_registry(kind)
        except PluginError as e:
            if e.plugin in _infos:
                _infos[e.plugin].error = str(e)
    return list(_infos.values())


def call_result_ready(result: Any, cam: Any, config: Any) -> None:
    """Call every plugin's ``ultralytics_cam_result_ready``; a failing plugin is logged and the run goes on."""
    given = {"result": result, "cam": cam, "config": config}
    for impl in get_plugin_manager().hook.ultralytics_cam_result_ready.get_hookimpls():
        try:  # pluggy lets a hook take fewer arguments than the spec: pass only those it names
            impl.function(*(given[name] for name in impl.argnames))
        except Exception as e:  # a plugin's bug must not stop the run
            LOGGER.warning(f"{PREFIX}plugin '{impl.plugin_name}' failed in ultralytics_cam_result_ready: {e}")


def _collect(kind: str) -> Registry[Any]:
    """Call each plugin's ``register_*`` hook on its own: a hook that raises is reported with its plugin and skipped."""
    hook_name, error, noun = KINDS[kind]
    registry: Registry[Any] = Registry(kind, error, noun)
    registered: dict[str, list[str]] = {}  # recorded on the plugins' infos only once the registry is complete
    for impl in getattr(get_plugin_manager().hook, hook_name).get_hookimpls():  # registration order: built-ins first
        try:
            specs = list(impl.function() or [])
        except Exception as e:  # a broken plugin must not take the built-ins down
            LOGGER.warning(f"{PREFIX}plugin '{impl.plugin_name}' failed in {hook_name}: {type(e).__name__}: {e}")
            if impl.plugin_name in _infos:
                _infos[impl.plugin_name].error = f"{hook_name}: {type(e).__name__}: {e}"
            continue
        for spec in specs:
            registry.add(spec, impl.plugin_name)
            registered.setdefault(impl.plugin_name, []).append(spec.name)
    for plugin, names in registered.items():  # a registry that failed is collected again: never recorded twice
        if plugin in _infos:
            _infos[plugin].registered[kind] = names
    return registry


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_NAME)
    _infos[BUILTIN_NAME] = PluginInfo(BUILTIN_NAME, "ultralytics-cam", _version("ultralytics-cam"))
    if os.environ.get("ULTRALYTICS_CAM_DISABLE_PLUGINS", "").lower() in ("1", "true", "yes"):
        LOGGER.debug(f"{PREFIX}third-party plugins disabled by ULTRALYTICS_CAM_DISABLE_PLUGINS")
    else:
        blocked = _blocked | {s.strip() for s in os.environ.get("ULTRALYTICS_CAM_BLOCK_PLUGINS", "").split(",") if s}
        for ep in metadata.entry_points(group=GROUP):
            if ep.name in SELF_ENTRY_POINTS or ep.name in _infos:
                continue
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "")
            _infos[ep.name] = info
            if ep.name in blocked:
                info.error = "blocked"
                pm.set_blocked(ep.name)
                continue
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as e:  # a broken plugin must not take the built-ins down
                info.error = f"{type(e).__name__}: {e}"
                where = info.dist or "unknown distribution"
                LOGGER.warning(f"{PREFIX}plugin '{ep.name}' ({where}) failed to load: {info.error}")
    pm.check_pending()
    return pm


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"
