"""Issue 9: SIGINT and SIGTERM at random moments of a real ``yolo-cam predict`` run, over images and over a video.

Whenever the signal lands (loading the model, mid-image, between images, mid-video), the run must be consistent:
the exit code is 128 + the signal (130, 143), or 0 when the run had already completed; ``summary.json`` is valid JSON;
every folder on disk is complete and listed; and no partial file is left. The moment is drawn from a seed printed in
every assertion message (set ``RELIABILITY_SEED`` to replay one).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from corpus import (
    bus,
    check_image_folder,
    check_video_folder,
    no_partial_files,
    read_summary,
    write_image,
    write_video,
    yolo_cam_script,
)

from conftest import cli_env, tiny_detector


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


def _source(kind: str, tmp_path: Path, assets: Path) -> tuple[str, list[str]]:
    src = tmp_path / "src"
    src.mkdir()
    if kind == "images":
        for i in range(24):
            write_image(src / f"img_{i:02d}.jpg", bus(assets, 320, 256, shift=5 * i))
        return "src", ["imgsz=320", "max_det=5"]
    write_video(src / "clip.avi", [bus(assets, 160, 128, shift=3 * i) for i in range(40)])
    return "src/clip.avi", ["imgsz=160", "max_det=5"]


def _wait_for_output(save_dir: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not (save_dir.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in save_dir.iterdir())):
        if proc.poll() is not None or time.time() > deadline:
            return
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["images", "video"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_at_a_random_moment_leaves_a_consistent_run(tmp_path, assets, tiny_pt, kind, sig):
    seed = int(os.environ.get("RELIABILITY_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    early = rng.random() < 0.25  # sometimes while the model loads, mostly once outputs are being written
    delay = rng.uniform(0, 3.0) if early else rng.uniform(0, 1.5)
    why = f"seed={seed} ({'from start' if early else 'after the first output'}, +{delay:.2f}s)"

    source, opts = _source(kind, tmp_path, assets)
    out = tmp_path / "out"
    save_dir = out / "cam"
    proc = subprocess.Popen(
        [yolo_cam_script(), "predict", f"model={tiny_pt}", f"source={source}", *opts, f"project={out}"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if not early:
        _wait_for_output(save_dir, proc)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    err = err.decode("utf-8", "replace")
    why += f"\n{err[-2000:]}"

    if not (save_dir / "summary.json").exists():  # stopped before the run began: nothing may have been written
        # 128 + sig from yolo-cam's own handling; -sig when the signal came while Python was still importing, before
        # yolo-cam could handle it (the shell reports that as 128 + sig as well)
        assert proc.returncode in (128 + sig, -sig), why
        assert not save_dir.exists() or not any(save_dir.iterdir()), why
        return
    summary = read_summary(save_dir)
    if summary["status"] == "completed":  # the signal came after the last output: a complete run
        # 0 or 128 + sig while yolo-cam runs; -sig when it came after yolo-cam returned, while Python was exiting
        # (Python then ends by the signal itself, as it does for a signal while importing, above)
        assert proc.returncode in (0, 128 + sig, -sig), why
    else:
        assert proc.returncode == 128 + sig, why
        assert summary["status"] == "interrupted" and summary["interrupted"] is True, why
        what = next(x for x in err.splitlines() if "interrupted after" in x).split(";")[0]
        assert ("image" if kind == "video" else "video frame") not in what, why  # frames are called frames
    no_partial_files(save_dir)
    folders = {p.name for p in save_dir.iterdir() if p.is_dir()}
    listed = {i["folder"] for i in summary["images"]} | {v["folder"] for v in summary["videos"]}
    assert folders == listed, why
    for image in summary["images"]:
        check_image_folder(save_dir / image["folder"])
    for video in summary["videos"]:
        check_video_folder(save_dir / video["folder"], video["frames"])
