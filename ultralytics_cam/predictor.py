"""A CAM predictor: the task's own Ultralytics predictor with a grad-enabled inference step.

Sources, letterbox, device, batching, NMS and ``Results`` all stay Ultralytics'; the subclass only swaps the model call
for :meth:`CamEngine.forward` and, after the task's own postprocess, traces each ``Results`` row back to the head and
attaches its maps as ``r.cam``. The class is built per task at run time, so every task and head that Ultralytics
dispatches (``model._smart_load("predictor")``) is covered without a table of our own.
"""

from __future__ import annotations

import functools
from typing import Any

from .config import CamConfig
from .engine import CamEngine
from .geometry import Geometry
from .result import CamResult

__all__ = ["CamPredictorMixin", "cam_predictor_class"]


class CamPredictorMixin:
    """Mixed in front of a task predictor (``DetectionPredictor``, ``SegmentationPredictor``, ...)."""

    cam_config: CamConfig
    cam_engine: CamEngine | None = None
    _cam_forward: Any = None

    def setup_model(self, model: Any, verbose: bool = True) -> None:
        """Build the model as Ultralytics does, then the CAM engine on the predictor's own copy of it."""
        super().setup_model(model, verbose=verbose)
        self.cam_engine = CamEngine(self, self.cam_config)

    def inference(self, im: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the grad-enabled forward; return detached predictions to Ultralytics' postprocess."""
        self._cam_forward = self.cam_engine.forward(im)
        return self._cam_forward.preds

    def postprocess(self, preds: Any, img: Any, orig_imgs: Any, **kwargs: Any) -> list:
        """Build ``Results`` with the task's own postprocess, then explain every row and attach ``r.cam``."""
        results = super().postprocess(preds, img, orig_imgs, **kwargs)
        fwd, self._cam_forward = self._cam_forward, None
        try:
            engine = self.cam_engine
            sels = engine.adapter.select(self, fwd.preds, fwd.head_out, results, tuple(img.shape[2:]))
            maps = engine.explain(fwd, sels)
        finally:
            del fwd  # free the autograd graph before the next batch
        kind = self.geometry_kind()
        config = self.cam_config
        layers = [layer.label for layer in engine.layers]
        for r, sel, m in zip(results, sels, maps):
            geometry = Geometry(kind, tuple(img.shape[2:]), tuple(r.orig_shape))
            r.cam = CamResult(
                m,
                geometry,
                r,
                method=engine.method.name,
                layers=layers,
                target=config.target,
                cls=sel.cls,
                conf=sel.conf,
                index=sel.index,
                display=config.display(),
            )
        return results

    def geometry_kind(self) -> str:
        """How this predictor fitted images to the model input."""
        if self.source_type is not None and self.source_type.tensor:
            return "stretch"  # tensors are fed unchanged: the maps are at the original size already
        if getattr(self, "host_transforms", None) is not None or self.args.task == "classify":
            return "center_crop"
        return "stretch" if getattr(self, "scale_fill", False) else "letterbox"


@functools.cache
def cam_predictor_class(predictor_cls: type) -> type:
    """Return the CAM predictor class for a task predictor class (cached, so one class per task)."""
    return type(f"Cam{predictor_cls.__name__}", (CamPredictorMixin, predictor_cls), {"__module__": __name__})
