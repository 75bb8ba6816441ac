"""Black-box methods (DRISE) through the predictor's own backend and postprocess: maps for exported models too.

A black-box method never reads a layer or a gradient, only predictions, so it runs on whatever backend Ultralytics'
predictor loaded (``AutoBackend``: PyTorch, ONNX, OpenVINO, TorchScript, TensorRT, ...). Per image:

1. The predictor's plain inference and the task's own postprocess give the ``Results`` the user sees; its rows are
   the predictions to explain (classify: the top-5 classes).
2. The image's masks (:class:`~ultralytics_cam.methods.drise.MaskSet`, seeded) are applied to the preprocessed input,
   over the image itself and never over the letterbox padding, so a ``rect`` letterbox (PyTorch) and a square one (a
   static export) of the same image get the same masks. The masked inputs run through the same backend in chunks of the
   backend's batch size (a static batch-1 export runs one at a time; PyTorch and dynamic exports take
   :data:`MASK_BATCH`), and every chunk goes through the task's own postprocess (NMS, ``Results``).
3. Every prediction of the image is scored against every masked output with the D-RISE similarity
   (:mod:`ultralytics_cam.similarity`): all predictions share the same masked forwards. The weighted masks add up to
   the maps (:class:`~ultralytics_cam.methods.drise.SaliencyAccumulator`), at the model-input size like every other
   method's, so ``r.cam`` is the same object with the same outputs on disk.

The postprocess of masked outputs runs with three settings changed for its duration and restored after: the
confidence threshold (proposals down to ``DRISE.proposal_conf``, so weights fade instead of vanishing), the batch's
paths (Ultralytics zips its ``Results`` with them), and, on YOLO anchor heads, Ultralytics' per-object feature hook
(``_feats`` / ``get_obj_feats``, which ``DetectionPredictor.postprocess`` applies to the kept anchors of its NMS) set
to read each kept proposal's class-probability vector, for the cosine of the D-RISE similarity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from .errors import MethodError
from .geometry import Geometry
from .heads import Selection, align_rows
from .maps import CamMaps
from .methods.drise import MaskSet, SaliencyAccumulator
from .similarity import Detections, drise_similarity

if TYPE_CHECKING:
    from .config import CamConfig
    from .methods import CamMethod

__all__ = ["MASK_BATCH", "BlackBoxEngine", "backend_name", "mask_batch"]

#: Masked images per forward pass where the backend takes any batch (PyTorch, TorchScript, dynamic exports). On the
#: CPU a larger batch is not faster per image (yolov8n at 640 px); accelerators get more.
MASK_BATCH = 16
ACCELERATOR_MASK_BATCH = 64
#: Images with at least this many masks show a progress bar over their masks (with ``verbose``).
PROGRESS_MIN_MASKS = 256

#: Ultralytics' formats whose forward takes any batch even when exported without ``dynamic`` (``AutoBackend.forward``
#: pads or splits the others to the export's batch).
_ANY_BATCH_FORMATS = {"pt", "torchscript", "ncnn", "deepx", "axelera"}


def backend_name(backend: Any) -> str:
    """The format of an ``AutoBackend`` as Ultralytics names it (``pt``, ``onnx``, ``openvino``, ``engine``, ...)."""
    return str(getattr(backend, "format", "pt"))


def mask_batch(backend: Any) -> int:
    """Masked images per forward pass: the export's own batch for static exports, else :data:`MASK_BATCH`."""
    metadata = getattr(backend, "metadata", None) or {}
    static = not metadata.get("dynamic") and backend_name(backend) not in _ANY_BATCH_FORMATS
    if static:
        return max(int(getattr(backend, "batch", 1) or 1), 1)
    device = getattr(backend, "device", None)
    return ACCELERATOR_MASK_BATCH if device is not None and torch.device(device).type != "cpu" else MASK_BATCH


