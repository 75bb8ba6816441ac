"""The validation failure hook on semantic and depth models: the worst-IoU classes and the largest-error cells.

Each dataset is a few synthetic images (the generator the test models were trained on) with one deliberate label edit:
semantic: one shape's mask relabelled as another class; depth: one grid cell's depth made much nearer than drawn.
What the hook reports is compared with the same quantities computed here independently, from ``model.predict`` and
the label files (IoU per class; per-cell absolute error after DepthMetrics' median alignment).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ultralytics_cam import add_val_failure_hook
from ultralytics_cam.integrations.val_hook.mining import DEPTH_GRID, DEPTH_MIN_ABS_REL, LOW_IOU, PER_IMAGE

from conftest import trained

IMGSZ = 160
VAL = {"batch": 2, "plots": False, "verbose": False, "workers": 0, "imgsz": IMGSZ}


def _val(model, data: Path, tmp_path: Path, **hook) -> tuple[dict, Path]:
    add_val_failure_hook(model, strict=True, **hook)
    metrics = model.val(data=str(data), project=str(tmp_path), name="val", **VAL)
    folder = Path(metrics.save_dir) / "cam_failures"
    return json.loads((folder / "failures.json").read_text()), folder


def _files_written(folder: Path, rows: list[dict], kind: str) -> None:
    """Every failure row has its panel and its own heatmap tile on disk."""
    for r in rows:
        tiles = [f for f in r["files"] if f.endswith(f"_{kind}.jpg")]
        assert len(tiles) == 1 and (folder / tiles[0]).is_file(), r["files"]
        assert (folder / r["files"][0]).is_file()


# -- semantic ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def semantic_set(tmp_path_factory, shapes):
    """Four semantic images; in the first, the largest shape's mask is relabelled as the next class."""
    root = tmp_path_factory.mktemp("semantic")
    data = shapes.make_dataset("semantic", root / "shapes", 0, 4, imgsz=IMGSZ, seed=11)
    mask_file = sorted((root / "shapes" / "masks" / "val").glob("*.png"))[0]
    mask = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
    ids, counts = np.unique(mask[mask > 0], return_counts=True)
    edited = int(ids[counts.argmax()])
    mask[mask == edited] = edited % 3 + 1  # another shape class (1-3)
    cv2.imwrite(str(mask_file), mask)
    return data, mask_file.name, edited


def _semantic_expected(model, data: Path) -> dict[str, list[tuple[int, float]]]:
    """Per image, the classes with IoU < LOW_IOU (worst first, at most PER_IMAGE), from predict and the label files."""
    root = data.parent
    out = {}
    for img in sorted((root / "images" / "val").glob("*.png")):
        pred = model.predict(str(img), imgsz=IMGSZ, verbose=False)[0].semantic_mask.data.cpu().numpy()
        true = cv2.imread(str(root / "masks" / "val" / img.name), cv2.IMREAD_UNCHANGED)
        scored = []
        for c in range(len(model.names)):
            p, t = pred == c, true == c
            union = (p | t).sum()
            if union and (p & t).sum() / union < LOW_IOU:
                scored.append((float((p & t).sum() / union), c))
        out[img.name] = [(c, iou) for iou, c in sorted(scored)[:PER_IMAGE]]
    return out


def test_semantic_failures_are_the_lowest_iou_classes_with_their_heatmaps(semantic_set, tmp_path):
    data, edited_image, edited_cls = semantic_set
    model = trained("semantic")
    expected = {k: v for k, v in _semantic_expected(model, data).items() if v}
    report, folder = _val(model, data, tmp_path)

    found: dict[str, list] = {}
    for r in report["failures"]:
        assert r["kind"] == "low_iou"
        found.setdefault(r["image"], []).append((r["class"], r["iou"]))
    assert set(found) == set(expected)
    for image, rows in found.items():
        assert [c for c, _ in rows] == [c for c, _ in expected[image]], image
        assert np.allclose([i for _, i in rows], [i for _, i in expected[image]], atol=0.02), image
    # the relabelled shape: the model still paints its true class there, which the label no longer has
    assert edited_cls in [c for c, _ in found[edited_image]]
    _files_written(folder, report["failures"], "low_iou")
    assert all(0 <= r["map_confidence"][0] <= 1 for r in report["failures"])  # the class's mean probability
    assert report["task"] == "semantic" and report["iou"] == LOW_IOU


