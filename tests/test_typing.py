"""The public API's and the engine's types: ``tests/typing/`` passes strict mypy.

``.ci/run`` type-checks the whole package too; this test keeps the check in the test suite, where a signature change
shows up next to the other tests. The files' ``# type: ignore[...]`` lines are the wrong uses: strict mypy's
warn_unused_ignores fails the check when one of them stops being an error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPING = ROOT / "tests" / "typing"  # public_api.py (the public API) and engine_use.py (the engine's seams)

pytestmark = pytest.mark.slow  # mypy reads torch's and numpy's stubs: ~30-60 s on a 2-core CPU


def _mypy(*paths: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--follow-imports=silent"]
    args += ["--cache-dir", str(cache), *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)


def test_public_api_and_engine_seams_type_check(tmp_path_factory):
    """Every file in tests/typing/ passes strict mypy: its ``assert_type`` lines hold and each ``# type: ignore`` line
    still catches its error (warn_unused_ignores)."""
    out = _mypy(TYPING, cache=tmp_path_factory.getbasetemp() / "mypy-cache")
    assert out.returncode == 0, out.stdout + out.stderr
