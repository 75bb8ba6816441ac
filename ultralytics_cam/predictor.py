"""A CAM predictor: the task's own Ultralytics predictor with a grad-enabled inference step.

Sources, letterbox, device, batching, NMS and ``Results`` all stay Ultralytics'; the subclass only swaps the model call
for :meth:`CamEngine.forward` and, after the task's own postprocess, traces each ``Results`` row back to the head and
attaches its maps as ``r.cam``. The class is built per task at run time, so every task and head that Ultralytics
dispatches (``model._smart_load("predictor")``) is covered without a table of our own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .blackbox import BlackBoxEngine
from .config import CamConfig
from .engine import CamEngine
from .geometry import Geometry, geometry_kind
from .heads import Selection
from .maps import CamMaps
from .plugins import call_result_ready
from .result import CamResult
from .sources import SkippingSourcesMixin

if TYPE_CHECKING:  # what the mixin is mixed into, for typing (at run time it stands on object)
    from ultralytics.engine.predictor import BasePredictor as _PredictorBase
else:
    _PredictorBase = object

__all__ = ["CamPredictorMixin", "attach_cams", "cam_predictor_class", "device_message", "drop_done"]


class CamPredictorMixin(_PredictorBase):
    """Mixed in front of a task predictor (``DetectionPredictor``, ``SegmentationPredictor``, ...)."""

    cam_config: CamConfig
    cam_engine: CamEngine | BlackBoxEngine | None = None
    _cam_forward: Any = None
    if TYPE_CHECKING:  # set by BasePredictor at run time; typing infers None from its unannotated __init__
        dataset: Any  # the source's loader
        results: Any  # the batch's list of Results

    def setup_model(self, model: Any, verbose: bool = True) -> None:
        """Build the model as Ultralytics does, then the CAM engine on the predictor's own copy of it.

        Black-box methods (DRISE) get a :class:`~ultralytics_cam.blackbox.BlackBoxEngine`, which needs only the
        backend's predictions: it runs on exported models as well.

        Raises:
            ValueError: the device asked for is not on this machine; the message names it as it was given.
        """
        try:
            super().setup_model(model, verbose=verbose)
        except ValueError as e:
            message = device_message(self.args.device, e)
            if message is None:
                raise
            raise ValueError(message) from e
        black_box = self.cam_config.method_spec.black_box
        self.cam_engine = BlackBoxEngine(self, self.cam_config) if black_box else CamEngine(self, self.cam_config)

    def inference(self, im: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the grad-enabled forward; return detached predictions to Ultralytics' postprocess.

        A black-box method keeps Ultralytics' own inference (any backend) and the input it ran on.
        """
        engine = self.cam_engine
        assert engine is not None  # built by setup_model, which Ultralytics runs before any inference
        if isinstance(engine, BlackBoxEngine):
            self._cam_forward = im
            return super().inference(im, *args, **kwargs)
        self._cam_forward = engine.forward(im)
        return self._cam_forward.preds

    def postprocess(self, preds: Any, img: Any, orig_imgs: Any, **kwargs: Any) -> list[Any]:
        """Build ``Results`` with the task's own postprocess, then explain every row and attach ``r.cam``."""
        # Ultralytics' postprocess has no annotations; it returns the batch's list of Results
        results: list[Any] = super().postprocess(preds, img, orig_imgs, **kwargs)  # type: ignore[no-untyped-call]
        fwd, self._cam_forward = self._cam_forward, None
        if isinstance(self.cam_engine, BlackBoxEngine):  # the masked copies go through the task's own postprocess
            task_postprocess = super().postprocess
            kind = geometry_kind(self)
            sels, maps = self.cam_engine.explain(fwd, preds, results, task_postprocess, kind)
            attach_cams(results, sels, maps, self.cam_engine, self.cam_config, tuple(img.shape[2:]), kind)
            return results
        try:
            engine = self.cam_engine
            assert engine is not None  # as in inference
            sels = engine.adapter.select(self, fwd.preds, fwd.head_out, results, tuple(img.shape[2:]))
            maps = engine.explain(fwd, sels)
        finally:
            del fwd  # free the autograd graph before the next batch
        attach_cams(results, sels, maps, engine, self.cam_config, tuple(img.shape[2:]), geometry_kind(self))
        return results

    # -- saving (SPEC §6): the CAM layout replaces Ultralytics' annotated image ----------------------------------------
    cam_run: Any = None  # the run being saved (ultralytics_cam.summary.CamRun), with save=True
    _cam_row: int = 0

    def stream_inference(self, source: Any = None, model: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Ultralytics' stream; with ``save=True`` it also records the run and writes ``summary.json`` however it ends.

        The run ends ``completed``, ``stopped`` (the consumer closed the generator), ``interrupted`` (Ctrl-C, or a
        caller that set ``cam_run.interrupt_requested`` before closing) or ``failed`` (with the error).

        Yields:
            What Ultralytics' ``stream_inference`` yields: each image's ``Results`` (embeddings with ``embed``).

        Raises:
            GeneratorExit: the consumer closed the stream; re-raised once the run is recorded.
            KeyboardInterrupt: Ctrl-C; re-raised once the run is recorded as ``interrupted``.
        """
        if not self.args.save:
            yield from super().stream_inference(source, model, *args, **kwargs)
            return
        from .summary import CamRun, RunOutcome

        state = self._cam_resume_state()
        self.cam_run = run = CamRun(self, source if source is not None else self.args.source)
        if state is not None:
            run.resume_from(state)
        outcome = RunOutcome(lambda: run.interrupt_requested)
        try:
            with outcome:
                yield from super().stream_inference(source, model, *args, **kwargs)
        finally:
            run.finish(self, outcome.status, outcome.error)

    def _cam_resume_state(self) -> Any:
        """With ``resume``: point the run at the folder to resume and return what its manifest proves (else None)."""
        resume = getattr(self.args, "resume", False)
        if not resume:
            return None
        from ._logging import LOGGER, PREFIX
        from .manifest import Manifest, resume_dir

        folder = resume_dir(self.save_dir, self.args.name or "cam", resume)
        if folder is None:
            LOGGER.info(f"{PREFIX}resume: no earlier run of '{self.args.name}' to resume, starting {self.save_dir}")
            return None
        self.save_dir = folder
        return Manifest(folder).state()

    def setup_source(self, source: Any, stride: int | None = None) -> None:
        """Ultralytics' source; the run folder claimed; when resuming, without the inputs the run already completed.

        The files are listed by Ultralytics' own loader (folders, globs, ``.txt``/``.csv`` lists), then the completed
        ones are taken out of it before anything is read, so a resumed run decodes only what is left.
        """
        super().setup_source(source, stride)
        run = self.cam_run if self.args.save else None  # (a run object stays on the predictor after it ended)
        if run is not None:
            # the source is ready: claim the run folder now (exclusively: runs started together get distinct ones),
            # before Ultralytics creates it; a source that cannot be read leaves no folder behind
            run.claim(self)
        if run is not None and run.done:
            drop_done(self.dataset, run.done)
        if run is not None and run.previous.partial and hasattr(self.dataset, "resume_videos"):
            # videos cut off part-way go on at their first frame not saved (the ones before are decoded, not explained)
            self.dataset.resume_videos({k: p["frames"] for k, p in run.previous.partial.items() if k not in run.done})
        if run is not None and run.previous.done:
            # the folder names the completed images hold are taken: later same-stem images keep their -2, -3, ...
            self._cam_taken = {line["folder"] for line in run.previous.images.values()} | {
                line["folder"] for line in run.previous.videos.values()
            }

    _cam_taken: set[str] | None = None

    def write_results(self, i: int, p: Any, im: Any, s: list[str]) -> str:
        """Ultralytics' own bookkeeping and log line; remembers which row :meth:`save_predicted_images` saves."""
        self._cam_row = i
        if self._cam_taken is not None and isinstance(getattr(self, "_bases", None), set):
            self._bases |= self._cam_taken  # Ultralytics de-duplicates output names against this set
            self._cam_taken = None
        return super().write_results(i, p, im, s)

    def save_predicted_images(self, save_path: Any, frame: int | None = 0) -> None:
        """Save the CAM layout: a folder per image; per video an overlay video and per-frame JSON lines.

        ``save_path`` is Ultralytics' own (de-duplicated) output name, so ``bus.jpg`` and ``bus.png`` become the
        folders ``bus`` and ``bus-2``. A video file's overlay frames go into closed segments that are joined at its end
        into the video Ultralytics' writer would write (:mod:`ultralytics_cam.segments`), so a resume goes on inside a
        video; a stream's go through Ultralytics' video writer, under a temporary name the run renames when it ends.
        """
        result = self.results[self._cam_row]
        if self.dataset.mode not in {"stream", "video"}:
            self.cam_run.save_image(result, save_path)
            return
        save_frames = self.args.save_frames
        if self.dataset.mode == "video":
            fps = max(1, self.dataset.fps / self.args.vid_stride)  # as Ultralytics' own video writer
            last = frame is not None and frame == getattr(self.dataset, "frames", None)
            overlay = result.cam.plot()
            self.cam_run.save_frame(result, save_path, frame, save_frames, overlay=overlay, fps=fps, last=last)
            return
        from .summary import VIDEO_PARTIAL

        folder = self.cam_run.video_folder(result, save_path)
        self.plotted_img = result.cam.plot()
        self.args.save_frames = False  # its frame folder is per run, not per video
        try:
            super().save_predicted_images(folder / VIDEO_PARTIAL, frame)
        finally:
            self.args.save_frames = save_frames
        self.cam_run.save_frame(result, save_path, frame, frames_dir=save_frames)


def device_message(device: Any, error: ValueError) -> str | None:
    """Ultralytics' "Invalid CUDA 'device=0' requested" for ``device=cuda``, said with the value the user gave.

    ``select_device`` rewrites ``cuda`` and ``cuda:1`` to ``0`` and ``1`` before it checks them, so its message names a
    device the user never typed (issue 21). None for any other error (it is raised as it is).
    """
    text = str(error)
    if "device=" not in text or "requested" not in text:
        return None
    import torch

    if torch.cuda.is_available():
        found = f"this machine has {torch.cuda.device_count()} CUDA devices, numbered from 0"
    else:
        found = "torch sees no CUDA device here (torch.cuda.is_available() is False)"
    return f"device={str(device)!r} is not available: {found}. Use device=cpu, or a GPU this machine has."


def drop_done(dataset: Any, done: set[str]) -> None:
    """Take the completed files out of an Ultralytics ``LoadImagesAndVideos`` before it reads anything."""
    files, flags = getattr(dataset, "files", None), getattr(dataset, "video_flag", None)
    if files is None or flags is None:
        return  # streams, arrays, tensors: nothing to resume by file
    keep = [(f, v) for f, v in zip(files, flags) if f not in done]
    if len(keep) == len(files):
        return
    dataset.files = [f for f, _ in keep]
    dataset.video_flag = [v for _, v in keep]
    dataset.nf = len(keep)
    dataset.ni = sum(not v for _, v in keep)
    if getattr(dataset, "cap", None) is not None:
        dataset.cap.release()
        dataset.cap = None
    videos = [f for f, v in keep if v]
    if videos:
        dataset._new_video(videos[0])  # the loader opens its first video up front; it may have been a completed one
    dataset.mode = "video" if dataset.ni == 0 else "image"


def attach_cams(
    results: list[Any],
    sels: list[Selection],
    maps: list[CamMaps],
    engine: CamEngine | BlackBoxEngine,
    config: CamConfig,
    input_hw: Sequence[int],
    kind: str,
) -> None:
    """Attach each image's maps as ``r.cam`` and tell the plugins (``ultralytics_cam_result_ready``)."""
    layers = [layer.label for layer in engine.layers]
    h, w = input_hw  # (h, w) of the model input
    for r, sel, m in zip(results, sels, maps):
        r.cam = CamResult(
            m,
            Geometry(kind, (int(h), int(w)), tuple(r.orig_shape)),
            r,
            method=engine.method.name,
            layers=layers,
            target=engine.target.name,
            cls=sel.cls,
            conf=sel.conf,
            index=sel.index,
            display=config.display(),
        )
        info = getattr(sel, "info", None)
        if info is not None:  # dense heads (semantic, depth): what each row's region is
            r.cam.rows = list(info)
        call_result_ready(r, r.cam, config)


@functools.cache
def cam_predictor_class(predictor_cls: type) -> type:
    """Return the CAM predictor class for a task predictor class (cached, so one class per task)."""
    bases = (CamPredictorMixin, SkippingSourcesMixin, predictor_cls)  # bad files are skipped, never the run
    return type(f"Cam{predictor_cls.__name__}", bases, {"__module__": __name__})
