"""``yolo-cam``: the real console script in a subprocess (layout, video, listings, errors, Ctrl-C, non-ASCII paths).

Parsing and the ``val`` dispatch are also checked in-process through ``ultralytics_cam.cli.main`` (fast, and lets the
val test replace ``cam_val``).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from ultralytics_cam import cli

from conftest import cli_env, tiny_detector

SCRIPT = shutil.which("yolo-cam", path=str(Path(sys.executable).parent))
IMAGE_FILES = ("detection.png", "heatmap.png", "heatmap.npy", "cam.json")


@pytest.fixture(scope="session")
def tiny_pt(tmp_path_factory) -> Path:
    """A seeded random-weight detector saved as a .pt file, with predictions on any image (see tiny_detector)."""
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


@pytest.fixture
def fast(tiny_pt):
    """Arguments for a quick run of the tiny detector: small input, three predictions per image."""
    return (f"model={tiny_pt}", "imgsz=64", "max_det=3")


@pytest.fixture
def yolo_cam(tmp_path):
    """Run the installed ``yolo-cam`` script: offline, own Ultralytics settings, outside pytest's detection."""
    assert SCRIPT, "the yolo-cam console script is not installed next to this Python (pip install -e .)"
    # Downloads fail even where there is network (cli_env blocks them): the default-model test expects the offline
    # message.
    env = cli_env(tmp_path)

    def run(*args, cwd=tmp_path, timeout=300):
        return subprocess.run(
            [SCRIPT, *map(str, args)],
            cwd=cwd,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
        )

    run.env = env
    return run


def small_image(assets, w=80, h=64, shift=0):
    """A small copy of Ultralytics' bus.jpg (random-weight models find 'objects' in it at a low threshold)."""
    im = cv2.resize(cv2.imread(str(assets / "bus.jpg")), (w, h))
    return np.roll(im, shift, axis=1)


def write_image(path: Path, image) -> None:
    ok, buf = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(buf.tobytes())  # works for non-ASCII paths, unlike cv2.imwrite on Windows


def _save_dir(proc) -> Path:
    """The run folder that ``yolo-cam`` reported."""
    line = next(x for x in proc.stderr.splitlines() if "explained with" in x)
    return Path(line.rsplit("-> ", 1)[1].strip())


# -- a folder of images ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_predict_folder_writes_the_layout_and_skips_bad_files(yolo_cam, tmp_path, assets, fast):
    src = tmp_path / "imgs"
    src.mkdir()
    formats = ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff")
    for i, ext in enumerate(formats):
        write_image(src / f"im_{ext}.{ext}", small_image(assets, shift=7 * i))
    write_image(src / "bus.jpg", small_image(assets))
    write_image(src / "bus.png", small_image(assets, shift=3))  # same stem: Ultralytics' de-duplication -> bus-2
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes((assets / "bus.jpg").read_bytes()[:300])

    proc = yolo_cam("predict", *fast, "source=imgs")
    assert proc.returncode == 0, proc.stderr
    save_dir = _save_dir(proc)
    assert save_dir == (tmp_path / "runs" / "detect" / "cam").resolve()  # runs/<task>/cam
    assert "img/s" in proc.stderr and "━" in proc.stderr  # Ultralytics' progress bar, on stderr

    folders = sorted(p.name for p in save_dir.iterdir() if p.is_dir())
    assert folders == sorted([*(f"im_{e}" for e in formats), "bus", "bus-2"])
    for name in folders:
        for f in IMAGE_FILES:
            assert (save_dir / name / f).stat().st_size > 0, (name, f)
    rec = json.loads((save_dir / "bus" / "cam.json").read_text(encoding="utf-8"))
    assert {"model", "method", "layers", "target", "predictions"} <= set(rec)
    assert rec["method"] == "HiResCAM" and rec["layers"] == [16, 19, 22] and rec["target"] == "class"
    assert rec["predictions"], "a low threshold on bus.jpg gives predictions to explain"
    assert {"class", "confidence", "box", "peak", "energy_in_box"} <= set(rec["predictions"][0])
    heat = np.load(save_dir / "bus" / "heatmap.npy")
    assert heat.shape == (64, 80) and heat.dtype == np.float32 and 0 <= heat.min() <= heat.max() <= 1
    assert cv2.imread(str(save_dir / "bus" / "heatmap.png")).shape == (64, 80, 3)
    assert not list(save_dir.rglob(".*")), "no temporary file or folder is left"
    assert not list(save_dir.glob("*.jpg")), "Ultralytics' own annotated images are not written beside the folders"

    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["interrupted"] is False
    assert summary["counts"]["images"] == len(folders) and summary["counts"]["skipped"] == 2
    reasons = {Path(s["source"]).name: s["reason"] for s in summary["skipped"]}
    assert "unsupported file type '.txt'" in reasons["notes.txt"]
    assert "could not be read" in reasons["broken.jpg"]
    assert summary["settings"]["cam"]["method"] == "HiResCAM" and summary["settings"]["ultralytics"]["imgsz"] == 64
    assert {"ultralytics-cam", "ultralytics", "torch", "grad-cam"} <= set(summary["versions"])
    assert summary["ms_per_image"]["wall"] > 0 and len(summary["images"]) == len(folders)

    # A second run never overwrites: Ultralytics' increment rule gives the next folder.
    from ultralytics.utils.files import increment_path

    expected = increment_path(save_dir)
    again = yolo_cam("predict", *fast, "source=imgs/bus.jpg", "verbose=False")
    assert again.returncode == 0, again.stderr
    assert (expected / "bus" / "heatmap.png").exists()
    assert "img/s" not in again.stderr and "━" not in again.stderr  # verbose=False silences the progress bar
    assert (save_dir / "bus-2").exists(), "the first run is untouched"


