"""The probe images of a training run: which images are explained every epoch, and where their objects are.

The probes are fixed for the whole run (a resumed run reads them back from ``cam/probes.json``), so every frame of a
timeline shows the same image. Given as a number, they are drawn from the validation split the trainer itself loaded
(``trainer.test_loader.dataset``), deterministically: images in path order, first greedily the ones that add the most
classes not yet covered (so a few probes show as many classes as the split has), then evenly spaced over the rest.

Their ground truth, for the localisation columns of ``cam_metrics.csv``, is a boolean region at the original image
size: the union of the labelled boxes (detect, segment, pose; Ultralytics' own label boxes), of the rotated boxes
(obb), or of the pixels of every class not named ``background`` (semantic). Classify and depth images have no
objects to point at, so their region is None and only the map's change between epochs is measured.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PROBES_FILE", "Probe", "choose", "ground_truth", "load_or_choose", "spread"]

#: The probe list of a run, in ``<save_dir>/cam/``: read back on resume so that the probes never change.
PROBES_FILE = "probes.json"


@dataclass
class Probe:
    """One probe image: its file, its labelled classes and its object region (None: no objects to point at)."""

    path: str
    classes: frozenset[int] = frozenset()
    region: np.ndarray | None = None  # (H, W) bool at the original image size


def spread(items: Sequence[Any], n: int) -> list[Any]:
    """``n`` items of ``items``, evenly spaced, first and last included (all of them when there are fewer)."""
    if n >= len(items):
        return list(items)
    if n <= 0:
        return []
    if n == 1:
        return [items[0]]
    picks = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


def choose(candidates: list[tuple[str, frozenset[int]]], n: int) -> list[str]:
    """Pick ``n`` image paths from ``(path, classes)`` deterministically, covering as many classes as possible.

    Greedy set cover in path order: repeatedly the image that adds the most classes not yet covered (the first in
    path order on ties), until none adds a class; then evenly spaced images from the rest, in path order.
    """
    ordered = sorted(candidates, key=lambda c: c[0])
    chosen: list[int] = []
    covered: set[int] = set()
    while len(chosen) < n:
        best, gain = -1, 0
        for i, (_, classes) in enumerate(ordered):
            g = len(classes - covered)
            if g > gain and i not in chosen:
                best, gain = i, g
        if best < 0:
            break
        chosen.append(best)
        covered |= ordered[best][1]
    rest = [i for i in range(len(ordered)) if i not in chosen]
    chosen += spread(rest, n - len(chosen))
    return [ordered[i][0] for i in sorted(chosen)]


def load_or_choose(folder: Path, dataset: Any, images: int | Sequence[str], task: str) -> list[Probe]:
    """The run's probes: those recorded in ``folder/probes.json`` (a resumed run), else chosen now and recorded.

    Args:
        folder: the run's ``cam/`` folder.
        dataset: the trainer's validation dataset (``trainer.test_loader.dataset``), or None.
        images: how many to draw from ``dataset``, or the image files themselves.
        task: the model's task.

    Raises:
        ValueError: no probe image could be found (an empty validation split, or no image among ``images``).
    """
    record = folder / PROBES_FILE
    paths: list[str] | None = None
    if record.is_file():
        try:
            paths = [str(p) for p in json.loads(record.read_text(encoding="utf-8"))["images"]]
        except (ValueError, KeyError, TypeError):
            paths = None  # unreadable: choose again (and record the choice)
        if paths is not None:
            paths = [p for p in paths if Path(p).is_file()]
    labels = _dataset_labels(dataset, task)
    if not paths:
        if isinstance(images, int):
            paths = choose([(p, classes) for p, (classes, _) in labels.items()], images)
        else:
            paths = [str(Path(p)) for p in images]
        if not paths:
            raise ValueError(
                "no probe image: the validation split is empty" if isinstance(images, int) else "images= lists no file"
            )
        folder.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"task": task, "images": paths}, indent=2), encoding="utf-8")
    return [ground_truth(p, labels.get(_key(p)), task, dataset) for p in paths]


def _key(path: str) -> str:
    return str(Path(path).resolve())


def _dataset_labels(dataset: Any, task: str) -> dict[str, tuple[frozenset[int], Any]]:
    """``{resolved path: (classes, label)}`` of every image of an Ultralytics dataset (empty for None)."""
    if dataset is None:
        return {}
    out: dict[str, tuple[frozenset[int], Any]] = {}
    samples = getattr(dataset, "samples", None)
    if task == "classify" and samples is not None:  # ClassificationDataset: [path, class index, ...]
        for s in samples:
            out[_key(str(s[0]))] = (frozenset({int(s[1])}), None)
        return out
    for i, label in enumerate(getattr(dataset, "labels", []) or []):
        cls = label.get("cls")
        classes = frozenset(int(c) for c in np.asarray(cls).reshape(-1)) if cls is not None else frozenset()
        out[_key(str(label["im_file"]))] = (classes, (i, label))
    return out


def _image_hw(path: str) -> tuple[int, int]:
    """(h, w) of an image file as Ultralytics loads it (EXIF rotation applied), from its header.

    Not the label's ``shape``: a validation loader in ``rect`` mode pops it from its labels.
    """
    from PIL import Image
    from ultralytics.data.utils import exif_size

    with Image.open(path) as im:
        w, h = exif_size(im)
    return int(h), int(w)


def ground_truth(path: str, entry: tuple[frozenset[int], Any] | None, task: str, dataset: Any) -> Probe:
    """A :class:`Probe` with its object region, from the dataset's label of the image (no label: no region)."""
    if entry is None:
        return Probe(path)
    classes, label = entry
    if label is None or task in {"classify", "depth"}:
        return Probe(path, classes)
    index, label = label
    h, w = _image_hw(path)
    region = np.zeros((h, w), bool)
    if task == "semantic":
        names = {int(k): str(v) for k, v in dict(getattr(dataset, "data", {}).get("names", {})).items()}
        background = [k for k, v in names.items() if v.lower() == "background"]
        if not background:
            return Probe(path, classes)  # no class is the background: every labelled pixel is "an object"
        mask = dataset.load_mask(index)
        if mask.shape[:2] != (h, w):
            import cv2

            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        region = ~np.isin(mask, [*background, 255])
        return Probe(path, frozenset(int(c) for c in np.unique(mask[region])), region)
    if task == "obb":
        import cv2

        for seg in label.get("segments") or []:
            poly = np.asarray(seg, np.float64).reshape(-1, 2) * (np.array([w, h]) if label.get("normalized") else 1)
            fill = np.zeros((h, w), np.uint8)
            cv2.fillPoly(fill, [np.round(poly).astype(np.int32)], 1)
            region |= fill.astype(bool)
        return Probe(path, classes, region)
    boxes = np.asarray(label.get("bboxes", np.zeros((0, 4))), np.float64).reshape(-1, 4)
    if label.get("normalized", True):
        boxes = boxes * np.array([w, h, w, h])
    for x, y, bw, bh in boxes:  # Ultralytics' label boxes are xywh (centre, size)
        x1, y1 = max(int(np.floor(x - bw / 2)), 0), max(int(np.floor(y - bh / 2)), 0)
        x2, y2 = min(int(np.ceil(x + bw / 2)), w), min(int(np.ceil(y + bh / 2)), h)
        region[y1:y2, x1:x2] = True
    return Probe(path, classes, region)
