"""Predict callbacks: class activation maps from a plain ``model.predict`` / ``model.track``, for every task.

``add_cam_callbacks(model, method="LayerCAM")`` registers three Ultralytics callbacks on the model (the shape of
Ultralytics' own integrations: a ``{event: fn}`` dict, deduplicated on registration):

- ``on_predict_start`` builds a :class:`~ultralytics_cam.engine.CamEngine` on the predictor's own model copy (once per
  predictor and options; a later ``predict`` reuses it), and has the predictor's ``inference`` hand us a reference to
  the model outputs it returns (nothing else changes).
- ``on_predict_batch_end`` runs after Ultralytics has postprocessed, tracked and saved the batch. It traces every
  final ``Results`` row back to its anchor with the predictor's own outputs, preprocesses the batch again (identical
  tensor, cheap), runs one grad-enabled forward and one batched backward, and attaches ``r.cam`` to every
  ``Results``; with ``save=True`` it writes ``<name>_heatmap.jpg`` beside Ultralytics' ``<name>.jpg`` (a
  ``<name>_heatmap`` video beside a video).
- ``on_predict_end`` gives the predictor its own ``inference`` back.

Running last is what keeps Ultralytics' own outputs untouched: its predictions, files and timings are final before
the CAM starts, and the tracker has already reordered the rows, so the maps follow the rows the user sees. Rows are
traced with the outputs of the very forward pass that made them because two forward passes of the same image are not
bit-identical on every backend (measured on CPU: the last image of a list differs from the others in the 7th
digit), and rows are identified by their exact confidence. The engine leaves Ultralytics' ``inference_mode`` itself
and leaves no hooks behind. A CAM error is logged with the image names and the predict goes on (``strict=True``
raises instead; :class:`~ultralytics_cam.integrations.base.Guard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CamConfig, split_kwargs
from .base import KIND_ATTR, Callbacks, Guard, mark, register, remove

if TYPE_CHECKING:
    from ..engine import CamEngine
    from ..heads import Selection

__all__ = ["add_cam_callbacks", "cam_callbacks", "remove_cam_callbacks"]

_KIND = "predict"  # our callbacks' kind (integrations.base): removing them leaves the val hook
_STATE_ATTR = "_ultralytics_cam_callbacks"  # per-predictor state: the engine and the options it was built for
_PREDS_ATTR = "_ultralytics_cam_preds"  # the model outputs of the batch being predicted
_SUFFIX = "_heatmap"  # <name>_heatmap.jpg beside Ultralytics' <name>.jpg; not "_cam", which visualize=True writes


def add_cam_callbacks(model: Any, *, strict: bool = False, **options: Any) -> None:
    """Make every later ``model.predict`` / ``model.track`` explain its predictions with class activation maps.

    Each ``Results`` gets ``r.cam`` (:class:`~ultralytics_cam.result.CamResult`); with ``save=True`` the heatmap
    overlays land in the predict's own ``save_dir`` beside Ultralytics' images. Registering again replaces the
    options (it never stacks callbacks); :func:`remove_cam_callbacks` restores plain behaviour.

    Args:
        model: an Ultralytics ``Model`` (``YOLO``, ``RTDETR``, ...) with PyTorch weights.
        strict: raise CAM errors instead of logging them (for tests).
        **options: CAM options of ``model.cam`` (``method``, ``target``, ``layers``, ``alpha``, ``colormap``,
            ``show_boxes``, ``renormalize``, ``eigen_smooth``); predict arguments belong in the ``predict`` call.

    Raises:
        ValueError: an option is invalid or is a predict argument (checked now, not mid-run).
        MethodError: ``method`` is unknown, refused in this environment, or a black-box method (DRISE).
        TargetError: ``target`` is unknown.
        LayerError: ``layers`` is not a valid layer spec.
    """
    config, rest = split_kwargs(options)
    if rest:
        raise ValueError(
            f"add_cam_callbacks() takes CAM options only; pass {', '.join(map(repr, rest))} to model.predict() instead."
        )
    if config.method_spec.black_box:
        from ..errors import MethodError

        raise MethodError(
            f"method '{config.method_spec.name}' runs thousands of masked copies of every image through the model; "
            "use it with model.cam(...), yolo-cam predict or the val failure hook, not in model.predict's callbacks."
        )
    remove_cam_callbacks(model)  # also drops the engine a reused predictor holds for the old options
    register(model, _KIND, cam_callbacks(config, strict=strict))


def remove_cam_callbacks(model: Any) -> None:
    """Remove the callbacks of :func:`add_cam_callbacks` (if any) and the engine a reused predictor holds."""
    remove(model, _KIND)
    predictor = model.__dict__.get("predictor")  # not getattr: Model.__getattr__ would forward to the network
    if predictor is not None:
        predictor.__dict__.pop(_STATE_ATTR, None)
        _release_outputs(predictor)


def cam_callbacks(config: CamConfig, strict: bool = False) -> Callbacks:
    """Return the ``{event: callback}`` dict that :func:`add_cam_callbacks` registers (for custom registration)."""
    guard = Guard("CAM", "The predictions are unaffected", "remove_cam_callbacks(model) turns CAM off.", strict)

    def on_predict_start(predictor: Any) -> None:
        guard(lambda: _setup(predictor, config), _batch_images(predictor), "could not set up")

    def on_predict_batch_end(predictor: Any) -> None:
        state = predictor.__dict__.get(_STATE_ATTR)
        preds = predictor.__dict__.pop(_PREDS_ATTR, None)
        engine = state.engine if state is not None else None
        if engine is not None and preds is not None:
            guard(lambda: _explain_batch(predictor, state, engine, preds), _batch_images(predictor))

    def on_predict_end(predictor: Any) -> None:
        _release_outputs(predictor)

    callbacks: Callbacks = {
        "on_predict_start": on_predict_start,
        "on_predict_batch_end": on_predict_batch_end,
        "on_predict_end": on_predict_end,
    }
    return mark(callbacks, _KIND)


@dataclass
class _State:
    """What the callbacks keep on a predictor between batches and between ``predict`` calls."""

    config: CamConfig
    model: Any  # the predictor's model the engine was built on (a new predictor model means a new engine)
    engine: CamEngine | None


def _batch_images(predictor: Any) -> list[str]:
    """The paths of the batch being predicted (none before the first batch), for the guard's warning."""
    batch = getattr(predictor, "batch", None)
    return [str(p) for p in batch[0]] if batch else []