@pytest.mark.slow
def test_predict_video_writes_overlay_video_and_json_lines(yolo_cam, tmp_path, assets, fast):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (80, 64))
    for i in range(5):
        writer.write(small_image(assets, shift=4 * i))
    writer.release()

    proc = yolo_cam(
        "predict", *fast, f"source={video}", f"project={tmp_path / 'out'}", "method=EigenCAM", "save_frames"
    )
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "out" / "cam" / "clip"
    (overlay,) = folder.glob("heatmap.*")  # Ultralytics' writer: .avi on Linux and Windows, .mp4 on macOS
    cap = cv2.VideoCapture(str(overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 80
    cap.release()
    lines = [json.loads(x) for x in (folder / "cam.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["frame"] for x in lines] == [1, 2, 3, 4, 5]
    meta = json.loads((folder / "cam.json").read_text(encoding="utf-8"))
    assert meta["method"] == "EigenCAM" and meta["frames"] == 5 and set(meta["files"]) == {overlay.name, "cam.jsonl"}
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["videos"] == 1 and summary["counts"]["frames"] == 5
    assert not list(folder.glob(".*")), "the partial files were renamed into place"
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [f"{i}.jpg" for i in range(1, 6)]  # save_frames
    run_files = ["clip", "index.html", "manifest.jsonl", "summary.json"]
    assert sorted(p.name for p in (tmp_path / "out" / "cam").iterdir()) == run_files


# -- the bundled demo ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_runs_the_bundled_model_on_the_bundled_images(yolo_cam, tmp_path):
    images = sorted(p.stem for p in cli.DEMO_IMAGES.iterdir() if p.suffix in {".png", ".jpg"})
    proc = yolo_cam("demo", f"project={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr
    save_dir = tmp_path / "out" / "cam"
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir()) == images
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped"] == [], "labels.json beside the demo images is not an input"
    assert summary["counts"]["predictions"] >= len(images), "the trained demo model finds the shapes"


def test_demo_without_its_files_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "DEMO_MODEL", tmp_path / "missing.pt")
    assert cli.main(["demo"]) == 1
    assert "the bundled demo files are missing" in capsys.readouterr().err


# -- listings ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["Usage:", "predict", "methods", "Exit codes", "130 interrupted (Ctrl-C), 143 terminated (SIGTERM)"]),
        (("help",), ["Usage:", "method=HiResCAM", "save_maps=False"]),
        (("predict", "help"), ["conf=0.25", "Ultralytics keys", "(e.g. method=EigenCAM)", "vid_stride=1"]),
        (("val", "help"), ["data=", "kinds", "max_images"]),
        (("plugins",), ["ultralytics-cam", "HiResCAM", "writers", "summary.json"]),
        (("version",), ["ultralytics-cam ", "ultralytics ", "torch ", "grad-cam "]),
    ],
    ids=["bare", "help", "predict-help", "val-help", "plugins", "version"],
)
def test_listing_commands(yolo_cam, args, expected):
    proc = yolo_cam(*args)
    assert proc.returncode == 0, proc.stderr
    for text in expected:
        assert text in proc.stdout, (text, proc.stdout[-2000:])


def test_methods_lists_every_method_and_whether_it_needs_gradients(yolo_cam):
    proc = yolo_cam("methods")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines() if line.strip()}
    assert rows["HiResCAM"] == "yes" and rows["EigenCAM"] == "no" and rows["ConfidenceMap"] == "no"
    refused = proc.stdout.split("Not available:")[1]
    assert "FullGrad" in refused and "SESS" in refused


