"""What a training run's CAM folder adds up to: the epoch records, the timelines, the grid, the metrics table and plot.

Everything here is rebuilt from what is on disk (the epoch folders and ``cam/epochs.jsonl``), never from memory, so a
resumed run's timelines continue the interrupted run's, and a stopped run can still be summarised
(:func:`summarise`).

Layout (``<save_dir>`` is Ultralytics' training folder)::

    <save_dir>/cam_metrics.csv              one row per explained epoch (beside Ultralytics' results.csv)
    <save_dir>/cam_metrics.png              its plot (beside results.png)
    <save_dir>/cam/probes.json              the probe images, fixed for the run
    <save_dir>/cam/epochs.jsonl             one record per explained epoch (what the CSV and the frames read)
    <save_dir>/cam/epoch_<NNN>/...          what ``yolo-cam predict`` writes, per explained epoch
    <save_dir>/cam/timeline/<image>.mp4     per probe image: its overlay per epoch (or .gif)
    <save_dir>/cam/timeline.png             probe images x selected epochs
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .epoch import SCORES, explained_epochs, image_folders
from .probes import spread

__all__ = [
    "CSV_NAME",
    "PLOT_NAME",
    "RECORDS",
    "Summary",
    "best_epoch",
    "drop_records",
    "headline",
    "read_records",
    "summarise",
    "timeline_frames",
    "write_record",
]

RECORDS = "epochs.jsonl"
CSV_NAME = "cam_metrics.csv"
PLOT_NAME = "cam_metrics.png"
TIMELINE_DIR = "timeline"
GRID_NAME = "timeline.png"
#: Frames per second of the timelines: each epoch shows for half a second.
FPS = 2
#: Longest side of a timeline frame, in pixels: larger images are scaled down (the epoch folders keep full size),
#: smaller ones up, so that the caption fits.
MAX_FRAME_SIDE = 640
MIN_FRAME_SIDE = 320
#: Epoch columns of the grid (evenly spaced, first and last included, plus the best epoch).
GRID_EPOCHS = 6
GRID_TILE_HEIGHT = 160


def headline(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The metric a frame shows, as (label, value); None when validation gave nothing.

    The task's first mAP50-95 (boxes, masks, poses), else top-1 accuracy, mIoU or abs_rel.
    """
    for want in ("mAP50-95", "accuracy_top1", "mIoU", "abs_rel"):
        for k, v in metrics.items():
            if want in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                label = k.split("/")[-1]
                return label, float(v)
    return None


