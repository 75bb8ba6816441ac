"""Pictures of failures: the per-image panel, each failure's heatmap tile, and the contact sheet.

Everything is drawn with Ultralytics' ``Annotator`` in OpenCV mode (``pil=False``): no font file is needed, so nothing
is downloaded. Images are drawn at a display size (small images enlarged, large ones reduced) so that labels stay
readable; maps arrive at the original image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ...plotting import overlay
from .mining import Failure, ImageCase

__all__ = ["CaseDrawing", "captioned", "contact_sheet", "grid", "panel"]

#: Display height of panel tiles: smaller images are enlarged to this, larger ones shrunk to at most DISPLAY_MAX.
DISPLAY_MIN, DISPLAY_MAX = 320, 640
#: Width of a contact-sheet thumbnail and the number of thumbnails per row.
THUMB, SHEET_COLUMNS = 256, 6
GT_COLOR = (0, 200, 0)  # BGR: ground truth is green
FAILURE_COLOR = (0, 0, 255)  # the failing prediction is red
CANDIDATE_COLOR = (0, 165, 255)  # a missed object's strongest candidate is orange
BACKGROUND = (40, 40, 40)
SHORT = {
    "false_positive": "FP",
    "missed": "missed",
    "wrong_class": "wrong class",
    "poor_localisation": "poor loc",
    "misclassified": "misclassified",
    "low_iou": "low IoU",
    "depth_error": "depth error",
}


@dataclass
class CaseDrawing:
    """Draws one failure image: its original pixels, boxes in original pixels, and names for labels."""

    image: np.ndarray  # BGR original
    case: ImageCase
    names: dict[int, str]
    alpha: float = 0.5
    colormap: str = "jet"

    def __post_init__(self) -> None:
        """Scale to the display size and bring the boxes onto the original image."""
        h, w = self.image.shape[:2]
        self.scale = max(DISPLAY_MIN / h, min(1.0, DISPLAY_MAX / h))
        self.size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))  # (w, h) for cv2
        self.display = cv2.resize(self.image, self.size, interpolation=cv2.INTER_LINEAR)
        self.gt = self._boxes(self.case.gt_boxes)
        self.pred = self._boxes(self.case.pred_boxes)
        self.kpts = self._keypoints(self.case.pred_kpts)

    # -- pieces --------------------------------------------------------------------------------------------------
    def annotated(self) -> np.ndarray:
        """The image with every prediction at the threshold (class colours) and every ground-truth box (green)."""
        from ultralytics.utils.plotting import Annotator, colors

        ann = Annotator(self.display.copy(), line_width=2, pil=False)
        labels = self.case.pred_labels  # dense tasks: a failing class's IoU, a failing cell's error
        for j, box in enumerate(self.pred):
            c = int(self.case.pred_cls[j])
            text = labels[j] if labels else f"{self._name(c)} {float(self.case.pred_conf[j]):.2f}"
            ann.box_label(box, text, color=colors(c, True))
        if self.kpts is not None:
            for k in self.kpts:
                ann.kpts(k, shape=self.display.shape[:2], radius=3, kpt_line=False)
        # Ultralytics' Annotator has no annotations: its result() is read as the BGR array it returns
        annotated: np.ndarray = ann.result()  # type: ignore[no-untyped-call]
        truth = Annotator(annotated, line_width=1, pil=False)  # thin, on top: visible inside a matching prediction
        for box in self.gt:
            truth.box_label(box, "", color=GT_COLOR)
        result: np.ndarray = truth.result()  # type: ignore[no-untyped-call]  # as above
        return result

    def tiles(self, number: int, failure: Failure, maps: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """The heatmap tile(s) of one failure with its box(es), captioned: ``[(file suffix, BGR image)]``."""
        from ultralytics.utils.plotting import Annotator

        out = []
        for i, m in enumerate(maps):
            heat = cv2.resize(m, self.size, interpolation=cv2.INTER_LINEAR)
            ann = Annotator(overlay(self.display, heat, self.alpha, self.colormap), line_width=2, pil=False)
            if failure.gt is not None:
                ann.box_label(self.gt[failure.gt], "", color=GT_COLOR)
            if failure.pred is not None:
                ann.box_label(self.pred[failure.pred], "", color=FAILURE_COLOR)
            if failure.candidate_box is not None:
                ann.box_label(self._boxes(failure.candidate_box[None])[0], "", color=CANDIDATE_COLOR)
            suffix = ("_pred", "_true")[i] if failure.explains_two_classes else ""
            tile: np.ndarray = ann.result()  # type: ignore[no-untyped-call]  # Ultralytics' Annotator: no annotations
            out.append((suffix, captioned(tile, self._caption(number, failure, i))))
        return out

    def thumbnail(self, maps: list[np.ndarray]) -> np.ndarray:
        """The annotated image under the combined map of its failures (first map of each), for the contact sheet."""
        heat = np.max(np.stack([m[0] for m in maps]), 0) if maps else np.zeros(self.image.shape[:2], np.float32)
        image = overlay(self.annotated(), cv2.resize(heat, self.size), self.alpha, self.colormap)
        h, w = image.shape[:2]
        return cv2.resize(image, (THUMB, max(1, round(h * THUMB / w))), interpolation=cv2.INTER_AREA)

    # -- helpers -------------------------------------------------------------------------------------------------
    def _caption(self, number: int, f: Failure, i: int) -> list[str]:
        """Two caption lines: the failure's number and kind, then what this map explains."""
        kind = f.kind.replace("_", " ")
        conf = f.map_conf[i] if i < len(f.map_conf) else f.conf
        score = f" {conf:.2f}" if conf is not None else ""
        if f.explains_two_classes:
            which = ("predicted", "true")[i]
            return [f"{number}. {kind} ({which})", f"{self._name((f.cls, f.true_cls)[i])}{score}"]
        if f.kind == "missed":
            iou = f" IoU {f.iou:.2f}" if f.iou is not None else ""
            return [f"{number}. missed {self._name(f.cls)}", f"best candidate{score}{iou}"]
        if f.kind == "low_iou":  # score: the class's mean probability on its predicted and true pixels
            return [f"{number}. low IoU {self._name(f.cls)}", f"IoU {f.iou:.2f} p{score}"]
        if f.kind == "depth_error":  # score: the mean predicted depth the map explains
            return [f"{number}. depth error {f.error:.2f} m", f"abs_rel {f.abs_rel:.2f}, depth{score} m"]
        iou = f" IoU {f.iou:.2f}" if f.iou is not None and f.true_cls is not None else ""
        return [f"{number}. {kind}", f"{self._name(f.cls)}{score}{iou}"]

    def _name(self, c: int | None) -> str:
        return str(self.names.get(c, c)) if c is not None and isinstance(self.names, dict) else str(c)

    def _boxes(self, boxes: torch.Tensor) -> list[Any]:
        """Boxes in display pixels as ``Annotator.box_label`` takes them (4 corners for rotated boxes)."""
        from ultralytics.utils import ops

        if len(boxes) == 0 or not boxes.any():  # classify keeps zero boxes
            return []
        b: torch.Tensor = boxes.clone().float()
        rotated = b.shape[-1] == 5
        if self.case.ratio_pad is not None:
            b = torch.as_tensor(  # a tensor in, a tensor out (annotated as tensor or array)
                ops.scale_boxes(self.case.input_hw, b, self.image.shape[:2], self.case.ratio_pad, xywh=rotated)
            )
        if rotated:
            b[:, :4] *= self.scale
            corners: torch.Tensor = ops.xywhr2xyxyxyxy(b)  # type: ignore[no-untyped-call]  # Ultralytics: no annotations
            return corners.tolist()
        scaled: list[Any] = (b * self.scale).tolist()
        return scaled

    def _keypoints(self, kpts: torch.Tensor | None) -> torch.Tensor | None:
        """Keypoints in display pixels."""
        if kpts is None or len(kpts) == 0:
            return None
        from ultralytics.utils import ops

        k = kpts.clone().float()
        k[..., :2] = ops.scale_coords(self.case.input_hw, k[..., :2], self.image.shape[:2], self.case.ratio_pad)
        k[..., :2] *= self.scale
        return k


