"""Validation failure analysis: which predictions failed, why, and what the model saw there.

- :mod:`.mining`: the failures of one image, from Ultralytics' own matching of predictions to ground truth.
- :mod:`.explain`: one CAM pass for a batch of failure images (the failing prediction, or the strongest candidate
  at a missed object).
- :mod:`.drawing`: the per-image panel and the contact sheet.
- :mod:`.report`: the ``cam_failures/`` folder: per-image files, ``failures.json``, ``failures.csv``.

The validator hook that drives them, and the public functions, are in :mod:`ultralytics_cam.val_failures`.
"""

from __future__ import annotations

from .mining import KINDS, TASK_KINDS, Failure, ImageCase

__all__ = ["KINDS", "TASK_KINDS", "Failure", "ImageCase"]
