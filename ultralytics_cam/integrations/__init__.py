"""Integrations: how the package plugs into Ultralytics' own ``Model``, predictor and validator.

- :mod:`.model_patch`: ``Model.cam``, the one thing ``import ultralytics_cam`` changes.
- :mod:`.predict_callbacks`: ``add_cam_callbacks``: ``r.cam`` and heatmaps from a plain ``model.predict`` / ``track``.
- :mod:`.val_hook`: ``add_val_failure_hook``: a plain ``model.val`` also explains the model's failures.
- :mod:`.base`: what the two callback integrations share (mark, register, remove, guard).

The public functions are exported by :mod:`ultralytics_cam` itself; nothing is imported here, so a module of this
package loads only what it needs.
"""

from __future__ import annotations

__all__: list[str] = []
