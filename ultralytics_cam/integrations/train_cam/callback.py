"""The training callback: the model Ultralytics just validated explains fixed probe images, epoch after epoch.

``add_train_cam_callback(model, images=8, method="HiResCAM", every=1)`` registers Ultralytics trainer callbacks on the
model (the shape of Ultralytics' own integrations; registering again replaces them). A later ``model.train(...)``:

- ``on_pretrain_routine_start``: puts our callbacks first in their events, so our images reach a tracker before its
  own integration commits the epoch (W&B) or closes the run (MLflow, W&B, DVC, Comet at ``on_train_end``);
- ``on_pretrain_routine_end``: picks the probe images (:mod:`.probes`; read back on resume) and forgets any epoch
  after the checkpoint a resumed run starts from;
- ``on_train_epoch_end`` / ``on_fit_epoch_end``: after validation and saving, at every ``every``-th epoch and at the
  last one, the EMA model that validation just scored explains the probes (:mod:`.epoch`) into
  ``cam/epoch_<NNN>/``; every epoch gets a record (its metric, whether it is a new best), the images and scores go to
  the active trackers (:mod:`..trackers`). The ``on_fit_epoch_end`` that Ultralytics' final validation of
  ``best.pt`` runs is not an epoch, and is skipped;
- ``on_train_end``: the best epoch, if no scheduled epoch explained it, is explained from ``best.pt``; then the
  timelines, the grid, ``cam_metrics.csv`` and its plot (:mod:`.timeline`) are written and sent to the trackers;
- ``teardown`` (also after an interrupted training): whatever the finished epochs allow is summarised.

Training is never changed by it: the explained network is a copy (Ultralytics' ``setup_model`` deep-copies it), the
random number generators (Python, NumPy, torch, CUDA) and grad mode are put back as they were after each call, and an
error is logged once (later ones are counted) and never reaches the trainer (``strict=True`` raises, for tests).
Under DDP (Ultralytics pickles the trainer's callbacks into every worker) only rank 0 explains.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._logging import LOGGER, PREFIX
from ...config import CAM_DEFAULTS, CamConfig
from ...errors import CamError
from ..base import KIND_ATTR, Callbacks, mark, register, remove

__all__ = [
    "CLI_KEYS",
    "TIMELINE_FORMATS",
    "TrainCamOptionError",
    "TrainCamOptions",
    "add_train_cam_callback",
    "remove_train_cam_callback",
    "train_cam_callbacks",
]

_KIND = "train"  # our callbacks' kind (integrations.base): removing them leaves the predict callbacks and val hook
_STATE_ATTR = "_ultralytics_cam_train"  # the run state, on the trainer (one per training, never shared)
TIMELINE_FORMATS = ("mp4", "gif")
#: Our events, in the order a training fires them.
_EVENTS = (
    "on_pretrain_routine_start",
    "on_pretrain_routine_end",
    "on_train_epoch_end",
    "on_fit_epoch_end",
    "on_train_end",
    "teardown",
)


#: ``yolo-cam train`` keys of the callback (beside every ``yolo train`` key and the CAM keys): key -> (option of
#: :func:`add_train_cam_callback`, help, example). ``cam_``-prefixed: ``conf`` is a training argument already.
CLI_KEYS: dict[str, tuple[str, str, str]] = {
    "cam_images": ("images", "probe images: a number from the val split (default 8), a folder or a list", "probe/"),
    "cam_every": ("every", "explain every N-th epoch (default 1; the last and the best always)", "5"),
    "cam_conf": ("conf", "confidence of the explained predictions (default 0.25)", "0.1"),
    "cam_timeline": ("timeline", "format of the per-image timelines: mp4 or gif (default mp4)", "gif"),
}


class TrainCamOptionError(CamError, ValueError):
    """An option of the training callback is invalid (``yolo-cam train`` reports it as a usage error)."""


@dataclass(frozen=True)
class TrainCamOptions:
    """Validated options of the training callback (see :func:`add_train_cam_callback`)."""

    config: CamConfig = field(default_factory=CamConfig)
    images: int | tuple[str, ...] = 8
    every: int = 1
    conf: float = 0.25
    timeline: str = "mp4"
    strict: bool = False

    def __post_init__(self) -> None:
        """Check every option (errors name the option and what it accepts); a folder of images becomes its files."""
        images = self.images
        if isinstance(images, bool) or (isinstance(images, int) and images < 1):
            raise TrainCamOptionError(f"images={images!r} is not valid: use a positive number, a folder or a list.")
        if not isinstance(images, int):
            object.__setattr__(self, "images", _image_files(images))
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise TrainCamOptionError(f"every={self.every!r} is not valid: use a positive integer (1: every epoch).")
        if isinstance(self.conf, bool) or not isinstance(self.conf, (int, float)) or not 0 <= self.conf <= 1:
            raise TrainCamOptionError(f"conf={self.conf!r} is not valid: use a number between 0 and 1.")
        if self.timeline not in TIMELINE_FORMATS:
            raise TrainCamOptionError(f"timeline={self.timeline!r} is not valid: use {' or '.join(TIMELINE_FORMATS)}.")
        if not isinstance(self.strict, bool):
            raise TrainCamOptionError(f"strict={self.strict!r} is not valid: use True or False.")


def _image_files(images: Any) -> tuple[str, ...]:
    """The image files of a folder, a file, or a list of either; in path order within a folder."""
    from ultralytics.data.utils import IMG_FORMATS

    items = [images] if isinstance(images, (str, Path)) else list(images)
    files: list[str] = []
    for item in items:
        p = Path(str(item))
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.suffix[1:].lower() in IMG_FORMATS)
            if not found:
                raise TrainCamOptionError(f"images='{item}' has no image files ({', '.join(sorted(IMG_FORMATS))}).")
            files += found
        elif p.is_file() and p.suffix[1:].lower() in IMG_FORMATS:
            files.append(str(p))
        else:
            raise TrainCamOptionError(
                f"images='{item}' is not an image file or a folder of images. Use a number (that many images of the "
                "validation split), a folder, or a list of image files."
            )
    if not files:
        raise TrainCamOptionError("images=[] lists no image: use a number, a folder or a list of image files.")
    return tuple(files)


def add_train_cam_callback(
    model: Any,
    *,
    images: int | str | Path | Sequence[str | Path] = 8,
    method: str = "HiResCAM",
    every: int = 1,
    conf: float = 0.25,
    timeline: str = "mp4",
    strict: bool = False,
    **cam_options: Any,
) -> None:
    """Make every later ``model.train`` explain fixed probe images with the model of each ``every``-th epoch.

    Writes ``<save_dir>/cam/`` (per-epoch folders, timelines, a grid) and ``<save_dir>/cam_metrics.csv`` /
    ``cam_metrics.png``, and sends the images to the experiment trackers Ultralytics has active. The options are
    checked now, not mid-training.

    Args:
        model: an Ultralytics ``Model`` with PyTorch weights or a YAML (any task Ultralytics trains).
        images: how many validation images to probe (drawn deterministically, covering as many classes as possible),
            or a folder or list of image files.
        method: CAM method name, case-insensitive. Perturbation methods (ScoreCAM, AblationCAM) run hundreds of
            forward passes per image, far over a small share of an epoch: a warning says so.
        every: explain every ``every``-th epoch (always the last one, and the best one at the end).
        conf: confidence at which a prediction is explained (as ``predict``'s ``conf``); an epoch whose model finds
            nothing above it has an empty map.
        timeline: the timelines' format, ``mp4`` or ``gif``.
        strict: raise CAM errors (they stop the training) instead of logging them; for tests.
        **cam_options: other CAM options (``target``, ``layers``, ``alpha``, ``colormap``, ``show_boxes``,
            ``renormalize``, ``eigen_smooth``, ``aug_smooth``, ``save_maps``, ``head_replay``).

    Raises:
        TrainCamOptionError: an option is not one of the callback's or its value is invalid.
        MethodError: ``method`` is unknown or refused in this environment.
        TargetError: ``target`` is unknown.
        LayerError: ``layers`` is not a valid layer spec.
    """
    unknown = [k for k in cam_options if k not in CAM_DEFAULTS]
    if unknown:
        raise TrainCamOptionError(
            f"{', '.join(map(repr, unknown))}: not an option of the training callback. Options: images, every, conf, "
            f"timeline, strict and the CAM options {', '.join(CAM_DEFAULTS)}; training arguments go to model.train()."
        )
    config = CamConfig(method=method, **cam_options)
    if isinstance(images, (str, Path)) or not isinstance(images, int):
        images = _image_files(images)
    options = TrainCamOptions(config, images, every, conf, timeline, strict)
    factory = config.method_spec.factory
    if factory is not None and getattr(factory, "runs_forwards", False):
        LOGGER.warning(
            f"{PREFIX}{config.method} runs many forward passes per image: explaining the probes will cost far more "
            "than the few percent of an epoch a gradient method costs (HiResCAM, GradCAM, LayerCAM)."
        )
    register(model, _KIND, train_cam_callbacks(options, model._smart_load("predictor")))


def remove_train_cam_callback(model: Any) -> None:
    """Remove the callbacks of :func:`add_train_cam_callback`, if any."""
    remove(model, _KIND)


def train_cam_callbacks(options: TrainCamOptions, predictor_cls: type) -> Callbacks:
    """Return the ``{event: callback}`` dict that :func:`add_train_cam_callback` registers.

    ``predictor_cls`` is the task's Ultralytics predictor class (``model._smart_load("predictor")``).
    """

    def on_pretrain_routine_start(trainer: Any) -> None:
        if _main_process():
            _first(trainer)

    def on_pretrain_routine_end(trainer: Any) -> None:
        if _main_process():
            run = _TrainRun(trainer, options, predictor_cls)
            trainer.__dict__[_STATE_ATTR] = run
            run.guarded(run.start)

    def on_train_epoch_end(trainer: Any) -> None:
        run = _state(trainer)
        if run is not None:
            run.pending = trainer.epoch

    def on_fit_epoch_end(trainer: Any) -> None:
        run = _state(trainer)
        if run is not None and run.pending is not None:  # None: Ultralytics' final validation of best.pt
            epoch, run.pending = run.pending + 1, None
            run.guarded(lambda: run.epoch_end(epoch))

    def on_train_end(trainer: Any) -> None:
        run = _state(trainer)
        if run is not None:
            run.guarded(lambda: run.finish(completed=True))

    def teardown(trainer: Any) -> None:
        run = trainer.__dict__.pop(_STATE_ATTR, None)
        if isinstance(run, _TrainRun) and not run.finished:  # interrupted: summarise the finished epochs
            run.guarded(lambda: run.finish(completed=False))

    callbacks: Callbacks = {
        "on_pretrain_routine_start": on_pretrain_routine_start,
        "on_pretrain_routine_end": on_pretrain_routine_end,
        "on_train_epoch_end": on_train_epoch_end,
        "on_fit_epoch_end": on_fit_epoch_end,
        "on_train_end": on_train_end,
        "teardown": teardown,
    }
    return mark(callbacks, _KIND)


def _main_process() -> bool:
    """Rank 0 of a DDP training, or the only process (Ultralytics' ``RANK`` is -1 then)."""
    from ultralytics.utils import RANK

    return RANK in {-1, 0}


def _state(trainer: Any) -> _TrainRun | None:
    run = trainer.__dict__.get(_STATE_ATTR)
    return run if isinstance(run, _TrainRun) and _main_process() else None


def _first(trainer: Any) -> None:
    """Move our callbacks to the front of the trainer's own event lists (the model's lists stay as they are)."""
    for event in _EVENTS:
        fns = trainer.callbacks.get(event)
        if fns:
            ours = [f for f in fns if getattr(f, KIND_ATTR, None) == _KIND]
            fns[:] = ours + [f for f in fns if f not in ours]


@contextlib.contextmanager
def _untouched() -> Iterator[None]:
    """Put the random generators and grad mode back as they were: training must not see that we ran."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(), torch.is_grad_enabled())
    initialized = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    cuda = torch.cuda.get_rng_state_all() if initialized else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        torch.set_grad_enabled(states[3])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class _TrainRun:
    """The state of one training: the probes, the epoch waiting for its ``on_fit_epoch_end``, the failures."""

    def __init__(self, trainer: Any, options: TrainCamOptions, predictor_cls: type) -> None:
        self.trainer = trainer
        self.options = options
        self.predictor_cls = predictor_cls
        self.cam_dir = Path(trainer.save_dir) / "cam"
        self.probes: list[Any] = []
        self.pending: int | None = None
        self.finished = False
        self.errors = 0

    # -- errors --------------------------------------------------------------------------------------------------
    def guarded(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` with training's state preserved; log the first error, count the others (``strict``: raise)."""
        try:
            with _untouched():
                fn()
        except Exception as e:
            if self.options.strict:
                raise
            self.errors += 1
            if self.errors == 1:
                LOGGER.warning(
                    f"{PREFIX}training CAM failed: {type(e).__name__}: {e}. Training is unaffected; later failures "
                    "are only counted. remove_train_cam_callback(model) turns it off."
                )
            else:
                LOGGER.debug(f"{PREFIX}training CAM failed again: {type(e).__name__}: {e}")

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Pick (or read back) the probes; forget the epochs a resumed run trains again."""
        from .probes import PROBES_FILE, load_or_choose
        from .timeline import drop_records

        t = self.trainer
        if not getattr(t, "resume", False):  # a new training into an old folder (exist_ok): choose the probes again
            (self.cam_dir / PROBES_FILE).unlink(missing_ok=True)
        dropped = drop_records(self.cam_dir, int(t.start_epoch))
        if dropped:
            LOGGER.info(f"{PREFIX}resuming at epoch {t.start_epoch + 1}: epochs {dropped} will be explained again")
        loader = getattr(t, "test_loader", None)
        self.probes = load_or_choose(self.cam_dir, getattr(loader, "dataset", None), self.options.images, t.args.task)
        LOGGER.info(
            f"{PREFIX}training CAM: {len(self.probes)} probe images, {self.options.config.method}, every "
            f"{self.options.every} epoch{'s' * (self.options.every != 1)} -> {self.cam_dir}"
        )

    def epoch_end(self, epoch: int) -> None:
        """Record the epoch; explain it when it is scheduled or the last one."""
        from .timeline import headline, write_record

        t = self.trainer
        metrics = dict(t.metrics or {})
        fitness = _number(getattr(t, "fitness", None))
        best = _number(getattr(t, "best_fitness", None))
        record: dict[str, Any] = {
            "epoch": epoch,
            "new_best": fitness is not None and best is not None and fitness >= best,
            "metric": headline(metrics),
            "fitness": fitness,
            "explained": False,
        }
        last = bool(t.stop) or epoch >= int(t.epochs)
        if epoch % self.options.every == 0 or last:
            record.update(self._explain(epoch, _validated_model(t)))
        write_record(self.cam_dir, record)

    def _explain(self, epoch: int, net: Any) -> dict[str, Any]:
        """Explain the probes with ``net`` into the epoch's folder; log to the trackers; return the record's fields."""
        from ..trackers import Trackers
        from .epoch import epoch_folder, explain_epoch, image_folders, previous_maps

        t = self.trainer
        if not self.probes:
            return {}
        t0 = time.perf_counter()
        folder = epoch_folder(self.cam_dir, epoch)
        scores = explain_epoch(
            net,
            self.predictor_cls,
            self.probes,
            self.options.config,
            folder,
            task=t.args.task,
            imgsz=t.args.imgsz,
            device=str(t.device),
            conf=self.options.conf,
            previous=previous_maps(self.cam_dir, epoch),
        )
        seconds = time.perf_counter() - t0
        row = scores.row()
        trackers = Trackers.of(t)
        overlays = {f"cam/{d.name}": d / "heatmap.png" for d in image_folders(folder).values()}
        trackers.images({k: p for k, p in overlays.items() if p.is_file()}, epoch)
        trackers.scalars({f"cam/{k}": v for k, v in row.items() if k not in {"images", "predictions"}}, epoch)
        return {"explained": True, **row, "seconds": round(seconds, 3)}

    def finish(self, completed: bool) -> None:
        """Explain the best epoch if no scheduled epoch did; write the timelines, grid, CSV and plot; log them."""
        from ..trackers import Trackers
        from .timeline import best_epoch, read_records, summarise, write_record

        self.finished = True
        t = self.trainer
        records = read_records(self.cam_dir)
        best = best_epoch(records)
        best_pt = Path(getattr(t, "best", ""))
        if completed and best is not None and not records[best].get("explained") and best_pt.is_file():
            from ultralytics.nn.tasks import load_checkpoint

            net, _ = load_checkpoint(best_pt)  # type: ignore[no-untyped-call]  # Ultralytics: no annotations
            write_record(self.cam_dir, {**records[best], **self._explain(best, net)})
        summary = summarise(t.save_dir, self.options.timeline)
        if self.errors > 1:
            LOGGER.warning(f"{PREFIX}training CAM failed {self.errors} times in this training (the first is above).")
        if not summary.timelines:
            return
        step = int(t.epoch) + 1
        trackers = Trackers.of(t)
        trackers.files([p for p in (summary.grid, summary.plot) if p is not None], "cam", step)
        trackers.files(summary.timelines, "cam/timeline", step)
        if summary.csv is not None:
            trackers.files([summary.csv], "cam", step)
        LOGGER.info(
            f"{PREFIX}training CAM: {len(summary.timelines)} timelines, {summary.grid and summary.grid.name}, "
            f"{summary.csv and summary.csv.name} -> {self.cam_dir}"
        )


def _validated_model(trainer: Any) -> Any:
    """The network the trainer's validation scores: its EMA model (the model itself when it has none)."""
    from ultralytics.utils.torch_utils import unwrap_model

    ema = getattr(trainer, "ema", None)
    return ema.ema if ema is not None and getattr(ema, "ema", None) is not None else unwrap_model(trainer.model)


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v
