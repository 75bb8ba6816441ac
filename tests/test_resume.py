"""Resumable runs (SPEC §11): ``manifest.jsonl``, ``resume=True`` after a ``kill -9``, merged ``summary.json``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ultralytics_cam.manifest import MANIFEST_NAME, Manifest, clean_partials, resume_dir

from conftest import cli_env, model_file, render

SCRIPT = Path(sys.executable).with_name("yolo-cam")
IMAGE_FILES = ["cam.json", "detection.png", "heatmap.npy", "heatmap.png"]
#: Keys of cam.json / summary.json that are timings (they differ between any two runs).
TIMINGS = {"ms", "ms_per_image", "seconds", "started", "speed", "time"}


def synthetic_folder(folder: Path, n: int) -> Path:
    """``n`` synthetic detection images the trained detector finds objects in, plus a text file and a corrupt JPEG."""
    folder.mkdir()
    for i in range(n):
        im, _ = render("detect", seed=i, imgsz=160)
        cv2.imwrite(str(folder / f"im{i:03d}.png"), im)
    (folder / "notes.txt").write_text("not an image")
    (folder / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def image_lines(save_dir: Path) -> list[dict]:
    return [x for x in Manifest(save_dir).lines() if x.get("event") == "image"]


def without_timings(obj):
    """A JSON value with its timing keys removed, recursively (what two identical runs share)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def assert_same_outputs(run: Path, reference: Path, names: list[str]) -> None:
    """Every image folder of ``run`` holds the files of ``reference``; deterministic ones are byte-identical."""
    for name in names:
        a, b = run / name, reference / name
        assert sorted(p.name for p in a.iterdir()) == IMAGE_FILES, name
        assert (a / "heatmap.npy").read_bytes() == (b / "heatmap.npy").read_bytes(), name
        ja, jb = (json.loads((x / "cam.json").read_text(encoding="utf-8")) for x in (a, b))
        assert without_timings(ja) == without_timings(jb), name


def leftovers(folder: Path) -> list[Path]:
    """Hidden staging folders and temporary files anywhere in the run."""
    return list(folder.rglob(".*"))


