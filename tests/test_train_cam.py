"""CAMs during training (issue 19): ``add_train_cam_callback`` on real fine-tuning runs of the small test models.

The trainings are tiny (a few dozen synthetic images at 96 px, 2-3 epochs, CPU) and shared between tests through
module fixtures, each test reading what its name says from the run's files. ``nbs`` equals ``batch`` so that every
batch steps the optimizer and the epochs really differ.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics import YOLO

import ultralytics_cam
from ultralytics_cam._logging import LOGGER
from ultralytics_cam.integrations.train_cam import TrainCamOptionError, add_train_cam_callback, train_cam_callbacks
from ultralytics_cam.integrations.train_cam import callback as train_callback
from ultralytics_cam.integrations.train_cam import epoch as train_epoch
from ultralytics_cam.integrations.train_cam.probes import choose, spread

from conftest import model_file

IMGSZ = 96
#: Ultralytics train arguments shared by every training here (deterministic on CPU, seed 0 by default).
TRAIN = {"imgsz": IMGSZ, "batch": 8, "nbs": 8, "workers": 0, "device": "cpu", "plots": False, "verbose": False}
# Ultralytics' Ray Tune callback (raytune.py) asks Ray for a trial id at every epoch end of a training, and Ray warns
# when no Tune session runs: a third-party warning about a callback we do not use (as in test_val_failures.py).
pytestmark = pytest.mark.filterwarnings("ignore:`get_trial_id` is meant to only be called inside:UserWarning")
FILES = ("detection.png", "heatmap.png", "heatmap.npy", "cam.json")
PROBES = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory, shapes) -> Path:
    """A synthetic detect dataset (24 train, 12 val images at 96 px)."""
    return shapes.make_dataset("detect", tmp_path_factory.mktemp("train-cam-data") / "detect", 24, 12, imgsz=IMGSZ)


def train(data: Path, project: Path, name: str, cam: dict | None, epochs: int = 3, **extra) -> tuple[Path, dict]:
    """Fine-tune the demo detector; with ``cam`` (the callback's options) under the training callback.

    Returns the run folder and what a watcher callback saw of the trainer's networks.
    """
    model = YOLO(str(model_file("detect")))
    if cam is not None:
        add_train_cam_callback(model, **cam)
    seen: dict = {}

    def flags(trainer):
        nets = {"model": trainer.model, "ema": trainer.ema.ema}
        return {k: [p.requires_grad for p in net.parameters()] for k, net in nets.items()}

    def hooks(trainer):
        return sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
            for net in (trainer.model, trainer.ema.ema)
            for m in net.modules()
        )

    def at_start(trainer):
        seen["flags_start"], seen["hooks_start"] = flags(trainer), hooks(trainer)

    def at_end(trainer):
        seen["flags_end"], seen["hooks_end"] = flags(trainer), hooks(trainer)

    model.add_callback("on_train_start", at_start)
    model.add_callback("on_train_end", at_end)
    model.train(data=str(data), epochs=epochs, project=str(project), name=name, exist_ok=True, **TRAIN, **extra)
    return project / name, seen


@pytest.fixture(scope="module")
def plain_run(data, tmp_path_factory):
    """Three epochs without the callback."""
    return train(data, tmp_path_factory.mktemp("train-cam-runs"), "plain", None)


@pytest.fixture(scope="module")
def cam_run(data, tmp_path_factory):
    """The same three epochs with the callback explaining 4 probe images every epoch (errors raise)."""
    return train(data, tmp_path_factory.mktemp("train-cam-runs"), "cam", {"images": PROBES, "strict": True})


def results(run: Path) -> list[dict[str, str]]:
    """Ultralytics' results.csv rows without the wall-clock column."""
    with (run / "results.csv").open(encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if k.strip() != "time"} for row in csv.DictReader(f)]


