"""CAMs during training reach the experiment trackers, and ``yolo-cam train`` runs it from the shell (issue 19).

Ultralytics switches its logger integrations off under pytest (``TESTS_RUNNING``), so the training runs in a
subprocess, outside pytest's detection, with TensorBoard, MLflow (a local file store) and W&B (offline) switched on in
its own settings, and with both the training callback and the val failure hook (``during_training=True``). The tests
read what each tracker stored back with the tracker's own reader or files.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, model_file, require

IMGSZ = 96
#: Ultralytics' setting -> the client module. ClearML trains in a run of its own (test_clearml_...).
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "comet": "comet_ml"}
_HINT = 'the tracker tests need the [trackers] extra: pip install "ultralytics-cam[trackers]"'

SCRIPT = """
import sys
from ultralytics import YOLO
from ultralytics.utils import SETTINGS
import ultralytics_cam

SETTINGS.update({{**{{k: False for k in ("clearml", "comet", "dvc", "mlflow", "tensorboard", "wandb")}}, **{trackers}}})
model = YOLO({model!r})
ultralytics_cam.add_train_cam_callback(model, images={probes}, strict=True)
ultralytics_cam.add_val_failure_hook(model, during_training=True, max_images=2)
model.train(data={data!r}, epochs={epochs}, imgsz={imgsz}, batch=8, nbs=8, workers=0, device="cpu", plots=False,
            project={project!r}, name="run", exist_ok=True)
"""


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def run_script(tmp: Path, trackers: dict[str, bool], env: dict[str, str], probes: int = 2, epochs: int = 2) -> str:
    """Train (``SCRIPT``) in a subprocess with these trackers on; return its output."""
    data = tmp / "data" / "data.yaml"
    if not data.is_file():
        import synthetic_shapes

        synthetic_shapes.make_dataset("detect", tmp / "data", 16, 8, imgsz=IMGSZ)
    script = tmp / "train.py"
    script.write_text(
        SCRIPT.format(
            trackers=trackers,
            model=str(model_file("detect")),
            data=str(data),
            imgsz=IMGSZ,
            project=str(tmp / "runs"),
            probes=probes,
            epochs=epochs,
        ),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(script)], check=False, cwd=tmp, env=env, capture_output=True, text=True, timeout=600
    )
    return f"exit code {proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One 2-epoch training in a subprocess with every installed tracker on; returns (run folder, tmp folder, log)."""
    tmp = tmp_path_factory.mktemp("trackers")
    env = cli_env(tmp)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        MLFLOW_TRACKING_URI=(tmp / "mlruns").as_uri(),
        MLFLOW_ALLOW_FILE_STORE="true",  # MLflow 3 keeps its file store only on request; the test reads it back
        COMET_START_ONLINE="0",  # an OfflineExperiment: a zip in COMET_OFFLINE_DIRECTORY
        COMET_OFFLINE_DIRECTORY=str(tmp / "comet"),
        # Comet patches MLflow when both are installed (its "auto logging"): it would mirror every MLflow call into
        # Comet and start an experiment of its own per MLflow run. Off: only what is logged to Comet counts here.
        COMET_DISABLE_AUTO_LOGGING="1",
    )
    log = run_script(tmp, {key: installed(module) for key, module in TRACKERS.items()}, env)
    assert log.startswith("exit code 0"), log[-3000:]
    return tmp / "runs" / "run", tmp, log