def _setup(predictor: Any, config: CamConfig) -> None:
    """Build (or reuse) the engine on the predictor's model; none for runs without ``Results``."""
    from ..engine import CamEngine
    from ..predictor import CamPredictorMixin

    if isinstance(predictor, CamPredictorMixin) or predictor.args.embed:  # model.cam runs its own; embed: no Results
        predictor.__dict__.pop(_STATE_ATTR, None)
        return
    state = predictor.__dict__.get(_STATE_ATTR)
    if state is None or state.model is not predictor.model or state.config != config:
        predictor.__dict__[_STATE_ATTR] = state = _State(config, predictor.model, None)  # off until the engine exists
        state.engine = CamEngine(predictor, config)
    if state.engine is not None:  # None: building it failed (and was logged) for this model and these options
        _keep_outputs(predictor)


def _keep_outputs(predictor: Any) -> None:
    """Have ``predictor.inference`` also leave the outputs it returns on the predictor, for this batch's CAM."""
    if getattr(predictor.__dict__.get("inference"), KIND_ATTR, None) == _KIND:
        return
    original = predictor.inference

    def inference(*args: Any, **kwargs: Any) -> Any:
        preds = original(*args, **kwargs)
        predictor.__dict__[_PREDS_ATTR] = preds
        return preds

    setattr(inference, KIND_ATTR, _KIND)
    inference._original = original  # type: ignore[attr-defined]  # read back by _release_outputs
    predictor.inference = inference


def _release_outputs(predictor: Any) -> None:
    """Give the predictor its own ``inference`` back and drop any outputs still held."""
    wrapper = predictor.__dict__.get("inference")
    if getattr(wrapper, KIND_ATTR, None) == _KIND:
        original, own = wrapper._original, type(predictor).inference
        if getattr(original, "__self__", None) is predictor and original.__func__ is own:
            del predictor.__dict__["inference"]  # it was the class's method: nothing of ours is left behind
        else:
            predictor.inference = original  # someone else's wrapper was there before ours
    predictor.__dict__.pop(_PREDS_ATTR, None)


def _explain_batch(predictor: Any, state: _State, engine: CamEngine, preds: Any) -> None:
    """Explain the final rows of this batch's ``Results``, attach ``r.cam``, and save the overlays with ``save``.

    ``preds`` are the outputs of the predictor's own forward pass, which made the rows; they trace rows to anchors.
    """
    from ..geometry import geometry_kind
    from ..predictor import attach_cams

    config = state.config
    results = predictor.results
    im = predictor.preprocess(predictor.batch[1])  # the very tensor the predictor ran (a local there)
    sels = _select_rows(engine, predictor, preds, results, tuple(im.shape[2:]))
    fwd = engine.forward(im)
    try:
        maps = engine.explain(fwd, sels)
    finally:
        del fwd  # free the autograd graph now, not at the next batch
    kind = geometry_kind(predictor)  # letterbox / stretch / center crop, exactly as model.cam
    attach_cams(results, sels, maps, engine, config, tuple(im.shape[2:]), kind)
    if predictor.args.save:
        _save(predictor, results)