def cam_rows(run: Path) -> list[dict[str, str]]:
    with (run / "cam_metrics.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def frames(video: Path) -> int:
    """The number of frames of an mp4 (OpenCV) or GIF (Pillow) timeline."""
    if video.suffix == ".gif":
        from PIL import Image

        with Image.open(video) as im:
            return int(im.n_frames)
    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


# -- what a training run leaves ----------------------------------------------------------------------------------------
def test_every_epoch_has_the_predict_layout_for_every_probe(cam_run):
    run, _ = cam_run
    probes = json.loads((run / "cam" / "probes.json").read_text())["images"]
    assert len(probes) == PROBES
    for epoch in (1, 2, 3):
        folder = run / "cam" / f"epoch_{epoch:03d}"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert sorted(line["source"] for line in summary["images"]) == sorted(probes)
        for line in summary["images"]:
            assert all((folder / line["folder"] / name).is_file() for name in FILES), line
    assert not (run / "cam" / "epoch_004").exists()  # Ultralytics' final validation of best.pt is not an epoch


def test_timelines_have_one_frame_per_epoch_and_the_grid_one_tile_per_epoch(cam_run):
    run, _ = cam_run
    videos = sorted((run / "cam" / "timeline").glob("*.mp4"))
    assert len(videos) == PROBES
    assert [frames(v) for v in videos] == [3] * PROBES
    grid = cv2.imread(str(run / "cam" / "timeline.png"))
    tile = 160 + 4  # GRID_TILE_HEIGHT plus the white border
    assert grid.shape[0] == PROBES * tile  # one row per probe
    assert grid.shape[1] >= 3 * tile  # one column per epoch (square tiles here)
    assert (run / "cam_metrics.png").is_file()


def test_cam_metrics_are_recomputed_from_the_saved_maps_and_labels(cam_run, data):
    """energy_in_gt, pointing_game and change, recomputed from heatmap.npy and the YOLO label boxes."""
    run, _ = cam_run
    rows = cam_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["mAP50-95(B)"] for r in rows)
    maps: dict[int, dict[str, np.ndarray]] = {}
    for epoch in (1, 2, 3):
        summary = json.loads((run / "cam" / f"epoch_{epoch:03d}" / "summary.json").read_text())
        maps[epoch] = {
            line["source"]: np.load(run / "cam" / f"epoch_{epoch:03d}" / line["folder"] / "heatmap.npy")
            for line in summary["images"]
        }
    for row in rows:
        epoch = int(row["epoch"])
        energy, pointing, change = [], [], []
        for source, heatmap in maps[epoch].items():
            h, w = heatmap.shape
            region = np.zeros((h, w), bool)
            label = Path(source.replace("/images/", "/labels/")).with_suffix(".txt")
            for line in label.read_text().splitlines():
                _, x, y, bw, bh = (float(v) for v in line.split())
                x1, y1 = math.floor((x - bw / 2) * w), math.floor((y - bh / 2) * h)
                region[max(y1, 0) : math.ceil((y + bh / 2) * h), max(x1, 0) : math.ceil((x + bw / 2) * w)] = True
            if heatmap.sum() > 0:
                energy.append(heatmap[region].sum() / heatmap.sum())
                pointing.append(float(region.flat[np.argmax(heatmap)]))
            if epoch > 1:
                change.append(np.abs(heatmap - maps[epoch - 1][source]).mean())
        assert float(row["energy_in_gt"]) == pytest.approx(np.mean(energy), rel=1e-4)
        assert float(row["pointing_game"]) == pytest.approx(np.mean(pointing), rel=1e-4)
        if epoch == 1:
            assert row["change"] == ""  # nothing to compare with
        else:
            assert float(row["change"]) == pytest.approx(np.mean(change), rel=1e-4)
            assert float(row["change"]) > 0  # the model moved: the maps did too
    assert 0 < float(rows[0]["gt_area"]) < 1


def test_training_is_identical_with_and_without_the_callback(plain_run, cam_run):
    """Same results.csv (but the clock) and bit-identical weights; no hook or requires_grad change on the nets."""
    (plain, plain_seen), (cam, cam_seen) = plain_run, cam_run
    assert results(cam) == results(plain)
    for name in ("last.pt", "best.pt"):
        a = torch.load(plain / "weights" / name, weights_only=False)["model"].state_dict()
        b = torch.load(cam / "weights" / name, weights_only=False)["model"].state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert cam_seen["hooks_end"] == cam_seen["hooks_start"] == plain_seen["hooks_end"]
    assert cam_seen["flags_end"] == cam_seen["flags_start"] == plain_seen["flags_end"]


