"""Localisation scores (pointing game, energy in box): moved to :mod:`ultralytics_cam.metrics`, re-exported here.

Kept so that existing imports (``from ultralytics_cam.evaluation import localisation``) keep working.
"""

from __future__ import annotations

from .metrics import LocalisationScores, box_iou, localisation

__all__ = ["LocalisationScores", "box_iou", "localisation"]