def read_records(cam_dir: Path) -> dict[int, dict[str, Any]]:
    """``{epoch: record}`` from ``cam/epochs.jsonl`` (the last record of an epoch wins; unreadable lines skipped)."""
    out: dict[int, dict[str, Any]] = {}
    path = cam_dir / RECORDS
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            out[int(record["epoch"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return dict(sorted(out.items()))


def _write_records(cam_dir: Path, records: dict[int, dict[str, Any]]) -> None:
    cam_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, allow_nan=True) + "\n" for _, r in sorted(records.items()))
    tmp = cam_dir / f".{RECORDS}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(cam_dir / RECORDS)


def write_record(cam_dir: Path, record: dict[str, Any]) -> None:
    """Add (or replace) the record of ``record["epoch"]``."""
    records = read_records(cam_dir)
    records[int(record["epoch"])] = record
    _write_records(cam_dir, records)


def drop_records(cam_dir: Path, after: int) -> list[int]:
    """Forget every epoch after ``after`` (records and folders): a resumed run trains those epochs again."""
    import shutil

    records = read_records(cam_dir)
    dropped = sorted({e for e in records if e > after} | {e for e in explained_epochs(cam_dir) if e > after})
    if dropped:
        _write_records(cam_dir, {e: r for e, r in records.items() if e <= after})
        for e, folder in explained_epochs(cam_dir).items():
            if e > after:
                shutil.rmtree(folder, ignore_errors=True)
    return dropped


def best_epoch(records: dict[int, dict[str, Any]]) -> int | None:
    """The epoch of ``best.pt``: the last one whose validation set a new best fitness (None if none did)."""
    return max((e for e, r in records.items() if r.get("new_best")), default=None)


@dataclass
class Summary:
    """The files :func:`summarise` wrote."""

    csv: Path | None = None
    plot: Path | None = None
    grid: Path | None = None
    timelines: tuple[Path, ...] = ()


def summarise(save_dir: str | Path, fmt: str = "mp4") -> Summary:
    """(Re)build the timelines, the grid, ``cam_metrics.csv`` and its plot of a training run folder.

    Args:
        save_dir: Ultralytics' training folder (the one with ``results.csv`` and ``cam/``).
        fmt: the timelines' format, ``mp4`` or ``gif``.
    """
    save_dir = Path(save_dir)
    cam_dir = save_dir / "cam"
    best = best_epoch(read_records(cam_dir))
    records = {e: {**r, "best": e == best} for e, r in read_records(cam_dir).items() if r.get("explained")}
    epochs = {e: f for e, f in explained_epochs(cam_dir).items() if e in records}
    out = Summary()
    if records:
        out.csv = write_csv(save_dir / CSV_NAME, records)
        out.plot = plot_scores(save_dir / PLOT_NAME, records)
    if epochs:
        frames = _frames(epochs)
        out.timelines = tuple(write_timelines(cam_dir / TIMELINE_DIR, frames, records, fmt))
        out.grid = write_grid(cam_dir / GRID_NAME, frames, records)
    return out


def write_csv(path: Path, records: dict[int, dict[str, Any]]) -> Path:
    """One row per explained epoch: epoch, best, the headline metric, the probe counts and scores, seconds."""
    metric = next((r["metric"][0] for r in records.values() if r.get("metric")), "metric")
    columns = ["epoch", "best", metric, "images", "predictions", *SCORES, "seconds"]
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for epoch, r in records.items():
            value = r["metric"][1] if r.get("metric") else math.nan
            w.writerow(
                [epoch, int(bool(r.get("best"))), _fmt(value), r.get("images", 0), r.get("predictions", 0)]
                + [_fmt(r.get(k, math.nan)) for k in SCORES]
                + [_fmt(r.get("seconds", math.nan), 3)]
            )
    tmp.replace(path)
    return path


def _fmt(value: Any, digits: int = 5) -> str:
    v = float(value)
    return "" if math.isnan(v) else f"{v:.{digits}g}"


def plot_scores(path: Path, records: dict[int, dict[str, Any]]) -> Path:
    """The scores per epoch, one panel each, with the headline metric, as Ultralytics plots ``results.png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = list(records)
    metric = next((r["metric"][0] for r in records.values() if r.get("metric")), None)
    panels: list[tuple[str, list[float], list[float] | None]] = [
        ("energy in ground truth", [records[e].get("energy_in_gt", math.nan) for e in epochs], None),
        ("pointing game", [records[e].get("pointing_game", math.nan) for e in epochs], None),
        ("change from previous epoch", [records[e].get("change", math.nan) for e in epochs], None),
    ]
    panels[0] = (*panels[0][:2], [records[e].get("gt_area", math.nan) for e in epochs])  # chance level
    if metric:
        panels.append((metric, [r["metric"][1] if r.get("metric") else math.nan for r in records.values()], None))
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(3.2 * len(panels), 3.0), tight_layout=True)
    FigureCanvasAgg(fig)
    for i, (title, values, chance) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if i < 2:  # shares: energy and pointing game
            ax.set_ylim(-0.02, 1.02)
        ax.plot(epochs, values, marker=".", linewidth=2, markersize=8, label="probes")
        if chance is not None and not all(math.isnan(c) for c in chance):
            ax.plot(epochs, chance, ":", color="gray", label="box area (uniform map)")
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=150)
    tmp.replace(path)
    return path


def _frames(epochs: dict[int, Path]) -> dict[str, dict[int, Path]]:
    """``{image name: {epoch: overlay path}}``; the name is the image's folder at its first explained epoch."""
    names: dict[str, str] = {}
    out: dict[str, dict[int, Path]] = {}
    for epoch, folder in epochs.items():
        for source, image_dir in image_folders(folder).items():
            overlay = image_dir / "heatmap.png"
            if not overlay.is_file():
                continue
            name = names.setdefault(source, image_dir.name)
            out.setdefault(name, {})[epoch] = overlay
    return out


def _label(image: np.ndarray, lines: Iterable[str]) -> np.ndarray:
    """Write ``lines`` in the top-left corner on a dark band (ASCII, OpenCV's own font: nothing to download)."""
    import cv2

    lines = list(lines)
    scale = max(0.4, min(image.shape[:2]) / 400)
    thickness = max(1, round(scale * 1.5))
    step = int(22 * scale) + 4
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for t in lines) + 10
    out: np.ndarray = image.copy()
    band = out[: step * len(lines) + 6, : width + 4]
    band[:] = (band * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        y = step * (i + 1)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def _caption(epoch: int, record: dict[str, Any] | None) -> list[str]:
    lines = [f"epoch {epoch}" + (" (best)" if record and record.get("best") else "")]
    if record and record.get("metric"):
        label, value = record["metric"]
        lines.append(f"{label} {value:.3f}")
    return lines


def _fit(image: np.ndarray, max_side: int, min_side: int = MIN_FRAME_SIDE) -> np.ndarray:
    """``image`` scaled so that its longer side is between ``min_side`` and ``max_side``."""
    h, w = image.shape[:2]
    s = min(max_side / max(h, w), max(1.0, min_side / max(h, w)))
    return image if s == 1 else _resize(image, (max(1, round(h * s)), max(1, round(w * s))))


def write_timelines(
    folder: Path, frames: dict[str, dict[int, Path]], records: dict[int, dict[str, Any]], fmt: str
) -> list[Path]:
    """One video (``mp4``, OpenCV's ``mp4v``) or animated GIF per probe image: its overlay per epoch, captioned."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, by_epoch in frames.items():
        images = [im for _, im in _captioned(by_epoch, records)]
        if not images:
            continue
        path = folder / f"{name}.{fmt}"
        (_write_gif if fmt == "gif" else _write_mp4)(path, images)
        written.append(path)
    return written


def _captioned(by_epoch: dict[int, Path], records: dict[int, dict[str, Any]]) -> list[tuple[int, np.ndarray]]:
    """The frames of one image's timeline, (epoch, BGR image) in epoch order, all of the first frame's size."""
    from ultralytics.utils.patches import imread

    out: list[tuple[int, np.ndarray]] = []
    for epoch, path in by_epoch.items():
        im = imread(str(path))
        if im is not None:
            frame = _label(_fit(im, MAX_FRAME_SIDE), _caption(epoch, records.get(epoch)))
            out.append((epoch, frame if not out or frame.shape == out[0][1].shape else _resize(frame, out[0][1].shape)))
    return out


def timeline_frames(save_dir: str | Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The frames the timelines of a training run show, lossless: ``{image: [(epoch, BGR image), ...]}``."""
    cam_dir = Path(save_dir) / "cam"
    best = best_epoch(read_records(cam_dir))
    records = {e: {**r, "best": e == best} for e, r in read_records(cam_dir).items() if r.get("explained")}
    epochs = {e: f for e, f in explained_epochs(cam_dir).items() if e in records}
    return {name: _captioned(by_epoch, records) for name, by_epoch in _frames(epochs).items()}


def _resize(image: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``image`` resized to ``size`` (h, w) with OpenCV's area interpolation."""
    import cv2

    resized: np.ndarray = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)
    return resized


def _write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    import cv2

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (w, h))
    try:
        for f in frames:
            writer.write(f)
    finally:
        writer.release()
    tmp.replace(path)


