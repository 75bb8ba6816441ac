"""Dense heads (SemanticSegment, Depth): every "prediction" is a region of pixels of one image."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import torch

from ..errors import UnsupportedModelError
from .base import HeadAdapter, Selection

__all__ = [
    "DenseHeadAdapter",
    "DenseSelection",
    "DepthHeadAdapter",
    "SemanticHeadAdapter",
    "boxes_mask",
    "extreme_share",
]


@dataclass
class DenseSelection(Selection):
    """The explained "predictions" of a dense head: pixel regions of one image rather than anchors.

    Attributes:
        masks: (n, H, W) bool at the model-input size: the pixels each row's target reads (fixed at selection, so
            perturbed and augmented inputs explain the very same pixels).
        info: one dict per row describing it (``r.cam.rows``, ``cam.json``).
    """

    masks: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 0, 0), dtype=torch.bool))
    info: list[dict[str, Any]] = field(default_factory=list)

    def subset(self, keep: torch.Tensor) -> DenseSelection:
        """Return the selection restricted to the rows ``keep`` (an index or boolean tensor)."""
        keep = torch.as_tensor(keep)
        rows = keep.nonzero().view(-1) if keep.dtype == torch.bool else keep.view(-1).long()
        base = super().subset(rows)
        info = [self.info[i] for i in rows.tolist()] if self.info else []
        return DenseSelection(base.index, base.cls, base.conf, base.boxes, base.flipped, self.masks[rows], info)

    def to_autograd(self) -> DenseSelection:
        """Return a copy made of normal tensors (see :meth:`Selection.to_autograd`)."""
        base = super().to_autograd()
        return DenseSelection(base.index, base.cls, base.conf, base.boxes, base.flipped, self.masks.clone(), self.info)

    def mirrored(self, index: torch.Tensor, width: int) -> DenseSelection:
        """The same regions in the horizontally flipped input: boxes and pixel masks mirrored."""
        base = super().mirrored(index, width)
        return DenseSelection(index, base.cls, base.conf, base.boxes, base.flipped, self.masks.flip(-1), self.info)


def boxes_mask(boxes: Iterable[Sequence[float]], hw: tuple[int, int], device: Any = None) -> torch.Tensor:
    """(H, W) bool: the pixels any of ``boxes`` (x1, y1, x2, y2 in pixels) covers, edges rounded and clipped at 0.

    The one rasterisation of ``region=`` boxes: the adapters pick the explained pixels with it and ``CamResult``
    recovers them from the recorded boxes with it, so both always agree.
    """
    mask = torch.zeros(hw, dtype=torch.bool, device=device)
    for x1, y1, x2, y2 in boxes:
        mask[max(round(y1), 0) : max(round(y2), 0), max(round(x1), 0) : max(round(x2), 0)] = True
    return mask


def extreme_share(depth: torch.Tensor, area: torch.Tensor, target: str, share: float) -> torch.Tensor:
    """The pixels of ``area`` a depth target averages: for ``near`` / ``far`` its nearest / farthest ``share``.

    Any other target (``mean``, plugin targets) and an empty area keep every pixel of ``area``. Pixels tied with the
    k-th nearest (farthest) value are all included, so the pick does not depend on the order of equal values. The
    depth adapter picks the target's pixels with it and ``CamResult`` recovers them from ``r.depth`` with it.
    """
    if target not in ("near", "far") or not bool(area.any()):
        return area
    values = depth[area]
    k = max(1, round(share * len(values)))
    if target == "near":
        return area & (depth <= values.kthvalue(k).values)
    return area & (depth >= values.kthvalue(len(values) - k + 1).values)


def _masks(sel: Selection) -> torch.Tensor:
    """The pixels of a dense head's row (its adapter only ever selects :class:`DenseSelection` rows)."""
    if not isinstance(sel, DenseSelection):
        raise TypeError(f"a dense head explains pixel regions (DenseSelection), got a {type(sel).__name__}")
    return sel.masks


