"""Deterministic synthetic "shapes" datasets with exact ground truth for all five Ultralytics tasks.

The images are simple filled shapes with random colours drawn on *textured* backgrounds (colour gradient,
low-frequency colour blobs, random clutter lines and specks, pixel noise), so the class of an object depends on
its shape and a model cannot solve the task by "any pixel that differs from the background".

Tasks and classes (see :data:`CLASS_NAMES`):

* ``detect`` / ``segment``: ``circle``, ``square``, ``triangle`` (1-4 objects per image, ~20-70 px).
* ``pose``: one class ``arrowhead`` (isosceles triangle pointing "up" +/- 45 deg) with three keypoints
  ``apex``, ``left_base``, ``right_base`` (:data:`KPT_SHAPE` ``[3, 3]``, :data:`FLIP_IDX` ``[0, 2, 1]``).
* ``obb``: ``rectangle`` and ``ellipse``, elongated and rotated by any angle.
* ``classify``: one large ``circle`` / ``square`` / ``triangle`` per image.
* ``semantic``: the detect scenes; the label is a per-pixel class-id mask (``background`` 0, then ``circle``,
  ``square``, ``triangle`` as 1-3), see :func:`semantic_mask`.
* ``depth``: the detect scenes; the label is a metric depth map (:func:`depth_map`): the background is a vertical
  gradient from :data:`DEPTH_FAR` m at the top to :data:`DEPTH_HORIZON` m at the bottom and each shape is flat at
  ``DEPTH_K / size`` m (bigger looks nearer, the only cue a model can learn), stored in ``objects[i]["depth"]``.

Everything is driven by an explicitly seeded :class:`numpy.random.Generator`, so the same seed always gives the
same pixels, the same labels and byte-identical files. Importing this module has no side effects.

Example::

    import numpy as np
    from synthetic_shapes import render_image

    img, objects = render_image("detect", np.random.default_rng(123), 160)
    # img: (160, 160, 3) uint8 BGR; objects[i]["cls"], objects[i]["box_xyxy"] (pixels, float32 x1, y1, x2, y2)
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "CLASS_NAMES",
    "FLIP_IDX",
    "KPT_NAMES",
    "KPT_SHAPE",
    "TASKS",
    "depth_map",
    "make_dataset",
    "objects_to_jsonable",
    "render_image",
    "semantic_mask",
]

TASKS = ("detect", "segment", "pose", "obb", "classify", "semantic", "depth")

CLASS_NAMES: dict[str, list[str]] = {
    "detect": ["circle", "square", "triangle"],
    "segment": ["circle", "square", "triangle"],
    "pose": ["arrowhead"],
    "obb": ["rectangle", "ellipse"],
    "classify": ["circle", "square", "triangle"],
    "semantic": ["background", "circle", "square", "triangle"],
    "depth": ["depth"],  # Ultralytics' depth datasets have one nominal class; objects keep the detect cls / name
}
"""Class names per task; the list index is the class id written to the labels."""

KPT_SHAPE = [3, 3]
"""Pose keypoint shape: 3 keypoints with (x, y, visibility)."""

KPT_NAMES = ["apex", "left_base", "right_base"]
"""Pose keypoint names in label order. ``left_base`` is the base corner on the left when the arrowhead is upright."""

FLIP_IDX = [0, 2, 1]
"""Pose keypoint permutation under a horizontal flip (apex stays, left and right base swap)."""

DEPTH_FAR, DEPTH_HORIZON = 20.0, 14.0
"""Depth task: background depth (m) at the top and at the bottom row (a ground plane receding upwards)."""

DEPTH_K = 240.0
"""Depth task: a shape of axis-aligned extent ``s`` px (at 160 px) stands at ``DEPTH_K / s`` m (~3.4-12 m)."""

DEPTH_SCALE = 1000
"""Depth task: uint16 PNG value per metre (Ultralytics' default ``depth_scale``)."""

_CIRCLE_VERTICES = 48  # circles/ellipses are drawn *as* this polygon, so the polygon label is exact
_MAX_PLACEMENT_TRIES = 60


# --------------------------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Return a float32 (size, size, 3) textured background in [0, 255] (before final pixel noise)."""
    # 1) linear colour gradient at a random angle
    c0 = rng.uniform(30, 225, 3)
    c1 = rng.uniform(30, 225, 3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (np.cos(ang) * (xx - 0.5) + np.sin(ang) * (yy - 0.5)) / math.sqrt(0.5) * 0.5 + 0.5  # ~[0, 1]
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]

    # 2) low-frequency colour blobs (bicubic upsampled coarse noise)
    grid = int(rng.integers(3, 8))
    coarse = rng.normal(0.0, 1.0, (grid, grid, 3)).astype(np.float32)
    blobs = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img = img + blobs * rng.uniform(12, 35)

    # 3) mid-frequency texture
    grid2 = int(rng.integers(12, 28))
    fine = rng.normal(0.0, 1.0, (grid2, grid2, 1)).astype(np.float32)
    tex = cv2.resize(fine, (size, size), interpolation=cv2.INTER_LINEAR)
    img = img + tex[..., None] * rng.uniform(4, 14)

    img = np.clip(img, 0, 255).astype(np.float32)

    # 4) clutter: random straight lines and polylines ("scribbles") of random colours
    n_lines = int(rng.integers(3, 10))
    for _ in range(n_lines):
        p = rng.uniform(-0.1 * size, 1.1 * size, 4)
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        thick = int(rng.integers(1, 3))
        cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), col, thick, cv2.LINE_AA)
    n_scribbles = int(rng.integers(1, 4))
    for _ in range(n_scribbles):
        k = int(rng.integers(3, 7))
        start = rng.uniform(0, size, 2)
        steps = rng.normal(0, size * 0.08, (k, 2))
        pts = np.cumsum(np.vstack([start, steps]), axis=0)
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.polylines(img, [np.round(pts).astype(np.int32)], False, col, int(rng.integers(1, 3)), cv2.LINE_AA)

    # 5) small specks (2-4 px dots)
    n_specks = int(rng.integers(5, 25))
    for _ in range(n_specks):
        c = rng.uniform(0, size, 2)
        col = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.circle(img, (int(c[0]), int(c[1])), int(rng.integers(1, 3)), col, -1, cv2.LINE_AA)
    return img


