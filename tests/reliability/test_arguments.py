"""Issue 9: bad numeric values are usage errors before any work, and failure messages say what exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import bus, no_partial_files, write_image

from ultralytics_cam import cli

from conftest import tiny_detector

BAD_VALUES = [
    ("batch=0", "batch=0 is not valid: use a whole number >= 1"),
    ("batch=-1", "batch=-1 is not valid"),
    ("batch=1.5", "batch=1.5 is not valid"),
    ("imgsz=0", "imgsz=0 is not valid: use a whole number >= 1, or [height, width]"),
    ("imgsz=-5", "imgsz=-5 is not valid"),
    ("imgsz=[64,0]", "imgsz=[64, 0] is not valid"),
    ("max_det=0", "'max_det' must be >= 1"),  # Ultralytics' own check, kept
    ("vid_stride=0", "'vid_stride' must be >= 1"),
    ("line_width=-2", "line_width=-2 is not valid: use a whole number >= 1 (pixels), or 0 or None"),
    ("iou=1.5", "Valid 'iou' values are between 0.0 and 1.0"),
    ("iou=-0.1", "Valid 'iou' values are between 0.0 and 1.0"),
]


@pytest.fixture
def image(tmp_path, assets) -> Path:
    path = tmp_path / "a.jpg"
    write_image(path, bus(assets))
    return path


@pytest.fixture(scope="module")
def model():
    return tiny_detector()


@pytest.mark.parametrize(("arg", "message"), BAD_VALUES, ids=[a for a, _ in BAD_VALUES])
def test_cli_bad_numbers_exit_2_before_any_work(tmp_path, image, capsys, arg, message):
    code = cli.main(["predict", "model=yolo11n.yaml", f"source={image}", f"project={tmp_path / 'out'}", arg])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    assert message in err and err.count("\n") == 1, err  # one line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch": 0}, "batch=0 is not valid"),
        ({"imgsz": 0}, "imgsz=0 is not valid"),
        ({"imgsz": (64, -1)}, "imgsz=(64, -1) is not valid"),
        ({"line_width": -1}, "line_width=-1 is not valid"),
        ({"iou": 7}, "iou=7 is not valid"),
        ({"vid_stride": 0}, "vid_stride=0 is not valid"),
        ({"max_det": 0}, "max_det=0 is not valid"),
    ],
)
def test_python_bad_numbers_raise_value_error_before_any_work(tmp_path, image, model, kwargs, message):
    from test_invariants import assert_unchanged, snapshot

    before = snapshot(model)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        model.cam(image, save=True, project=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
    assert_unchanged(model, before)


def test_good_numbers_still_pass(image, model):
    results = model.cam(image, batch=2, imgsz=[64, 96], line_width=0, vid_stride=1, iou=0.5, max_det=2)
    assert len(results) == 1 and len(results[0].cam) == len(results[0].boxes)


def test_project_naming_a_file_is_a_usage_error(tmp_path, image, capsys):
    (tmp_path / "afile").write_text("x")
    code = cli.main(["predict", "model=yolo11n.yaml", f"source={image}", f"project={tmp_path / 'afile' / 'sub'}"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and "is a file" in err, err


@pytest.mark.parametrize("source", ["0", "https://127.0.0.1:9/missing.jpg"], ids=["no camera", "URL offline"])
def test_a_run_that_cannot_start_says_nothing_was_written(tmp_path, capsys, monkeypatch, source):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    code = cli.main(["predict", "model=yolo11n.yaml", "imgsz=64", f"source={source}", f"project={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert "Nothing was written." in err and "are in" not in err, err
    assert not (tmp_path / "out" / "cam").exists()


def test_a_run_that_fails_midway_says_what_it_kept(tmp_path, assets, capsys, monkeypatch):
    from ultralytics_cam import summary as summary_module

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        write_image(src / f"im{i}.jpg", bus(assets, shift=4 * i))
    real, calls = summary_module.write_image_folder, []

    def fail_on_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(summary_module, "write_image_folder", fail_on_the_second)
    save_dir = tmp_path / "out" / "cam"
    code = cli.main(["predict", "model=yolo11n.yaml", "imgsz=64", f"source={src}", f"project={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert f"1 finished image and summary.json are in {save_dir}." in err, err
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert [i["folder"] for i in summary["images"]] == ["im0"]
    assert [p.name for p in save_dir.iterdir() if p.is_dir()] == ["im0"]  # the failed image left nothing behind
    no_partial_files(save_dir)
