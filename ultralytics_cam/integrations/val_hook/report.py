"""The ``cam_failures/`` folder of one validation run.

::

    cam_failures/
        failures.json        every failure of every image (worst image first), with the run's settings
        failures.csv         the same, one row per failure: image, kind, class, true_class, confidence, iou, files,
                             error (depth: the cell's mean absolute error, metres)
        contact_sheet.jpg    the worst explained images (most failures first), annotated under their failures' maps
        <image>/panel.jpg    the image with ground truth (green) and predictions, then one heatmap tile per failure
        <image>/01_<kind>.jpg              a failure's heatmap tile (its box red, its object green, a missed
                                           object's strongest candidate orange)
        <image>/02_wrong_class_pred.jpg    two-class failures: the predicted class's map ...
        <image>/02_wrong_class_true.jpg    ... and the true class's map at the same place

Semantic tiles show the failing class's predicted pixels' box (red) and true pixels' box (green); depth tiles the
failing cell (red).

``<image>`` is the image's file stem (``-2``, ``-3`` appended when stems repeat). Every failure is listed in the JSON
and CSV; only the explained images (all of them, or the ``max_images`` worst) have files.

Every file is written with the package's atomic writers (:mod:`ultralytics_cam.writers`), as a CAM run's are: a
crash or Ctrl-C never leaves a half-written file.
"""

from __future__ import annotations

import csv
import heapq
import io
from pathlib import Path
from typing import Any

import numpy as np

from ...writers import atomic_write_bytes, unique_name, write_image_file, write_json
from .mining import KINDS, ImageCase

__all__ = ["SCHEMA_VERSION", "SHEET_MAX", "FailureReport"]

SCHEMA_VERSION = 1
#: At most this many images on the contact sheet.
SHEET_MAX = 36
CSV_COLUMNS = ("image", "kind", "class", "true_class", "confidence", "iou", "files", "error")