class BlackBoxEngine:
    """Explains the predictions of one predictor with a black-box method (``method.black_box``), on any backend.

    Args:
        predictor: the CAM predictor after Ultralytics' ``setup_model`` (its ``model`` is an ``AutoBackend``).
        config: the CAM options.

    Raises:
        MethodError: the method does not fit the task or target, or an option means nothing to it.
        ValueError: ``region=`` (semantic and depth only) was given.
    """

    def __init__(self, predictor: Any, config: CamConfig) -> None:
        factory = config.method_spec.factory
        assert factory is not None  # CamConfig refuses the methods without a factory
        self.method: CamMethod = factory()
        self.predictor = predictor
        self.config = config
        self.task: str = predictor.args.task
        self.backend = predictor.model
        self.method.check(self.task, len(self.backend.names), config.target)
        name = self.method.name
        if config.region is not None:
            raise ValueError(f"region= applies to semantic and depth models; method '{name}' explains detections.")
        if config.layers != "auto":
            raise MethodError(
                f"method '{name}' reads no layer (it only sees predictions); drop layers={config.layers!r}."
            )
        for option in ("eigen_smooth", "aug_smooth"):
            if getattr(config, option):
                raise MethodError(
                    f"{option}=True is a grad-cam option for layer maps; method '{name}' has no layer map."
                )
        self.target = config.target_spec
        self.layers: list[Any] = []  # no layer is read (r.cam.layers is empty)
        self.path = "forward"
        self.batch = mask_batch(self.backend)

    # -- explain -----------------------------------------------------------------------------------------------------
    def explain(
        self, im: torch.Tensor, preds: Any, results: list[Any], postprocess: Callable[..., list[Any]], kind: str
    ) -> tuple[list[Selection], list[CamMaps]]:
        """Return, per image of the batch, the explained rows and their maps at the model-input size.

        Args:
            im: (B, 3, H, W) the preprocessed batch the predictor ran.
            preds: the backend's raw outputs for ``im`` (read before any masked forward reuses its buffers).
            results: the batch's ``Results``, as the task's postprocess built them.
            postprocess: the task's own postprocess, ``postprocess(preds, img, orig_imgs) -> list[Results]``.
            kind: how images were fitted to the input (:func:`~ultralytics_cam.geometry.geometry_kind`).
        """
        probs = self._reference_probs(preds, im, results, postprocess)
        sels, maps = [], []
        for b, r in enumerate(results):
            target = Detections.from_results(r, probs[b])
            sel = Selection(
                target.cls.clone() if target.boxes.shape[-1] == 0 else torch.arange(len(target)),
                target.cls,
                target.conf,
                target.boxes,
            )
            hw = (int(im.shape[2]), int(im.shape[3]))
            dense = self._maps(im[b : b + 1], r, target, Geometry(kind, hw, tuple(r.orig_shape)), postprocess)
            sels.append(sel)
            maps.append(CamMaps.from_dense(dense, path=self.path))
        return sels, maps

    def _maps(
        self, image: torch.Tensor, result: Any, target: Detections, geometry: Geometry, postprocess: Callable[..., Any]
    ) -> torch.Tensor:
        """(n, H, W) maps of one image's predictions: every masked output scored for all of them at once."""
        h, w = image.shape[-2:]
        n = len(target)
        out = torch.zeros((n, int(h), int(w)))
        if n == 0:
            return out
        y0, y1, x0, x1 = _content(geometry)
        config = self.config
        masks = MaskSet(config.drise_masks, (y1 - y0, x1 - x0), config.drise_cell, config.drise_keep, config.seed)
        accumulator = SaliencyAccumulator(n, masks.hw)
        verbose = bool(getattr(self.predictor.args, "verbose", False)) and len(masks) >= PROGRESS_MIN_MASKS
        with _progress(len(masks), f"{self.method.name} {_name(result)}", verbose) as bar:
            for start in range(0, len(masks), self.batch):
                stop = min(start + self.batch, len(masks))
                chunk = masks.masks(start, stop, image.device)
                full = image.new_ones((stop - start, 1, int(h), int(w)))
                full[:, 0, y0:y1, x0:x1] = chunk.to(image.dtype)
                found = self._proposals(image * full, result, postprocess)
                weights = torch.stack([drise_similarity(target, f) for f in found])  # (k, n)
                accumulator.add(chunk.float().cpu(), weights)
                bar(stop - start)
        out[:, y0:y1, x0:x1] = accumulator.maps()
        return out

    def _proposals(self, masked: torch.Tensor, result: Any, postprocess: Callable[..., Any]) -> list[Detections]:
        """Run masked copies of one image through the backend and the task's postprocess; their predictions."""
        preds = self.backend(masked)
        conf = min(float(self.predictor.args.conf), self.method.proposal_conf)  # type: ignore[attr-defined]
        k = len(masked)
        probs = _class_scores(self.predictor, preds)
        with _postprocess_settings(self.predictor, conf, [result.path] * k, probs):
            found = postprocess(preds, masked, [result.orig_img] * k)
        return [Detections.from_results(r, _feats(r)) for r in found]

    def _reference_probs(
        self, preds: Any, im: torch.Tensor, results: list[Any], postprocess: Callable[..., Any]
    ) -> list[torch.Tensor | None]:
        """Per image, the class-probability vectors of its ``Results`` rows (None where the head gives none).

        The batch is postprocessed once more with the feature hook set, then its rows are matched to the ``Results``
        rows (same confidence and class, in order: segment drops rows with an empty mask, the hook keeps them).
        """
        scores = _class_scores(self.predictor, preds)
        if scores is None:
            return [None] * len(results)
        paths = [r.path for r in results]
        with _postprocess_settings(self.predictor, float(self.predictor.args.conf), paths, scores):
            probe = postprocess(preds, im, [r.orig_img for r in results])
        out: list[torch.Tensor | None] = []
        for p, r in zip(probe, results):
            vectors = _feats(p)
            mine, theirs = (r.obb, p.obb) if r.obb is not None else (r.boxes, p.boxes)  # obb results have no boxes
            if vectors is None or mine is None or theirs is None or not len(mine):
                out.append(None)
                continue
            try:
                rows = align_rows(theirs.conf, theirs.cls, mine.conf, mine.cls)
            except RuntimeError:  # the probe found other rows: fall back to the one-hot classes
                out.append(None)
                continue
            out.append(vectors[rows])
        return out


