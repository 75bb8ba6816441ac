"""Issue 9: a corpus of every bad file kind and the good variants, through the CLI, ``model.cam`` and ``stream=True``.

Each run asserts the three things of SPEC §12: every good file's outputs exist and are complete, each bad file is
listed with its true reason, and the exit code follows the documented rule (0 when at least one input was explained,
1 when none could be, 2 for a bad argument before any work).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from corpus import check_run, make_corpus, read_summary, yolo_cam_script

from conftest import cli_env, tiny_detector, yaml_model


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


def run_cli(tmp_path: Path, *args: str, verbose: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [yolo_cam_script(), *args],
        cwd=tmp_path,
        env={**cli_env(tmp_path), "YOLO_VERBOSE": str(verbose)},  # verbose: Ultralytics' INFO lines and warnings too
        check=False,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


@pytest.mark.slow
def test_cli_over_the_corpus_keeps_every_good_output_and_lists_every_bad_file(tmp_path, assets, tiny_pt):
    corpus = make_corpus(tmp_path / "corpus", assets)
    proc = run_cli(
        tmp_path,
        "predict",
        f"model={tiny_pt}",
        "imgsz=64",
        "max_det=2",
        "source=corpus",
        f"project={tmp_path / 'out'}",
        verbose=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = check_run(tmp_path / "out" / "cam", corpus)
    assert summary["status"] == "completed" and summary["interrupted"] is False
    assert proc.stdout == "", "stdout must stay clean enough to pipe (logs and warnings go to stderr)"
    assert "Results saved to" not in proc.stderr and "\x1b[1m" not in proc.stderr
    for name in corpus.bad:  # one warning per bad file, ours, with the reason (not Ultralytics' as well)
        assert sum(name in line for line in proc.stderr.splitlines() if "skipped" in line) == 1, (name, proc.stderr)
    assert "Image Read Error" not in proc.stderr
    assert f"{len(corpus.bad)} inputs skipped" in proc.stderr


def test_model_cam_over_the_corpus_returns_every_good_result(tmp_path, assets):
    corpus = make_corpus(tmp_path / "corpus", assets)
    model = tiny_detector()
    results = model.cam(corpus.folder, imgsz=64, max_det=2, save=True, project=tmp_path / "out", name="cam")
    frames = sum(n for _, n in corpus.videos.values())
    assert len(results) == len(corpus.images) + frames
    assert all(len(r.cam) == len(r.boxes) for r in results)
    check_run(Path(results[0].save_dir), corpus)


def test_stream_over_the_corpus_yields_every_good_result_without_raising(tmp_path, assets):
    corpus = make_corpus(tmp_path / "corpus", assets)
    model = tiny_detector()
    names = [Path(r.path).name for r in model.cam(corpus.folder, imgsz=64, max_det=1, stream=True)]
    expected = sorted(corpus.images) + [v for v in sorted(corpus.videos) for _ in range(corpus.videos[v][1])]
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("name", ["yolo11n-seg.yaml", "yolo11n-cls.yaml"])
def test_every_task_predictor_skips_bad_files(tmp_path, assets, name):
    """The skipping loader sits under every task's predictor (classify's setup_source has its own signature)."""
    corpus = make_corpus(tmp_path / "corpus", assets)
    model = yaml_model(name)
    results = model.cam(corpus.folder, imgsz=64, max_det=1, conf=0.0, save=True, project=tmp_path / "out", name="cam")
    assert len(results) == len(corpus.images) + sum(n for _, n in corpus.videos.values())
    summary = read_summary(tmp_path / "out" / "cam")
    assert {Path(s["source"]).name for s in summary["skipped"]} == set(corpus.bad)


@pytest.mark.parametrize("first", ["bad video only", "bad video before good images"])
def test_a_bad_video_never_costs_the_run(tmp_path, assets, first):
    corpus = make_corpus(tmp_path / "corpus", assets, bad=False, videos=False)
    (corpus.folder / "garbage.mp4").write_bytes(b"\x00\x01" * 25_000)
    if first == "bad video only":
        for p in list(corpus.folder.iterdir()):
            if p.name != "garbage.mp4":
                p.unlink()
    model = tiny_detector()
    results = model.cam(corpus.folder, imgsz=64, max_det=1, save=True, project=tmp_path / "out", name="cam")
    summary = read_summary(tmp_path / "out" / "cam")
    assert [Path(s["source"]).name for s in summary["skipped"]] == ["garbage.mp4"]
    assert "could not be opened as a video" in summary["skipped"][0]["reason"]
    assert len(results) == (0 if first == "bad video only" else len(corpus.images))


@pytest.mark.slow
def test_cli_exit_code_is_1_when_no_input_could_be_explained(tmp_path, assets, tiny_pt):
    src = tmp_path / "bad"
    src.mkdir()
    (src / "garbage.mp4").write_bytes(b"\x00" * 5000)
    (src / "empty.jpg").write_bytes(b"")
    proc = run_cli(tmp_path, "predict", f"model={tiny_pt}", "imgsz=64", "source=bad", f"project={tmp_path / 'out'}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "no input could be explained" in proc.stderr and "could not be opened as a video" in proc.stderr
    assert f"summary.json is in {tmp_path / 'out' / 'cam'}" in proc.stderr
    summary = read_summary(tmp_path / "out" / "cam")
    assert {Path(s["source"]).name for s in summary["skipped"]} == {"garbage.mp4", "empty.jpg"}
    assert "Traceback" not in proc.stderr


def test_unreadable_reason_names_a_permission_problem(tmp_path, monkeypatch):
    """The corpus can only lock a file for a non-root user; the reason itself is checked here for everyone."""
    from ultralytics_cam import sources

    path = tmp_path / "locked.jpg"
    path.write_bytes(b"\xff\xd8 data")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sources, "open", denied, raising=False)
    assert sources.unreadable_reason(path, "image") == "permission denied: this user may not read the file"
