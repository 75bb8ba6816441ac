"""``model.cam(...)``: run a CAM over any Ultralytics source and return ``Results`` with ``r.cam`` attached."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ._logging import LOGGER, PREFIX
from .config import split_kwargs
from .errors import UnsupportedModelError
from .heads import TASK_TARGETS
from .predictor import cam_predictor_class

__all__ = ["cam", "cam_predictor"]

#: Ultralytics' own ``Model.predict`` defaults for Python calls, which ``model.cam`` shares.
PREDICT_DEFAULTS = {"conf": 0.25, "batch": 1, "save": False, "mode": "predict", "rect": True}


def cam(model: Any, source: Any = None, stream: bool = False, **kwargs: Any) -> Any:
    """Explain every prediction of ``model`` on ``source`` with a class activation map.

    Args:
        model: an Ultralytics ``Model`` (``YOLO``, ``RTDETR``, ``YOLOWorld``, ``YOLOE``) with PyTorch weights.
        source: anything ``model.predict`` accepts (file, folder, glob, URL, video, array, tensor, list).
        stream: return a generator of ``Results`` (bounded memory on long videos and large folders).
        **kwargs: CAM options (``method``, ``target``, ``layers``, ``alpha``, ``colormap``, ``show_boxes``,
            ``renormalize``, ``eigen_smooth``, ``save_maps``) and any Ultralytics predict argument (``conf``,
            ``iou``, ``imgsz``, ``device``, ``batch``, ``classes``, ``max_det``, ``half``, ``save``, ...).
            ``save`` defaults to False, as in ``model.predict`` from Python; ``save=True`` writes the layout of
            ``yolo-cam predict`` (``runs/<task>/cam``, ``cam-2``, ...: a folder per image, ``summary.json``).

    Returns:
        ``list[Results]`` (a generator with ``stream=True``); each result carries ``r.cam``
        (:class:`~ultralytics_cam.result.CamResult`).

    Raises:
        UnsupportedModelError: the model is an export or has no explainable head.
        MethodError, TargetError, LayerError, ValueError, TypeError: an option is invalid (the message says which).
    """
    predictor = cam_predictor(model, **kwargs)
    if source is None:
        from ultralytics.utils import ASSETS

        LOGGER.warning(f"{PREFIX}'source' is missing. Using 'source={ASSETS}'.")
        source = ASSETS
    return predictor(source=source, stream=stream)


def cam_predictor(model: Any, **kwargs: Any) -> Any:
    """Build the CAM predictor that :func:`cam` runs (options checked, model set up; nothing is read yet).

    ``yolo-cam`` uses it to reach the run (``predictor.cam_run``) for progress and a clean Ctrl-C; ``kwargs`` are
    those of :func:`cam`.
    """
    import torch
    from ultralytics.engine.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"cam() needs an Ultralytics model such as YOLO('yolo11n.pt'), got {type(model).__name__}.")
    if not isinstance(model.model, torch.nn.Module):
        raise UnsupportedModelError(
            f"CAM needs PyTorch weights (.pt); '{model.model}' is an exported model without layers or gradients."
        )
    if model.task not in TASK_TARGETS:
        raise UnsupportedModelError(
            f"ultralytics-cam explains {', '.join(TASK_TARGETS)} models; this {type(model).__name__} model's task is "
            f"'{model.task}'."
        )
    config, overrides = split_kwargs(kwargs)
    args = {**model.overrides, **PREDICT_DEFAULTS, **overrides, "mode": "predict"}
    args["name"] = overrides.get("name") or "cam"  # runs/<task>/cam, then Ultralytics' increment rule (cam-2, ...)
    predictor = cam_predictor_class(model._smart_load("predictor"))(overrides=args, _callbacks=_callbacks_for(model))
    predictor.cam_config = config
    predictor.setup_model(model=model.model, verbose=False)
    return predictor


def _callbacks_for(model: Any) -> dict:
    """The user's callbacks for a CAM run, minus tracking (it reorders rows) and our own CAM callbacks (recursion)."""

    def keep(f: Any) -> bool:
        ours = getattr(f, "_ultralytics_cam", False)
        return not ours and not getattr(f, "__module__", "").startswith("ultralytics.trackers")

    return defaultdict(list, {event: [f for f in fns if keep(f)] for event, fns in model.callbacks.items()})
