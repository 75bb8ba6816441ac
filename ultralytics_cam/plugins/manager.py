"""The plugin manager: built lazily on first use, never at import.

It registers the built-ins, then every entry point of the ``ultralytics_cam`` group, one at a time so that a broken
plugin is reported with its name and skipped instead of taking the built-ins down.

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
from . import builtin, hookspecs

__all__ = ["BUILTIN_NAME", "GROUP", "PluginInfo", "block_plugin", "get_plugin_manager", "plugin_infos", "reset"]

GROUP = "ultralytics_cam"
BUILTIN_NAME = "ultralytics-cam"
#: Entry points that are the package itself (it declares itself in the group so tools can discover it).
SELF_ENTRY_POINTS = {"ultralytics_cam"}

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}
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


def reset() -> None:
    """Forget the manager and every registry built from it (tests; after installing a plugin at run time)."""
    global _manager
    with _lock:
        _manager = None
        _infos.clear()
    from . import registry

    registry.clear_cache()


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
    from ..errors import PluginError
    from . import registry

    get_plugin_manager()
    for collect in (registry.method_registry, registry.target_registry, registry.writer_registry):
        try:
            collect()
        except PluginError as e:
            culprit = str(e).split("ULTRALYTICS_CAM_BLOCK_PLUGINS=")[-1].rstrip(".")
            if culprit in _infos:
                _infos[culprit].error = str(e)
    return list(_infos.values())


def _build() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_NAME)
    from importlib.metadata import version

    _infos[BUILTIN_NAME] = PluginInfo(BUILTIN_NAME, "ultralytics-cam", _version(version, "ultralytics-cam"))
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


def _version(version: Any, dist: str) -> str:
    try:
        return version(dist)
    except metadata.PackageNotFoundError:
        return "0+unknown"
