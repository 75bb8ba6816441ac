"""The validation failure hook: which predictions failed, why, and what the model saw there.

``add_val_failure_hook(model)`` makes a plain ``model.val(data=...)`` also write ``save_dir/cam_failures/``. This
package holds the hook and its helpers, one job per module:

- :mod:`.hook`: the validator callbacks, their options and the run that drives the helpers below.
- :mod:`.mining`: the failures of one image, from Ultralytics' own matching of predictions to ground truth.
- :mod:`.explain`: one CAM pass for a batch of failure images (the failing prediction, or the strongest candidate
  at a missed object).
- :mod:`.drawing`: the per-image panel and the contact sheet.
- :mod:`.report`: the ``cam_failures/`` folder: per-image files, ``failures.json``, ``failures.csv``.

Only the hook's public names are imported here; the helpers (torch, OpenCV) load when a validation runs.
"""

from __future__ import annotations

from .hook import (
    FailureOptionError,
    FailureOptions,
    add_val_failure_hook,
    cam_val,
    remove_val_failure_hook,
    val_failure_callbacks,
)

__all__ = [
    "FailureOptionError",
    "FailureOptions",
    "add_val_failure_hook",
    "cam_val",
    "remove_val_failure_hook",
    "val_failure_callbacks",
]
