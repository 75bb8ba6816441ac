"""A validation hook that explains the model's failures: why did it miss this object, why did it see that one?

``add_val_failure_hook(model)`` registers two Ultralytics callbacks; a plain ``model.val(data=...)`` then returns its
usual metrics and also writes ``save_dir/cam_failures/`` (layout in :mod:`.report`).

How it hooks in (Ultralytics' validator keeps the model, batch and predictions in locals that no callback sees):
``on_val_start`` wraps two methods of that one validator instance. ``init_metrics(model)`` hands over the model the
validator runs (its fused ``AutoBackend``, or the EMA model during training), on which the CAM engine is built.
``update_metrics(preds, batch)`` first runs Ultralytics' own version untouched, then finds the batch's failures with
Ultralytics' own matching (:mod:`.mining`) before ``plot_images`` mutates the batch, and explains them with one
forward and one batched backward (:mod:`.explain`). ``on_val_end`` writes the summaries and unwraps.

The hook never breaks the run (:class:`~ultralytics_cam.integrations.base.Guard`): an error is logged with the image
name and validation goes on (``strict=True`` raises instead). During training (``validator.training``) it does
nothing unless ``during_training=True``.
"""

from __future__ import annotations

import difflib
import functools
import heapq
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._logging import LOGGER, PREFIX
from ...config import CAM_DEFAULTS, CamConfig
from ...errors import CamError
from ..base import Callbacks, Guard, mark, register, remove

if TYPE_CHECKING:
    import torch

    from .mining import ImageCase

#: ``(ImageCase.rank, -seq, case)``: the heap entry of an image kept for the end (``max_images``); seq is unique.
_Pending = tuple[tuple[float, float], int, "ImageCase"]

__all__ = [
    "FailureOptionError",
    "FailureOptions",
    "add_val_failure_hook",
    "cam_val",
    "remove_val_failure_hook",
    "val_failure_callbacks",
]

_KIND = "val"  # our callbacks' kind (integrations.base): removing the hook leaves the predict callbacks
_RUN_ATTR = "_ultralytics_cam_failures"  # the run state on the validator instance
_WRITTEN_ATTR = "_ultralytics_cam_failures_written"  # a finished report, waiting for the trainer's on_fit_epoch_end
_FOLDER = "cam_failures"
_EVENTS = ("on_val_start", "on_val_end", "on_fit_epoch_end")


class FailureOptionError(CamError, ValueError):
    """An option of the failure hook is invalid (``yolo-cam val`` reports it as a usage error)."""


@dataclass(frozen=True)
class FailureOptions:
    """Validated options of the failure hook (see :func:`add_val_failure_hook`)."""

    config: CamConfig
    conf: float = 0.25
    kinds: tuple[str, ...] | None = None
    max_images: int | None = None
    strict: bool = False
    during_training: bool = False

    def __post_init__(self) -> None:
        """Check every option; errors name the option and what it accepts."""
        from .mining import KINDS

        if isinstance(self.conf, bool) or not isinstance(self.conf, (int, float)) or not 0 <= self.conf <= 1:
            raise FailureOptionError(f"conf={self.conf!r} is not valid: use a number between 0 and 1.")
        if self.kinds is not None:
            kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
            for k in kinds:
                if k not in KINDS:
                    close = difflib.get_close_matches(str(k), KINDS, n=1)
                    hint = f" Did you mean '{close[0]}'?" if close else ""
                    raise FailureOptionError(
                        f"kinds: {k!r} is not a failure kind.{hint} Valid kinds: {', '.join(KINDS)}."
                    )
            object.__setattr__(self, "kinds", kinds)
        if self.max_images is not None and (
            isinstance(self.max_images, bool) or not isinstance(self.max_images, int) or self.max_images < 1
        ):
            raise FailureOptionError(
                f"max_images={self.max_images!r} is not valid: use a positive integer or None (all)."
            )
        for name in ("strict", "during_training"):
            if not isinstance(getattr(self, name), bool):
                raise FailureOptionError(f"{name}={getattr(self, name)!r} is not valid: use True or False.")


#: Tasks whose predictions are pixel regions: their failures are classes (semantic) and image cells (depth).
DENSE_TASKS = ("semantic", "depth")


