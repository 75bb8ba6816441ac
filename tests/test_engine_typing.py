"""The engine's seams are typed: ``CamEngine`` takes a ``PredictorLike`` and a forward pass's head output is typed.

Checked with mypy (strict, the project's configuration) on a small file that uses the engine: an Ultralytics
predictor and a CAM predictor are accepted, an object without the run settings the engine reads is refused, and
``ForwardPass.head_out`` is ``HeadOutput``, not ``Any``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # mypy reads torch's and numpy's stubs: ~30-60 s on a 2-core CPU

USE = """\
from ultralytics.engine.predictor import BasePredictor

from ultralytics_cam.config import CamConfig
from ultralytics_cam.engine import CamEngine, ForwardPass
from ultralytics_cam.predictor import CamPredictorMixin


class ModelOnly:
    model = None


def build(p: BasePredictor, cam: CamPredictorMixin, config: CamConfig) -> None:
    CamEngine(p, config)
    CamEngine(cam, config)
    CamEngine(ModelOnly(), config)  # line 15: no args, so no task / imgsz / verbose


def head(fwd: ForwardPass) -> None:
    reveal_type(fwd.head_out)  # line 19
"""


def test_engine_takes_a_predictor_like_and_types_the_head_output(tmp_path, tmp_path_factory):
    use = tmp_path / "engine_use.py"
    use.write_text(USE, encoding="utf-8")
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--follow-imports=silent"]
    args += ["--cache-dir", str(tmp_path_factory.getbasetemp() / "mypy-cache"), str(use)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False).stdout
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out  # the two real predictors are accepted
    assert "engine_use.py:15: error:" in errors[0], out
    assert '"ModelOnly"; expected "PredictorLike"' in errors[0], out
    assert 'engine_use.py:19: note: Revealed type is "torch._tensor.Tensor | tuple[Any, Any]"' in out, out
