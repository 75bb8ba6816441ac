"""Images, scores and files to the experiment trackers that Ultralytics' own logger integrations opened.

Ultralytics adds its integrations' callbacks to a trainer when their setting is on (``yolo settings tensorboard=True``,
``mlflow``, ``wandb``, ``clearml``, ``comet``, ``dvc``) and each opens its run at the start of training. A tracker is
*active* here when its Ultralytics callbacks are among the trainer's and its run is open; we then log into that very
run through the tracker's own API (never a second run), under a ``cam/`` prefix, at the epoch Ultralytics logs its
metrics at:

============  =================================  ==========================  =====================================
tracker       the run                            images / scores              files (timelines, CSV)
============  =================================  ==========================  =====================================
TensorBoard   ``tensorboard.WRITER``             ``add_image`` / scalar      images only (videos need moviepy)
MLflow        ``mlflow.active_run()``            ``log_image`` / metrics     ``log_artifact`` under ``cam/``
W&B           ``wandb.run``                      ``wandb.Image`` / ``log``   ``wandb.Video``, ``wandb.Image``
ClearML       ``Task.current_task()``            ``report_image`` / scalar   ``upload_artifact``
Comet         ``get_running_experiment()``       ``log_image`` / metrics     ``log_asset``
DVC           ``dvc.live``                       ``log_image`` / metric      ``log_artifact``
============  =================================  ==========================  =====================================

Ultralytics 8.4.190 has no Neptune integration, so there is none here. A tracker that fails is logged once and
left alone for the rest of the run; training never notices.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .._logging import LOGGER, PREFIX

__all__ = ["TRACKERS", "Trackers"]

_PACKAGE = "ultralytics.utils.callbacks"
#: Our name of each tracker -> the module of its Ultralytics integration (``ultralytics.utils.callbacks.<module>``).
TRACKERS = {
    "tensorboard": "tensorboard",
    "mlflow": "mlflow",
    "wandb": "wb",
    "clearml": "clearml",
    "comet": "comet",
    "dvc": "dvc",
}
_IMAGES = {".png", ".jpg", ".jpeg"}
_VIDEOS = {".mp4", ".gif"}
_ATTR = "_ultralytics_cam_trackers"  # the Trackers of one trainer, on the trainer (failures are remembered per run)


class Trackers:
    """The active trackers of one training run, with what failed in them."""

    def __init__(self, trainer: Any) -> None:
        """Find the trackers whose Ultralytics integration is registered on ``trainer``."""
        self.trainer = trainer
        modules = {getattr(fn, "__module__", "") for fns in trainer.callbacks.values() for fn in fns}
        self.names = [name for name, module in TRACKERS.items() if f"{_PACKAGE}.{module}" in modules]
        self.failed: set[str] = set()

    @classmethod
    def of(cls, trainer: Any) -> Trackers:
        """The :class:`Trackers` of ``trainer`` (made once per trainer, so a failing tracker is skipped afterwards)."""
        found = trainer.__dict__.get(_ATTR)
        if not isinstance(found, Trackers):
            found = trainer.__dict__[_ATTR] = cls(trainer)
        return found

    def active(self) -> list[str]:
        """The names of the trackers whose run is open now and that have not failed."""
        return [n for n in self.names if n not in self.failed and _run(n, self.trainer) is not None]

    def images(self, images: Mapping[str, Path], step: int) -> list[str]:
        """Log ``{tag: image file}`` (tags start with ``cam/``) at ``step``; return the trackers that took them."""
        if not images:
            return []
        return self._each(lambda name, run: _IMAGE_LOGGERS[name](run, images, step))

    def scalars(self, values: Mapping[str, float], step: int) -> list[str]:
        """Log ``{tag: value}`` at ``step`` (NaN values are left out)."""
        finite = {k: float(v) for k, v in values.items() if not math.isnan(float(v))}
        if not finite:
            return []
        return self._each(lambda name, run: _SCALAR_LOGGERS[name](run, finite, step))

    def files(self, files: Iterable[Path], folder: str, step: int) -> list[str]:
        """Log files (videos, images, tables) under ``folder`` (``cam/timeline``), at ``step`` where it applies."""
        files = [Path(f) for f in files if Path(f).is_file()]
        if not files:
            return []
        return self._each(lambda name, run: _FILE_LOGGERS[name](run, files, folder, step))

    def _each(self, log: Callable[[str, Any], None]) -> list[str]:
        done = []
        for name in self.names:
            if name in self.failed:
                continue
            run = _run(name, self.trainer)
            if run is None:
                continue
            try:
                log(name, run)
            except Exception as e:
                self.failed.add(name)
                LOGGER.warning(
                    f"{PREFIX}could not log CAM images to {name} ({type(e).__name__}: {e}); not trying {name} again in "
                    "this run. Training and the other trackers are unaffected."
                )
                continue
            done.append(name)
        return done


def _module(name: str) -> Any:
    """The Ultralytics integration module of tracker ``name``, if it was imported (it is when it is registered)."""
    return sys.modules.get(f"{_PACKAGE}.{TRACKERS[name]}")


def _run(name: str, trainer: Any) -> Any:
    """The open run of tracker ``name`` (the object its API is called on), or None."""
    module = _module(name)
    if module is None:
        return None
    try:
        if name == "tensorboard":
            return getattr(module, "WRITER", None)
        if name == "mlflow":
            mlflow = getattr(module, "mlflow", None)
            return mlflow if mlflow and getattr(trainer, "_mlflow_active", False) and mlflow.active_run() else None
        if name == "wandb":
            wb = getattr(module, "wb", None)
            return wb if wb and wb.run else None
        if name == "clearml":
            task_cls = getattr(module, "Task", None)
            return task_cls.current_task() if task_cls else None
        if name == "comet":
            comet_ml = getattr(module, "comet_ml", None)
            return comet_ml.get_running_experiment() if comet_ml else None
        if name == "dvc":
            return getattr(module, "live", None)
    except Exception:
        return None
    return None


def _rgb(path: Path) -> Any:
    """An image file as an RGB uint8 array."""
    from ultralytics.utils.patches import imread

    image = imread(str(path))
    if image is None:
        raise OSError(f"could not read {path}")
    return image[..., ::-1].copy()


# -- images ----------------------------------------------------------------------------------------------------------
def _tb_images(writer: Any, images: Mapping[str, Path], step: int) -> None:
    for tag, path in images.items():
        writer.add_image(tag, _rgb(path), step, dataformats="HWC")
    writer.flush()


def _mlflow_images(mlflow: Any, images: Mapping[str, Path], step: int) -> None:
    for tag, path in images.items():  # cam/<image> at step 3 -> cam/epoch_003/<image>.png
        head, _, name = tag.rpartition("/")
        mlflow.log_image(_rgb(path), artifact_file=f"{head}/epoch_{step:03d}/{name}{path.suffix}")


def _wandb_images(wb: Any, images: Mapping[str, Path], step: int) -> None:
    wb.run.log({tag: wb.Image(str(path), caption=f"epoch {step}") for tag, path in images.items()}, commit=False)


def _clearml_images(task: Any, images: Mapping[str, Path], step: int) -> None:
    logger = task.get_logger()
    for tag, path in images.items():
        title, _, series = tag.rpartition("/")
        logger.report_image(title=title, series=series, iteration=step, local_path=str(path))


def _comet_images(experiment: Any, images: Mapping[str, Path], step: int) -> None:
    for tag, path in images.items():
        experiment.log_image(str(path), name=tag, step=step)


def _dvc_images(live: Any, images: Mapping[str, Path], step: int) -> None:
    for tag, path in images.items():
        live.log_image(f"{tag}{path.suffix}", path)


# -- scalars ---------------------------------------------------------------------------------------------------------
def _tb_scalars(writer: Any, values: Mapping[str, float], step: int) -> None:
    for tag, v in values.items():
        writer.add_scalar(tag, v, step)
    writer.flush()


def _mlflow_scalars(mlflow: Any, values: Mapping[str, float], step: int) -> None:
    mlflow.log_metrics(dict(values), step=step)


def _wandb_scalars(wb: Any, values: Mapping[str, float], step: int) -> None:
    wb.run.log(dict(values), commit=False)


def _clearml_scalars(task: Any, values: Mapping[str, float], step: int) -> None:
    logger = task.get_logger()
    for tag, v in values.items():
        title, _, series = tag.rpartition("/")
        logger.report_scalar(title=title, series=series, value=v, iteration=step)


def _comet_scalars(experiment: Any, values: Mapping[str, float], step: int) -> None:
    experiment.log_metrics(dict(values), step=step, epoch=step)


def _dvc_scalars(live: Any, values: Mapping[str, float], step: int) -> None:
    for tag, v in values.items():
        live.log_metric(tag, v, plot=True)


# -- files -----------------------------------------------------------------------------------------------------------
def _tb_files(writer: Any, files: list[Path], folder: str, step: int) -> None:
    _tb_images(writer, {f"{folder}/{f.stem}": f for f in files if f.suffix.lower() in _IMAGES}, step)


def _mlflow_files(mlflow: Any, files: list[Path], folder: str, step: int) -> None:
    for f in files:
        mlflow.log_artifact(str(f), artifact_path=folder)


def _wandb_files(wb: Any, files: list[Path], folder: str, step: int) -> None:
    logged: dict[str, Any] = {}
    for f in files:
        suffix = f.suffix.lower()
        if suffix in _VIDEOS:
            logged[f"{folder}/{f.stem}"] = wb.Video(str(f), format=suffix[1:])
        elif suffix in _IMAGES:
            logged[f"{folder}/{f.stem}"] = wb.Image(str(f))
        else:
            wb.run.save(str(f), base_path=str(f.parent), policy="now")
    if logged:
        wb.run.log(logged, commit=False)


def _clearml_files(task: Any, files: list[Path], folder: str, step: int) -> None:
    for f in files:
        task.upload_artifact(name=f"{folder}/{f.name}", artifact_object=str(f))


def _comet_files(experiment: Any, files: list[Path], folder: str, step: int) -> None:
    for f in files:
        experiment.log_asset(str(f), file_name=f"{folder}/{f.name}", step=step)


def _dvc_files(live: Any, files: list[Path], folder: str, step: int) -> None:
    for f in files:
        live.log_artifact(str(f))


_Logger = Callable[[Any, Any, int], None]
_IMAGE_LOGGERS: dict[str, _Logger] = {
    "tensorboard": _tb_images,
    "mlflow": _mlflow_images,
    "wandb": _wandb_images,
    "clearml": _clearml_images,
    "comet": _comet_images,
    "dvc": _dvc_images,
}
_SCALAR_LOGGERS: dict[str, _Logger] = {
    "tensorboard": _tb_scalars,
    "mlflow": _mlflow_scalars,
    "wandb": _wandb_scalars,
    "clearml": _clearml_scalars,
    "comet": _comet_scalars,
    "dvc": _dvc_scalars,
}
_FILE_LOGGERS: dict[str, Callable[[Any, list[Path], str, int], None]] = {
    "tensorboard": _tb_files,
    "mlflow": _mlflow_files,
    "wandb": _wandb_files,
    "clearml": _clearml_files,
    "comet": _comet_files,
    "dvc": _dvc_files,
}