def add_val_failure_hook(
    model: Any,
    *,
    method: str = "HiResCAM",
    conf: float = 0.25,
    kinds: tuple[str, ...] | None = None,
    max_images: int | None = None,
    strict: bool = False,
    during_training: bool = False,
    **cam_options: Any,
) -> None:
    """Make every later ``model.val`` explain the model's failures in ``save_dir/cam_failures/``.

    The options are checked now, not mid-validation; each error below is a
    :class:`~ultralytics_cam.errors.CamError` and a ``ValueError``.

    Args:
        model: an Ultralytics ``Model`` (detect, segment, semantic, depth, pose, obb or classify) with PyTorch
            weights. Semantic failures are the classes with the lowest IoU of each image, depth failures the cells of
            a 4 x 4 grid with the largest error (see :mod:`ultralytics_cam.integrations.val_hook.mining`).
        method: CAM method name, case-insensitive.
        conf: confidence at which a prediction counts (the validator itself keeps everything above 0.001); not
            used by semantic and depth models, whose predictions have no confidence.
        kinds: failure kinds to report, any of ``false_positive``, ``missed``, ``wrong_class``,
            ``poor_localisation``, ``misclassified``, ``low_iou`` (semantic), ``depth_error`` (depth) (default: all
            the task has).
        max_images: explain and save at most this many images, the worst (most failures) first; every failure is
            still listed in ``failures.json`` and ``failures.csv``. Default: every image with a failure.
        strict: raise CAM errors instead of logging them and going on (for tests).
        during_training: also run in the validation of every training epoch (it overwrites ``cam_failures/``).
        **cam_options: other CAM options (``target``, ``layers``, ``alpha``, ``colormap``, ``eigen_smooth``). A depth
            model's default target is ``mean`` (the mean depth of the failing cell); ``near`` / ``far`` read the
            cell's nearest / farthest pixels.

    Raises:
        FailureOptionError: an option is neither a failure-hook nor a CAM option, or its value is invalid.
        MethodError: ``method`` is unknown or refused in this environment.
        TargetError: ``target`` is unknown.
        LayerError: ``layers`` is not a valid layer spec.
    """
    unknown = [k for k in cam_options if k not in CAM_DEFAULTS]
    if unknown:
        raise FailureOptionError(
            f"{', '.join(map(repr, unknown))}: not a failure-hook option. Options: conf, kinds, max_images, strict, "
            f"during_training and the CAM options {', '.join(CAM_DEFAULTS)}; validation arguments go to model.val()."
        )
    options = FailureOptions(CamConfig(method=method, **cam_options), conf, kinds, max_images, strict, during_training)
    register(model, _KIND, val_failure_callbacks(options))


def remove_val_failure_hook(model: Any) -> None:
    """Remove the callbacks of :func:`add_val_failure_hook`, if any."""
    remove(model, _KIND)


def cam_val(
    model: Any,
    *,
    data: str,
    method: str = "HiResCAM",
    conf: float = 0.25,
    kinds: tuple[str, ...] | None = None,
    max_images: int | None = None,
    strict: bool = False,
    **val_kwargs: Any,
) -> Any:
    """Validate ``model`` on ``data`` and explain its failures; return Ultralytics' validation metrics.

    What ``yolo-cam val`` runs. CAM options among ``val_kwargs`` (``target``, ``layers``, ``alpha``, ...) go to the
    hook, everything else to ``model.val``. The model's callbacks are left as they were.
    """
    cam_options = {k: val_kwargs.pop(k) for k in list(val_kwargs) if k in CAM_DEFAULTS}
    saved = {event: list(model.callbacks[event]) for event in _EVENTS}
    add_val_failure_hook(
        model, method=method, conf=conf, kinds=kinds, max_images=max_images, strict=strict, **cam_options
    )
    try:
        return model.val(data=data, **val_kwargs)
    finally:
        for event, fns in saved.items():
            model.callbacks[event][:] = fns


