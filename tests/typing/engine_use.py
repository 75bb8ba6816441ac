"""The engine's seams as a type checker sees them: checked by mypy (strict) with ``public_api.py``, never run.

``CamEngine`` takes a ``PredictorLike``: an Ultralytics predictor and a CAM predictor are accepted, and an object
without the run settings the engine reads (``args``: task, imgsz, verbose) is refused (the ``# type: ignore`` line:
strict mypy's warn_unused_ignores fails the check if that error disappears). ``ForwardPass.head_out`` is
``HeadOutput``, not ``Any``.
"""

from __future__ import annotations

from typing_extensions import assert_type
from ultralytics.engine.predictor import BasePredictor

from ultralytics_cam.config import CamConfig
from ultralytics_cam.engine import CamEngine, ForwardPass, HeadOutput
from ultralytics_cam.predictor import CamPredictorMixin


class ModelOnly:
    model = None


def build(p: BasePredictor, cam: CamPredictorMixin, config: CamConfig) -> None:
    CamEngine(p, config)
    CamEngine(cam, config)
    CamEngine(ModelOnly(), config)  # type: ignore[arg-type]


def head(fwd: ForwardPass) -> None:
    assert_type(fwd.head_out, HeadOutput)
