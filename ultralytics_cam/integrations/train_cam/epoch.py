"""One explained epoch: the probe images through our CAM predictor, into ``cam/epoch_<NNN>/``, and its scores.

The model explained is a copy: Ultralytics' own ``setup_model`` deep-copies the network it is given (the trainer's EMA
model, or the weights of ``best.pt``) and fuses the copy inside an ``AutoBackend``, so the trainer's networks never
see a hook, a ``requires_grad`` change, a fused layer or a reset head cache. The predictor is the task's own
Ultralytics predictor with our CAM step (:func:`~ultralytics_cam.predictor.cam_predictor_class`), run with
``save=True``: the epoch folder has exactly what ``yolo-cam predict`` writes (a folder per image with
``detection.png``, ``heatmap.png``, ``heatmap.npy``, ``cam.json``; ``summary.json``). It runs in float32 whatever the
training's ``amp``: the EMA weights are float32, and the maps do not depend on the training's mixed precision.

Scores per image, from ``r.cam.heatmap`` (every explained prediction combined, at the original size, in [0, 1]):

- ``energy_in_gt``: the share of the map's sum inside the probe's object region (:mod:`.probes`);
- ``gt_area``: the share of the image the region covers: what a uniform map would score (chance level);
- ``pointing_game``: 1 if the map's peak lies inside the region, else 0;
- ``change``: the mean absolute difference from the same image's map at the previous explained epoch (read back from
  its ``heatmap.npy``, so a resumed run measures against the epoch before the interruption).

An image without an explained prediction (nothing above ``conf`` yet) has an all-zero map: it counts in ``change``
but not in the localisation scores, whose means are over the images that have a map and a region.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ...config import CamConfig
    from .probes import Probe

__all__ = ["SCORES", "EpochScores", "epoch_folder", "explain_epoch", "explained_epochs", "previous_maps"]

#: The per-epoch score columns of ``cam_metrics.csv``, in order.
SCORES = ("energy_in_gt", "gt_area", "pointing_game", "change")
_EPOCH_PREFIX = "epoch_"


def epoch_folder(cam_dir: Path, epoch: int) -> Path:
    """``cam/epoch_001`` for epoch 1 (1-based, as ``results.csv`` counts); wider numbers past 999."""
    return cam_dir / f"{_EPOCH_PREFIX}{epoch:03d}"


def explained_epochs(cam_dir: Path) -> dict[int, Path]:
    """``{epoch: folder}`` of every epoch folder in ``cam_dir`` with a ``summary.json``, by epoch."""
    out = {}
    for p in cam_dir.glob(f"{_EPOCH_PREFIX}*"):
        number = p.name[len(_EPOCH_PREFIX) :]
        if number.isdigit() and (p / "summary.json").is_file():
            out[int(number)] = p
    return dict(sorted(out.items()))


def image_folders(folder: Path) -> dict[str, Path]:
    """``{resolved source path: image folder}`` of one epoch folder, from its ``summary.json``."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(Path(line["source"]).resolve()): folder / str(line["folder"]) for line in summary.get("images", [])}


def previous_maps(cam_dir: Path, epoch: int) -> dict[str, np.ndarray]:
    """``{resolved source path: heatmap}`` of the latest explained epoch before ``epoch`` (empty if there is none)."""
    earlier = [e for e in explained_epochs(cam_dir) if e < epoch]
    if not earlier:
        return {}
    out = {}
    for source, folder in image_folders(epoch_folder(cam_dir, earlier[-1])).items():
        try:
            out[source] = np.load(folder / "heatmap.npy")
        except (OSError, ValueError):
            continue
    return out


@dataclass
class EpochScores:
    """The scores of one explained epoch (means over the probe images; NaN where no image counts)."""

    images: int = 0
    predictions: int = 0
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    def mean(self, key: str) -> float:
        """The mean of ``key`` over the images that have it (NaN if none)."""
        values = [v[key] for v in self.per_image.values() if not math.isnan(v.get(key, math.nan))]
        return float(np.mean(values)) if values else math.nan

    def row(self) -> dict[str, float]:
        """The epoch's row of scores (``images``, ``predictions``, then :data:`SCORES`)."""
        return {"images": self.images, "predictions": self.predictions, **{k: self.mean(k) for k in SCORES}}


def image_scores(heatmap: np.ndarray, region: np.ndarray | None, previous: np.ndarray | None) -> dict[str, float]:
    """The scores of one image's combined map (see the module docstring)."""
    scores = dict.fromkeys(SCORES, math.nan)
    total = float(heatmap.sum())
    if region is not None and region.shape == heatmap.shape and region.any():
        scores["gt_area"] = float(region.mean())
        if total > 0:
            scores["energy_in_gt"] = float(heatmap[region].sum() / total)
            y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
            scores["pointing_game"] = float(region[y, x])
    if previous is not None and previous.shape == heatmap.shape:
        scores["change"] = float(np.abs(heatmap.astype(np.float32) - previous.astype(np.float32)).mean())
    return scores


def explain_epoch(
    net: Any,
    predictor_cls: type,
    probes: list[Probe],
    config: CamConfig,
    folder: Path,
    *,
    task: str,
    imgsz: Any,
    device: str,
    conf: float,
    previous: dict[str, np.ndarray],
) -> EpochScores:
    """Explain ``probes`` with a copy of ``net`` into ``folder`` (replaced if it exists); return the epoch's scores.

    ``predictor_cls`` is the task's Ultralytics predictor class. Nothing of the trainer is touched: the predictor
    copies ``net`` and has Ultralytics' default callbacks only (never the training's own).
    """
    import shutil

    from ultralytics.utils import callbacks

    from ...api import PREDICT_DEFAULTS
    from ...predictor import cam_predictor_class

    if folder.exists():  # an epoch redone (a resumed run re-trains the epochs after its checkpoint): ours to replace
        shutil.rmtree(folder)
    args = {
        **PREDICT_DEFAULTS,
        "task": task,
        "imgsz": imgsz,
        "device": device,
        "conf": conf,
        "save": True,
        "project": str(folder.parent),
        "name": folder.name,
        "exist_ok": True,
        "verbose": False,
    }
    own = callbacks.get_default_callbacks()  # type: ignore[no-untyped-call]  # Ultralytics: no annotations
    predictor = cam_predictor_class(predictor_cls)(overrides=args, _callbacks=own)
    predictor.cam_config = config
    predictor.setup_model(model=net, verbose=False)
    regions = {str(Path(p.path).resolve()): p.region for p in probes}
    scores = EpochScores()
    with _without_results_saved():
        for r in predictor(source=[p.path for p in probes], stream=True):
            source = str(Path(r.path).resolve())
            heatmap = r.cam.heatmap
            scores.per_image[r.path] = image_scores(heatmap, regions.get(source), previous.get(source))
            scores.images += 1
            scores.predictions += len(r.cam)
    return scores


@contextlib.contextmanager
def _without_results_saved() -> Iterator[None]:
    """Keep the predictor's "Results saved to ..." line out of the training's log (the callback says where)."""
    from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Results saved to")

    ULTRALYTICS_LOGGER.addFilter(keep)
    try:
        yield
    finally:
        ULTRALYTICS_LOGGER.removeFilter(keep)