def val_failure_callbacks(options: FailureOptions) -> Callbacks:
    """Return the ``{event: callback}`` dict that :func:`add_val_failure_hook` registers."""

    def on_val_start(validator: Any) -> None:
        if validator.training and not options.during_training:
            return
        run = _FailureRun(validator, options)
        run.guard(None, run.install)

    def on_val_end(validator: Any) -> None:
        run = validator.__dict__.get(_RUN_ATTR)
        if run is not None:
            try:
                run.guard(None, run.finish)
                if run.report is not None:  # for on_fit_epoch_end, when this validation ran inside a training
                    validator.__dict__[_WRITTEN_ATTR] = run.report
            finally:
                run.uninstall()

    def on_fit_epoch_end(trainer: Any) -> None:
        """A trainer event (trainers run the model's callbacks too): send this epoch's failures to the trackers."""
        report = getattr(trainer, "validator", None) and trainer.validator.__dict__.pop(_WRITTEN_ATTR, None)
        if report is not None:
            from ..trackers import Trackers

            sheet = report.folder / "contact_sheet.jpg"
            step = int(trainer.epoch) + 1  # the step Ultralytics' loggers give this validation's metrics
            trackers = Trackers.of(trainer)
            trackers.images({"cam/failures/contact_sheet": sheet} if sheet.is_file() else {}, step)
            trackers.scalars({"cam/failures/images": float(len(report.cases))}, step)

    events = {"on_val_start": on_val_start, "on_val_end": on_val_end, "on_fit_epoch_end": on_fit_epoch_end}
    return mark(events, _KIND)


