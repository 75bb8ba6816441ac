"""Where methods come from: the built-ins today, pluggy plugins through the same entry point later.

Everything that lists or looks up methods goes through :func:`registered_method_specs`, so the plugin system only has
to feed this one function.
"""

from __future__ import annotations

from ..methods.base import MethodSpec

__all__ = ["registered_method_specs"]


def registered_method_specs(include_unknown: bool = False) -> list[MethodSpec]:
    """Return every registered method spec, refused ones included.

    Args:
        include_unknown: also list grad-cam exports this version has no adapter for (imports grad-cam).
    """
    from ..methods import builtin_method_specs

    return builtin_method_specs(include_unknown=include_unknown)