def captioned(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image under a dark strip with one text line per entry (OpenCV text: no font file needed)."""
    scale, thickness, line_h = 0.5, 1, 20
    strip = np.full((line_h * len(lines) + 8, image.shape[1], 3), BACKGROUND, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(strip, text, (6, line_h * (i + 1)), 0, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return np.vstack([strip, image])


def grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles in rows of ``columns``, each cell as large as the largest tile, on a dark background."""
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = math.ceil(len(tiles) / columns)
    cols = min(columns, len(tiles))
    sheet = np.full((rows * h, cols * w, 3), BACKGROUND, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h : r * h + t.shape[0], c * w : c * w + t.shape[1]] = t
    return sheet


def contact_sheet(entries: list[tuple[ImageCase, np.ndarray]]) -> np.ndarray:
    """The thumbnails of the given images (already worst first), captioned with their name and failure counts."""
    tiles = []
    for case, thumb in entries:
        counts: dict[str, int] = {}
        for f in case.failures:
            counts[SHORT[f.kind]] = counts.get(SHORT[f.kind], 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        tiles.append(captioned(thumb, [_fit(case.name, THUMB), _fit(summary, THUMB)]))
    return grid(tiles, SHEET_COLUMNS)


def _fit(text: str, width: int) -> str:
    """Shorten text to fit ``width`` pixels of caption (about 9 px per character at the caption's scale)."""
    n = max(4, width // 9)
    return text if len(text) <= n else text[: n - 3] + "..."


def panel(left: np.ndarray, tiles: list[np.ndarray], legend: list[str], columns: int = 4) -> np.ndarray:
    """The image (annotated, with a legend) followed by the heatmap tiles of its failures, in a grid."""
    return grid([captioned(left, legend), *tiles], columns)