class DenseHeadAdapter(HeadAdapter):
    """Heads that predict every pixel (SemanticSegment, Depth): a "prediction" is a region of pixels.

    A row's pixels are fixed when the rows are chosen (semantic: the pixels ``r.semantic_mask`` paints as the class;
    depth: the nearest / farthest share, or all pixels), restricted to the image content (never the letterbox padding)
    and, with ``region=``, to the given boxes or mask. Each target sums or averages the raw head output, upsampled to
    the model input exactly as Ultralytics' predictor upsamples it, over those pixels: it is differentiable, and
    perturbed or flipped inputs are explained on the same pixels.
    """

    dense = True
    #: ``region=`` boxes (original-image pixels) or an (H, W) mask; set by the engine from the CAM options.
    region: Any = None
    #: The target this run explains, after :meth:`default_target` (set by the engine once it is resolved).
    target: str = "class"
    #: The bilinear resize the predictor applies to the head output before removing the letterbox.
    align_corners: ClassVar[bool] = False

    def default_target(self, target: str) -> str:
        """The target a default ``target='class'`` means for this head."""
        return target

    def check_method(self, method: Any) -> None:
        """Refuse methods that draw boxes instead of reading the network (their maps would mean nothing here)."""
        from ..errors import MethodError

        if not method.uses_activations:
            raise MethodError(
                f"method '{method.name}' draws each prediction's box; {self.task} predictions are pixel regions "
                "without a box. Use a method that reads the network (HiResCAM, GradCAM, EigenCAM, ...)."
            )

    def upsampled(self, out: torch.Tensor, imgsz: tuple[int, int]) -> torch.Tensor:
        """The head output (B, C, h, w) at the model-input size, as the predictor resizes it."""
        import torch.nn.functional as F

        if tuple(out.shape[-2:]) == tuple(imgsz):
            return out
        return F.interpolate(out.float(), imgsz, mode="bilinear", align_corners=self.align_corners)

    def output(self, head_out: Any) -> torch.Tensor:
        """The head's (B, C, h, w) output tensor (eval mode returns it as is)."""
        out: torch.Tensor = head_out[0] if isinstance(head_out, (list, tuple)) else head_out
        return out

    # -- where the pixels are ----------------------------------------------------------------------------------------
    @staticmethod
    def content(predictor: Any, orig_hw: tuple[int, int], imgsz: tuple[int, int]) -> Any:
        """The image's content at the model input: the letterbox's (or stretch's) geometry of this predictor."""
        from ..geometry import Geometry, geometry_kind

        return Geometry(geometry_kind(predictor), (imgsz[0], imgsz[1]), (orig_hw[0], orig_hw[1]))

    def base_mask(self, geometry: Any, device: Any) -> torch.Tensor:
        """(H, W) bool at the model input: True on the image content (the letterbox padding is never explained)."""
        oy, ox, ch, cw = geometry.canvas()
        h, w = geometry.input_hw
        mask = torch.zeros((h, w), dtype=torch.bool, device=device)
        mask[max(oy, 0) : max(oy, 0) + ch, max(ox, 0) : max(ox, 0) + cw] = True
        return mask

    def region_masks(self, geometry: Any, device: Any) -> list[tuple[torch.Tensor, list[float] | None]]:
        """Each ``region=`` entry as an (H, W) bool mask at the model input, with its box in original pixels."""
        import numpy as np

        region = self.region
        oy, ox, ch, cw = geometry.canvas()
        (h0, w0), (h, w) = geometry.orig_hw, geometry.input_hw
        sy, sx = ch / h0, cw / w0
        if isinstance(region, np.ndarray) and region.ndim == 2:
            m = torch.as_tensor(region.astype(bool), device=device)[None, None].float()
            if m.shape[-2:] != (h0, w0):
                raise ValueError(
                    f"region= mask has shape {tuple(m.shape[-2:])}, but the image is {h0}x{w0}: a mask must have the "
                    "original image's height and width."
                )
            import torch.nn.functional as F

            canvas = F.interpolate(m, (ch, cw), mode="nearest")[0, 0] > 0.5
            out = torch.zeros((h, w), dtype=torch.bool, device=device)
            out[oy : oy + ch, ox : ox + cw] = canvas
            return [(out, None)]
        boxes: list[tuple[torch.Tensor, list[float] | None]] = []
        for x1, y1, x2, y2 in region:
            at_input = (x1 * sx + ox, y1 * sy + oy, x2 * sx + ox, y2 * sy + oy)
            boxes.append((boxes_mask([at_input], (h, w), device), [float(x1), float(y1), float(x2), float(y2)]))
        return boxes

    def region_record(self) -> Any:
        """``region=`` as recorded in ``r.cam.rows``: None, the boxes, or "mask"."""
        if self.region is None:
            return None
        return "mask" if hasattr(self.region, "shape") else [list(box) for box in self.region]

    @staticmethod
    def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
        """(n, 4) xyxy bounding box (model-input pixels) of each (H, W) mask (zeros for an empty mask)."""
        boxes = masks.new_zeros((len(masks), 4), dtype=torch.float32)
        for i, m in enumerate(masks):
            ys, xs = m.nonzero(as_tuple=True)
            if len(ys):
                boxes[i] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        return boxes

    def masked_mean(self, values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(n,) mean of (n or 1, H, W) values over each (n, H, W) mask."""
        m = masks.to(values.dtype)
        return (values * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)

    # -- not anchors: the failure analysis reads regions, not candidates ----------------------------------------------
    def decode(self, head_out: Any, imgsz: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense heads have no candidate boxes."""
        self._no_candidates()

    def candidates(
        self, head_out: Any, boxes: Any, cls: Any, imgsz: Any, image: int = 0, min_iou: float = 0.5
    ) -> Selection:
        """Dense heads have no candidate predictions."""
        self._no_candidates()

    def locate(self, head_out: Any, boxes: Any, cls: Any, conf: Any, imgsz: Any, image: int = 0) -> Selection:
        """Dense heads have no candidate predictions."""
        self._no_candidates()

    def _no_candidates(self) -> NoReturn:
        raise UnsupportedModelError(
            f"{self.task} heads predict pixels, not candidate boxes: there is nothing to decode."
        )


class SemanticHeadAdapter(DenseHeadAdapter):
    """SemanticSegment: one row per class present in the predicted class map, largest area first.

    The rows are the classes ``r.semantic_mask`` paints (``classes=`` applied, restricted to ``region=``), ordered by
    their area there. A row's pixels are the model-input pixels that cover the class's pixels (letterbox padding
    excluded); its target is the class's logits, upsampled as the predictor upsamples them, summed over them.
    """

    tasks = ("semantic",)

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
    ) -> list[Selection]:
        """One row per class ``r.semantic_mask`` paints (inside ``region=``), its largest area first."""
        logits = self.output(head_out).detach()
        names = getattr(predictor.model, "names", {}) or {}
        sels: list[Selection] = []
        for b, r in enumerate(results):
            geometry = self.content(predictor, r.orig_shape, imgsz)
            up = self.upsampled(logits[b : b + 1], imgsz)[0]  # (nc, H, W)
            keep = self.base_mask(geometry, up.device)
            if self.region is not None:
                any_region = torch.zeros_like(keep)
                for m, _ in self.region_masks(geometry, up.device):
                    any_region |= m
                keep &= any_region
            painted = self.painted(r, geometry, up, getattr(predictor.args, "classes", None))
            ids, counts = torch.unique(painted, return_counts=True)
            valid = ids < up.shape[0]  # 255: Ultralytics' ignore label (classes= left those pixels out)
            ids, counts = ids[valid], counts[valid]
            order = counts.argsort(descending=True, stable=True)
            ids, counts = ids[order], counts[order]
            masks = torch.stack([self.to_input(painted == c, geometry) for c in ids]) if len(ids) else keep[None][:0]
            masks &= keep[None]
            prob = up.softmax(0) if up.shape[0] > 1 else up.sigmoid()
            conf = self.masked_mean(prob[ids], masks) if len(ids) else prob.new_zeros(0)
            total = max(int((painted != 256).sum()), 1)
            info = [
                {
                    "class": int(c),
                    "name": names.get(int(c), str(int(c))) if isinstance(names, dict) else str(int(c)),
                    "area": round(int(n) / total, 6),
                    "region": self.region_record(),
                }
                for c, n in zip(ids.tolist(), counts.tolist())
            ]
            sels.append(DenseSelection(ids.long(), ids.long(), conf, self.mask_boxes(masks), False, masks, info))
        return sels

    def painted(self, result: Any, geometry: Any, up: torch.Tensor, classes: Any) -> torch.Tensor:
        """The class map the user sees, at the original size, with pixels outside ``region=`` set to 256.

        ``r.semantic_mask`` when the result has one (the rows are then exactly the classes it shows); otherwise the
        argmax of the logits, taken at the input and brought to the original size.
        """
        import torch.nn.functional as F

        mask = getattr(result, "semantic_mask", None)
        if mask is not None:
            data = torch.as_tensor(mask.data, device=up.device).long()
        else:
            cls = up.argmax(0) if up.shape[0] > 1 else up[0].gt(0).long()
            if classes is not None:
                allowed = torch.as_tensor(classes, device=cls.device).view(-1)
                cls = torch.where((cls[..., None] == allowed).any(-1), cls, torch.full_like(cls, 255))
            oy, ox, ch, cw = geometry.canvas()
            crop = cls[oy : oy + ch, ox : ox + cw].float()[None, None]
            data = F.interpolate(crop, geometry.orig_hw, mode="nearest")[0, 0].long()
        if self.region is None:
            return data
        if hasattr(self.region, "shape"):
            inside = torch.zeros(geometry.orig_hw, dtype=torch.bool, device=data.device)
            inside |= torch.as_tensor(self.region, device=data.device)
        else:
            inside = boxes_mask(self.region, geometry.orig_hw, data.device)
        return torch.where(inside, data, torch.full_like(data, 256))

    @staticmethod
    def to_input(mask: torch.Tensor, geometry: Any) -> torch.Tensor:
        """(H, W) bool at the model input: every input pixel whose footprint holds a pixel of the original-size mask.

        Area resampling covers every original pixel, so a class that ``Results`` shows on a few pixels keeps a row.
        """
        import torch.nn.functional as F

        oy, ox, ch, cw = geometry.canvas()
        h, w = geometry.input_hw
        out = torch.zeros((h, w), dtype=torch.bool, device=mask.device)
        out[oy : oy + ch, ox : ox + cw] = F.interpolate(mask.float()[None, None], (ch, cw), mode="area")[0, 0] > 0
        return out

    def class_logit(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """Block: each row's class logits (upsampled as the predictor does) summed over its pixels."""
        logits = self.output(head_out)
        out = []
        for b, s in enumerate(sels):
            up = self.upsampled(logits[b : b + 1, s.cls], imgsz)[0]  # (n, H, W): only the rows' classes
            out.append((up * _masks(s).to(up.dtype)).sum((1, 2)))
        return out

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """Every class's logits summed over each row's pixels, (n, nc) (FinerCAM compares classes on them)."""
        logits = self.output(head_out)
        out = []
        for b, s in enumerate(sels):
            masks = _masks(s)
            up = self.upsampled(logits[b : b + 1], (masks.shape[-2], masks.shape[-1]))[0]  # (nc, H, W)
            out.append(torch.einsum("chw,nhw->nc", up, masks.to(up.dtype)))
        return out


class DepthHeadAdapter(DenseHeadAdapter):
    """Depth: one row per target region, the target reading the raw (calibrated) depth the head outputs.

    - ``near``: the mean depth of the nearest 10 % of the pixels, negated ("what makes the model think this is close").
    - ``far``: the mean depth of the farthest 10 %.
    - ``mean``: the mean depth of all pixels.
    - with ``region=`` boxes: one row per box, the target computed on the box's pixels (by default the mean depth).
    """

    tasks = ("depth",)
    align_corners = True  # DepthPredictor's resize (and the depth loss's)
    #: The share of pixels ``near`` and ``far`` average.
    share: ClassVar[float] = 0.1

    def default_target(self, target: str) -> str:
        """``class`` (the option's default) means ``near`` for a whole image and ``mean`` for ``region=`` boxes."""
        if target != "class":
            return target
        return "mean" if self.region is not None else "near"

    def select(
        self, predictor: Any, preds: Any, head_out: Any, results: list[Any], imgsz: tuple[int, int]
    ) -> list[Selection]:
        """One row per image (or per ``region=`` box) with the pixels the target averages."""
        depth = self.output(head_out).detach()
        target = self.target
        sels: list[Selection] = []
        for b, r in enumerate(results):
            geometry = self.content(predictor, r.orig_shape, imgsz)
            up = self.upsampled(depth[b : b + 1], imgsz)[0, 0]  # (H, W) metres
            content = self.base_mask(geometry, up.device)
            areas = (
                [(m & content, box) for m, box in self.region_masks(geometry, up.device)]
                if self.region is not None
                else [(content, None)]
            )
            masks = torch.stack([self.pick(up, m, target) for m, _ in areas])
            value = self.masked_mean(up[None], masks)
            n = len(masks)
            index = torch.arange(n, device=up.device)
            boxes = self.mask_boxes(torch.stack([m for m, _ in areas]))
            info = [{"target": target, "region": box, "depth": round(float(v), 6)} for (_, box), v in zip(areas, value)]
            sels.append(DenseSelection(index, torch.zeros_like(index), value, boxes, False, masks, info))
        return sels

    def pick(self, depth: torch.Tensor, area: torch.Tensor, target: str) -> torch.Tensor:
        """The pixels of ``area`` the target averages: the nearest / farthest :attr:`share` of them, or all.

        Ties with the cut are included (see :func:`extreme_share`).
        """
        return extreme_share(depth, area, target, self.share)

    def depth_mean(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int], rematch: bool = False
    ) -> list[torch.Tensor]:
        """Building block (see Block): the mean upsampled depth over each row's pixels (``near`` negates it)."""
        depth = self.output(head_out)
        out = []
        for b, s in enumerate(sels):
            up = self.upsampled(depth[b : b + 1], imgsz)[0]  # (1, H, W)
            out.append(self.masked_mean(up, _masks(s)))
        return out

    def class_logits(
        self, head_out: Any, sels: list[Selection], imgsz: tuple[int, int] | None = None, rematch: bool = False
    ) -> list[torch.Tensor]:
        """A depth head has no classes."""
        raise UnsupportedModelError("depth models have no class logits to compare.")
