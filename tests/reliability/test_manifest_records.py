"""Issue 21, cases 2, 5 and 6: what ``resume=True`` reads from ``manifest.jsonl`` is checked before it is trusted.

- A path in a record must resolve inside the run folder: an absolute path, ``..`` or a symbolic link that leads out
  is a corrupt record, skipped with a warning naming its line, and never followed (nothing outside is written).
- Every record is checked against the schema of its event; a bad one is skipped with its line number, the others
  are used, and a failure never says "Nothing was written" when the folder holds outputs.
- An image whose input changed since it was explained (size, modification time, content) is explained again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from corpus import bus, check_image_folder, no_partial_files, write_image

from ultralytics_cam.manifest import MANIFEST_NAME
from ultralytics_cam.segments import SegmentWriter

from conftest import tiny_detector

KW = {"save": True, "imgsz": 64, "max_det": 2, "verbose": False}


@pytest.fixture(scope="module")
def model():
    return tiny_detector()


@pytest.fixture
def caplog_ucam(caplog):
    """Warnings of ultralytics_cam, which logs through Ultralytics' logger (it does not propagate to the root)."""
    from ultralytics.utils import LOGGER

    LOGGER.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger=LOGGER.name)  # YOLO_VERBOSE=False would drop them
    try:
        yield caplog
    finally:
        LOGGER.removeHandler(caplog.handler)


def _images(folder: Path, assets: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"im_{i}.jpg", bus(assets, 64, 48, shift=9 * i))
    return folder