def test_layers_lists_every_layer_and_marks_the_auto_ones(yolo_cam):
    proc = yolo_cam("layers", "model=yolo11n.yaml", "imgsz=64")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(24))
    assert rows[16][2:4] == ["C3k2", "1x64x8x8"] and rows[23][2] == "Detect"
    assert [int(r[0]) for r in rows if r[-1] == "auto"] == [16, 19, 22]
    assert "layers=16,19,22" in proc.stdout


# -- errors: exit code 2 for usage, 1 for failed runs ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("predict", "cnf=0.5"), 2, "Did you mean 'conf'"),
        (("predict", "conf=2"), 2, "'conf' values are between 0.0 and 1.0"),
        (("predict", "batch=abc"), 2, "'batch=abc' is of invalid type"),
        (("predict", "method=HiResCm"), 2, "Did you mean 'HiResCAM'"),
        (("predict", "alpha=3"), 2, "alpha=3 is not valid: use a number between 0 and 1"),
        (("predict", "visualize=True"), 2, "'visualize' cannot be used with CAM"),
        (("predict", "conf"), 2, "'conf' needs a value"),
        (("frobnicate",), 2, "'frobnicate' is not a yolo-cam mode, task or key"),
        (("methods", "conf=0.5"), 2, "takes no key=value arguments"),
        (("layers",), 2, "'model' is missing"),
        (("layers", "model=yolo11n.yaml", "conf=0.3"), 2, "'conf' is not used by 'yolo-cam layers'"),
        (("val", "model=yolo11n.yaml"), 2, "'data' is missing"),
        (("predict", "model=yolo11n.yaml", "source=no_such_dir"), 2, "source='no_such_dir' does not exist"),
        (("predict", "model=no_such_model.pt", "source=imgs"), 2, "model='no_such_model.pt' does not exist"),
        (("predict", "model=yolo11n.yaml", "source=imgs", "imgsz=64", "layers=99"), 2, "Valid layers:"),
        (("predict", "model=yolo11n.yaml", "source=imgs", "imgsz=64", "target=angle"), 2, "target='angle'"),
        (("predict", "model=yolo11n.yaml", "source=texts"), 2, "has no image or video files"),
        (("predict", "model=broken.pt", "source=imgs"), 1, "could not load model='broken.pt'"),
        (("predict", "model=yolo11n.yaml", "source=unreadable"), 1, "no input could be explained"),
    ],
)
def test_error_paths(yolo_cam, tmp_path, assets, args, code, message):
    (tmp_path / "imgs").mkdir()
    write_image(tmp_path / "imgs" / "a.jpg", small_image(assets))
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    proc = yolo_cam(*args)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    if args[-1] == "source=unreadable":  # a failed run still says what it skipped and why
        summary = json.loads((tmp_path / "runs" / "detect" / "cam" / "summary.json").read_text(encoding="utf-8"))
        assert summary["counts"]["images"] == 0 and "could not be read" in summary["skipped"][0]["reason"]


def test_default_model_that_cannot_be_downloaded_points_to_model_and_demo(yolo_cam, tmp_path, assets):
    write_image(tmp_path / "a.jpg", small_image(assets))
    proc = yolo_cam("predict", "source=a.jpg")
    assert proc.returncode == 1, proc.stderr
    assert "could not download the default model 'yolo26n.pt'" in proc.stderr
    assert "model=path/to/best.pt" in proc.stderr and "yolo-cam demo" in proc.stderr


# -- Ctrl-C ------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_stops_after_the_batch_and_keeps_finished_outputs(yolo_cam, tmp_path, assets, tiny_pt):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        write_image(src / f"img_{i:02d}.jpg", small_image(assets, 320, 256, shift=i))
    out = tmp_path / "out"
    cmd = [SCRIPT, "predict", f"model={tiny_pt}", "imgsz=320", "max_det=5", "batch=1", "source=many"]
    proc = subprocess.Popen(
        [*cmd, f"project={out}"], cwd=tmp_path, env=yolo_cam.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    save_dir = out / "cam"
    deadline = time.time() + 240
    while not (save_dir.is_dir() and any(p.name.startswith("img_") for p in save_dir.iterdir())):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode("utf-8")
    assert proc.returncode == 130, err
    assert "stopping after the current batch" in err
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] is True and summary["status"] == "interrupted"
    done = sorted(p.name for p in save_dir.iterdir() if p.is_dir())
    assert 1 <= len(done) < 40, "the run stopped early"
    assert [Path(i["source"]).stem for i in summary["images"]] == done
    for name in done:
        assert sorted(p.name for p in (save_dir / name).iterdir()) == sorted(IMAGE_FILES), name
        json.loads((save_dir / name / "cam.json").read_text(encoding="utf-8"))  # complete, parseable
        np.load(save_dir / name / "heatmap.npy")
    assert not list(save_dir.rglob(".*")), "no partial file or folder is left"