def test_tensorboard_has_every_epochs_overlays_scores_failures_and_the_grid(tracked):
    require(installed("tensorboard"), _HINT)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _, _ = tracked
    (events,) = run.glob("events.out.tfevents.*")  # Ultralytics' own writer: one file, the run it opened
    acc = EventAccumulator(str(events), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    probes = [Path(p).stem for p in json.loads((run / "cam" / "probes.json").read_text())["images"]]
    images, scalars = acc.Tags()["images"], acc.Tags()["scalars"]
    for stem in probes:
        assert [e.step for e in acc.Images(f"cam/{stem}")] == [1, 2]  # each epoch's overlay, at its epoch
    assert [e.step for e in acc.Scalars("cam/energy_in_gt")] == [1, 2]
    assert {"cam/timeline", "cam/cam_metrics"} <= set(images)
    # the val failure hook inside training: every epoch's validation, and the final validation of best.pt
    assert [e.step for e in acc.Images("cam/failures/contact_sheet")] == [1, 2, 3]
    assert "cam/failures/images" in scalars
    assert "metrics/mAP50-95(B)" in scalars  # Ultralytics' own scalars are in the same file


def test_mlflow_run_ultralytics_opened_has_the_images_and_timelines(tracked):
    require(installed("mlflow"), _HINT)
    run, tmp, _ = tracked
    runs = [p.parent for p in (tmp / "mlruns").glob("*/*/meta.yaml") if (p.parent / "artifacts").exists()]
    assert len(runs) == 1  # Ultralytics' run, never a second one
    artifacts = runs[0] / "artifacts"
    probes = sorted(Path(p).stem for p in json.loads((run / "cam" / "probes.json").read_text())["images"])
    for epoch in (1, 2):
        assert sorted(p.stem for p in (artifacts / "cam" / f"epoch_{epoch:03d}").glob("*.png")) == probes
    assert sorted(p.stem for p in (artifacts / "cam" / "timeline").glob("*.mp4")) == probes
    assert (artifacts / "cam" / "timeline.png").is_file()
    assert (artifacts / "cam" / "failures" / "epoch_001" / "contact_sheet.jpg").is_file()
    metric = runs[0] / "metrics" / "cam" / "energy_in_gt"  # the file store keeps one line per step
    assert [int(line.split()[2]) for line in metric.read_text().splitlines()] == [1, 2]


def test_wandb_offline_run_has_the_images_and_timelines(tracked):
    require(installed("wandb"), _HINT)
    run, _, _ = tracked
    (offline,) = (run / "wandb").glob("offline-run-*")  # one run: Ultralytics'
    media = offline / "files" / "media"
    probes = sorted(Path(p).stem for p in json.loads((run / "cam" / "probes.json").read_text())["images"])
    overlays = sorted(p.name.rsplit("_", 2)[0] for p in (media / "images" / "cam").glob("*.png"))
    assert [s for s in overlays if s in probes] == sorted(probes * 2)  # each probe at both epochs
    assert sorted(p.name.rsplit("_", 2)[0] for p in (media / "videos" / "cam" / "timeline").glob("*.mp4")) == probes
    assert list((media / "images" / "cam" / "failures").glob("contact_sheet_*.jpg"))


def test_comet_offline_experiment_has_the_images_and_files(tracked):
    require(installed("comet_ml"), _HINT)
    import zipfile

    _, tmp, _ = tracked
    (archive,) = (tmp / "comet").glob("*.zip")  # one OfflineExperiment: the one Ultralytics started
    with zipfile.ZipFile(archive) as z:
        messages = [json.loads(line) for line in z.read("messages.json").decode().splitlines()]
    uploads = [m["payload"] for m in messages if m.get("type") == "file_upload"]
    logged = collections.Counter(
        (u["upload_type"], u["additional_params"].get("figName") or u["additional_params"].get("fileName"))
        for u in uploads
    )
    probes = [Path(p).stem for p in json.loads((tmp / "runs" / "run" / "cam" / "probes.json").read_text())["images"]]
    for stem in probes:
        assert logged["visualization", f"cam/{stem}"] == 2  # each epoch
        assert logged["asset", f"cam/timeline/{stem}.mp4"] == 1
    assert logged["visualization", "cam/failures/contact_sheet"] == 3  # 2 epochs' validations and the final one
    assert logged["asset", "cam/timeline.png"] == logged["asset", "cam/cam_metrics.csv"] == 1
    metrics = [m["payload"] for m in messages if m.get("type") == "metric_msg"]
    assert any("cam/energy_in_gt" in json.dumps(p) for p in metrics)


def test_clearml_offline_session_has_the_images_scores_and_files(tmp_path):
    """ClearML in offline mode, a run of its own: its Ultralytics integration fails at the end of an offline run.

    Ultralytics' ClearML ``on_train_end`` calls ``task.update_output_model``, which raises ``AttributeError:
    'DummyModel' object has no attribute 'locked'`` in ClearML's offline mode (clearml 2.1.12), so that training
    ends with an error after our images are logged; the test checks the error is exactly that one.
    """
    require(installed("clearml"), _HINT)
    env = cli_env(tmp_path)
    env.update(CLEARML_OFFLINE_MODE="1", HOME=str(tmp_path / "home"))  # the offline session goes under ~/.clearml
    log = run_script(tmp_path, {"clearml": True}, env, probes=1, epochs=1)
    if not log.startswith("exit code 0"):
        assert "ultralytics/utils/callbacks/clearml.py" in log and "'DummyModel' object has no attribute" in log, log
    (session,) = (tmp_path / "home" / ".clearml" / "cache" / "offline").glob("offline-*/")
    events = [json.loads(line) for line in (session / "metrics.jsonl").read_text().splitlines()]
    events = [e for line in events for e in (line if isinstance(line, list) else [line])]
    images = {(e["metric"], e["variant"]) for e in events if e.get("type") == "training_debug_image"}
    stem = Path(json.loads(next((tmp_path / "runs").glob("*/cam/probes.json")).read_text())["images"][0]).stem
    assert ("cam", stem) in images
    assert ("cam/failures", "contact_sheet") in images
    assert any(e.get("metric") == "cam" and e.get("variant") == "energy_in_gt" for e in events)
    artifacts = json.loads((session / "task.json").read_text())["execution"]["artifacts"]
    assert {"cam/timeline.png", f"cam/timeline/{stem}.mp4"} <= {a["key"] for a in artifacts}


def test_nothing_went_wrong_in_the_trackers(tracked):
    _, _, log = tracked
    assert "could not log CAM images" not in log
    assert "training CAM failed" not in log


# -- the command line -------------------------------------------------------------------------------------------------
def yolo_cam(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``yolo-cam`` in ``cwd`` with every tracker off (an installed one would try to reach its server)."""
    from ultralytics.utils import SettingsManager

    env = cli_env(cwd)
    settings = Path(env["YOLO_CONFIG_DIR"]) / "Ultralytics" / "settings.json"
    SettingsManager(file=settings).update(
        dict.fromkeys(("clearml", "comet", "dvc", "mlflow", "tensorboard", "wandb"), False)
    )
    exe = Path(sys.executable).with_name("yolo-cam")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ultralytics_cam.cli"]
    return subprocess.run(cmd + args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_yolo_cam_train_runs_ultralytics_training_with_the_callback(tmp_path, shapes):
    data = shapes.make_dataset("detect", tmp_path / "data", 16, 6, imgsz=IMGSZ)
    args = [
        "train",
        f"model={model_file('detect')}",
        f"data={data}",
        "epochs=2",
        f"imgsz={IMGSZ}",
        "batch=8",
        "workers=0",
        "device=cpu",
        "plots=False",
        "cam_images=2",
        "cam_every=2",
        "cam_timeline=gif",
        "method=LayerCAM",
        "name=cli",
    ]
    proc = yolo_cam(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "detect" / "cli"
    assert (run / "results.csv").is_file()  # Ultralytics' own training folder and files
    assert [p.name for p in sorted((run / "cam").glob("epoch_*"))] in (["epoch_002"], ["epoch_001", "epoch_002"])
    summary = json.loads((run / "cam" / "epoch_002" / "summary.json").read_text())
    assert summary["settings"]["cam"]["method"] == "LayerCAM"
    assert len(list((run / "cam" / "timeline").glob("*.gif"))) == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cam_evry=2"], "Did you mean 'cam_every'"),
        (["cam_every=0"], "cam_every=0 is not valid"),
        (["cam_timeline=avi"], "mp4 or gif"),
        (["method=NoSuchCAM"], "NoSuchCAM"),
        ([], "'data' is missing"),
    ],
)
def test_yolo_cam_train_usage_errors(args, words, capsys):
    from ultralytics_cam.cli import EXIT_USAGE, main

    code = main(["train", f"model={model_file('detect')}", *(["data=d.yaml"] if args else []), *args])
    assert code == EXIT_USAGE
    assert words in capsys.readouterr().err


def test_yolo_cam_train_help_lists_the_training_keys(capsys):
    from ultralytics_cam.cli import main

    assert main(["train", "help"]) == 0
    out = capsys.readouterr().out
    assert all(k in out for k in ("cam_images=", "cam_every=", "cam_conf=", "cam_timeline=", "epochs=", "resume="))
