"""Predict callbacks: r.cam and heatmaps from a plain model.predict / model.track; Ultralytics' own run unchanged."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ultralytics_cam import CamResult, add_cam_callbacks, remove_cam_callbacks
from ultralytics_cam._logging import LOGGER

from conftest import TASKS, render, trained

IMGSZ = 160


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three synthetic detect images (2-4 shapes each) as files, as a user's folder of images."""
    d = tmp_path_factory.mktemp("imgs")
    for i in range(3):
        img, _ = render("detect", 100 + i, IMGSZ)
        cv2.imwrite(str(d / f"img{i}.png"), img)
    return d


def _callbacks(model) -> dict:
    return {event: list(fns) for event, fns in model.callbacks.items()}


def _ours(model) -> list:
    return [f for fns in model.callbacks.values() for f in fns if getattr(f, "_ultralytics_cam", False)]


def test_predictions_and_ultralytics_files_are_unchanged_and_heatmaps_land_beside_them(folder, tmp_path):
    model = trained("detect")
    kw = {"imgsz": IMGSZ, "conf": 0.25, "save": True, "project": str(tmp_path), "verbose": False}
    plain = model.predict(str(folder), name="plain", **kw)
    add_cam_callbacks(model, method="LayerCAM", strict=True)
    explained = model.predict(str(folder), name="cam", **kw)

    assert sum(len(r.boxes) for r in plain) >= 6  # the images have objects and the model finds them
    for a, b in zip(plain, explained):
        torch.testing.assert_close(b.boxes.data, a.boxes.data, rtol=0, atol=0)
        assert isinstance(b.cam, CamResult) and b.cam.method == "LayerCAM"
        assert b.cam.maps.shape == (len(b.boxes), *b.orig_shape)
        torch.testing.assert_close(b.cam.conf, b.boxes.conf.float(), rtol=0, atol=0)
        assert all(m.max() > 0 for m in b.cam.maps)  # gradients reached the layers: inference mode was left
    plain_dir, cam_dir = Path(plain[0].save_dir), Path(explained[0].save_dir)
    stems = [p.stem for p in sorted(folder.iterdir())]
    assert sorted(p.name for p in plain_dir.iterdir()) == [f"{s}.jpg" for s in stems]
    assert sorted(p.name for p in cam_dir.iterdir()) == sorted(
        [f"{s}.jpg" for s in stems] + [f"{s}_heatmap.jpg" for s in stems]
    )
    for s in stems:  # Ultralytics' own images are byte-identical; the heatmaps are full-size overlays beside them
        assert (cam_dir / f"{s}.jpg").read_bytes() == (plain_dir / f"{s}.jpg").read_bytes()
        heat = cv2.imread(str(cam_dir / f"{s}_heatmap.jpg"))
        assert heat.shape == (IMGSZ, IMGSZ, 3)
        assert np.abs(heat.astype(int) - cv2.imread(str(cam_dir / f"{s}.jpg")).astype(int)).mean() > 5


def test_registering_is_idempotent_and_removing_restores_plain_predict(folder):
    model = trained("detect")
    model.predict(str(folder / "img0.png"), imgsz=IMGSZ, verbose=False)  # Ultralytics adds its own callbacks once
    before = _callbacks(model)
    add_cam_callbacks(model, method="HiResCAM")
    add_cam_callbacks(model, method="GradCAM")  # replaces the first registration, never stacks
    assert sorted(f.__name__ for f in _ours(model)) == ["on_predict_batch_end", "on_predict_end", "on_predict_start"]
    (r,) = model.predict(str(folder / "img0.png"), imgsz=IMGSZ, verbose=False)
    assert r.cam.method == "GradCAM"
    assert "_ultralytics_cam_callbacks" in vars(model.predictor)
    assert "inference" not in vars(model.predictor)  # the predictor's own method again once the predict ended

    remove_cam_callbacks(model)
    assert _callbacks(model) == before
    assert "_ultralytics_cam_callbacks" not in vars(model.predictor)  # the reused predictor keeps no engine
    (plain,) = model.predict(str(folder / "img0.png"), imgsz=IMGSZ, verbose=False)
    assert not hasattr(plain, "cam")
    torch.testing.assert_close(plain.boxes.data, r.boxes.data, rtol=0, atol=0)

    with pytest.raises(ValueError, match=r"model\.predict"):
        add_cam_callbacks(model, conf=0.5)  # a predict argument, not a CAM option
    with pytest.raises(ValueError, match="did you mean"):
        add_cam_callbacks(model, methd="GradCAM")
    assert _callbacks(model) == before


def test_stream_true_yields_results_with_cam(folder):
    model = trained("detect")
    add_cam_callbacks(model, strict=True)
    gen = model.predict(str(folder), stream=True, imgsz=IMGSZ, verbose=False)
    assert isinstance(gen, types.GeneratorType)
    results = list(gen)
    assert len(results) == 3
    assert all(r.cam.maps.shape[0] == len(r.boxes) for r in results)


