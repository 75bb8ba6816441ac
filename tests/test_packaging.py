"""The wheel holds what the installed package uses at run time, and nothing only the tests and the docs use."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from ultralytics_cam.cli import DEMO_MODEL as DEMO_MODEL_PATH

from conftest import MODELS, ROOT

PACKAGE = "ultralytics_cam"
DEMO_MODEL = DEMO_MODEL_PATH.relative_to(ROOT).as_posix()  # `yolo-cam demo` and the app load it by default


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """Build the wheel from the working tree the way an installer does and return the paths inside it.

    pip drives the build backend through PEP 517 (the same hook ``python -m build`` calls). ``--no-build-isolation``
    uses the hatchling of the dev extra instead of downloading one into a fresh environment, so it runs offline.
    """
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"building the wheel failed (is the dev extra installed?):\n{proc.stderr}"
    (wheel,) = out.glob("ultralytics_cam-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_wheel_ships_the_py_typed_marker(wheel_files):
    assert f"{PACKAGE}/py.typed" in wheel_files  # PEP 561: type checkers read the package's own annotations


def test_wheel_ships_the_demo_model_and_images(wheel_files):
    demo = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE / "assets" / "demo").iterdir())
    assert any(name.endswith(".png") for name in demo) and f"{PACKAGE}/assets/demo/labels.json" in demo
    assert DEMO_MODEL in wheel_files
    assert set(demo) <= wheel_files, sorted(set(demo) - wheel_files)


def test_wheel_leaves_out_test_models_demo_output_tests_and_scripts(wheel_files):
    assert [name for name in wheel_files if name.endswith(".pt")] == [DEMO_MODEL]
    test_only = {p.name for p in MODELS.iterdir()}  # the other trained models and their metrics.json
    assert {"classify.pt", "metrics.json"} <= test_only  # the check below looks for real files
    assert not [name for name in wheel_files if name.rsplit("/", 1)[-1] in test_only]
    assert not [name for name in wheel_files if "demo_output" in name]
    assert not [name for name in wheel_files if name.split("/", 1)[0] in {"tests", "scripts", "docs", "benchmarks"}]
    assert not [name for name in wheel_files if "synthetic_shapes" in name]


def test_wheel_package_files_are_the_source_tree(wheel_files):
    """Every module of the package is in the wheel (a forgotten include would break the installed package)."""
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / PACKAGE).rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= wheel_files, sorted(modules - wheel_files)
