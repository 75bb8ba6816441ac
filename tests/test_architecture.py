"""The package's layers (docs/architecture.md): every module imports only from its own layer or the layers below.

Imports are read from the source with ``ast``, function-level (lazy) imports included, ``if TYPE_CHECKING:`` blocks
excluded (they never run). The registry rule of issue 14 is the sharpest case: the modules that declare methods,
targets and writers sit below the registry and never import it, so the registry no longer sits both above and below
what it registers.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ultralytics_cam"

#: Layers from the bottom up: a module's own prefix decides its layer (the longest matching prefix wins). A new module
#: must be placed here, which is the point: its place in the layering is a decision, not an accident.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "_logging",
            "errors",
            "maps",
            "plotting",
            "replay",
            "geometry",
            "manifest",
            "methods.projection",
            "imputation",
            "intervals",
            "similarity",
            "agreement",
        ),
    ),
    ("model", ("layers", "heads")),
    ("specs", ("methods", "targets", "writers", "report")),
    ("registry", ("registry", "plugins")),
    (
        "engine",
        (
            "config",
            "engine",
            "blackbox",
            "result",
            "saving",
            "summary",
            "segments",
            "sources",
            "predictor",
            "api",
            "integrations",
            "metrics",
            "localisation",
            "baselines",
            "sanity",
            "evaluation",
        ),
    ),
    ("front ends", ("ranking", "verdicts", "figures", "listings", "cli", "distributed", "app", "")),
]
REGISTRY = next(i for i, (name, _) in enumerate(LAYERS) if name == "registry")


def module_name(path: Path) -> str:
    """``ultralytics_cam/heads/dense.py`` -> ``heads.dense``; the package itself is ``""``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The layer index of a module (by its longest matching prefix); -1 if none matches."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix and module.startswith(prefix + "."))  # "" is the package only
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def runtime_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports at run time (any depth, TYPE_CHECKING blocks excluded)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name == "ultralytics_cam" or alias.name.startswith("ultralytics_cam."):
                    found.add(alias.name.removeprefix("ultralytics_cam").lstrip("."))

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, node.module] if node.module else base)
            elif node.module and (node.module == "ultralytics_cam" or node.module.startswith("ultralytics_cam.")):
                target = node.module.removeprefix("ultralytics_cam").lstrip(".")
            else:
                return
            found.add(target)
            for alias in node.names:  # `from . import engine` imports a module, not a name
                if (PACKAGE / Path(*f"{target}.{alias.name}".strip(".").split("."))).with_suffix(".py").exists():
                    found.add(f"{target}.{alias.name}".strip("."))

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(own)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert layer_of("brand_new_module") == -1  # a module nobody placed has no layer (the "" entry is the package only)
    assert layer_of("") == len(LAYERS) - 1 and layer_of("heads.dense") == layer_of("heads")
    assert [module_name(p) for p in MODULES if layer_of(module_name(p)) < 0] == []


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) or "ultralytics_cam" for p in MODULES])
def test_modules_import_only_from_their_layer_or_below(path):
    here = layer_of(module_name(path))
    upward = {m: LAYERS[layer_of(m)][0] for m in runtime_imports(path) if layer_of(m) > here}
    assert upward == {}, f"{module_name(path)} ({LAYERS[here][0]}) imports from layers above it: {upward}"


def test_nothing_below_the_registry_imports_it():
    offenders = {
        module_name(p): sorted(m for m in runtime_imports(p) if layer_of(m) == REGISTRY)
        for p in MODULES
        if layer_of(module_name(p)) < REGISTRY
    }
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_import_scanner_sees_lazy_imports_and_skips_type_checking(tmp_path, monkeypatch):
    # The rule is only as good as the scanner: a lazy import inside a function counts; a TYPE_CHECKING one does not.
    probe = tmp_path / "ultralytics_cam" / "methods" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..config import CamConfig\n"
        "def f():\n    from ..plugins import get_method_spec\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "ultralytics_cam")
    assert runtime_imports(probe) == {"plugins"}