def _pick_colour(rng: np.random.Generator, bg: np.ndarray, poly: np.ndarray) -> tuple[float, float, float]:
    """Random object colour with enough contrast to the background under ``poly`` (mean colour distance)."""
    x1, y1 = np.floor(poly.min(0)).astype(int)
    x2, y2 = np.ceil(poly.max(0)).astype(int)
    h, w = bg.shape[:2]
    patch = bg[max(y1, 0) : min(y2, h), max(x1, 0) : min(x2, w)].reshape(-1, 3)
    mean = patch.mean(0) if len(patch) else bg.reshape(-1, 3).mean(0)
    col = rng.uniform(0, 255, 3)
    for _ in range(30):
        if np.linalg.norm(col - mean) >= 90:
            break
        col = rng.uniform(0, 255, 3)
    return tuple(float(v) for v in col)


def _fill(img: np.ndarray, poly: np.ndarray, colour: tuple[float, float, float]) -> None:
    """Fill a float polygon with sub-pixel precision (anti-aliased)."""
    pts = np.round(poly * 16).astype(np.int32)  # shift=4 -> 1/16 px precision
    cv2.fillPoly(img, [pts], colour, lineType=cv2.LINE_AA, shift=4)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add pixel noise and convert to uint8 BGR."""
    noise = rng.normal(0.0, rng.uniform(3, 10), img.shape).astype(np.float32)
    return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------------
# Shape geometry (all polygons are float (N, 2) arrays of x, y pixel coordinates)
# --------------------------------------------------------------------------------------------------------------------
def _rot(pts: np.ndarray, ang: float) -> np.ndarray:
    """Rotate points (N, 2) about the origin by ``ang`` radians (image coordinates, y down: positive = clockwise)."""
    c, s = math.cos(ang), math.sin(ang)
    return pts @ np.array([[c, s], [-s, c]], dtype=np.float64)


def _ellipse_poly(a: float, b: float) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, _CIRCLE_VERTICES, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], 1)


def _shape_poly(name: str, size: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Polygon centred at the origin for a class ``name`` whose axis-aligned extent is about ``size`` px.

    Returns the polygon and extra geometry (keypoints, obb parameters) relative to the origin.
    """
    extra: dict[str, Any] = {}
    if name == "circle":
        poly = _ellipse_poly(size / 2, size / 2)
    elif name == "square":
        ang = math.radians(rng.uniform(-15, 15))
        side = size / (abs(math.cos(ang)) + abs(math.sin(ang)))  # keep the AABB about `size`
        h = side / 2
        poly = _rot(np.array([[-h, -h], [h, -h], [h, h], [-h, h]], dtype=np.float64), ang)
    elif name == "triangle":  # equilateral, pointing up +/- 25 deg
        ang = math.radians(rng.uniform(-25, 25))
        r = size / math.sqrt(3)  # circumradius of an equilateral triangle with side `size`
        base = np.array([[0.0, -r], [r * math.sin(math.radians(60)), r / 2], [-r * math.sin(math.radians(60)), r / 2]])
        poly = _rot(base, ang)
    elif name == "arrowhead":  # isosceles: narrow apex, height = 1.5 x base width, pointing up +/- 45 deg
        ang = math.radians(rng.uniform(-45, 45))
        height = size
        half_base = size / 3.0
        # centroid at the origin: apex at -2/3 h, base at +1/3 h
        apex = np.array([0.0, -2 * height / 3])
        left = np.array([-half_base, height / 3])
        right = np.array([half_base, height / 3])
        poly = _rot(np.stack([apex, right, left]), ang)  # drawing order (any winding is fine)
        kpts = _rot(np.stack([apex, left, right]), ang)  # label order: apex, left_base, right_base
        extra["keypoints"] = kpts
    elif name in ("rectangle", "ellipse"):  # elongated, any rotation; `size` is the long side
        long_side = size
        short_side = size / rng.uniform(1.6, 2.6)
        ang = rng.uniform(0, np.pi)  # angle of the long side w.r.t. +x (image coordinates, clockwise)
        hl, hs = long_side / 2, short_side / 2
        corners = _rot(np.array([[-hl, -hs], [hl, -hs], [hl, hs], [-hl, hs]], dtype=np.float64), ang)
        poly = corners if name == "rectangle" else _rot(_ellipse_poly(hl, hs), ang)
        extra["obb"] = (long_side, short_side, ang, corners)
    else:  # pragma: no cover - guarded by callers
        raise ValueError(f"unknown shape {name!r}")
    return poly, extra