class _FailureRun:
    """The state of one validation run: the engine, the images waiting to be explained, and the report."""

    def __init__(self, validator: Any, options: FailureOptions) -> None:
        from .mining import TASK_KINDS

        self.validator = validator
        self.options = options
        self.task = validator.args.task
        task_kinds = TASK_KINDS.get(self.task, ())
        self.kinds = tuple(k for k in task_kinds if options.kinds is None or k in options.kinds)
        self.engine: Any = None
        self.report: Any = None
        self.seq = 0
        self.pending: list[_Pending] = []  # min-heap of the max_images worst images, explained at the end
        self.indices: deque[list[int]] | None = None  # classification: dataset indices of each batch, in loading order
        self._wrapped: dict[str, Any] = {}
        self._guard = Guard(
            "failure analysis",
            "Validation metrics are unaffected",
            "remove_val_failure_hook(model) turns the analysis off.",
            options.strict,
        )

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def install(self) -> None:
        """Wrap this validator's ``init_metrics`` / ``update_metrics`` and prepare an empty ``cam_failures/``."""
        import shutil

        from .mining import TASK_KINDS

        v = self.validator
        if self.task not in TASK_KINDS:
            LOGGER.warning(f"{PREFIX}failure analysis supports {', '.join(TASK_KINDS)}, not task '{self.task}'.")
            return
        if not self.kinds:
            LOGGER.warning(f"{PREFIX}none of kinds={self.options.kinds} applies to task '{self.task}'; nothing to do.")
            return
        previous = v.__dict__.get(_RUN_ATTR)
        if previous is not None:  # a run that crashed before on_val_end left its wrappers: unwrap them first
            previous.uninstall()
        folder = Path(v.save_dir) / _FOLDER
        if folder.is_dir():  # a previous validation into the same save_dir (exist_ok, or the last epoch)
            shutil.rmtree(folder)
        for name, wrapper in (("init_metrics", self._init_metrics), ("update_metrics", self._update_metrics)):
            self._wrapped[name] = v.__dict__.get(name)  # None: the class's method
            original = getattr(v, name)
            setattr(v, name, wrapper(original))
        if self.task == "classify":
            self.indices = _record_indices(v.dataloader)
        v.__dict__[_RUN_ATTR] = self

    def uninstall(self) -> None:
        """Restore the validator's own methods."""
        v = self.validator
        for name, original in self._wrapped.items():
            if original is None:
                v.__dict__.pop(name, None)
            else:
                setattr(v, name, original)
        self._wrapped = {}
        if v.__dict__.get(_RUN_ATTR) is self:
            del v.__dict__[_RUN_ATTR]

    def _init_metrics(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def init_metrics(model: Any) -> None:
            original(model)
            self.guard(None, lambda: self.start(model))

        return init_metrics

    def _update_metrics(self, original: Callable[[Any, dict[str, Any]], None]) -> Callable[[Any, dict[str, Any]], None]:
        def update_metrics(preds: Any, batch: dict[str, Any]) -> None:
            original(preds, batch)  # Ultralytics' metrics first, untouched
            self.guard(None, lambda: self.update(preds, batch))

        return update_metrics

    def start(self, model: Any) -> None:
        """Build the report and the engine on the model the validator runs (no engine: failures listed, no maps)."""
        from dataclasses import replace

        from ...engine import CamEngine
        from . import mining
        from .report import FailureReport

        v, o = self.validator, self.options
        config = o.config
        if self.task == "depth" and config.target == "class":  # a failing cell is explained by its mean depth
            config = replace(config, target="mean")
        meta = {
            "task": self.task,
            "method": config.method,
            "target": config.target,
            "layers": None,
            "conf": o.conf,
            "iou": 0.5,
            "kinds": list(self.kinds),
            "max_images": o.max_images,
        }
        if self.task == "semantic":  # the dense tasks' mining settings, for whoever reads failures.json
            meta.update(conf=None, iou=mining.LOW_IOU, per_image=mining.PER_IMAGE)
        elif self.task == "depth":
            meta.update(conf=None, iou=None, per_image=mining.PER_IMAGE)
            meta.update(grid=mining.DEPTH_GRID, min_abs_rel=mining.DEPTH_MIN_ABS_REL)
        self.report = FailureReport(Path(v.save_dir) / _FOLDER, dict(v.names), meta)
        try:
            if config.method_spec.black_box:  # DRISE: through the validator's own backend, exports included
                from .drise import BlackBoxFailures

                self.engine = BlackBoxFailures(model, v, config)
            else:
                self.engine = CamEngine.for_model(model, self.task, config, imgsz=v.args.imgsz)
        except Exception as e:
            if o.strict:
                raise
            LOGGER.warning(
                f"{PREFIX}failure analysis cannot explain this model ({type(e).__name__}: {e}); failures are listed "
                "in failures.json without heatmaps."
            )
            return
        meta["method"] = self.engine.method.name
        meta["layers"] = [layer.label for layer in self.engine.layers]

    def finish(self) -> None:
        """Explain the images kept for the end (``max_images``) and write the summaries."""
        if self.report is None:
            return
        waiting = [case for *_, case in sorted(self.pending, key=lambda e: (e[0], e[1]), reverse=True)]
        self.pending = []
        self.explain(waiting)
        self.report.write()
        try:  # the browsable report of the failures (kinds, classes, heatmaps); never fails the validation
            from ...report import write_report

            write_report(self.report.folder)
        except Exception as e:
            LOGGER.warning(f"{PREFIX}could not write index.html ({type(e).__name__}: {e})")
        n = len(self.report.cases)
        LOGGER.info(
            f"{PREFIX}{n} image{'s' * (n != 1)} with failures, {self.report.explained} explained: {self.report.folder}"
        )

    # -- per batch -----------------------------------------------------------------------------------------------
    def update(self, preds: Any, batch: dict[str, Any]) -> None:
        """Find the failures of every image of the batch; explain them now, or keep the worst for the end."""
        if self.report is None:
            return
        n = len(batch["img"])
        indices = self.indices.popleft() if self.indices else None
        cases = []
        for si in range(n):
            self.seq += 1
            path = self._path(batch, si, indices)
            case = self.guard(path, functools.partial(self._mine, preds, batch, si, path))
            if case is not None and case.failures:
                self.report.add(case)
                cases.append(case)
        self.report.images += n
        if self.options.max_images is None:
            self.explain(cases)
            return
        for case in cases:  # keep the max_images worst (ImageCase.rank; the earlier on ties) for on_val_end
            case.compact()
            heapq.heappush(self.pending, (case.rank, -case.seq, case))
            if len(self.pending) > self.options.max_images:
                heapq.heappop(self.pending)[-1].release()

    def _mine(self, preds: Any, batch: dict[str, Any], si: int, path: str | None) -> ImageCase:
        """The :class:`~.mining.ImageCase` of one image (with its failures, maybe none)."""
        import torch

        from .mining import ImageCase, mine_classification, mine_detections

        v = self.validator
        if self.task in DENSE_TASKS:
            return self._mine_dense(preds, batch, si, path)
        if self.task == "classify":
            probs, true = preds[si], int(batch["cls"][si])
            top1 = int(probs.argmax())
            return ImageCase(
                self.seq,
                path,
                None,
                None,
                batch["img"][si],
                gt_cls=torch.tensor([true]),
                gt_boxes=torch.zeros((1, 4)),
                pred_cls=torch.tensor([top1]),
                pred_conf=probs[top1 : top1 + 1].float().cpu(),
                pred_boxes=torch.zeros((1, 4)),
                failures=mine_classification(probs.float().cpu(), true, self.kinds),
            )
        pbatch = v._prepare_batch(si, batch)
        predn, failures = mine_detections(v, preds[si], pbatch, self.options.conf, self.kinds)
        kpts = predn.get("keypoints")
        return ImageCase(
            self.seq,
            path,
            _hw(pbatch["ori_shape"]),
            pbatch["ratio_pad"],
            batch["img"][si],
            gt_cls=pbatch["cls"].long().view(-1).cpu(),
            gt_boxes=pbatch["bboxes"].float().cpu(),
            pred_cls=predn["cls"].long().view(-1).cpu(),
            pred_conf=predn["conf"].float().cpu(),
            pred_boxes=predn["bboxes"].float().cpu(),
            pred_kpts=kpts.float().cpu() if kpts is not None else None,
            failures=failures,
        )

    def _mine_dense(self, preds: Any, batch: dict[str, Any], si: int, path: str | None) -> ImageCase:
        """The :class:`~.mining.ImageCase` of one semantic or depth image.

        Reads what the validator scores: its postprocessed predictions and the batch's label at the label's size.
        Semantic batches carry the letterbox (``ratio_pad``); the depth validator stretches every image to the input
        without saying so, so its gains come from the file's size.
        """
        import torch
        import torch.nn.functional as F

        from .mining import ImageCase, mine_depth, mine_semantic

        v, image = self.validator, batch["img"][si]
        hw = _hw(image.shape[-2:])
        if self.task == "semantic":
            ori_shape = _hw(batch["ori_shape"][si])
            ratio_pad = batch["ratio_pad"][si]
            true, pred = batch["semantic_mask"][si], preds[si]
            content = _content(hw, ori_shape, ratio_pad, _hw(true.shape[-2:]))
            mined = mine_semantic(pred, true, len(v.names), dict(v.names), self.kinds, content)
        else:
            ori_shape = _file_hw(path) or hw
            ratio_pad = ((hw[0] / ori_shape[0], hw[1] / ori_shape[1]), (0, 0))
            true = batch["depth"][si].reshape(batch["depth"].shape[-2:])
            pred = preds[si : si + 1].reshape(1, 1, *preds.shape[-2:]).float()
            if pred.shape[-2:] != true.shape:  # as DepthValidator.update_metrics resizes it
                pred = F.interpolate(pred, size=true.shape, mode="bilinear", align_corners=True)
            m = v.metrics
            mined = mine_depth(
                pred[0, 0],
                true,
                self.kinds,
                getattr(m, "min_depth", 0.001),
                getattr(m, "max_depth", 100.0),
                getattr(m, "align", "median"),
            )
        if tuple(true.shape[-2:]) != hw:  # failures are explained at the model input
            for f in mined.failures:
                if f.pixels is None:  # every dense failure has its pixels (mining)
                    continue
                f.pixels = F.interpolate(f.pixels[None, None].float(), hw, mode="nearest")[0, 0] > 0
            scale = torch.tensor([hw[1] / true.shape[-1], hw[0] / true.shape[-2]] * 2)
            mined.gt_boxes, mined.pred_boxes = mined.gt_boxes * scale, mined.pred_boxes * scale
        return ImageCase(
            self.seq,
            path,
            ori_shape,
            ratio_pad,
            image,
            gt_cls=mined.gt_cls,
            gt_boxes=mined.gt_boxes,
            pred_cls=mined.pred_cls,
            pred_conf=torch.full((len(mined.pred_cls),), float("nan")),
            pred_boxes=mined.pred_boxes,
            failures=mined.failures,
            severity=mined.severity,
            pred_labels=mined.pred_labels,
        )

    def _path(self, batch: dict[str, Any], si: int, indices: list[int] | None) -> str | None:
        """The image file of sample ``si`` (classification batches do not say; the recorded loader order does)."""
        if "im_file" in batch:
            return str(batch["im_file"][si])
        samples = getattr(self.validator.dataloader.dataset, "samples", None)
        if indices is None or samples is None or si >= len(indices):
            return None
        return str(samples[indices[si]][0])

    # -- explaining ----------------------------------------------------------------------------------------------
    def explain(self, cases: list[ImageCase]) -> None:
        """Explain and save the given images, a validator batch at a time; a failing image is logged and skipped."""
        if self.engine is None or not cases:
            for case in cases:
                case.release()
            return
        by_size: dict[tuple[int, int], list[ImageCase]] = {}
        for case in cases:
            by_size.setdefault(case.input_hw, []).append(case)
        size = max(1, int(self.validator.args.batch or 1))
        for group in by_size.values():
            for i in range(0, len(group), size):
                self._explain_chunk(group[i : i + size])

    def _explain_chunk(self, chunk: list[ImageCase]) -> None:
        """One CAM pass for a chunk; if it fails, one pass per image so that only the failing image is lost."""
        from .explain import explain_cases

        try:
            maps = explain_cases(self.engine, chunk)
        except Exception as e:
            if self.options.strict:
                raise
            if len(chunk) > 1:
                for case in chunk:
                    self._explain_chunk([case])
            else:
                self._log(chunk[0].path or chunk[0].name, e)
                chunk[0].release()
            return
        for case, m in zip(chunk, maps):
            self.guard(case.path or case.name, functools.partial(self._save, case, m))
            case.release()

    def _save(self, case: ImageCase, maps: torch.Tensor) -> None:
        """Write one image's files: read the original, bring the maps onto it, draw."""
        from ultralytics.utils.patches import imread

        from .explain import to_original

        image = imread(case.path) if case.path else None
        if image is None:  # unknown file (classification without a recorded order): show the model input itself
            x = case.model_input("cpu").float()
            image = (x.permute(1, 2, 0).numpy()[..., ::-1] * 255).round().clip(0, 255).astype("uint8").copy()
        if case.ori_shape is None:
            case.ori_shape = tuple(image.shape[:2])
        cfg = self.options.config
        self.report.save(case, image, to_original(maps, case, image.shape[:2]), cfg.alpha, cfg.colormap)

    # -- errors --------------------------------------------------------------------------------------------------
    def guard(self, image: str | None, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; an error is logged with the image's name and validation goes on (unless ``strict``)."""
        return self._guard(fn, [image] if image else ())

    def _log(self, image: str | None, e: Exception) -> None:
        self._guard.log(e, [image] if image else ())


def _hw(shape: Any) -> tuple[int, int]:
    """``(h, w)`` as plain ints, from a tensor's shape, a list or a tensor of two numbers."""
    return int(shape[0]), int(shape[1])


def _content(
    hw: tuple[int, int], ori_shape: tuple[int, int], ratio_pad: Any, label_hw: tuple[int, int]
) -> torch.Tensor:
    """(H, W) bool at the label's size: the image content inside the validator's letterbox (padding excluded)."""
    import torch

    (gain_h, gain_w), (pad_w, pad_h) = ratio_pad
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + max(round(ori_shape[0] * gain_h), 1), left + max(round(ori_shape[1] * gain_w), 1)
    mask = torch.zeros(hw, dtype=torch.bool)
    mask[max(top, 0) : bottom, max(left, 0) : right] = True
    if tuple(label_hw) != tuple(hw):
        import torch.nn.functional as F

        mask = F.interpolate(mask[None, None].float(), label_hw, mode="nearest")[0, 0] > 0
    return mask


def _file_hw(path: str | None) -> tuple[int, int] | None:
    """(h, w) of an image file as Ultralytics loads it (EXIF rotation applied), reading only its header."""
    if not path:
        return None
    try:
        from PIL import Image
        from ultralytics.data.utils import exif_size

        with Image.open(path) as im:
            w, h = exif_size(im)
        return int(h), int(w)
    except Exception:
        return None


def _record_indices(dataloader: Any) -> deque[list[int]] | None:
    """Record, in loading order, the dataset indices of each batch a classification loader yields.

    Classification batches carry only images and labels, and Ultralytics' classification loader shuffles, so the file
    of a misclassified image is known only from the indices its sampler drew. Ultralytics' ``InfiniteDataLoader``
    draws them from ``batch_sampler.sampler`` (a ``BatchSampler``) in the main process, in the order it yields the
    batches; a recorder placed there before the first iteration sees exactly that order (prefetching only draws
    ahead). Once placed it stays, so that a loader reused across training epochs stays in step. Returns None when
    the loader is not of that kind or is already iterating (files then stay unknown, named by position).
    """
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    inner = getattr(batch_sampler, "sampler", None)
    if isinstance(inner, _IndexRecorder):
        return inner.drawn
    if batch_sampler is None or inner is None or getattr(dataloader, "iterator", False) is not None:
        LOGGER.info(f"{PREFIX}the classification loader's order is unknown; images are named by position.")
        return None
    batch_sampler.sampler = recorder = _IndexRecorder(inner)
    return recorder.drawn


class _IndexRecorder:
    """A batch sampler that yields its inner sampler's batches and remembers their indices."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.drawn: deque[list[int]] = deque()

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.inner:
            self.drawn.append(list(indices))
            yield indices

    def __len__(self) -> int:
        return len(self.inner)
