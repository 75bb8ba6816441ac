"""The validation failure hook: labelled datasets with deliberate failures, and what the hook makes of them.

Each dataset is built from synthetic images that the trained test model gets exactly right; then labels are edited:
a removed label leaves a prediction without an object (false positive), a label where nothing is drawn is an object
without a prediction (missed), and a changed class turns a correct detection into a wrong-class one.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics_cam import CamConfig, add_val_failure_hook, remove_val_failure_hook
from ultralytics_cam._logging import LOGGER
from ultralytics_cam.engine import CamEngine
from ultralytics_cam.integrations.val_hook import cam_val

from conftest import render, trained

# Ultralytics' Ray Tune callback (utils/callbacks/raytune.py) calls tune.get_context().get_trial_id() at each epoch end
# whenever ray is installed; outside a Tune run Ray returns None with this warning (the test that trains).
pytestmark = pytest.mark.filterwarnings("ignore:`get_trial_id` is meant to only be called inside:UserWarning")

IMGSZ, CLS_IMGSZ = 160, 96
VAL = {"batch": 4, "plots": False, "verbose": False, "workers": 0}


# -- datasets ------------------------------------------------------------------------------------------------------
def _overlaps(task: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from ultralytics.utils.metrics import batch_probiou, box_iou

    return batch_probiou(a, b) if task == "obb" else box_iou(a, b)


def _truth(task: str, objects: list) -> tuple[torch.Tensor, torch.Tensor]:
    key = "xywhr" if task == "obb" else "box_xyxy"
    return torch.tensor(np.array([o[key] for o in objects])), torch.tensor([o["cls"] for o in objects])


def _clean(model, task: str, n: int, seed: int, root: Path, min_objects: int = 1) -> list:
    """``n`` rendered images (with at least ``min_objects`` objects) that the model gets exactly right.

    "Exactly right" is Ultralytics' own verdict, independent of the hook: a plain validation at ``conf=0.25`` with the
    true labels, whose per-image counts (``metrics.box.image_metrics``) show no false positive and no false negative.
    A plain ``predict`` is no judge: the validator letterboxes into padded batches and counts predictions that
    ``predict`` drops (segmentation drops empty masks), so near the borders the two see different things.
    Classification asks for a top-1 probability of at least 0.6 on the true class.
    """
    out, s = [], seed
    for _ in range(3):
        candidates = {}
        while len(candidates) < 2 * n:
            img, objects = render(task, s, CLS_IMGSZ if task == "classify" else IMGSZ)
            s += 1
            if task == "classify":
                probs = model.predict(img, imgsz=CLS_IMGSZ, verbose=False)[0].probs
                if probs.top1 == objects[0]["cls"] and probs.top1conf >= 0.6:
                    out.append((img, objects))
            elif len(objects) >= min_objects:
                candidates[f"c{s:05d}"] = (img, objects)
            if len(out) == n:
                return out
        if candidates:
            data = _write_detection_set(root / f"candidates{s}", task, candidates)
            metrics = model.val(data=str(data), imgsz=IMGSZ, conf=0.25, project=str(root), name=f"check{s}", **VAL)
            right = metrics.box.image_metrics
            for name, case in candidates.items():
                if right[f"{name}.png"]["fp"] == right[f"{name}.png"]["fn"] == 0 and len(out) < n:
                    out.append(case)
            if len(out) == n:
                return out
    raise AssertionError(f"the trained {task} model gets fewer than {n} of the synthetic images exactly right")


def _free_spot(task: str, objects: list, donors: list) -> dict:
    """A donor object whose box does not touch any object of this image: labelled here, it is drawn nowhere."""
    boxes = torch.tensor(np.array([o["box_xyxy"] for o in objects]))
    for donor in donors:
        box = torch.tensor(donor["box_xyxy"])[None]
        grown = box + torch.tensor([-6.0, -6.0, 6.0, 6.0])  # keep clear of anti-aliased edges
        if not (_overlaps("detect", grown, boxes) > 0).any():
            return donor
    raise AssertionError("no donor object fits into a free spot")


def _write_detection_set(root: Path, task: str, images: dict[str, tuple]) -> Path:
    """Ultralytics' detect/segment/pose/obb layout: ``images/val``, ``labels/val`` and ``data.yaml``."""
    import synthetic_shapes

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for name, (img, objects) in images.items():
        cv2.imwrite(str(root / "images" / "val" / f"{name}.png"), img)
        lines = synthetic_shapes._label_lines(task, objects, IMGSZ)
        (root / "labels" / "val" / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
    names = synthetic_shapes.CLASS_NAMES[task]
    pose = f"kpt_shape: {synthetic_shapes.KPT_SHAPE}\nflip_idx: {synthetic_shapes.FLIP_IDX}\n"
    extra = pose if task == "pose" else ""
    data = root / "data.yaml"
    data.write_text(
        f"path: {root.as_posix()}\ntrain: images/val\nval: images/val\n{extra}names:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    )
    return data


def _edited(task: str, clean: list, edit: str) -> tuple[list, tuple]:
    """Apply one deliberate edit to the first clean image; return its labels and the failure it must cause."""
    objects = clean[0][1]
    nc = len({o["name"] for _, objs in clean for o in objs} | {o["name"] for o in objects})
    if edit == "drop":  # the model still sees the object: a false positive on background
        return objects[1:], ("false_positive", objects[0]["cls"], None)
    if edit == "add":  # a label where nothing is drawn: a missed object
        donor = _free_spot(task, objects, [o for _, objs in clean[1:] for o in objs])
        return [*objects, donor], ("missed", donor["cls"], donor["cls"])
    if edit == "change":  # the model says what is drawn, the label says otherwise: a wrong class
        changed = (objects[0]["cls"] + 1) % max(nc, 2)
        return [{**objects[0], "cls": changed}, *objects[1:]], ("wrong_class", objects[0]["cls"], changed)
    raise ValueError(edit)


@pytest.fixture(scope="module")
def detect_set(tmp_path_factory):
    """Four images: a_drop (a removed label), b_add (an added label), c_change (a changed class), d_clean."""
    model = trained("detect")
    root = tmp_path_factory.mktemp("detect")
    clean = _clean(model, "detect", 6, seed=1000, root=root, min_objects=2)
    images, expected = {}, {}
    for name, edit, k in (("a_drop", "drop", 0), ("b_add", "add", 1), ("c_change", "change", 2)):
        objects, failure = _edited("detect", clean[k:] + clean[:k], edit)
        images[name] = (clean[k][0], objects)
        expected[f"{name}.png"] = failure
    images["d_clean"] = clean[3]
    data = _write_detection_set(root / "shapes", "detect", images)
    return data, expected, sum(len(objs) for _, objs in images.values())


def _val(model, data, tmp_path, name="val", imgsz=IMGSZ, **hook):
    add_val_failure_hook(model, strict=True, **hook)
    metrics = model.val(data=str(data), imgsz=imgsz, project=str(tmp_path), name=name, **VAL)
    folder = Path(metrics.save_dir) / "cam_failures"
    return metrics, folder, json.loads((folder / "failures.json").read_text())


def _found(report: dict) -> dict:
    return {r["image"]: (r["kind"], r["class"], r["true_class"]) for r in report["failures"]}


# -- heads: where failures sit in the head ---------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["detect", "obb"])
def test_locate_finds_the_anchor_each_kept_prediction_came_from(task):
    from ultralytics.utils.nms import non_max_suppression

    model = trained(task)
    engine = CamEngine.for_model(model.model.eval(), task, CamConfig(), imgsz=IMGSZ)
    x = torch.stack([torch.from_numpy(render(task, s, IMGSZ)[0][..., ::-1].copy()).permute(2, 0, 1) for s in (3, 4)])
    fwd = engine.forward(x.float() / 255)
    nc = 0 if task == "detect" else len(model.names)
    dets, keep = non_max_suppression(
        fwd.preds[0], 0.05, 0.7, multi_label=True, nc=nc, rotated=task == "obb", return_idxs=True
    )
    assert sum(len(d) for d in dets) >= 4
    for b, (d, k) in enumerate(zip(dets, keep)):
        boxes = d[:, [0, 1, 2, 3, 6]] if task == "obb" else d[:, :4]
        sel = engine.adapter.locate(fwd.head_out, boxes, d[:, 5], d[:, 4], (IMGSZ, IMGSZ), image=b)
        assert torch.equal(sel.index, k.long().view(-1))
        assert torch.equal(sel.cls, d[:, 5].long())


def test_locate_finds_rtdetr_queries():
    from ultralytics.nn.modules.head import Detect

    from conftest import yaml_model

    model = yaml_model("rtdetr-l.yaml")
    engine = CamEngine.for_model(model.model.eval(), "detect", CamConfig(), imgsz=IMGSZ)
    fwd = engine.forward(torch.rand(1, 3, IMGSZ, IMGSZ))
    y = fwd.preds[0][0, :20]  # the decoder's top rows: normalised xywh, score, class
    logits = fwd.head_out[1][1][-1]
    queries = Detect._grouped_topk(logits.sigmoid().flatten(1), 20, 1)[1][0] // logits.shape[-1]
    from ultralytics.utils import ops

    boxes = ops.xywh2xyxy(y[:, :4]) * IMGSZ
    sel = engine.adapter.locate(fwd.head_out, boxes, y[:, 5], y[:, 4], (IMGSZ, IMGSZ))
    assert torch.equal(sel.index, queries)


def test_candidates_are_the_strongest_anchor_of_the_class_at_the_box(tmp_path):
    from ultralytics.utils.metrics import box_iou

    model = trained("detect")
    img, objects = _clean(model, "detect", 1, seed=2000, root=tmp_path)[0]
    engine = CamEngine.for_model(model.model.eval(), "detect", CamConfig(), imgsz=IMGSZ)
    fwd = engine.forward(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255)
    r = model.predict(img, imgsz=IMGSZ, verbose=False)[0]
    gt, cls = _truth("detect", objects)
    boxes, scores = engine.adapter.decode(fwd.head_out, (IMGSZ, IMGSZ))
    iou = box_iou(gt.float(), boxes[0])

    sel = engine.adapter.candidates(fwd.head_out, gt, cls, (IMGSZ, IMGSZ))
    for i in range(len(gt)):
        overlapping = iou[i] >= 0.5
        assert overlapping[sel.index[i]]
        assert sel.conf[i] == scores[0][overlapping, cls[i]].max()
        assert sel.conf[i] >= r.boxes.conf[r.boxes.cls == cls[i]].max() - 1e-4  # at least the kept detection
    other = (cls + 1) % 3  # another class at the same place scores low
    assert (engine.adapter.candidates(fwd.head_out, gt, other, (IMGSZ, IMGSZ)).conf < 0.25).all()

    tiny = torch.tensor([[1.0, 1.0, 2.0, 2.0]])  # no anchor's box overlaps a 1-pixel box by 0.5: the best overlap wins
    sel = engine.adapter.candidates(fwd.head_out, tiny, torch.tensor([0]), (IMGSZ, IMGSZ))
    assert int(sel.index[0]) == int(box_iou(tiny, boxes[0]).argmax())


# -- the hook --------------------------------------------------------------------------------------------------------
def test_detect_finds_exactly_the_deliberate_failures_and_writes_their_files(detect_set, tmp_path):
    data, expected, _ = detect_set
    model = trained("detect")
    plain = model.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), name="plain", **VAL)
    metrics, folder, report = _val(model, data, tmp_path)

    assert metrics.results_dict == plain.results_dict  # Ultralytics' own metrics are untouched
    assert _found(report) == expected
    assert len(report["failures"]) == 3
    assert report["images"] == 4 and report["images_with_failures"] == 3 and report["images_explained"] == 3
    assert report["counts"] == {"false_positive": 1, "missed": 1, "wrong_class": 1, "poor_localisation": 0}
    assert report["method"] == "HiResCAM" and report["layers"] and report["conf"] == 0.25
    for row in report["failures"]:
        assert row["confidence"] is not None and len(row["box"]) == 4
        assert (row["true_box"] is None) == (row["kind"] == "false_positive")
        assert row["files"][0].endswith("/panel.jpg")
        tiles = 2 if row["kind"] == "wrong_class" else 1  # a wrong class: predicted and true class side by side
        assert len(row["files"]) == 1 + tiles
        for f in row["files"]:
            image = cv2.imread(str(folder / f))
            assert image is not None and image.ndim == 3
    missed = next(r for r in report["failures"] if r["kind"] == "missed")
    assert missed["candidate_box"] is not None and 0 <= missed["iou"] <= 1
    wrong = next(r for r in report["failures"] if r["kind"] == "wrong_class")
    assert wrong["iou"] >= 0.5 and len(wrong["map_confidence"]) == 2
    assert wrong["map_confidence"][0] > wrong["map_confidence"][1]  # the model prefers what is drawn

    with open(folder / "failures.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [r["image"] for r in report["failures"]]
    assert list(rows[0]) == ["image", "kind", "class", "true_class", "confidence", "iou", "files", "error"]
    assert {(r["kind"], r["class"]) for r in rows} == {(k, model.names[c]) for k, c, _ in expected.values()}
    sheet = cv2.imread(str(folder / "contact_sheet.jpg"))
    assert sheet is not None and sheet.shape[1] == 3 * 256  # three failure images side by side
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["a_drop", "b_add", "c_change"]
    # the browsable report of the failures: its kinds and every failure with its heatmaps
    from ultralytics_cam.report import collect

    assert (folder / "index.html").is_file()
    page = collect(folder)
    assert page["kinds"] == ["val failures"] and page["failures"]["counts"] == report["counts"]
    assert sorted(r["kind"] for r in page["failures"]["rows"]) == sorted(r["kind"] for r in report["failures"])
    assert all((folder / f).is_file() for r in page["failures"]["rows"] for f in r["files"])


@pytest.mark.parametrize(("task", "edit"), [("segment", "drop"), ("pose", "add"), ("obb", "change")])
def test_each_task_finds_its_deliberate_failure(task, edit, tmp_path):
    model = trained(task)
    clean = _clean(model, task, 4, seed=3000, root=tmp_path, min_objects=2 if edit == "drop" else 1)
    objects, failure = _edited(task, clean, edit)
    data = _write_detection_set(tmp_path / "shapes", task, {"a_edit": (clean[0][0], objects), "b_clean": clean[1]})
    _, folder, report = _val(model, data, tmp_path)
    assert _found(report) == {"a_edit.png": failure}
    (row,) = report["failures"]
    assert all((folder / f).is_file() for f in row["files"])
    assert len(row["box"]) == (5 if task == "obb" else 4)


def test_classify_explains_predicted_and_true_class_of_a_misclassified_image(tmp_path):
    import synthetic_shapes

    model = trained("classify")
    clean = _clean(model, "classify", 6, seed=4000, root=tmp_path)
    root = tmp_path / "shapes"
    names = synthetic_shapes.CLASS_NAMES["classify"]
    for split in ("train", "val"):
        for name in names:
            (root / split / name).mkdir(parents=True)
    for i, (img, objects) in enumerate(clean):
        c = objects[0]["cls"]
        label = (c + 1) % 3 if i == 0 else c  # the first image goes into the wrong class's folder
        cv2.imwrite(str(root / "val" / names[label] / f"img{i}.png"), img)
        cv2.imwrite(str(root / "train" / names[c] / f"img{i}.png"), img)
    for name in names:  # every class needs a training folder with an image for Ultralytics to read its names
        if not any((root / "train" / name).iterdir()):
            shutil.copy(next((root / "val").rglob("*.png")), root / "train" / name / "filler.png")
    wrong = clean[0][1][0]["cls"]
    _, _, report = _val(model, root, tmp_path, imgsz=CLS_IMGSZ)
    assert _found(report) == {"img0.png": ("misclassified", wrong, (wrong + 1) % 3)}
    (row,) = report["failures"]
    assert row["path"].endswith(f"{names[(wrong + 1) % 3]}/img0.png")  # the loader shuffles; the file is still known
    assert [Path(f).name for f in row["files"]] == [
        "panel.jpg",
        "01_misclassified_pred.jpg",
        "01_misclassified_true.jpg",
    ]
    assert row["map_confidence"][0] > row["map_confidence"][1]


def test_kinds_conf_and_max_images_options(detect_set, tmp_path):
    data, expected, n_objects = detect_set
    model = trained("detect")
    _, _, report = _val(model, data, tmp_path, name="kinds", kinds=("missed",))
    assert _found(report) == {k: v for k, v in expected.items() if v[0] == "missed"}
    assert report["kinds"] == ["missed"]

    _, folder, report = _val(model, data, tmp_path, name="max", max_images=1)
    assert _found(report) == expected  # every failure is still listed ...
    assert report["images_explained"] == 1  # ... but only the worst image (the first on ties) has files
    assert [p.name for p in folder.iterdir() if p.is_dir()] == ["a_drop"]
    assert [bool(r["files"]) for r in report["failures"]] == [r["image"] == "a_drop.png" for r in report["failures"]]

    _, _, report = _val(model, data, tmp_path, name="conf", conf=1.0, kinds=("missed", "false_positive"))
    assert report["counts"] == {"false_positive": 0, "missed": n_objects}  # no prediction counts: all missed
    remove_val_failure_hook(model)
    assert not [f for fns in model.callbacks.values() for f in fns if getattr(f, "_ultralytics_cam", False)]


def test_a_cam_error_is_logged_with_the_image_name_and_validation_goes_on(detect_set, tmp_path, monkeypatch, caplog):
    from ultralytics_cam.integrations.val_hook import explain

    data, expected, _ = detect_set
    real = explain.explain_cases

    def failing_on_b_add(engine, cases):
        if any(c.name == "b_add.png" for c in cases):
            raise RuntimeError("boom")
        return real(engine, cases)

    monkeypatch.setattr(explain, "explain_cases", failing_on_b_add)
    model = trained("detect")
    add_val_failure_hook(model)
    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER.name):
            metrics = model.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), name="val", **VAL)
    finally:
        LOGGER.removeHandler(caplog.handler)
    assert metrics.box.map50 > 0
    assert any("b_add.png" in m and "boom" in m for m in caplog.messages)
    report = json.loads((Path(metrics.save_dir) / "cam_failures" / "failures.json").read_text())
    assert _found(report) == expected  # listed all the same; only the failing image has no files
    assert {r["image"]: bool(r["files"]) for r in report["failures"]} == {
        "a_drop.png": True,
        "b_add.png": False,
        "c_change.png": True,
    }

    add_val_failure_hook(model, strict=True)
    with pytest.raises(RuntimeError, match="boom"):
        model.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), name="strict", **VAL)