def _poly_mask(poly: np.ndarray, size: int, dilate: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    if dilate > 0:
        m = cv2.dilate(m, np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8))
    return m.astype(bool)


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------
def render_image(
    task: str,
    rng: np.random.Generator,
    imgsz: int = 160,
    *,
    n_objects: int | None = None,
    classes: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render one synthetic image and return it with the exact ground truth of every object.

    Args:
        task: One of ``"detect"``, ``"segment"``, ``"pose"``, ``"obb"``, ``"classify"``.
        rng: An explicitly seeded ``numpy.random.Generator``; the output is a pure function of its state, ``task``,
            ``imgsz`` and the optional arguments (same seed -> identical pixels and labels).
        imgsz: Square image side in pixels (datasets use 160; classify uses 96).
        n_objects: Optional number of objects to *try* to place (default: random 1-4; always 1 for classify). Objects
            never overlap, so fewer may be placed when the image is crowded; ``len(objects)`` is the truth.
        classes: Optional class id per object (overrides ``n_objects``); e.g. ``classes=[0]`` gives one circle.

    Returns:
        ``(image, objects)`` where ``image`` is a ``(imgsz, imgsz, 3)`` uint8 **BGR** array and ``objects`` is a list
        of dicts, one per drawn object, with keys:

        * ``cls`` (int) and ``name`` (str): class id / name from :data:`CLASS_NAMES` ``[task]``.
        * ``box_xyxy``: float32 ``(4,)`` tight axis-aligned box ``x1, y1, x2, y2`` in pixels (for ``obb`` it is the
          axis-aligned box of the 4 rotated-box corners, like ``Results.obb.xyxy``).
        * ``polygon`` (every task): float32 ``(N, 2)`` outline in pixels; the object is drawn by filling exactly
          this polygon (anti-aliased), so it is also the exact segmentation mask. Circles and ellipses are 48-gons.
        * pose only: ``keypoints`` float32 ``(3, 3)`` rows ``x, y, visibility`` in the order of :data:`KPT_NAMES`
          (visibility is always 2 = visible).
        * depth only: ``depth`` (float, metres): the shape's flat depth in :func:`depth_map`.
        * semantic only: ``cls`` counts from 1 (0 is ``background``).
        * obb only: ``xywhr`` float32 ``(5,)`` ``cx, cy, long side, short side, angle`` (radians in ``[0, pi)``, angle
          of the long side from +x, clockwise in image coordinates) and ``corners`` float32 ``(4, 2)`` in pixels.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task in ("semantic", "depth"):  # the detect scenes; only the label differs (semantic_mask / depth_map)
        img, objects = render_image("detect", rng, imgsz, n_objects=n_objects, classes=classes)
        for o in objects:
            if task == "semantic":
                o["cls"] += 1  # id 0 is the background
            else:
                extent = float(np.max(o["box_xyxy"][2:] - o["box_xyxy"][:2]))
                o["depth"] = DEPTH_K / (extent * 160.0 / int(imgsz))
        return img, objects
    names = CLASS_NAMES[task]
    size = int(imgsz)
    bg = _background(rng, size)
    img = bg.copy()

    if classes is not None:
        cls_list = [int(c) for c in classes]
        if any(c < 0 or c >= len(names) for c in cls_list):
            raise ValueError(f"class ids must be in [0, {len(names)})")
    else:
        n = 1 if task == "classify" else (int(n_objects) if n_objects is not None else int(rng.integers(1, 5)))
        cls_list = [int(rng.integers(0, len(names))) for _ in range(n)]

    occupied = np.zeros((size, size), bool)
    objects: list[dict[str, Any]] = []
    for cls in cls_list:
        name = names[cls]
        placed = None
        for _ in range(_MAX_PLACEMENT_TRIES):
            if task == "classify":
                s = rng.uniform(0.45, 0.75) * size
            elif task == "obb":
                s = rng.uniform(0.25, 0.47) * size  # long side ~40-75 px at 160
            else:
                s = rng.uniform(0.125, 0.44) * size  # ~20-70 px at 160
            poly0, extra = _shape_poly(name, s, rng)
            lo, hi = poly0.min(0), poly0.max(0)
            margin = 2.0
            if np.any(hi - lo + 2 * margin >= size):
                continue
            c = np.array(
                [rng.uniform(margin - lo[0], size - margin - hi[0]), rng.uniform(margin - lo[1], size - margin - hi[1])]
            )
            poly = poly0 + c
            if task == "obb":  # rotated shapes: forbid touching shapes, bounding boxes may overlap
                m = _poly_mask(poly, size, dilate=3)
            else:  # keep axis-aligned boxes apart, too
                x1, y1 = np.floor(poly.min(0)).astype(int) - 3
                x2, y2 = np.ceil(poly.max(0)).astype(int) + 3
                m = np.zeros((size, size), bool)
                m[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = True
            if occupied[m].any():
                continue
            placed = (poly, extra, c, m)
            break
        if placed is None:
            continue
        poly, extra, c, m = placed
        occupied |= m
        colour = _pick_colour(rng, bg, poly)
        _fill(img, poly, colour)
        obj: dict[str, Any] = {"cls": int(cls), "name": name, "polygon": poly.astype(np.float32)}
        if task == "pose":
            k = extra["keypoints"] + c
            obj["keypoints"] = np.concatenate([k, np.full((3, 1), 2.0)], 1).astype(np.float32)
        if task == "obb":
            long_side, short_side, ang, corners = extra["obb"]
            corners = corners + c
            obj["corners"] = corners.astype(np.float32)
            obj["xywhr"] = np.array([c[0], c[1], long_side, short_side, ang], dtype=np.float32)
            box_src = corners
        else:
            box_src = poly
        obj["box_xyxy"] = np.concatenate([box_src.min(0), box_src.max(0)]).astype(np.float32)
        objects.append(obj)

    return _finish(img, rng), objects


def semantic_mask(objects: list[dict[str, Any]], imgsz: int = 160) -> np.ndarray:
    """The ``(imgsz, imgsz)`` uint8 class-id mask of a ``semantic`` image: each shape's polygon filled with its ``cls``.

    Pixels are assigned by the polygon (no anti-aliasing), the same rule as :func:`depth_map`.
    """
    mask = np.zeros((imgsz, imgsz), np.uint8)
    for o in objects:
        cv2.fillPoly(mask, [np.round(o["polygon"] * 16).astype(np.int32)], int(o["cls"]), cv2.LINE_8, shift=4)
    return mask


def depth_map(objects: list[dict[str, Any]], imgsz: int = 160) -> np.ndarray:
    """The ``(imgsz, imgsz)`` float32 depth (metres) of a ``depth`` image: background gradient, flat shapes."""
    rows = np.linspace(DEPTH_FAR, DEPTH_HORIZON, imgsz, dtype=np.float32)
    depth = np.repeat(rows[:, None], imgsz, axis=1)
    for o in objects:
        cv2.fillPoly(depth, [np.round(o["polygon"] * 16).astype(np.int32)], float(o["depth"]), cv2.LINE_8, shift=4)
    return depth


def objects_to_jsonable(objects: list[dict[str, Any]], ndigits: int = 2) -> list[dict[str, Any]]:
    """Convert the ``objects`` returned by :func:`render_image` to plain JSON-serialisable lists (rounded)."""
    out = []
    for o in objects:
        d: dict[str, Any] = {}
        for k, v in o.items():
            d[k] = np.round(np.asarray(v, dtype=np.float64), ndigits).tolist() if isinstance(v, np.ndarray) else v
        out.append(d)
    return out


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{float(v):.6f}" for v in values)


def _label_lines(task: str, objects: list[dict[str, Any]], size: int) -> list[str]:
    """Ultralytics label lines (normalised coordinates) for one image."""
    lines = []
    for o in objects:
        x1, y1, x2, y2 = (float(v) / size for v in o["box_xyxy"])
        xywh = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        if task == "detect":
            lines.append(f"{o['cls']} {_fmt(xywh)}")
        elif task == "segment":
            lines.append(f"{o['cls']} {_fmt(np.clip(o['polygon'] / size, 0, 1).ravel())}")
        elif task == "pose":
            k = o["keypoints"].astype(np.float64).copy()
            k[:, :2] /= size
            lines.append(f"{o['cls']} {_fmt(xywh)} {_fmt(k.ravel())}")
        elif task == "obb":
            lines.append(f"{o['cls']} {_fmt(np.clip(o['corners'] / size, 0, 1).ravel())}")
    return lines


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"could not encode {path}")
    path.write_bytes(buf.tobytes())


def make_dataset(task: str, root: Path, n_train: int, n_val: int, imgsz: int = 160, seed: int = 0) -> Path:
    """Write a synthetic Ultralytics-format dataset for ``task`` under ``root`` and return what to pass as ``data=``.

    ``root`` is wiped and re-created, so the same arguments always produce byte-identical files. The train and val
    splits use independent generators derived from ``seed`` (``SeedSequence(seed).spawn(2)``), so ``val`` is never a
    copy of ``train`` and adding images to one split does not change the other.

    Layout:

    * detect / segment / pose / obb: ``root/images/{train,val}/NNNNNN.png``, ``root/labels/{train,val}/NNNNNN.txt``
      and ``root/data.yaml`` (absolute ``path``, ``names``; pose also ``kpt_shape``, ``flip_idx``, ``kpt_names``).
      Returns ``root/data.yaml``.
    * classify: ``root/{train,val}/<class name>/NNNNNN.png`` (Ultralytics' ImageNet-style folders). Returns ``root``.
    * semantic: ``root/images/{split}/NNNNNN.png`` and class-id masks ``root/masks/{split}/NNNNNN.png``; the YAML has
      ``masks_dir: masks`` and names with ``background`` at 0. Returns ``root/data.yaml``.
    * depth: ``root/images/{split}/NNNNNN.png`` and uint16 depth PNGs ``root/depth/{split}/NNNNNN.png``
      (:data:`DEPTH_SCALE` per metre, ``depth_scale`` in the YAML). Returns ``root/data.yaml``.

    Args:
        task: One of :data:`TASKS`.
        root: Output folder (deleted first if it exists).
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image size in pixels.
        seed: Seed of the generators.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    root = Path(root).resolve()
    if root.exists():
        shutil.rmtree(root)
    names = CLASS_NAMES[task]
    seqs = np.random.SeedSequence(seed).spawn(2)
    manifest: dict[str, list[dict[str, Any]]] = {}
    for split, n, ss in (("train", n_train, seqs[0]), ("val", n_val, seqs[1])):
        rng = np.random.default_rng(ss)
        manifest[split] = []
        if task == "classify":
            for name in names:
                (root / split / name).mkdir(parents=True, exist_ok=True)
        else:
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            label_dir = {"semantic": "masks", "depth": "depth"}.get(task, "labels")
            (root / label_dir / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            if task == "classify":
                cls = i % len(names)  # balanced classes
                img, objects = render_image(task, rng, imgsz, classes=[cls])
                _write_png(root / split / names[cls] / f"{i:06d}.png", img)
            elif task in ("semantic", "depth"):
                img, objects = render_image(task, rng, imgsz)
                _write_png(root / "images" / split / f"{i:06d}.png", img)
                label = (
                    semantic_mask(objects, imgsz)
                    if task == "semantic"
                    else np.rint(depth_map(objects, imgsz) * DEPTH_SCALE).astype(np.uint16)
                )
                _write_png(root / label_dir / split / f"{i:06d}.png", label)
            else:
                img, objects = render_image(task, rng, imgsz)
                _write_png(root / "images" / split / f"{i:06d}.png", img)
                (root / "labels" / split / f"{i:06d}.txt").write_text(
                    "".join(line + "\n" for line in _label_lines(task, objects, imgsz))
                )
            manifest[split].append({"file": f"{i:06d}.png", "objects": objects_to_jsonable(objects)})
    (root / "ground_truth.json").write_text(json.dumps({"task": task, "imgsz": imgsz, "seed": seed, **manifest}))
    if task == "classify":
        return root

    lines = [
        f"# synthetic shapes dataset, task={task}, seed={seed}, imgsz={imgsz}",
        f"path: {root.as_posix()}",
        "train: images/train",
        "val: images/val",
    ]
    if task == "semantic":
        lines.append("masks_dir: masks")
    if task == "depth":
        lines += [f"depth_scale: {DEPTH_SCALE}", f"max_depth: {DEPTH_FAR + 5:g}"]
    if task == "pose":
        lines += [f"kpt_shape: {KPT_SHAPE}", f"flip_idx: {FLIP_IDX}", "kpt_names:", f"  0: [{', '.join(KPT_NAMES)}]"]
    lines.append("names:")
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    yaml_path = root / "data.yaml"
    yaml_path.write_text("\n".join(lines) + "\n")
    return yaml_path