def test_a_failing_callback_is_logged_once_and_training_goes_on_unchanged(
    data, plain_run, tmp_path, monkeypatch, caplog
):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(train_epoch, "explain_epoch", boom)
    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG, logger=LOGGER.name):
            run, _ = train(data, tmp_path, "failing", {"images": 2})
    finally:
        LOGGER.removeHandler(caplog.handler)
    records = {id(r): r for r in caplog.records}.values()  # the handler sits on our logger and on the root: dedupe
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    failed = [m for m in warnings if "training CAM failed: RuntimeError: boom" in m]
    assert len(failed) == 1  # three epochs failed; the first is logged
    assert any("failed 3 times" in m for m in warnings)
    assert results(run) == results(plain_run[0])


def test_every_n_epochs_then_the_last_and_the_best_as_gif_timelines(data, tmp_path):
    run, _ = train(data, tmp_path, "every", {"images": 2, "every": 2, "timeline": "gif", "strict": True})
    records = [json.loads(line) for line in (run / "cam" / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]  # every epoch is recorded ...
    best = max(r["epoch"] for r in records if r["new_best"])
    explained = {r["epoch"] for r in records if r["explained"]}
    assert explained == {2, 3} | {best}  # ... the 2nd, the last and the best are explained
    assert [int(r["epoch"]) for r in cam_rows(run)] == sorted(explained)
    assert sum(int(r["best"]) for r in cam_rows(run)) == 1
    videos = sorted((run / "cam" / "timeline").glob("*"))
    assert [v.suffix for v in videos] == [".gif", ".gif"]
    assert [frames(v) for v in videos] == [len(explained)] * 2  # a frame per explained epoch


class _StopError(Exception):
    """Stops a training from a callback, as a crash or Ctrl-C would."""


def test_a_stopped_training_keeps_its_epochs_and_resume_continues_the_timeline(data, tmp_path):
    model = YOLO(str(model_file("detect")))
    add_train_cam_callback(model, images=2, strict=True)

    def stop_after_two(trainer):
        if trainer.epoch == 1:
            raise _StopError

    model.add_callback("on_fit_epoch_end", stop_after_two)
    with pytest.raises(_StopError):
        model.train(data=str(data), epochs=3, project=str(tmp_path), name="r", exist_ok=True, **TRAIN)
    run = tmp_path / "r"
    cam = run / "cam"
    assert sorted(p.name for p in cam.glob("epoch_*")) == ["epoch_001", "epoch_002"]
    assert [frames(v) for v in sorted((cam / "timeline").glob("*.mp4"))] == [2, 2]  # teardown summarised them
    probes = (cam / "probes.json").read_text()

    resumed = YOLO(str(run / "weights" / "last.pt"))
    add_train_cam_callback(resumed, images=2, strict=True)
    resumed.train(resume=True)
    assert (cam / "probes.json").read_text() == probes  # the same probes, though the run restarted
    assert sorted(p.name for p in cam.glob("epoch_*")) == ["epoch_001", "epoch_002", "epoch_003"]
    assert [frames(v) for v in sorted((cam / "timeline").glob("*.mp4"))] == [3, 3]
    rows = cam_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert rows[2]["change"] != ""  # epoch 3 compared with epoch 2, written before the interruption


# -- every task --------------------------------------------------------------------------------------------------------
TASK_DATA = {"segment": 96, "pose": 96, "obb": 96, "classify": 64, "semantic": 96, "depth": 96}


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TASK_DATA))
def test_every_task_trains_with_the_callback(task, shapes, tmp_path):
    imgsz = TASK_DATA[task]
    data = shapes.make_dataset(task, tmp_path / "data", 12, 4, imgsz=imgsz)
    model = YOLO(str(model_file(task)))
    add_train_cam_callback(model, images=2, strict=True)
    args = {**TRAIN, "imgsz": imgsz}
    model.train(data=str(data), epochs=2, project=str(tmp_path), name="run", exist_ok=True, **args)
    run = tmp_path / "run"
    for epoch in (1, 2):
        summary = json.loads((run / "cam" / f"epoch_{epoch:03d}" / "summary.json").read_text())
        assert summary["status"] == "completed" and len(summary["images"]) == 2
    assert [frames(v) for v in sorted((run / "cam" / "timeline").glob("*.mp4"))] == [2, 2]
    rows = cam_rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    has_objects = task not in {"classify", "depth"}
    assert bool(rows[0]["gt_area"]) == has_objects  # classify and depth images have no objects to point at
    assert rows[1]["change"] != ""


