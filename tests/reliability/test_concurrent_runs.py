"""Issue 21, case 1: runs started at the same moment on one ``project``/``name`` never share a folder.

Ultralytics' ``increment_path`` checks which name is free, and the folder is created later: two processes that check
at the same moment both take ``cd``. The run folder is now claimed by an exclusive create (the next name when it
fails), for ``yolo-cam predict``, ``model.cam(save=True)``, the app and ``engine=ray``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus import bus, check_image_folder, no_partial_files, write_image

from conftest import cli_env, tiny_detector

HERE = Path(__file__).resolve().parent
PROCS, ROUNDS = 4, 20


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


def _sources(root: Path, assets: Path, n: int) -> dict[str, int]:
    """Worker k's source: a folder with one image ``im_<k>.jpg``; return {image file name: worker}."""
    names = {}
    for k in range(n):
        (root / str(k)).mkdir(parents=True)
        write_image(root / str(k) / f"im_{k}.jpg", bus(assets, 64, 48, shift=7 * k))
        names[f"im_{k}.jpg"] = k
    return names


def check_rounds(out: Path, names: dict[str, int], rounds: int) -> None:
    """Every round: one folder per run, each holding exactly its own run's image, complete, and its own records."""
    family = {"cd", *(f"cd-{i}" for i in range(2, len(names) + 1))}
    for r in range(rounds):
        project = out / str(r)
        dirs = sorted(p for p in project.iterdir() if p.is_dir())
        assert {p.name for p in dirs} == family, (r, [p.name for p in dirs])
        seen = []
        for d in dirs:
            summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
            images = [Path(i["source"]).name for i in summary["images"]]
            assert len(images) == 1 and summary["status"] == "completed", (r, d.name, summary["images"])
            assert summary["save_dir"] == str(d), (r, d, summary["save_dir"])
            assert {p.name for p in d.iterdir() if p.is_dir()} == {Path(images[0]).stem}, (r, d.name)
            check_image_folder(d / Path(images[0]).stem)
            lines = [json.loads(x) for x in (d / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
            assert [x["event"] for x in lines] == ["run", "image", "end"], (r, d.name, lines)
            no_partial_files(d)
            seen += images
        assert sorted(seen) == sorted(names), (r, seen)


@pytest.mark.slow
def test_runs_started_together_on_one_name_get_distinct_complete_folders(tmp_path, assets, tiny_pt):
    names = _sources(tmp_path / "src", assets, PROCS)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "concurrent_runs.py"),
            str(tiny_pt),
            str(tmp_path / "src"),
            str(out),
            "--procs",
            str(PROCS),
            "--rounds",
            str(ROUNDS),
        ],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = [json.loads(line) for line in proc.stdout.splitlines()]
    failed = [c for c in codes if c["code"] != 0]
    logs = {f"{c['round']}-{c['worker']}": (out / f"log-{c['round']}-{c['worker']}.txt").read_text() for c in failed}
    assert len(codes) == PROCS * ROUNDS and not failed, logs
    check_rounds(out, names, ROUNDS)


def test_eval_and_compare_claim_their_run_folder_before_writing(tmp_path):
    """``yolo-cam eval`` / ``compare`` take their folder through the same exclusive claim: two runs that ask for one
    name before either writes anything get two folders (Ultralytics' ``get_save_dir`` alone returns one name twice)."""
    from ultralytics_cam.ranking import _save_dir

    first = _save_dir("detect", tmp_path, "eval", exist_ok=False)
    second = _save_dir("detect", tmp_path, "eval", exist_ok=False)
    assert first.is_dir() and second.is_dir() and first != second
    assert (first.name, second.name) == ("eval", "eval-2")
