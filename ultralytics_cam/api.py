"""``model.cam(...)``: run a CAM over any Ultralytics source and return ``Results`` with ``r.cam`` attached.

Like ``model.predict``, which keeps its predictor in ``model.predictor``, ``model.cam`` reuses its CAM predictor
across calls while the model and the options are unchanged, so a loop of single-frame calls does not pay for setting
up the model (a deep copy, ``AutoBackend``, fusing) and the warm-up on every frame. The predictor is kept beside the
model (a weak mapping), never in ``model.predictor``; a changed option, a reloaded model (``model.model`` replaced),
weights changed in place (tensor versions move), other callbacks, or a run that saves (each gets its own folder)
build a fresh one.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from ._logging import LOGGER, PREFIX
from .config import split_kwargs
from .errors import UnsupportedModelError
from .heads import SUPPORTED_TASKS
from .predictor import cam_predictor_class

if TYPE_CHECKING:
    from ultralytics.engine.model import Model
    from ultralytics.engine.results import Results

    from .config import CamConfig

__all__ = ["cam", "cam_predictor"]

#: Ultralytics' own ``Model.predict`` defaults for Python calls, which ``model.cam`` shares.
PREDICT_DEFAULTS = {"conf": 0.25, "batch": 1, "save": False, "mode": "predict", "rect": True}


@overload
def cam(model: Model, source: Any = None, stream: Literal[False] = False, **kwargs: Any) -> list[Results]: ...
@overload
def cam(model: Model, source: Any = None, *, stream: Literal[True], **kwargs: Any) -> Iterator[Results]: ...
@overload
def cam(model: Model, source: Any, stream: Literal[True], **kwargs: Any) -> Iterator[Results]: ...
@overload
def cam(model: Model, source: Any = None, stream: bool = False, **kwargs: Any) -> list[Results] | Iterator[Results]: ...
def cam(model: Model, source: Any = None, stream: bool = False, **kwargs: Any) -> list[Results] | Iterator[Results]:
    """Explain every prediction of ``model`` on ``source`` with a class activation map.

    Args:
        model: an Ultralytics ``Model`` (``YOLO``, ``RTDETR``, ``YOLOWorld``, ``YOLOE``) with PyTorch weights, or an
            exported model (``YOLO("best.onnx")``, OpenVINO, TorchScript, TensorRT, ...) with ``method="DRISE"``.
        source: anything ``model.predict`` accepts (file, folder, glob, URL, video, array, tensor, list).
        stream: return a generator of ``Results`` (bounded memory on long videos and large folders).
        **kwargs: CAM options (``method``, ``target``, ``layers``, ``alpha``, ``colormap``, ``show_boxes``,
            ``renormalize``, ``eigen_smooth``, ``aug_smooth``, ``save_maps``, ``head_replay``, ``region``: see
            :class:`~ultralytics_cam.config.CamConfig`) and any Ultralytics predict argument (``conf``,
            ``iou``, ``imgsz``, ``device``, ``batch``, ``classes``, ``max_det``, ``half``, ``save``, ...).
            ``save`` defaults to False, as in ``model.predict`` from Python; ``save=True`` writes the layout of
            ``yolo-cam predict`` (``runs/<task>/cam``, ``cam-2``, ...: a folder per image, ``summary.json``).

    Returns:
        ``list[Results]`` (a generator with ``stream=True``); each result carries ``r.cam``
        (:class:`~ultralytics_cam.result.CamResult`).

    Raises:
        UnsupportedModelError: the model is an export and the method needs gradients, or it has no explainable head.
        MethodError, TargetError, LayerError, ValueError, TypeError: an option is invalid (the message says which).
    """
    predictor = cam_predictor(model, reuse=True, **kwargs)
    if source is None:
        from ultralytics.utils import ASSETS

        LOGGER.warning(f"{PREFIX}'source' is missing. Using 'source={ASSETS}'.")
        source = ASSETS
    results: list[Results] | Iterator[Results] = predictor(source=source, stream=stream)
    return results


#: model -> (the options and state the predictor was built for, the predictor); weak, so it never keeps a model alive.
_REUSED: weakref.WeakKeyDictionary[Model, tuple[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def cam_predictor(model: Any, *, reuse: bool = False, **kwargs: Any) -> Any:
    """Build the CAM predictor that :func:`cam` runs (options checked, model set up; nothing is read yet).

    ``yolo-cam`` uses it to reach the run (``predictor.cam_run``) for progress and a clean Ctrl-C; ``kwargs`` are
    those of :func:`cam`. With ``reuse``, the predictor of the previous call on this model is returned when nothing
    it depends on changed (see the module docstring).

    Raises:
        TypeError: ``model`` is not an Ultralytics ``Model``.
        UnsupportedModelError: the model is an export and the method is not a black-box one, or its task has no CAM.
    """
    import torch
    from ultralytics.engine.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"cam() needs an Ultralytics model such as YOLO('yolo11n.pt'), got {type(model).__name__}.")
    exported = not isinstance(model.model, torch.nn.Module)  # YOLO("best.onnx"): model.model is the file's path
    if model.task not in SUPPORTED_TASKS:
        raise UnsupportedModelError(
            f"ultralytics-cam explains {', '.join(SUPPORTED_TASKS)} models; this {type(model).__name__} model's task "
            f"is '{model.task}'."
        )
    config, overrides = split_kwargs(kwargs)
    if exported and not config.method_spec.black_box:
        fmt = _export_format(model.model)
        raise UnsupportedModelError(
            f"method '{config.method_spec.name}' needs gradients or layers, which this {fmt} export "
            f"('{model.model}') does not have. Use method='DRISE' (black box: it runs on any backend Ultralytics "
            "loads), or load the .pt weights for the gradient methods."
        )
    args = {**model.overrides, **PREDICT_DEFAULTS, **overrides, "mode": "predict"}
    args["name"] = overrides.get("name") or "cam"  # runs/<task>/cam, then Ultralytics' increment rule (cam-2, ...)
    callbacks = _callbacks_for(model)
    # an export is rebuilt per call (its file is the model; a D-RISE run costs far more than loading it)
    key = _reuse_key(model, config, args, callbacks) if reuse and not args.get("save") and not exported else None
    if key is not None:
        kept = _REUSED.get(model)
        if kept is not None and kept[0] == key and not kept[1]._lock.locked():  # locked: a stream is still running
            return kept[1]
    predictor = cam_predictor_class(model._smart_load("predictor"))(overrides=args, _callbacks=callbacks)
    predictor.cam_config = config
    predictor.setup_model(model=model.model, verbose=False)
    if key is not None:
        _REUSED[model] = (key, predictor)
    return predictor


def _reuse_key(
    model: Model, config: CamConfig, args: dict[str, Any], callbacks: dict[str, list[Callable[..., Any]]]
) -> tuple[Any, ...]:
    """Everything a CAM predictor depends on.

    The options, the network object, its tensors' identities, storage and versions (an in-place change such as
    ``load_state_dict`` bumps a tensor's version), and the callbacks.
    """
    import torch

    net = model.model
    assert isinstance(net, torch.nn.Module)  # cam_predictor reuses no predictor of an export
    tensors = tuple((id(t), t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers()))
    hooks = tuple((event, tuple(id(f) for f in fns)) for event, fns in sorted(callbacks.items()) if fns)
    region = config.region  # a mask's repr elides its pixels: key it by its bytes
    mask = (region.shape, region.tobytes()) if hasattr(region, "tobytes") else None
    return (repr(config), mask, repr(sorted(args.items(), key=lambda kv: kv[0])), id(net), tensors, hooks)


def _export_format(path: Any) -> str:
    """The export format of a model file as Ultralytics names it (``onnx``, ``openvino``, ``engine``, ...)."""
    from ultralytics.nn.autobackend import AutoBackend

    model_type = getattr(AutoBackend, "_model_type", None)  # private: fall back to the suffix
    try:
        fmt = model_type(str(path)) if model_type is not None else None
    except Exception:
        fmt = None
    return str(fmt or (str(path).rsplit(".", 1)[-1] if "." in str(path) else "exported"))


def _callbacks_for(model: Model) -> dict[str, list[Callable[..., Any]]]:
    """The user's callbacks for a CAM run, minus tracking (it reorders rows) and our own CAM callbacks (recursion)."""

    def keep(f: Any) -> bool:
        ours = getattr(f, "_ultralytics_cam", False)
        # Ultralytics registers its trackers as functools.partial objects, whose own __module__ is "functools".
        module = getattr(getattr(f, "func", f), "__module__", None) or ""
        return not ours and not module.startswith("ultralytics.trackers")

    return defaultdict(list, {event: [f for f in fns if keep(f)] for event, fns in model.callbacks.items()})