@pytest.mark.slow
def test_resume_after_sigkill_completes_every_image_exactly_once(tmp_path):
    """A real ``yolo-cam`` run killed with SIGKILL part-way, then resumed: the result equals an uninterrupted run."""
    n = 24
    src = synthetic_folder(tmp_path / "imgs", n)
    env = cli_env(tmp_path)
    args = [str(SCRIPT), "predict", f"model={model_file('detect')}", f"source={src}", "imgsz=160"]

    reference = subprocess.run(
        [*args, "name=reference"], cwd=tmp_path, env=env, check=False, capture_output=True, text=True
    )
    assert reference.returncode == 0, reference.stderr
    ref_dir = tmp_path / "runs" / "detect" / "reference"

    # kill -9 as soon as a few images are recorded: whatever is in flight then is lost
    proc = subprocess.Popen([*args, "name=run"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    save_dir = tmp_path / "runs" / "detect" / "run"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (save_dir / MANIFEST_NAME).exists() and len(image_lines(save_dir)) >= 5:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done_before = {x["source"] for x in image_lines(save_dir)}
    assert 5 <= len(done_before) < n, "killed part-way"
    assert not (save_dir / "summary.json").exists(), "a killed run writes no summary"

    resumed = subprocess.run(
        [*args, "name=run", "resume=True"], cwd=tmp_path, env=env, check=False, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr

    # every image complete exactly once, those done before the kill not redone
    lines = image_lines(save_dir)
    sources = [x["source"] for x in lines]
    names = [f"im{i:03d}" for i in range(n)]
    assert sorted(sources) == sorted(str(src / f"{name}.png") for name in names)
    assert len(sources) == len(set(sources)) == n, "each image recorded exactly once"
    sessions = [x for x in Manifest(save_dir).lines() if x.get("event") == "run"]
    assert len(sessions) == 2 and [x["engine"] for x in sessions] == ["local", "local"]
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir()) == names
    assert not leftovers(save_dir), "no staging folder or .tmp file is left"
    assert_same_outputs(save_dir, ref_dir, names)

    # summary.json is merged: it counts the images of both sessions, as the uninterrupted run does
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    ref = json.loads((ref_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["sessions"] == 2 and ref["sessions"] == 1
    assert summary["counts"] == ref["counts"] and summary["counts"]["images"] == n
    assert sorted(without_timings(summary["images"]), key=str) == sorted(without_timings(ref["images"]), key=str)
    assert summary["skipped"] == ref["skipped"] and len(ref["skipped"]) == 2
    assert summary["settings"] == {**ref["settings"], "ultralytics": {**ref["settings"]["ultralytics"], "name": "run"}}


def test_resume_redoes_half_written_images_and_cleans_up(tmp_path):
    """Folders without a manifest line, and folders whose files are not as recorded, are redone; leftovers go."""
    from conftest import trained

    src = synthetic_folder(tmp_path / "imgs", 4)
    model = trained("detect")
    kw = {"save": True, "imgsz": 160, "project": tmp_path / "out", "verbose": False}
    model.cam(src, **kw)
    save_dir = tmp_path / "out" / "cam"
    reference = {p.name: (p / "heatmap.npy").read_bytes() for p in save_dir.iterdir() if p.is_dir()}
    manifest = save_dir / MANIFEST_NAME
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    assert [json.loads(x)["event"] for x in lines] == ["run", "image", "image", "image", "image", "end"]
    # the kill: im003's line never written, im002's line torn half-way; im001's heatmap.npy lost its bytes
    manifest.write_text("".join(lines[:3]) + lines[3][:25], encoding="utf-8")
    (save_dir / "im001" / "heatmap.npy").write_bytes(b"")
    (save_dir / ".cam-partial-0badf00d").mkdir()
    (save_dir / ".cam-partial-0badf00d" / "heatmap.png").write_bytes(b"half")
    (save_dir / "im003" / ".1234abcd.tmp").write_bytes(b"half")
    (save_dir / "summary.json").unlink()

    state = Manifest(save_dir).state()
    assert sorted(Path(s).name for s in state.images) == ["im000.png"]
    assert [Path(s).name for s in state.redo] == ["im001.png"]

    results = model.cam(src, resume=True, **kw)
    assert sorted(Path(r.path).name for r in results) == ["im001.png", "im002.png", "im003.png"]
    assert not leftovers(save_dir)
    assert {p.name: (p / "heatmap.npy").read_bytes() for p in save_dir.iterdir() if p.is_dir()} == reference
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["images"] == 4 and summary["sessions"] == 2
    assert sorted(i["folder"] for i in summary["images"]) == ["im000", "im001", "im002", "im003"]
    text = manifest.read_text(encoding="utf-8")
    assert text.endswith("\n") and all(json.loads(x) for x in text.splitlines()), "the torn line was cut off"
    assert len(image_lines(save_dir)) == 5  # im000 and im001 (twice: its bad record and the redo), im002, im003


def test_resume_keeps_same_stem_names(tmp_path):
    """``a/x.png`` and ``b/x.png`` are saved as ``x`` and ``x-2``; resuming after the first keeps ``x-2``."""
    from conftest import trained

    for sub, seed in (("a", 1), ("b", 2)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.png"), render("detect", seed=seed, imgsz=96)[0])
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'a' / 'x.png'}\n{tmp_path / 'b' / 'x.png'}\n", encoding="utf-8")
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "verbose": False}
    model.cam(listing, **kw)
    save_dir = tmp_path / "out" / "cam"
    full = (save_dir / "x-2" / "heatmap.npy").read_bytes()
    lines = (save_dir / MANIFEST_NAME).read_text(encoding="utf-8").splitlines(keepends=True)
    (save_dir / MANIFEST_NAME).write_text("".join(lines[:2]), encoding="utf-8")  # x recorded, x-2 not
    (results,) = model.cam(listing, resume=True, **kw)
    assert results.path == str(tmp_path / "b" / "x.png")
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir()) == ["x", "x-2"]
    assert (save_dir / "x-2" / "heatmap.npy").read_bytes() == full


def test_resume_refuses_other_settings_and_finds_the_latest_run(tmp_path):
    from conftest import trained

    src = synthetic_folder(tmp_path / "imgs", 1)
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "verbose": False}
    model.cam(src, **kw)
    model.cam(src, **kw)  # cam-2, the latest
    save_dir = tmp_path / "out" / "cam-2"
    assert resume_dir(tmp_path / "out" / "cam-3", "cam", True) == save_dir
    assert resume_dir(tmp_path / "out" / "cam-3", "other", True) is None
    with pytest.raises(FileNotFoundError, match=r"has no manifest\.jsonl"):
        resume_dir(tmp_path / "out" / "cam-3", "cam", str(tmp_path / "imgs"))
    with pytest.raises(ValueError, match=r"method='HiResCAM' before, 'GradCAM' now"):
        model.cam(src, resume=True, method="GradCAM", **kw)
    with pytest.raises(ValueError, match=r"imgsz=96 before, 128 now"):
        model.cam(src, resume=True, **{**kw, "imgsz": 128})
    # settings that do not change the outputs may change; resume=<folder> picks that folder
    assert model.cam(src, resume=str(tmp_path / "out" / "cam"), **{**kw, "batch": 2}) == []
    assert not (tmp_path / "out" / "cam-3").exists()
    # resume=True with no earlier run starts a new one
    assert len(model.cam(src, resume=True, **{**kw, "name": "fresh"})) == 1
    assert (tmp_path / "out" / "fresh" / MANIFEST_NAME).is_file()


def test_manifest_lines_are_fsynced_and_torn_tails_cut(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    m = Manifest(tmp_path)
    m.append({"event": "image", "source": "a", "folder": "a", "files": {}})
    assert len(synced) == 1
    m.close()
    with open(tmp_path / MANIFEST_NAME, "a", encoding="utf-8") as f:
        f.write('{"event": "ima')  # a kill in mid-write
    assert [x["source"] for x in Manifest(tmp_path).lines()] == ["a"]
    m = Manifest(tmp_path)
    m.append({"event": "end"})
    m.close()
    assert [x["event"] for x in Manifest(tmp_path).lines()] == ["image", "end"]
    assert clean_partials(tmp_path / "missing") == []


def test_video_resume_skips_a_finished_video(tmp_path, assets):
    """A video whose last frame was saved is recorded in the manifest and not redone by a resume."""
    from conftest import trained

    video = tmp_path / "vids" / "clip.mp4"
    video.parent.mkdir()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 96))
    for i in range(3):
        writer.write(np.ascontiguousarray(render("detect", seed=i, imgsz=96)[0]))
    writer.release()
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "verbose": False}
    model.cam(video.parent, **kw)
    save_dir = tmp_path / "out" / "cam"
    (line,) = [x for x in Manifest(save_dir).lines() if x.get("event") == "video"]
    assert line["frames"] == 3 and "cam.jsonl" in line["files"]
    assert model.cam(video.parent, resume=True, **kw) == []
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"]["videos"] == 1 and summary["counts"]["frames"] == 3