# -- non-ASCII and long paths ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_non_ascii_and_long_paths(yolo_cam, tmp_path, assets, fast):
    src = tmp_path / "données_画像"
    src.mkdir()
    long_stem = "très_long_" + "x" * 180
    write_image(src / "é.jpg", small_image(assets))
    write_image(src / f"{long_stem}.png", small_image(assets, shift=5))
    project = tmp_path / "résultats"
    proc = yolo_cam("predict", *fast, f"source={src}", f"project={project}")
    assert proc.returncode == 0, proc.stderr
    save_dir = project / "cam"
    for name in ("é", long_stem):
        for f in IMAGE_FILES:
            assert (save_dir / name / f).stat().st_size > 0, (name, f)
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert sorted(Path(i["source"]).name for i in summary["images"]) == sorted(["é.jpg", f"{long_stem}.png"])
    assert json.loads((save_dir / "é" / "cam.json").read_text(encoding="utf-8"))["source"].endswith("é.jpg")


# -- in-process: parsing and dispatch ----------------------------------------------------------------------------------
def test_parse_args_speaks_the_yolo_language(tmp_path):
    assert cli.parse_args(["predict", "half", "show"]).args == {"half": True, "show": True}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("imgsz: 320\nconf: 0.4\n")
    cmd = cli.parse_args(
        ["segment", "predict", "conf", "=", "0.5", "--iou=0.6", "show_conf=False", "save_maps", f"cfg={cfg}"]
    )
    assert (cmd.mode, cmd.task) == ("predict", "segment")
    assert cmd.args == {"conf": 0.5, "iou": 0.6, "show_conf": False, "save_maps": True, "imgsz": 320}
    assert cli.parse_args(["layers=16,19,22", "method=EigenCAM"]).args["layers"] == (16, 19, 22)
    assert cli.parse_args(["mode=methods"]).mode == "methods"
    assert cli.parse_args([]).mode == "help"
    assert cli.parse_args(["predict", "-h"]).help


def test_check_values_never_touches_ultralytics_defaults():
    from ultralytics.utils import DEFAULT_CFG_DICT

    before = dict(DEFAULT_CFG_DICT)
    cam, ult = cli.check_values(cli.parse_args(["predict", "method=eigencam", "conf=0.3", "half=True", "name=x"]))
    assert cam == {"method": "eigencam"} and ult == {"conf": 0.3, "quantize": 16, "name": "x"}  # half: deprecated
    assert before == DEFAULT_CFG_DICT


def test_val_parses_and_dispatches_to_cam_val(monkeypatch, capsys):
    calls = []

    def cam_val(model, **kwargs):
        calls.append((model, kwargs))
        return "metrics"

    monkeypatch.setitem(sys.modules, "ultralytics_cam.integrations.val_hook", types.SimpleNamespace(cam_val=cam_val))
    argv = [
        "val",
        "model=yolo11n.yaml",
        "data=data.yaml",
        "method=GradCAM",
        "kinds=false_positive,missed",
        "max_images=3",
    ]
    assert cli.main([*argv, "conf=0.3", "batch=2", "strict=True"]) == 0
    ((model, kwargs),) = calls
    assert type(model).__name__ == "YOLO" and model.task == "detect"
    assert kwargs == {
        "data": "data.yaml",
        "method": "GradCAM",
        "kinds": ("false_positive", "missed"),
        "max_images": 3,
        "conf": 0.3,
        "batch": 2,
        "strict": True,
    }
    assert cli.main(["val", "model=yolo11n.yaml", "data=d.yaml", "layers=16,19", "target=box"]) == 0
    assert calls[-1][1] == {"data": "d.yaml", "layers": (16, 19), "target": "box"}  # CAM options go to cam_val
    capsys.readouterr()
    assert cli.main(["val", "model=yolo11n.yaml", "data=d.yaml", "method=NoSuchCAM"]) == 2
    assert "method='NoSuchCAM' is not a known CAM method" in capsys.readouterr().err
    assert cli.main(["val", "model=yolo11n.yaml", "data=d.yaml", "max_imgs=3"]) == 2
    assert "Did you mean 'max_images'" in capsys.readouterr().err
    assert len(calls) == 2