def _content(geometry: Geometry) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): where the image itself lies in the model input (the letterbox padding excluded)."""
    h, w = geometry.input_hw
    oy, ox, ch, cw = geometry.canvas()
    return max(oy, 0), min(oy + ch, h), max(ox, 0), min(ox + cw, w)


def _name(result: Any) -> str:
    from pathlib import Path

    return Path(str(getattr(result, "path", "") or "image")).name


def _class_scores(predictor: Any, preds: Any) -> torch.Tensor | None:
    """(B, nc, anchors) class scores of a YOLO anchor head's raw output, or None where the output has no such block.

    Only ``DetectionPredictor`` postprocesses (detect, segment, pose, obb) apply the feature hook; end-to-end outputs
    (``(B, 300, 6 + extra)``, NMS done inside the model) and RT-DETR keep only each query's best class.
    """
    from ultralytics.models.yolo.detect import DetectionPredictor

    if not isinstance(predictor, DetectionPredictor):
        return None
    p = preds
    while isinstance(p, (list, tuple)) and len(p):
        p = p[0]
    backend: Any = predictor.model  # an AutoBackend after setup_model (typed None by the predictor's __init__)
    nc = len(backend.names)
    end2end = bool(getattr(backend, "end2end", False))
    if not isinstance(p, torch.Tensor) or p.ndim != 3 or end2end or p.shape[-1] == 6 or p.shape[1] < 4 + nc:
        return None
    return p[:, 4 : 4 + nc]


def _feats(result: Any) -> torch.Tensor | None:
    """The class-probability vectors the feature hook attached to a ``Results`` (None if it attached none)."""
    f = getattr(result, "feats", None)
    if isinstance(f, torch.Tensor):
        return f.float().cpu()
    return None  # none attached, or an image without proposals ([]): nothing to compare


@contextlib.contextmanager
def _postprocess_settings(predictor: Any, conf: float, paths: list[str], scores: torch.Tensor | None) -> Iterator[None]:
    """Run the task's postprocess with another threshold, the masked batch's paths and (optionally) the feature hook.

    ``scores`` (B, nc, anchors) become each kept proposal's ``r.feats`` (its class-probability vector) through
    Ultralytics' own hook: ``DetectionPredictor.postprocess`` calls ``self.get_obj_feats(self._feats, idxs)`` with the
    anchors its NMS kept when ``self._feats`` is set. Everything is restored afterwards.
    """
    args = predictor.args
    saved_conf, saved_batch = args.conf, predictor.batch
    args.conf = conf
    predictor.batch = (paths, *(saved_batch[1:] if saved_batch else ()))
    if scores is not None:
        predictor._feats = scores
        predictor.get_obj_feats = _vectors_at
    try:
        yield
    finally:
        args.conf, predictor.batch = saved_conf, saved_batch
        if scores is not None:
            predictor._feats = None
            del predictor.get_obj_feats  # the class's own static method again


def _vectors_at(scores: torch.Tensor, idxs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per image, the (n, nc) class scores at the anchors NMS kept (``get_obj_feats``' signature)."""
    return [s[:, i.long().view(-1)].T.float() for s, i in zip(scores, idxs)]


@contextlib.contextmanager
def _progress(total: int, desc: str, show: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar over an image's masks when ``show`` (long images, ``verbose``); a no-op otherwise."""
    if not show:
        yield lambda k: None
        return
    import sys

    from ultralytics.utils.tqdm import TQDM

    bar = TQDM(total=total, desc=desc, unit="mask", leave=False, file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()