# -- depth -------------------------------------------------------------------------------------------------------------
EDIT_CELL = (1, 2)  # (row, column) of the grid cell whose label is edited


@pytest.fixture(scope="module")
def depth_set(tmp_path_factory, shapes):
    """Four depth images; in the first, one grid cell's label is 0.4 x its drawn depth (much nearer)."""
    root = tmp_path_factory.mktemp("depth")
    data = shapes.make_dataset("depth", root / "shapes", 0, 4, imgsz=IMGSZ, seed=12)
    depth_file = sorted((root / "shapes" / "depth" / "val").glob("*.png"))[0]
    depth = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
    s = IMGSZ // DEPTH_GRID
    r, c = EDIT_CELL
    depth[r * s : (r + 1) * s, c * s : (c + 1) * s] = (depth[r * s : (r + 1) * s, c * s : (c + 1) * s] * 0.4).astype(
        depth.dtype
    )
    cv2.imwrite(str(depth_file), depth)
    return data, depth_file.name


def _depth_expected(model, data: Path, max_depth: float) -> dict[str, list[tuple[list, float, float]]]:
    """Per image, the failing cells (box, mean abs error, mean predicted depth), from predict and the label files."""
    root = data.parent
    out = {}
    s = IMGSZ // DEPTH_GRID
    for img in sorted((root / "images" / "val").glob("*.png")):
        pred = model.predict(str(img), imgsz=IMGSZ, verbose=False)[0].depth.data.cpu().double().numpy()
        true = cv2.imread(str(root / "depth" / "val" / img.name), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000
        valid = (true > 0.001) & (true < max_depth)
        aligned = np.clip(pred * np.median(true[valid]) / np.median(np.maximum(pred[valid], 0.001)), 0.001, max_depth)
        cells = []
        for r in range(DEPTH_GRID):
            for c in range(DEPTH_GRID):
                win = np.s_[r * s : (r + 1) * s, c * s : (c + 1) * s]
                v = valid[win]
                err = np.abs(aligned[win] - true[win])[v]
                if v.sum() >= 10 and (err / true[win][v]).mean() >= DEPTH_MIN_ABS_REL:
                    box = [c * s, r * s, (c + 1) * s, (r + 1) * s]
                    cells.append((box, float(err.mean()), float(pred[win].mean())))
        out[img.name] = sorted(cells, key=lambda e: -e[1])[:PER_IMAGE]
    return out


def test_depth_failures_are_the_largest_error_cells_explained_by_their_mean_depth(depth_set, tmp_path):
    data, edited_image = depth_set
    model = trained("depth")
    report, folder = _val(model, data, tmp_path)
    expected = {k: v for k, v in _depth_expected(model, data, max_depth=25.0).items() if v}

    found: dict[str, list] = {}
    for r in report["failures"]:
        assert r["kind"] == "depth_error"
        found.setdefault(r["image"], []).append((r["box"], r["error"], r["map_confidence"][0]))
    assert set(found) == set(expected)
    for image, rows in found.items():
        assert [b for b, *_ in rows] == [[float(v) for v in b] for b, *_ in expected[image]], image
        assert np.allclose([e for _, e, _ in rows], [e for _, e, _ in expected[image]], rtol=0.02), image
        # each map explains the cell's mean predicted depth (the 'mean' target on that box)
        assert np.allclose([d for *_, d in rows], [d for *_, d in expected[image]], rtol=0.02), image
    r, c = EDIT_CELL
    s = IMGSZ // DEPTH_GRID
    assert found[edited_image][0][0] == [c * s, r * s, (c + 1) * s, (r + 1) * s]  # the edited cell is the worst
    _files_written(folder, report["failures"], "depth_error")
    assert report["target"] == "mean" and report["grid"] == DEPTH_GRID
    with open(folder / "failures.csv", encoding="utf-8") as f:
        assert f.readline().strip().endswith("files,error")


def test_depth_near_target_explains_the_cells_nearest_pixels(depth_set, tmp_path):
    """target='near' reads the nearest 10 % of each failing cell: its score is nearer than the cell's mean."""
    data, edited_image = depth_set
    model = trained("depth")
    mean_report, _ = _val(model, data, tmp_path / "mean", max_images=1)
    near_report, _ = _val(model, data, tmp_path / "near", max_images=1, target="near")
    assert near_report["target"] == "near"
    pairs = [
        (m["map_confidence"][0], n["map_confidence"][0])
        for m, n in zip(mean_report["failures"], near_report["failures"])
        if m["image"] == edited_image and m["files"]
    ]
    assert pairs and all(n < m for m, n in pairs)


def test_dense_failure_hook_ranks_images_by_their_worst_failure(depth_set, tmp_path):
    """max_images keeps the image with the largest cell error, not the one with the most failing cells."""
    data, edited_image = depth_set
    model = trained("depth")
    report, _ = _val(model, data, tmp_path, max_images=1)
    explained = {r["image"] for r in report["failures"] if r["files"]}
    worst = max(report["failures"], key=lambda r: r["error"])["image"]
    counts = {r["image"]: sum(x["image"] == r["image"] for x in report["failures"]) for r in report["failures"]}
    assert explained == {worst} == {edited_image}
    assert max(counts.values()) > counts[worst]  # another image has more failing cells: the count did not decide
    assert report["failures"][0]["image"] == worst and report["images_explained"] == 1


# -- CamResult.stats: a dense row's energy is over its own pixels ------------------------------------------------------
def _energy(cam, i: int, pixels: np.ndarray) -> float:
    m = cam.map(i)
    return float(m[pixels].sum() / m.sum())


def test_semantic_stats_energy_is_over_the_rows_class_pixels():
    from conftest import render

    img, _ = render("semantic", 3)
    r = trained("semantic").cam(img, imgsz=IMGSZ, verbose=False)[0]
    painted = r.semantic_mask.data.cpu().numpy()
    stats = r.cam.stats()
    assert len(stats) >= 2
    for i, (s, c) in enumerate(zip(stats, r.cam.cls.tolist())):
        assert s["energy_in_box"] == pytest.approx(_energy(r.cam, i, painted == c), abs=1e-4)
    assert min(s["energy_in_box"] for s in stats) < 0.99  # not the whole image (which is always 1.0)


def test_depth_stats_energy_is_over_the_region_box_and_the_near_pixels():
    from conftest import render

    img, _ = render("depth", 4)
    model = trained("depth")
    boxes = [[0, 0, 80, 80], [80, 80, 160, 160]]
    r = model.cam(img, imgsz=IMGSZ, region=boxes, verbose=False)[0]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        inside = np.zeros((IMGSZ, IMGSZ), bool)
        inside[y1:y2, x1:x2] = True
        assert r.cam.stats()[i]["energy_in_box"] == pytest.approx(_energy(r.cam, i, inside), abs=1e-4)

    r = model.cam(img, imgsz=IMGSZ, target="near", verbose=False)[0]
    depth = r.depth.data.float().cpu().numpy()
    near = depth <= np.sort(depth.ravel())[round(0.1 * depth.size) - 1]
    energy = r.cam.stats()[0]["energy_in_box"]
    assert energy == pytest.approx(_energy(r.cam, 0, near), abs=1e-4) and energy < 0.99
