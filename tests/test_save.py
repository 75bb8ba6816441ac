"""Saving: ``model.cam(save=...)``, ``CamResult.save``, the writers and atomic writes, ``summary.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ultralytics_cam import saving
from ultralytics_cam.saving import write_image_folder
from ultralytics_cam.writers import WriterSpec, atomic_write_bytes, builtin_writer_specs

from conftest import tiny_detector

IMAGE_FILES = ["cam.json", "detection.png", "heatmap.npy", "heatmap.png"]


@pytest.fixture(scope="module")
def model():
    return tiny_detector()


@pytest.fixture
def images(tmp_path, assets):
    """Three small images, a text file and a corrupt .jpg in one folder."""
    src = tmp_path / "imgs"
    src.mkdir()
    bus = cv2.resize(cv2.imread(str(assets / "bus.jpg")), (80, 64))
    for i, name in enumerate(("a.jpg", "b.png", "c.jpg")):
        cv2.imwrite(str(src / name), np.roll(bus, 9 * i, axis=1))
    (src / "readme.txt").write_text("not an image")
    (src / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return src


def leftovers(folder: Path) -> list[Path]:
    """Hidden temporary files or folders left behind."""
    return list(folder.rglob(".*"))


def test_cam_does_not_save_by_default(model, images, tmp_path):
    results = model.cam(images / "a.jpg", imgsz=64, max_det=3, project=tmp_path / "out")
    assert len(results[0].cam) == 3
    assert not (tmp_path / "out").exists()


def test_cam_save_true_writes_the_layout(model, images, tmp_path):
    out = tmp_path / "out"
    results = model.cam(images, save=True, save_maps=True, imgsz=64, max_det=3, project=out)
    save_dir = out / "cam"
    assert [Path(r.path).name for r in results] == ["a.jpg", "b.png", "c.jpg"]
    for r in results:
        folder = save_dir / Path(r.path).stem
        n = len(r.cam)
        assert n == 3
        assert sorted(p.name for p in folder.iterdir()) == sorted([*IMAGE_FILES, "maps", "maps.npy"])
        np.testing.assert_allclose(np.load(folder / "heatmap.npy"), r.cam.heatmap, atol=1e-6)
        maps = np.load(folder / "maps.npy")
        assert maps.shape == (n, 64, 80) and maps.dtype == np.float32
        np.testing.assert_allclose(maps, r.cam.maps, atol=1e-6)
        rec = json.loads((folder / "cam.json").read_text(encoding="utf-8"))
        assert rec["source"] == r.path and rec["image"] == {"width": 80, "height": 64}
        assert rec["model"] == "yolo11n.yaml" and rec["task"] == "detect" and rec["method"] == "HiResCAM"
        assert len(rec["predictions"]) == n and rec["maps"] == "maps.npy"
        for i, p in enumerate(rec["predictions"]):
            assert p["index"] == i and (folder / p["map"]).is_file()
            assert p["confidence"] == pytest.approx(float(r.boxes.conf[i]), abs=1e-4)
            assert p["box"] == pytest.approx(r.boxes.xyxy[i].tolist(), abs=0.01)
        assert len(list((folder / "maps").glob("*.png"))) == n
        # detection.png is Ultralytics' own plot; heatmap.png the CAM overlay, both at the original size
        assert np.array_equal(cv2.imread(str(folder / "detection.png")), r.plot())
        assert np.array_equal(cv2.imread(str(folder / "heatmap.png")), r.cam.plot())
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed"
    assert summary["counts"] == {"images": 3, "videos": 0, "frames": 0, "predictions": 9, "skipped": 2}
    assert summary["settings"]["cam"]["save_maps"] is True
    assert {Path(s["source"]).name for s in summary["skipped"]} == {"readme.txt", "zz_corrupt.jpg"}
    assert not leftovers(save_dir)


def test_save_never_overwrites_a_run_unless_exist_ok(model, images, tmp_path):
    from ultralytics.utils.files import increment_path

    out = tmp_path / "out"
    model.cam(images / "a.jpg", save=True, imgsz=64, project=out)
    first = out / "cam"
    mtime = (first / "a" / "heatmap.png").stat().st_mtime_ns
    expected = increment_path(first)
    model.cam(images / "a.jpg", save=True, imgsz=64, project=out)
    assert (expected / "a" / "heatmap.png").is_file()
    assert (first / "a" / "heatmap.png").stat().st_mtime_ns == mtime
    (first / "a" / "my_notes.txt").write_text("mine")
    model.cam(images / "a.jpg", save=True, imgsz=64, project=out, exist_ok=True)  # into cam/ again, by request
    assert (first / "a" / "my_notes.txt").read_text() == "mine", "files the writers do not own are kept"
    assert sorted(p.name for p in (first / "a").iterdir()) == sorted([*IMAGE_FILES, "my_notes.txt"])
    assert not leftovers(out)


def test_stream_closed_early_keeps_finished_images_and_writes_summary(model, images, tmp_path):
    gen = model.cam(images, stream=True, save=True, imgsz=64, project=tmp_path / "out")
    first = next(gen)
    gen.close()
    save_dir = tmp_path / "out" / "cam"
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "stopped" and summary["interrupted"] is False
    assert [Path(i["source"]).name for i in summary["images"]] == [Path(first.path).name]
    assert sorted(p.name for p in (save_dir / "a").iterdir()) == IMAGE_FILES
    assert not (save_dir / "b").exists() and not leftovers(save_dir)
    # the text file is known to be unsupported up front; the corrupt image was never reached, so it is not listed
    assert [Path(s["source"]).name for s in summary["skipped"]] == ["readme.txt"]


def test_a_failing_writer_fails_the_run_without_leaving_partial_folders(model, images, tmp_path, monkeypatch):
    def boom(cam, folder, config):
        if Path(cam.result.path).name == "b.png":
            raise RuntimeError("disk full")
        return []

    specs = [*builtin_writer_specs(), WriterSpec("boom", boom)]
    monkeypatch.setattr(saving, "writer_specs", lambda: specs)
    with pytest.raises(RuntimeError, match="disk full"):
        model.cam(images, save=True, imgsz=64, project=tmp_path / "out")
    save_dir = tmp_path / "out" / "cam"
    assert sorted(p.name for p in save_dir.iterdir()) == ["a", "index.html", "manifest.jsonl", "summary.json"]
    assert sorted(p.name for p in (save_dir / "a").iterdir()) == IMAGE_FILES
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and "disk full" in summary["error"]
    assert not leftovers(save_dir)


def test_cam_result_save_writes_the_per_image_files(model, images, tmp_path):
    r = model.cam(images / "c.jpg", imgsz=64, max_det=3)[0]
    folder = tmp_path / "ünïcode folder" / "c"
    paths = r.cam.save(folder)
    assert sorted(p.name for p in paths) == IMAGE_FILES
    assert all(p.parent == folder and p.stat().st_size > 0 for p in paths)
    assert len(r.cam.save(tmp_path / "with_maps", save_maps=True)) == 4 + 1 + 3
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("error", [OSError("no space left"), KeyboardInterrupt()])
def test_atomic_write_leaves_neither_a_half_file_nor_a_temporary(tmp_path, monkeypatch, error):
    target = tmp_path / "heatmap.npy"
    target.write_bytes(b"previous complete file")

    def fail(src, dst):
        raise error

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(error)):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"previous complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heatmap.npy"]


def test_builtin_writers_cover_the_layout():
    specs = builtin_writer_specs()
    assert [s.name for s in specs] == ["detection", "heatmap", "heatmap_npy", "cam_json", "maps", "summary", "report"]
    assert all(s.summary for s in specs)
    assert [s.name for s in specs if s.write_run is not None] == ["summary", "report"]
    with pytest.raises(AttributeError):
        specs[0].name = "x"  # frozen: registries can hand the same spec to everyone


def test_write_image_folder_with_an_extra_writer(model, images, tmp_path):
    r = model.cam(images / "a.jpg", imgsz=64, max_det=3)[0]

    def extra(cam, folder, config):
        path = folder / "count.txt"
        path.write_text(str(len(cam)))
        return [path]

    paths = write_image_folder(r.cam, tmp_path / "a", specs=[WriterSpec("count", extra)])
    assert paths == [tmp_path / "a" / "count.txt"] and paths[0].read_text() == "3"


@pytest.mark.parametrize(
    ("raised", "asked", "status"),
    [
        (None, False, "completed"),
        (KeyboardInterrupt, False, "interrupted"),
        (SystemExit, False, "interrupted"),  # SIGTERM through Ray's handler, or sys.exit
        (GeneratorExit, False, "stopped"),  # the consumer closed the stream
        (GeneratorExit, True, "interrupted"),  # ... because a signal asked for it
        (OSError, False, "failed"),
    ],
)
def test_a_run_outcome_reads_how_its_block_ended(raised, asked, status):
    from ultralytics_cam.summary import RunOutcome

    outcome = RunOutcome(lambda: asked)
    if raised is None:
        with outcome:
            pass
    else:
        with pytest.raises(raised), outcome:  # the outcome never swallows what ended the block
            raise raised("disk full")
    assert outcome.status == status
    assert outcome.error == ("OSError: disk full" if status == "failed" else None)