def _write_gif(path: Path, frames: list[np.ndarray]) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    images = [Image.fromarray(np.ascontiguousarray(f[..., ::-1])) for f in frames]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // FPS, loop=0)
    tmp.replace(path)


def write_grid(path: Path, frames: dict[str, dict[int, Path]], records: dict[int, dict[str, Any]]) -> Path | None:
    """Probe images (rows) x selected epochs (columns): evenly spaced epochs, first and last included, and the best."""
    from ultralytics.utils.patches import imread, imwrite

    epochs = sorted({e for by_epoch in frames.values() for e in by_epoch})
    if not epochs:
        return None
    chosen = set(spread(epochs, GRID_EPOCHS)) | {e for e in epochs if records.get(e, {}).get("best")}
    columns = sorted(chosen)
    rows = []
    for by_epoch in frames.values():
        tiles: list[np.ndarray | None] = []
        for epoch in columns:
            im = imread(str(by_epoch[epoch])) if epoch in by_epoch else None
            if im is None:
                tiles.append(None)
                continue
            h, w = im.shape[:2]
            tile = _resize(im, (GRID_TILE_HEIGHT, max(1, round(w * GRID_TILE_HEIGHT / h))))
            tiles.append(_label(tile, _caption(epoch, records.get(epoch))))
        width = max((t.shape[1] for t in tiles if t is not None), default=GRID_TILE_HEIGHT)
        blank = np.full((GRID_TILE_HEIGHT, width, 3), 255, np.uint8)
        padded = [_pad(t, width) if t is not None else blank for t in tiles]
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in padded], 1))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    imwrite(str(tmp), grid)
    tmp.replace(path)
    return path


def _pad(tile: np.ndarray, width: int) -> np.ndarray:
    return np.pad(tile, ((0, 0), (0, width - tile.shape[1]), (0, 0)), constant_values=255)
