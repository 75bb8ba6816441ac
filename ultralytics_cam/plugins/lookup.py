"""Looking methods, targets and writers up by the names users type, in the registries the plugins fill.

Everything above the registry (the config, the engine, the save path, the CLI listings, the app) looks names up
here; the modules that declare specs (:mod:`~ultralytics_cam.methods`, :mod:`~ultralytics_cam.targets`,
:mod:`~ultralytics_cam.writers`) never do.
"""

from __future__ import annotations

from ..errors import MethodError, TargetError
from ..methods.base import MethodSpec
from ..registry import Registry, canonical
from ..targets import TargetSpec
from ..writers import WriterSpec
from .manager import get_registry

__all__ = [
    "check_target",
    "get_method_spec",
    "get_target_spec",
    "method_registry",
    "method_specs",
    "target_registry",
    "writer_registry",
]


def method_registry() -> Registry[MethodSpec]:
    """Every registered method (built-ins and plugins), refused ones included."""
    return get_registry("method")


def target_registry() -> Registry[TargetSpec]:
    """Every registered target."""
    return get_registry("target")


def writer_registry() -> Registry[WriterSpec]:
    """Every registered writer, in the order they run."""
    return get_registry("writer")


def method_specs(include_unknown: bool = False) -> dict[str, MethodSpec]:
    """Every registered method by name, refused ones included.

    Args:
        include_unknown: also list the grad-cam classes this version has no adapter for, refused with that reason
            (imports grad-cam, ~2 s).
    """
    specs = {s.name: s for s in method_registry()}
    if include_unknown:
        from ..methods import grad_cam_exports

        known = {canonical(name) for name in specs}
        for name in grad_cam_exports():
            if canonical(name) not in known:
                why = "not adapted to Ultralytics heads by this version"
                specs[name] = MethodSpec(name, None, True, "not available", refused=why)
    return specs


def get_method_spec(name: object) -> MethodSpec:
    """Look a method up by its name as users type it (``hirescam``, ``GradCAM++``).

    Raises:
        MethodError: the name is unknown (with close matches), or the method is refused (with the reason).
    """
    if not isinstance(name, str) or not name:
        raise MethodError(f"method must be a method name such as 'HiResCAM', got {name!r}.")
    registry = method_registry()
    spec = registry.find(name)
    if spec is None:  # a grad-cam class this version does not know: say so instead of "unknown"
        spec = {canonical(n): s for n, s in method_specs(include_unknown=True).items()}.get(canonical(name))
    if spec is None:
        raise registry.unknown(name, [s.name for s in registry if s.refused is None])
    if spec.refused:
        raise MethodError(f"method '{spec.name}' is not supported: {spec.refused}.")
    return spec


def get_target_spec(name: object, task: str | None = None, head: str | None = None) -> TargetSpec:
    """Look a target up by name and, given a task and head class name, check that it applies (:func:`check_target`).

    Raises:
        TargetError: unknown name (with close matches), or a target this task / head does not have.
    """
    spec = target_registry().get(name)
    if task is not None:
        check_target(spec, task, head or "")
    return spec


def check_target(spec: TargetSpec, task: str, head: str) -> TargetSpec:
    """Return ``spec`` if it applies to a model of ``task`` whose head class is ``head``.

    Raises:
        TargetError: it does not; the message lists the targets that do.
    """
    if not spec.supports(task, head):
        valid = [s.name for s in target_registry() if s.supports(task, head)]
        raise TargetError(
            f"target='{spec.name}' is not available for task '{task}' ({head} head). Valid targets: {', '.join(valid)}."
        )
    return spec
