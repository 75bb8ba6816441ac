"""Hook specifications: what a plugin can add to ultralytics-cam.

Every hook is prefixed ``ultralytics_cam_`` so it cannot collide with another host's hooks. The ``register_*`` hooks
return lists of frozen specs (declarative, easy to test); ultralytics-cam's own methods, targets and writers are
registered through the very same hooks by :mod:`ultralytics_cam.plugins.builtin`.

A plugin is a module (or object) with functions decorated by :data:`ultralytics_cam.hookimpl`, declared in its
``pyproject.toml``::

    [project.entry-points.ultralytics_cam]
    my_plugin = "my_package.my_module"

See ``docs/plugins.md`` for every hook with an example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..config import CamConfig
    from ..methods.base import MethodSpec
    from ..result import CamResult
    from ..targets import TargetSpec
    from ..writers import WriterSpec

__all__ = ["hookimpl", "hookspec"]

PROJECT = "ultralytics_cam"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ultralytics_cam_register_methods() -> list[MethodSpec]:  # type: ignore[empty-body]  # a hookspec: pluggy never runs its body
    """Register CAM methods.

    Return a list of :class:`ultralytics_cam.MethodSpec`; each ``factory`` builds a
    :class:`ultralytics_cam.CamMethod` whose ``layer_map(acts, grads, ctx)`` turns one layer's activations
    (1, C, h, w) and, when ``needs_gradients``, each prediction's gradients (n, C, h, w) into raw (n, h, w) maps.
    Names are looked up case-insensitively and must be unique across all plugins.
    """


@hookspec
def ultralytics_cam_register_targets() -> list[TargetSpec]:  # type: ignore[empty-body]  # a hookspec: pluggy never runs its body
    """Register targets (what a map explains).

    Return a list of :class:`ultralytics_cam.TargetSpec`; ``values(ctx)`` returns, per image, an (n,) tensor with one
    differentiable value per selected prediction, read from ``ctx.head_out`` (the raw head tensors). ``tasks`` and
    ``heads`` restrict where the target applies; names must be unique across all plugins.
    """


@hookspec
def ultralytics_cam_register_writers() -> list[WriterSpec]:  # type: ignore[empty-body]  # a hookspec: pluggy never runs its body
    """Register output writers (files written per image and per run when saving).

    Return a list of :class:`ultralytics_cam.writers.WriterSpec`; ``write_image(cam, folder, config)`` writes an
    image's files into its output folder and returns their paths, ``write_run(summary, save_dir)`` writes run-level
    files. Names must be unique across all plugins.
    """


@hookspec
def ultralytics_cam_result_ready(result: Any, cam: CamResult, config: CamConfig) -> None:
    """Called once per image when its CAM is ready, before the result is yielded or saved.

    Args:
        result: the image's Ultralytics ``Results`` (``result.cam is cam``).
        cam: its :class:`ultralytics_cam.CamResult`.
        config: the run's :class:`ultralytics_cam.CamConfig`.

    Exceptions are logged with the plugin's name and do not stop the run.
    """