def test_training_validation_is_skipped_unless_asked(detect_set, tmp_path, monkeypatch):
    from ultralytics_cam.integrations.val_hook import hook

    data, _, _ = detect_set
    seen = []
    finish = hook._FailureRun.finish

    def spy(self):
        seen.append(self.validator.training)
        finish(self)

    monkeypatch.setattr(hook._FailureRun, "finish", spy)
    train = {"epochs": 1, "imgsz": IMGSZ, "batch": 4, "workers": 0, "plots": False, "verbose": False}
    for during_training, name in ((False, "default"), (True, "asked")):
        seen.clear()
        model = trained("detect")
        add_val_failure_hook(model, strict=True, during_training=during_training)
        model.train(data=str(data), project=str(tmp_path), name=name, amp=False, **train)
        # Every epoch's validation is a training one; the final validation of best.pt after training is not.
        assert seen == ([True, False] if during_training else [False])
        assert (tmp_path / name / "cam_failures" / "failures.json").is_file()


def test_cam_val_returns_metrics_and_leaves_the_callbacks_as_they_were(detect_set, tmp_path):
    data, expected, _ = detect_set
    model = trained("detect")
    before = {e: list(model.callbacks[e]) for e in ("on_val_start", "on_val_end")}
    metrics = cam_val(
        model, data=str(data), method="GradCAM", layers="16,19", imgsz=IMGSZ, project=str(tmp_path), **VAL
    )
    assert metrics.box.map50 > 0
    report = json.loads((Path(metrics.save_dir) / "cam_failures" / "failures.json").read_text())
    assert _found(report) == expected
    assert report["method"] == "GradCAM" and report["layers"] == [16, 19]
    assert {e: list(model.callbacks[e]) for e in before} == before