def test_track_maps_follow_the_tracked_rows(tmp_path, monkeypatch):
    """Tracking drops unconfirmed rows and reorders the rest after NMS: each map must stay with its own row."""
    img, objects = render("detect", 7, IMGSZ)
    assert len(objects) >= 2
    frames = []
    for i in range(3):  # a static scene: every frame has the same objects, the tracker keeps their ids
        frames.append(str(tmp_path / f"frame{i}.png"))
        cv2.imwrite(frames[-1], img)
    model = trained("detect")
    add_cam_callbacks(model, strict=True)
    tracked = model.track(frames, imgsz=IMGSZ, verbose=False)
    # The same frames in the same order without tracking: rows in NMS order (track's default conf is 0.1).
    reference = model.predict(frames, imgsz=IMGSZ, conf=0.1, verbose=False)

    for t, ref in zip(tracked[1:], reference[1:]):  # frame 0 only starts the tracks
        assert t.boxes.is_track and len(t.boxes) >= 2
        for i, (c, k) in enumerate(zip(t.boxes.conf.tolist(), t.boxes.cls.tolist())):
            j = ref.boxes.conf.tolist().index(c)  # a tracked row keeps its detection's exact confidence
            assert int(ref.boxes.cls[j]) == int(k) == int(t.cam.cls[i])
            np.testing.assert_allclose(t.cam.maps[i], ref.cam.maps[j], atol=1e-4)


def test_maps_follow_rows_that_another_callback_reordered(folder):
    """Any on_predict_postprocess_end callback may reorder or drop rows (trackers do); maps follow the final rows."""
    model = trained("detect")
    add_cam_callbacks(model, strict=True)
    reference = model.predict(str(folder), imgsz=IMGSZ, verbose=False)

    def reverse_and_drop_last(predictor):
        for i, r in enumerate(predictor.results):
            predictor.results[i] = r[torch.arange(len(r) - 2, -1, -1)]  # reversed, without the weakest row

    model.add_callback("on_predict_postprocess_end", reverse_and_drop_last)
    reordered = model.predict(str(folder), imgsz=IMGSZ, verbose=False)
    assert sum(len(r.boxes) for r in reordered) >= 3
    for r, ref in zip(reordered, reference):
        n = len(ref.boxes)
        assert len(r.boxes) == n - 1
        torch.testing.assert_close(r.cam.conf, ref.cam.conf[: n - 1].flip(0), rtol=0, atol=0)
        np.testing.assert_allclose(r.cam.maps, ref.cam.maps[: n - 1][::-1], atol=1e-4)


def test_a_video_gets_a_heatmap_video_beside_ultralytics_video(tmp_path):
    img, _ = render("detect", 5, IMGSZ)
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (IMGSZ, IMGSZ))
    for i in range(4):
        writer.write(np.roll(img, 3 * i, axis=1))  # the shapes move a little from frame to frame
    writer.release()
    model = trained("detect")
    add_cam_callbacks(model, strict=True)
    results = model.predict(str(tmp_path / "clip.avi"), imgsz=IMGSZ, save=True, project=str(tmp_path), name="run")
    assert len(results) == 4 and all(r.cam.maps.shape[0] == len(r.boxes) > 0 for r in results)
    run = Path(results[0].save_dir)
    assert sorted(p.name for p in run.iterdir()) == ["clip.avi", "clip_heatmap.avi"]
    formats = []
    for name in ("clip.avi", "clip_heatmap.avi"):  # both complete: every frame, at the video's size
        video = cv2.VideoCapture(str(run / name))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
        assert int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == IMGSZ
        formats.append((video.get(cv2.CAP_PROP_FPS), int(video.get(cv2.CAP_PROP_FOURCC))))
        video.release()
    assert formats[1] == formats[0] and formats[0][0] == 10  # Ultralytics' codec, the video's own fps: in step


@pytest.mark.parametrize("task", TASKS)
def test_every_task_gets_maps_and_saved_heatmaps(task, tmp_path):
    img, _ = render(task, 11, 96 if task == "classify" else IMGSZ)
    path = tmp_path / "shape.png"
    cv2.imwrite(str(path), img)
    model = trained(task)
    add_cam_callbacks(model, strict=True)
    (r,) = model.predict(str(path), imgsz=img.shape[0], save=True, project=str(tmp_path), name="run", verbose=False)
    n = len(r.probs.top5) if task == "classify" else len(r.obb if task == "obb" else r.boxes)
    assert n > 0
    assert r.cam.maps.shape == (n, *r.orig_shape)
    assert r.cam.maps.max() > 0
    assert (Path(r.save_dir) / "shape_heatmap.jpg").is_file()
    assert (Path(r.save_dir) / "shape.jpg").is_file()


def test_a_cam_error_is_logged_with_the_image_name_and_predict_goes_on(folder, monkeypatch, caplog):
    from ultralytics_cam.engine import CamEngine

    model = trained("detect")
    (plain,) = model.predict(str(folder / "img1.png"), imgsz=IMGSZ, verbose=False)

    def boom(self, fwd, selections):
        raise RuntimeError("boom")

    monkeypatch.setattr(CamEngine, "explain", boom)
    add_cam_callbacks(model)
    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER.name):
            (r,) = model.predict(str(folder / "img1.png"), imgsz=IMGSZ, verbose=False)
    finally:
        LOGGER.removeHandler(caplog.handler)
    assert not hasattr(r, "cam")
    torch.testing.assert_close(r.boxes.data, plain.boxes.data, rtol=0, atol=0)
    assert any("img1.png" in m and "boom" in m for m in caplog.messages)

    add_cam_callbacks(model, strict=True)
    with pytest.raises(RuntimeError, match="boom"):
        model.predict(str(folder / "img1.png"), imgsz=IMGSZ, verbose=False)
