"""A registry of named specs: name normalisation, lookup with did-you-mean, duplicates and provenance, in one place.

Methods, targets and writers only *declare* specs (frozen dataclasses with a ``name`` and a ``provider``); they never
import this module or the plugins. :mod:`ultralytics_cam.plugins` collects every plugin's specs into one
:class:`Registry` per kind, and everything that looks a name up (the config, the CLI listings, the app) asks that
registry. ``tests/test_architecture.py`` checks the layering.

Names are compared as users type them: case-insensitively, ignoring ``_``, ``-`` and spaces, with ``++`` read as
``PlusPlus`` (``gradcam++`` finds ``GradCAMPlusPlus``).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from .errors import CamError, PluginError

__all__ = ["Registry", "Spec", "canonical"]


class Spec(Protocol):
    """What a registry holds: a frozen dataclass with a user-facing ``name`` and the ``provider`` that registered it."""

    @property
    def name(self) -> str: ...  # noqa: D102 (documented on the class)

    @property
    def provider(self) -> str: ...  # noqa: D102


SpecT = TypeVar("SpecT", bound=Spec)


def canonical(name: str) -> str:
    """Return the lookup key of a name: case-insensitive, ignoring ``_``, ``-``, spaces; ``++`` = PlusPlus."""
    return name.lower().replace("++", "plusplus").replace("_", "").replace("-", "").replace(" ", "")


class Registry(Generic[SpecT]):
    """The specs of one kind (``method``, ``target``, ``writer``) by name, in registration order.

    Args:
        kind: what the specs are, as the option is called (``method``): used in every message.
        error: the exception a failed lookup raises (``MethodError`` for methods...).
        noun: how messages call one spec ("CAM method"); defaults to ``kind``.
    """

    def __init__(self, kind: str, error: type[CamError] = CamError, noun: str | None = None) -> None:
        self.kind = kind
        self.error = error
        self.noun = noun or kind
        self._specs: dict[str, SpecT] = {}  # canonical name -> spec

    def add(self, spec: SpecT, provider: str) -> SpecT:
        """Register ``spec`` as provided by ``provider``; return the stored copy (with its provider filled in).

        Raises:
            PluginError: a spec of the same (canonical) name is registered already; ``error.plugin`` is ``provider``.
        """
        key = canonical(spec.name)
        if key in self._specs:
            first = self._specs[key].provider
            raise PluginError(
                f"{self.kind} '{spec.name}' is registered twice: by '{first}' and by '{provider}'. Uninstall one or "
                f"block it with ULTRALYTICS_CAM_BLOCK_PLUGINS={provider}.",
                plugin=provider,
            )
        stored = dataclasses.replace(spec, provider=provider)  # type: ignore[type-var]  # specs are dataclasses
        self._specs[key] = stored
        return stored

    def find(self, name: object) -> SpecT | None:
        """The spec called ``name`` (as users type it), or None."""
        return self._specs.get(canonical(name)) if isinstance(name, str) else None

    def get(self, name: object, valid: Iterable[str] | None = None) -> SpecT:
        """The spec called ``name``.

        Args:
            name: the name as the user typed it.
            valid: the names to offer in the message when ``name`` is unknown (default: every registered name).

        Raises:
            error: ``name`` is unknown; the message names the option, the closest names and the valid ones.
        """
        spec = self.find(name)
        if spec is None:
            raise self.unknown(name, valid)
        return spec

    def unknown(self, name: object, valid: Iterable[str] | None = None) -> CamError:
        """The error for an unknown ``name``, with close matches and the valid names."""
        names = list(valid) if valid is not None else self.names()
        close = self.close_matches(str(name), names)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return self.error(
            f"{self.kind}={name!r} is not a known {self.noun}.{hint} Valid {self.kind}s: {', '.join(names)}."
        )

    @staticmethod
    def close_matches(name: str, names: list[str], n: int = 3) -> list[str]:
        """Up to ``n`` of ``names`` close to ``name``, compared as typed and then by canonical key."""
        close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
        if not close:
            by_key = {canonical(x): x for x in names}
            close = [by_key[k] for k in difflib.get_close_matches(canonical(name), list(by_key), n=n, cutoff=0.5)]
        return close

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        return [s.name for s in self._specs.values()]

    def values(self) -> list[SpecT]:
        """Every registered spec, in registration order."""
        return list(self._specs.values())

    def __iter__(self) -> Iterator[SpecT]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None
