"""The public API's types: ``tests/typing/public_api.py`` passes strict mypy, and a wrong use fails it.

``.ci/run`` type-checks the whole package too; this test keeps the public-API check in the test suite, where a
signature change shows up next to the other tests, and proves the check can fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_API = ROOT / "tests" / "typing" / "public_api.py"

pytestmark = pytest.mark.slow  # mypy reads torch's and numpy's stubs: ~30-60 s on a 2-core CPU


def _mypy(*paths: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--follow-imports=silent"]
    args += ["--cache-dir", str(cache), *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)


def test_public_api_types_check(tmp_path_factory):
    out = _mypy(PUBLIC_API, cache=tmp_path_factory.getbasetemp() / "mypy-cache")
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_wrong_use_of_the_public_api_fails_the_check(tmp_path, tmp_path_factory):
    wrong = tmp_path / "wrong_use.py"
    wrong.write_text(
        "from ultralytics_cam import CamConfig, CamResult\n"
        "CamConfig(alpha='high')\n"
        "def f(cam: CamResult) -> str:\n    return cam.heatmap\n",
        encoding="utf-8",
    )
    out = _mypy(wrong, cache=tmp_path_factory.getbasetemp() / "mypy-cache")
    assert out.returncode == 1
    assert 'Argument "alpha" to "CamConfig" has incompatible type "str"' in out.stdout
    assert "Incompatible return value type" in out.stdout