class FailureReport:
    """Collects the failure images of a run, writes their files, and writes the summaries at the end."""

    def __init__(self, folder: Path, names: dict[int, str], meta: dict[str, Any]) -> None:
        """Report into ``folder`` (created on first write); ``meta`` goes into ``failures.json`` as is."""
        self.folder = Path(folder)
        self.names = names
        self.meta = meta
        self.cases: list[ImageCase] = []
        self.images = 0  # images validated
        self.explained = 0  # images whose files were written
        # min-heap of the SHEET_MAX worst explained images: ((rank, -seq), thumbnail, case); seq is unique, so the
        # thumbnails are never compared
        self._sheet: list[tuple[tuple[tuple[float, float], int], np.ndarray, ImageCase]] = []
        self._stems: set[str] = set()

    def add(self, case: ImageCase) -> None:
        """Record an image with failures (every one is listed in the summaries, explained or not)."""
        self.cases.append(case)

    def save(self, case: ImageCase, image: np.ndarray, maps: np.ndarray, alpha: float, colormap: str) -> None:
        """Write one explained image's panel and tiles; ``maps`` are its failures' maps at the original size."""
        from .drawing import CaseDrawing, panel

        drawing = CaseDrawing(image, case, self.names, alpha, colormap)
        folder = self._folder_for(case)
        folder.mkdir(parents=True, exist_ok=True)
        rel = folder.relative_to(self.folder).as_posix()
        tiles, per_failure, i = [], [], 0
        for k, f in enumerate(case.failures, 1):
            m = maps[i : i + (2 if f.explains_two_classes else 1)]
            i += len(m)
            per_failure.append(m)
            f.files = [f"{rel}/panel.jpg"]
            for suffix, tile in drawing.tiles(k, f, m):
                name = f"{k:02d}_{f.kind}{suffix}.jpg"
                write_image_file(folder / name, tile)
                f.files.append(f"{rel}/{name}")
                tiles.append(tile)
        conf = self.meta.get("conf")
        legend = [_short(case.name), f"green: truth, boxes: conf>={conf}" if conf is not None else "green: truth"]
        if self.meta.get("task") == "semantic":
            legend[1] = "green: true, boxes: predicted pixels"
        elif self.meta.get("task") == "depth":
            legend[1] = "boxes: cells with the largest error"
        if case.ratio_pad is None:  # classification: say what the image is and what the model said
            top = self.names.get(int(case.pred_cls[0]), case.pred_cls[0]) if len(case.pred_cls) else "?"
            legend[1] = f"true {self.names.get(int(case.gt_cls[0]))}, top-1 {top} {float(case.pred_conf[0]):.2f}"
        write_image_file(folder / "panel.jpg", panel(drawing.annotated(), tiles, legend))
        self.explained += 1
        key = (case.rank, -case.seq)
        heapq.heappush(self._sheet, (key, drawing.thumbnail(per_failure), case))
        if len(self._sheet) > SHEET_MAX:
            heapq.heappop(self._sheet)

    def write(self) -> None:
        """Write ``failures.json``, ``failures.csv`` and (if any image was explained) ``contact_sheet.jpg``."""
        from .drawing import contact_sheet

        self.folder.mkdir(parents=True, exist_ok=True)
        rows = [row for case in self.worst_first() for row in self._rows(case)]
        counts = {k: sum(r["kind"] == k for r in rows) for k in KINDS if k in self.meta.get("kinds", KINDS)}
        summary = {
            "schema_version": SCHEMA_VERSION,
            **self.meta,
            "images": self.images,
            "images_with_failures": len(self.cases),
            "images_explained": self.explained,
            "counts": counts,
            "failures": rows,
        }
        write_json(self.folder / "failures.json", summary)
        table = io.StringIO(newline="")
        writer = csv.writer(table)
        writer.writerow(CSV_COLUMNS)
        for r in rows:
            names = (r["name"], r["true_name"] or "")
            writer.writerow(
                [
                    r["image"],
                    r["kind"],
                    *names,
                    _num(r["confidence"]),
                    _num(r["iou"]),
                    ";".join(r["files"]),
                    _num(r.get("error")),
                ]
            )
        atomic_write_bytes(self.folder / "failures.csv", table.getvalue().encode("utf-8"))
        if self._sheet:
            entries = [(case, thumb) for _, thumb, case in sorted(self._sheet, key=lambda e: e[0], reverse=True)]
            write_image_file(self.folder / "contact_sheet.jpg", contact_sheet(entries))

    def worst_first(self) -> list[ImageCase]:
        """Images with failures, the worst (:attr:`ImageCase.rank`) first; ties in validation order."""
        return sorted(self.cases, key=lambda c: (tuple(-x for x in c.rank), c.seq))

    # -- helpers -----------------------------------------------------------------------------------------------------
    def _rows(self, case: ImageCase) -> list[dict[str, Any]]:
        """One JSON row per failure of an image; boxes in original-image pixels (xyxy, or xywhr for OBB)."""
        gt, pred = _original_boxes(case, case.gt_boxes), _original_boxes(case, case.pred_boxes)
        rows = []
        for f in case.failures:
            box = pred[f.pred] if f.pred is not None and pred else gt[f.gt] if f.gt is not None and gt else None
            rows.append(
                {
                    "image": case.name,
                    "path": case.path,
                    "kind": f.kind,
                    "class": f.cls,
                    "name": self._name(f.cls),
                    "true_class": f.true_cls,
                    "true_name": self._name(f.true_cls) if f.true_cls is not None else None,
                    "confidence": _round(f.conf),
                    "iou": _round(f.iou),
                    "box": box,
                    "true_box": gt[f.gt] if f.gt is not None and gt else None,
                    "candidate_box": _original_boxes(case, f.candidate_box[None])[0]
                    if f.candidate_box is not None
                    else None,
                    "map_confidence": f.map_conf,
                    "files": list(f.files),
                }
            )
            if f.kind == "depth_error":
                rows[-1].update(error=f.error, abs_rel=f.abs_rel)
        return rows

    def _name(self, c: int) -> str:
        return str(self.names.get(c, c)) if isinstance(self.names, dict) else str(c)

    def _folder_for(self, case: ImageCase) -> Path:
        """A folder per image named after its file stem, made unique within the run."""
        return self.folder / unique_name(Path(case.name).stem or "image", self._stems)


def _original_boxes(case: ImageCase, boxes: Any) -> list[list[float]]:
    """Boxes in original-image pixels, rounded (empty for classification, which has none)."""
    from ultralytics.utils import ops

    if case.ratio_pad is None or case.ori_shape is None or len(boxes) == 0:
        return []
    b = ops.scale_boxes(case.input_hw, boxes.clone().float(), case.ori_shape, case.ratio_pad, xywh=boxes.shape[-1] == 5)
    return [[round(float(v), 2) for v in row] for row in b]


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 5)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.5g}"


def _short(text: str, n: int = 36) -> str:
    return text if len(text) <= n else "..." + text[-(n - 3) :]