def _lines(save_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (save_dir / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()]


def _write_lines(save_dir: Path, lines: list) -> None:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    (save_dir / MANIFEST_NAME).write_text(text, encoding="utf-8")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- case 2: paths that lead out of the run folder ---------------------------------------------------------------------
def test_resume_never_follows_a_manifest_path_out_of_the_run(tmp_path, assets, model, caplog_ucam):
    src = _images(tmp_path / "src", assets, 3)
    kw = {**KW, "project": tmp_path / "out"}
    model.cam(src, **kw)
    save_dir = tmp_path / "out" / "cam"
    lines = _lines(save_dir)
    images = {Path(x["source"]).name: x for x in lines if x["event"] == "image"}

    # a folder elsewhere that holds what a record names, with the recorded sizes (so it looks complete)
    outside = tmp_path / "elsewhere"
    shutil.copytree(save_dir / "im_0", outside / "im_0")
    shutil.copytree(save_dir / "im_1", outside / "im_1")
    segment = SegmentWriter(outside / "clip", 1, 5.0)  # a closed video segment there, as a stopped run leaves one
    segment.write(bus(assets, 64, 48), {"frame": 1, "predictions": []})
    segment_files = segment.close()
    before = _snapshot(outside)
    bad = [
        {**images["im_0.jpg"], "folder": str(outside / "im_0")},  # an absolute path
        {**images["im_1.jpg"], "folder": "../../elsewhere/im_1"},  # '..'
        {**images["im_2.jpg"], "files": {"../../elsewhere/im_0/cam.json": 1}},  # a file path leading out
        # a video saved to its end but not joined: the resume would join its segments there and write cam.json
        {
            "event": "segment",
            "source": str(src / "clip.avi"),
            "folder": str(outside / "clip"),
            "first": 1,
            "last": 1,
            "end": True,
            "fps": 5.0,
            "predictions": 0,
            "files": segment_files,
        },
    ]
    # the symbolic link case: im_2's folder in the run replaced by a link to a folder outside
    shutil.rmtree(save_dir / "im_2")
    shutil.copytree(outside / "im_0", outside / "linked")
    before_linked = _snapshot(outside / "linked")
    os.symlink(outside / "linked", save_dir / "im_2")
    linked = {
        **images["im_2.jpg"],
        "files": {n: (outside / "linked" / n).stat().st_size for n in images["im_2.jpg"]["files"]},
    }
    _write_lines(save_dir, [lines[0], *bad, linked, lines[-1]])

    results = model.cam(src, resume=True, **kw)

    after = _snapshot(outside)
    assert {k: v for k, v in after.items() if not k.startswith("linked/")} == before, "files outside were written"
    assert _snapshot(outside / "linked") == before_linked, "the link's target was written through"
    assert sorted(Path(r.path).name for r in results) == ["im_0.jpg", "im_1.jpg", "im_2.jpg"], "all three redone"
    for name in ("im_0", "im_1", "im_2"):
        assert not (save_dir / name).is_symlink()
        check_image_folder(save_dir / name)
    warned = [r.getMessage() for r in caplog_ucam.records if "manifest.jsonl line" in r.getMessage()]
    for n in (2, 3, 4, 5, 6):  # every bad line, by its number
        assert any(f"line {n}:" in w for w in warned), (n, warned)
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert str(outside) not in json.dumps(summary) and "elsewhere" not in json.dumps(summary)
    no_partial_files(save_dir)


# -- case 5: records that do not follow the schema ---------------------------------------------------------------------
GARBAGE = [
    '["a", "JSON", "list"]',
    '"a string"',
    '{"event": "image", "source": "x.jpg"}',  # no folder, no files
    '{"event": "image", "source": 5, "folder": "x", "predictions": 1, "ms": 1.0, "files": {"cam.json": 3}}',
    '{"event": "segment", "source": "v.avi", "folder": "v", "first": "one", "last": 2, "files": {}}',
    '{"event": "run", "settings": "not an object"}',
]


def test_resume_skips_records_that_break_the_schema_and_keeps_the_good_ones(tmp_path, assets, model, caplog_ucam):
    src = _images(tmp_path / "src", assets, 5)
    kw = {**KW, "project": tmp_path / "out"}
    model.cam(src, **kw)
    save_dir = tmp_path / "out" / "cam"
    lines = _lines(save_dir)
    images = [x for x in lines if x["event"] == "image"]
    no_ms = {k: v for k, v in images[4].items() if k != "ms"}  # an image record without its timing
    _write_lines(save_dir, [lines[0], *images[:4], *GARBAGE, no_ms])

    results = model.cam(src, resume=True, **kw)

    assert [Path(r.path).name for r in results] == ["im_4.jpg"], "the four good records are kept, the bad one redone"
    warned = [r.getMessage() for r in caplog_ucam.records if "manifest.jsonl line" in r.getMessage()]
    for n in range(6, 6 + len(GARBAGE) + 1):
        assert any(f"line {n}:" in w for w in warned), (n, warned)
    assert any("'ms'" in w for w in warned), warned  # what was wrong, by name
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["images"] == 5 and summary["status"] == "completed"
    for i in range(5):
        check_image_folder(save_dir / f"im_{i}")


def test_cli_resume_over_a_garbage_manifest_succeeds(tmp_path, assets, model, capsys):
    from ultralytics_cam import cli

    src = _images(tmp_path / "src", assets, 4)
    model_path = tmp_path / "tiny.pt"
    model.save(model_path)
    args = ["predict", f"model={model_path}", f"source={src}", f"project={tmp_path / 'out'}", "imgsz=64", "max_det=2"]
    assert cli.main(args) == 0
    save_dir = tmp_path / "out" / "cam"
    lines = _lines(save_dir)
    _write_lines(save_dir, [*lines[:-1], *GARBAGE])  # the 4 images recorded, then garbage
    capsys.readouterr()
    code = cli.main([*args, "resume=True"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Nothing was written" not in err and "KeyError" not in err, err
    assert "nothing left to do" in err, err


def test_a_failed_resume_says_what_the_folder_holds(tmp_path, assets, model, capsys, monkeypatch):
    """A resume that fails before it explains anything must not claim that nothing was written: 4 images are there."""
    from ultralytics_cam import cli, manifest

    src = _images(tmp_path / "src", assets, 4)
    model_path = tmp_path / "tiny.pt"
    model.save(model_path)
    args = ["predict", f"model={model_path}", f"source={src}", f"project={tmp_path / 'out'}", "imgsz=64", "max_det=2"]
    assert cli.main(args) == 0
    capsys.readouterr()

    def broken(self):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(manifest.Manifest, "state", broken)
    code = cli.main([*args, "resume=True"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert "Nothing was written" not in err, err
    assert "4 image folders" in err and str(tmp_path / "out" / "cam") in err, err


# -- case 6: an input replaced after it was explained ------------------------------------------------------------------
def test_resume_redoes_an_image_whose_input_changed(tmp_path, assets, model, caplog_ucam):
    src = _images(tmp_path / "src", assets, 2)
    write_image(src / "im_2.bmp", bus(assets, 64, 48, shift=20))  # a BMP's size depends only on its pixel count
    kw = {**KW, "project": tmp_path / "out"}
    model.cam(src, **kw)
    save_dir = tmp_path / "out" / "cam"
    old = {i: (save_dir / f"im_{i}" / "heatmap.npy").read_bytes() for i in range(3)}

    # im_0: replaced by another picture; im_1: the same bytes written again (a new modification time, as a copy
    # without -p gives); im_2: another picture of exactly the same size in bytes (only the content tells)
    write_image(src / "im_0.jpg", bus(assets, 80, 40, shift=31))
    data = (src / "im_1.jpg").read_bytes()
    (src / "im_1.jpg").unlink()
    (src / "im_1.jpg").write_bytes(data)
    size = (src / "im_2.bmp").stat().st_size
    write_image(src / "im_2.bmp", bus(assets, 64, 48, shift=45))
    assert (src / "im_2.bmp").stat().st_size == size
    for name in ("im_0.jpg", "im_1.jpg", "im_2.bmp"):  # a second later than the run, whatever the clock resolution
        os.utime(src / name, (os.stat(src / name).st_atime + 2, os.stat(src / name).st_mtime + 2))

    results = model.cam(src, resume=True, **kw)

    assert sorted(Path(r.path).name for r in results) == ["im_0.jpg", "im_2.bmp"], "im_1's content did not change"
    assert (save_dir / "im_1" / "heatmap.npy").read_bytes() == old[1]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("im_0.jpg", "im_2.bmp"):
        shutil.copy(src / name, fresh / name)
    model.cam(fresh, **{**kw, "name": "fresh"})
    for i in (0, 2):
        redone = (save_dir / f"im_{i}" / "heatmap.npy").read_bytes()
        assert redone == (tmp_path / "out" / "fresh" / f"im_{i}" / "heatmap.npy").read_bytes(), i
        assert redone != old[i], i
    rec = json.loads((save_dir / "im_0" / "cam.json").read_text(encoding="utf-8"))
    assert (rec["image"]["height"], rec["image"]["width"]) == (40, 80)
    assert sum("changed since" in r.getMessage() for r in caplog_ucam.records) == 2
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["images"] == 3
    assert sorted(i["folder"] for i in summary["images"]) == ["im_0", "im_1", "im_2"]
    for i in range(3):
        check_image_folder(save_dir / f"im_{i}")