def _select_rows(
    engine: CamEngine, predictor: Any, preds: Any, results: list[Any], imgsz: tuple[int, int]
) -> list[Selection]:
    """Trace every final ``Results`` row back to its pre-NMS anchor / query, in the row order the user sees.

    ``adapter.select`` repeats the predictor's NMS on the predictor's own outputs (``preds``, which hold the head's
    raw tensors too) and identifies rows by (confidence, class) as an order-preserving subsequence of the NMS rows.
    Tracking reorders rows (and drops unconfirmed ones) but keeps their confidences, so rows are handed over sorted by
    confidence, the order NMS emits them in, and the selection is permuted back afterwards.
    """
    import torch

    # classify: rows are the top-5 classes; semantic / depth: rows are pixel regions; nothing to reorder
    if (results and results[0].probs is not None) or engine.adapter.dense:
        return engine.adapter.select(predictor, preds, preds, results, imgsz)
    orders, sorted_rows = [], []
    for r in results:
        rows = r.obb if r.obb is not None else r.boxes
        conf = rows.conf if rows is not None else torch.zeros(0)
        order = torch.sort(conf, descending=True, stable=True).indices
        orders.append(order)
        sorted_rows.append(_Rows(conf[order], rows.cls[order] if rows is not None else torch.zeros(0)))
    sels = engine.adapter.select(predictor, preds, preds, sorted_rows, imgsz)
    return [s.subset(torch.argsort(order).to(s.index.device)) for s, order in zip(sels, orders)]


class _Rows:
    """The columns of a ``Results`` that ``adapter.select`` reads to align rows: as ``.boxes`` and as ``.obb``."""

    def __init__(self, conf: Any, cls: Any) -> None:
        self.conf, self.cls = conf, cls
        self.boxes = self.obb = self

    def __len__(self) -> int:
        return len(self.conf)


def _save(predictor: Any, results: list[Any]) -> None:
    """Write each overlay beside Ultralytics' own output: an image per image, a video per video or stream.

    Through the package's save path, not a copy of it: an image's overlay is written as ``model.cam(save=True)``
    writes its ``heatmap.png`` (:func:`~ultralytics_cam.writers.write_image_file`: encoded by suffix, atomic); a
    video's or stream's frames go through Ultralytics' own video writer, as ``model.cam``'s streams do
    (:func:`_write_video_frame`).
    """
    from ..writers import write_image_file

    paths = predictor.batch[0]
    video = predictor.dataset.mode in {"stream", "video"}
    for i, r in enumerate(results):
        p = Path(str(paths[i]))
        name = f"{_output_base(predictor, i, p)}{_SUFFIX}"
        overlay = r.cam.plot()
        if video:
            _write_video_frame(predictor, predictor.save_dir / f"{name}{p.suffix}", overlay)
        else:
            write_image_file(predictor.save_dir / f"{name}.jpg", overlay)


def _write_video_frame(predictor: Any, save_path: Path, overlay: Any) -> None:
    """Append ``overlay`` to the video ``save_path`` with the predictor's own ``save_predicted_images``.

    So the suffix, codec and fps are Ultralytics' choice for this platform and source (a video file's own fps, over
    ``vid_stride``), the heatmap video plays in step with Ultralytics' video beside it, and its writer sits in the
    predictor's ``vid_writer`` dict, which Ultralytics releases when the stream ends, however it ends. Only the video:
    ``save_frames`` is off for the call, as it is for ``model.cam``'s stream overlays.
    """
    plotted, save_frames = getattr(predictor, "plotted_img", None), predictor.args.save_frames
    predictor.plotted_img, predictor.args.save_frames = overlay, False
    try:
        predictor.save_predicted_images(save_path, None)
    finally:
        predictor.plotted_img, predictor.args.save_frames = plotted, save_frames


def _output_base(predictor: Any, i: int, p: Path) -> str:
    """The file stem Ultralytics used for this image (``bus``, or ``bus-2`` when two sources share a stem)."""
    sources = getattr(predictor, "_sources", None) or {}  # filled by write_results; absent in older releases
    return str(sources.get(p if predictor.dataset.mode == "video" else i, p.stem))
