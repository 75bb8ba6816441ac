"""The package logger.

Messages go through a child of Ultralytics' own ``ultralytics`` logger, so they share its handler, format and
verbosity switch (``YOLO_VERBOSE=False`` silences both).
"""

from __future__ import annotations

import logging

__all__ = ["LOGGER", "PREFIX"]

LOGGER = logging.getLogger("ultralytics.cam")
PREFIX = "ultralytics-cam: "