# -- DDP, options ------------------------------------------------------------------------------------------------------
class _FakeTrainer:
    """What the callbacks read of a trainer, for the rank test (no training)."""

    def __init__(self, save_dir: Path) -> None:
        self.save_dir = save_dir
        self.callbacks: dict = {}
        self.epoch = 0


def test_callbacks_survive_ddp_pickling_and_only_rank_0_explains(tmp_path, monkeypatch):
    """Ultralytics pickles the trainer's callbacks (cloudpickle) into every DDP worker; ranks above 0 do nothing."""
    import cloudpickle
    import ultralytics.utils

    options = train_callback.TrainCamOptions(images=2)
    predictor_cls = YOLO("yolo11n.yaml")._smart_load("predictor")
    callbacks = cloudpickle.loads(cloudpickle.dumps(train_cam_callbacks(options, predictor_cls)))
    assert set(callbacks) >= {"on_pretrain_routine_end", "on_fit_epoch_end", "on_train_end"}
    monkeypatch.setattr(ultralytics.utils, "RANK", 1)
    trainer = _FakeTrainer(tmp_path)
    for event in ("on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_epoch_end", "on_fit_epoch_end"):
        callbacks[event](trainer)  # would fail on the fake trainer if rank 1 did anything
    callbacks["on_train_end"](trainer)
    assert not (tmp_path / "cam").exists()
    assert "_ultralytics_cam_train" not in trainer.__dict__


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"images": 0}, "images=0"),
        ({"images": "no/such/folder"}, "not an image file or a folder"),
        ({"every": 0}, "every=0"),
        ({"conf": 2}, "conf=2"),
        ({"timeline": "avi"}, "mp4 or gif"),
        ({"epochs": 3}, "'epochs': not an option"),
    ],
)
def test_bad_options_are_refused_when_the_callback_is_added(kwargs, words):
    model = YOLO("yolo11n.yaml")
    with pytest.raises(TrainCamOptionError, match=words):
        add_train_cam_callback(model, **kwargs)
    assert not any(getattr(f, "_ultralytics_cam_kind", None) == "train" for fs in model.callbacks.values() for f in fs)


def test_a_folder_of_probes_is_listed_in_path_order(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    options = train_callback.TrainCamOptions(images=str(tmp_path))
    assert options.images == (str(tmp_path / "a.jpg"), str(tmp_path / "b.png"))


def test_perturbation_methods_are_said_to_be_slow(caplog):
    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER.name):
            add_train_cam_callback(YOLO("yolo11n.yaml"), method="ScoreCAM")
            add_train_cam_callback(YOLO("yolo11n.yaml"), method="HiResCAM")
    finally:
        LOGGER.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in {id(r): r for r in caplog.records}.values()]  # (handler on two loggers)
    slow = [m for m in messages if "many forward passes" in m]
    assert len(slow) == 1
    assert "ScoreCAM" in slow[0]


def test_registering_twice_replaces_and_remove_leaves_other_callbacks():
    model = YOLO("yolo11n.yaml")
    other = lambda trainer: None  # noqa: E731
    model.add_callback("on_fit_epoch_end", other)
    add_train_cam_callback(model, every=2)
    add_train_cam_callback(model, every=3)
    ours = [f for f in model.callbacks["on_fit_epoch_end"] if getattr(f, "_ultralytics_cam_kind", None) == "train"]
    assert len(ours) == 1
    ultralytics_cam.remove_train_cam_callback(model)
    assert model.callbacks["on_fit_epoch_end"][-1] is other
    assert not any(getattr(f, "_ultralytics_cam_kind", None) == "train" for fs in model.callbacks.values() for f in fs)


def test_probes_cover_the_classes_then_spread_in_path_order():
    candidates = [(f"{i:02d}.png", frozenset(c)) for i, c in enumerate([{0}, {0}, {0, 1}, {0}, {2}, {0}, {0}, {0}])]
    picked = choose(candidates, 4)
    assert len(picked) == 4
    assert {"02.png", "04.png"} <= set(picked)  # classes 1 and 2 live only there
    assert picked == sorted(picked)
    assert choose(candidates, 4) == picked  # deterministic
    assert spread(list(range(10)), 3) == [0, 4, 9]  # evenly spaced, first and last