def write_clip(path: Path, n: int, imgsz: int = 160) -> Path:
    """A synthetic MJPG video of ``n`` frames the trained detector finds objects in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (imgsz, imgsz))
    for i in range(n):
        writer.write(np.ascontiguousarray(render("detect", seed=i, imgsz=imgsz)[0]))
    writer.release()
    return path


def segmented_cli(segment_frames: int) -> list[str]:
    """``yolo-cam`` (its ``main``) in a fresh interpreter, with video segments of ``segment_frames`` frames."""
    code = (
        "import sys, ultralytics_cam.segments as s; "
        f"s.SEGMENT_FRAMES = {segment_frames}; s.SEGMENT_SECONDS = float('inf'); "
        "from ultralytics_cam.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return [sys.executable, "-c", code]


def frame_count(path: Path) -> int:
    """How many frames OpenCV decodes from ``path``, read one by one (not the container's announced count)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.mark.slow
def test_video_resumes_at_its_first_frame_not_saved_after_sigkill(tmp_path):
    """A video run SIGKILLed part-way goes on at the first frame whose segment was not closed; the result is the
    uninterrupted run's, byte for byte, and the frames saved before the kill are not explained again."""
    n, seg = 48, 8
    clip = write_clip(tmp_path / "vids" / "clip.avi", n)
    env = cli_env(tmp_path)
    args = ["predict", f"model={model_file('detect')}", f"source={clip}", "imgsz=160"]

    t0 = time.time()
    reference = subprocess.run(  # default segments (one segment for 48 frames): the segment size changes nothing
        [str(SCRIPT), *args, "name=reference"], cwd=tmp_path, env=env, check=False, capture_output=True, text=True
    )
    reference_seconds = time.time() - t0
    assert reference.returncode == 0, reference.stderr
    ref_dir = tmp_path / "runs" / "detect" / "reference"

    save_dir = tmp_path / "runs" / "detect" / "run"
    t0 = time.time()
    proc = subprocess.Popen([*segmented_cli(seg), *args, "name=run"], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    segment_lines = []
    while time.time() < deadline and proc.poll() is None:
        segment_lines = [x for x in Manifest(save_dir).lines() if x.get("event") == "segment"]
        if len(segment_lines) >= 2:
            break
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    killed_seconds = time.time() - t0
    lines = Manifest(save_dir).lines()
    before = [x for x in lines if x.get("event") == "segment"]
    assert not [x for x in lines if x.get("event") == "video"] and not (save_dir / "summary.json").exists()
    done_before = before[-1]["last"]
    assert [(x["first"], x["last"]) for x in before] == [(i + 1, i + seg) for i in range(0, done_before, seg)]
    assert seg * 2 <= done_before < n, "killed part-way through the video"

    t0 = time.time()
    resumed = subprocess.run(  # verbose: the log says where the video goes on
        [*segmented_cli(seg), *args, "name=run", "resume=True"],
        cwd=tmp_path,
        env={**env, "YOLO_VERBOSE": "True"},
        check=False,
        capture_output=True,
        text=True,
    )
    resumed_seconds = time.time() - t0
    assert resumed.returncode == 0, resumed.stderr

    # the frames saved before the kill were decoded, not explained: the resumed session explained the rest only
    assert f"resuming clip.avi at frame {done_before + 1} ({done_before} frames saved before)" in resumed.stderr
    assert f"{n} video frames ({n - done_before} in this session) explained" in resumed.stderr.splitlines()[-1]
    lines = Manifest(save_dir).lines()
    runs = [i for i, x in enumerate(lines) if x.get("event") == "run"]
    assert len(runs) == 2
    after = [x for x in lines[runs[1] :] if x.get("event") == "segment"]
    assert after[0]["first"] == done_before + 1 and after[-1]["last"] == n and after[-1]["end"]
    ranges = [(x["first"], x["last"]) for x in before + after]
    covered = [f for a, b in ranges for f in range(a, b + 1)]
    assert covered == list(range(1, n + 1)), "every frame saved exactly once"
    (video,) = [x for x in lines if x.get("event") == "video"]
    assert video["frames"] == n

    # the outputs equal the uninterrupted run's: per-frame JSON lines, cam.json, and the overlay video itself
    folder, ref_folder = save_dir / "clip", ref_dir / "clip"
    assert sorted(p.name for p in folder.iterdir()) == ["cam.json", "cam.jsonl", "heatmap.avi"]
    assert [json.loads(x)["frame"] for x in (folder / "cam.jsonl").read_text().splitlines()] == list(range(1, n + 1))
    for name in ("cam.jsonl", "cam.json", "heatmap.avi"):
        assert (folder / name).read_bytes() == (ref_folder / name).read_bytes(), name
    assert frame_count(folder / "heatmap.avi") == n
    assert not leftovers(save_dir), "no segment, hidden or temporary file is left"
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    ref = json.loads((ref_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["sessions"] == 2
    assert summary["counts"] == ref["counts"] == {"images": 0, "videos": 1, "frames": n, **_pred_skip(ref)}
    assert without_timings(summary["videos"]) == without_timings(ref["videos"])
    print(
        f"\nvideo resume: {n} frames, segments of {seg}; killed after {killed_seconds:.1f}s with {done_before} frames"
        f" saved (the open segment's frames lost); the resumed session explained {n - done_before} frames, none of"
        f" the saved ones, in {resumed_seconds:.1f}s; uninterrupted run {reference_seconds:.1f}s"
    )


def _pred_skip(summary: dict) -> dict:
    return {"predictions": summary["counts"]["predictions"], "skipped": 0}


def test_video_stopped_part_way_is_viewable_and_resumed_from_its_segments(tmp_path, monkeypatch):
    """A run stopped inside a video closes its open segment and joins the saved frames into a viewable overlay; a
    resume explains only the frames after them and ends with the uninterrupted run's files."""
    from ultralytics_cam import segments

    from conftest import trained

    monkeypatch.setattr(segments, "SEGMENT_FRAMES", 4)
    n, stop_after = 12, 6
    clip = write_clip(tmp_path / "vids" / "clip.avi", n, imgsz=96)
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "verbose": False}
    model.cam(clip, name="reference", **kw)
    ref = tmp_path / "out" / "reference" / "clip"

    gen = model.cam(clip, stream=True, **kw)
    for i, _ in enumerate(gen):
        if i + 1 == stop_after:
            break
    gen.close()
    save_dir = tmp_path / "out" / "cam"
    folder = save_dir / "clip"
    assert json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))["status"] == "stopped"
    assert frame_count(folder / "heatmap.avi") == stop_after  # the frames saved so far, viewable
    assert json.loads((folder / "cam.json").read_text(encoding="utf-8"))["frames"] == stop_after
    assert sorted(p.name for p in (folder / "segments").iterdir()) == [
        "00000001-00000004.avi",
        "00000001-00000004.jsonl",
        "00000005-00000006.avi",
        "00000005-00000006.jsonl",
    ]
    assert not leftovers(save_dir)

    results = model.cam(clip, resume=True, **kw)
    assert len(results) == n - stop_after, "only the frames not saved are explained"
    assert sorted(p.name for p in folder.iterdir()) == ["cam.json", "cam.jsonl", "heatmap.avi"]
    for name in ("cam.jsonl", "cam.json", "heatmap.avi"):
        assert (folder / name).read_bytes() == (ref / name).read_bytes(), name
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["sessions"] == 2
    assert summary["counts"]["frames"] == n and summary["counts"]["videos"] == 1
    assert [v["frames"] for v in summary["videos"]] == [n]
    assert not leftovers(save_dir)


def test_video_saved_to_its_end_but_not_joined_is_joined_by_the_resume(tmp_path, monkeypatch):
    """Killed after a video's last segment was recorded (``end``) but before the join: the resume joins the segments
    and explains nothing again."""
    from ultralytics_cam import segments

    from conftest import trained

    monkeypatch.setattr(segments, "SEGMENT_FRAMES", 4)
    clip = write_clip(tmp_path / "vids" / "clip.avi", 12, imgsz=96)
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "verbose": False}
    gen = model.cam(clip, stream=True, **kw)
    for i, _ in enumerate(gen):
        if i + 1 == 6:
            break
    gen.close()
    save_dir = tmp_path / "out" / "cam"
    manifest = save_dir / MANIFEST_NAME
    lines = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines()]
    assert [(x["first"], x["last"]) for x in lines if x["event"] == "segment"] == [(1, 4), (5, 6)]
    lines[-2]["end"] = True  # as if frame 6 had been the video's last, and the kill came before the join
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines[:-1]), encoding="utf-8")
    for name in ("heatmap.avi", "cam.jsonl", "cam.json"):
        (save_dir / "clip" / name).unlink()

    assert model.cam(clip, resume=True, **kw) == [], "nothing is explained again"
    folder = save_dir / "clip"
    assert sorted(p.name for p in folder.iterdir()) == ["cam.json", "cam.jsonl", "heatmap.avi"]
    assert frame_count(folder / "heatmap.avi") == 6
    assert [json.loads(x)["frame"] for x in (folder / "cam.jsonl").read_text().splitlines()] == list(range(1, 7))
    (video,) = [x for x in Manifest(save_dir).lines() if x.get("event") == "video"]
    assert video["frames"] == 6 and set(video["files"]) == {"heatmap.avi", "cam.jsonl", "cam.json"}
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["counts"]["frames"] == 6


def test_resume_of_a_run_saved_before_an_option_existed_takes_its_default_as_unchanged(tmp_path):
    """A run written by a release without a later CAM option (here ``drise_keep``, removed from its recorded settings)
    resumes with that option at its default (what the old release computed), and refuses it at another value."""
    import json

    from conftest import trained

    src = synthetic_folder(tmp_path / "imgs", 2)
    model = trained("detect")
    kw = {"save": True, "imgsz": 96, "project": tmp_path / "out", "name": "old", "verbose": False}
    model.cam(src, **kw)
    manifest = tmp_path / "out" / "old" / MANIFEST_NAME
    lines = manifest.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert first["event"] == "run" and "drise_keep" in first["settings"]["cam"]
    del first["settings"]["cam"]["drise_keep"]
    kept = [json.dumps(first), *lines[1:2]]  # the run line and the first image's line: one image left to do
    manifest.write_text("\n".join(kept) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"drise_keep=None before, 0\.7 now"):
        model.cam(src, resume=True, drise_keep=0.7, **kw)
    assert len(model.cam(src, resume=True, **kw)) == 1
