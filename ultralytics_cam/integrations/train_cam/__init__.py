"""CAMs during training: a timeline of what the model looks at, epoch after epoch, and heatmaps in the trackers.

``add_train_cam_callback(model)`` makes a plain ``model.train(...)`` explain fixed probe images with the model of
every chosen epoch. One job per module:

- :mod:`.callback`: the trainer callbacks, their options and the state of one training.
- :mod:`.probes`: which images are probed, and where their labelled objects are.
- :mod:`.epoch`: one explained epoch (the ``yolo-cam predict`` layout in ``cam/epoch_<NNN>/``) and its scores.
- :mod:`.timeline`: the records, timelines, grid, ``cam_metrics.csv`` and its plot, rebuilt from disk.

Only the callback's public names are imported here; the helpers (torch, OpenCV, matplotlib) load when training runs.
"""

from __future__ import annotations

from .callback import (
    CLI_KEYS,
    TIMELINE_FORMATS,
    TrainCamOptionError,
    TrainCamOptions,
    add_train_cam_callback,
    remove_train_cam_callback,
    train_cam_callbacks,
)

__all__ = [
    "CLI_KEYS",
    "TIMELINE_FORMATS",
    "TrainCamOptionError",
    "TrainCamOptions",
    "add_train_cam_callback",
    "remove_train_cam_callback",
    "train_cam_callbacks",
]