def test_options_are_checked_when_the_hook_is_added():
    from ultralytics_cam import CamError
    from ultralytics_cam.integrations.val_hook import FailureOptionError

    model = trained("detect")
    with pytest.raises(FailureOptionError, match="Did you mean 'missed'"):
        add_val_failure_hook(model, kinds=("mised",))
    with pytest.raises(FailureOptionError, match="conf"):
        add_val_failure_hook(model, conf=1.5)
    with pytest.raises(FailureOptionError, match="max_images"):
        add_val_failure_hook(model, max_images=0)
    with pytest.raises(FailureOptionError, match=r"model\.val"):
        add_val_failure_hook(model, batch=4)
    with pytest.raises(CamError, match="method"):
        add_val_failure_hook(model, method="NoSuchCAM")
    assert issubclass(FailureOptionError, (CamError, ValueError))  # yolo-cam reports CamError as a usage error
    assert not [f for fns in model.callbacks.values() for f in fns if getattr(f, "_ultralytics_cam", False)]


def test_every_kind_the_cli_help_names_is_accepted():
    """The ``yolo-cam val help`` text names the real failure kinds (a stale name would be refused at run time)."""
    from ultralytics_cam.integrations.val_hook.mining import KINDS
    from ultralytics_cam.listings import VAL_KEY_HELP

    text, example = VAL_KEY_HELP["kinds"]
    assert all(k in text for k in KINDS)
    assert set(example.split(",")) <= set(KINDS)
