"""``engine=ray`` (SPEC §11): the same run on a Ray Data actor pool writes what a local run writes.

Every test here shares one local Ray cluster (the session fixture ``ray_cluster``, 2 CPUs) and one folder of 50
images with bad files mixed in, explained once locally as the reference.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
from test_resume import IMAGE_FILES, assert_same_outputs, image_lines, leftovers, without_timings

from ultralytics_cam.manifest import MANIFEST_NAME, Manifest

from conftest import cli_env, model_file, render

# Ray Data's DataContext warns about its own deprecated fields while it builds and copies itself (ray 2.x); we set
# none of them.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`(use_push_based_shuffle|use_polars|use_arrow_tensor_v2)` is deprecated:DeprecationWarning"
)

N = 50
OPTIONS = {"imgsz": 96, "max_det": 5}
NAMES = [f"im{i:03d}" for i in range(N)]
BAD = ["broken.jpg", "empty.png"]  # unreadable images; "notes.txt" is an unsupported type


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("ray") / "imgs"
    src.mkdir()
    for i, name in enumerate(NAMES):
        cv2.imwrite(str(src / f"{name}.png"), render("detect", seed=100 + i, imgsz=96)[0])
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (src / "empty.png").write_bytes(b"")
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.fixture(scope="module")
def local_run(images, tmp_path_factory) -> Path:
    """The reference: the same images explained by a local run."""
    from conftest import trained

    project = tmp_path_factory.mktemp("local")
    trained("detect").cam(images, save=True, project=project, verbose=False, **OPTIONS)
    return project / "cam"


def summary_of(save_dir: Path) -> dict:
    return json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))


def assert_same_run(save_dir: Path, reference: Path) -> None:
    """Per-image outputs, counts, images and skipped list equal the local run's (timings and order aside)."""
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir()) == NAMES
    assert_same_outputs(save_dir, reference, NAMES)
    ray_summary, local = summary_of(save_dir), summary_of(reference)
    assert ray_summary["status"] == "completed"
    assert (
        ray_summary["counts"]
        == local["counts"]
        == {
            "images": N,
            "videos": 0,
            "frames": 0,
            "predictions": local["counts"]["predictions"],
            "skipped": 3,
        }
    )
    assert sorted(without_timings(ray_summary["images"]), key=str) == sorted(without_timings(local["images"]), key=str)
    assert ray_summary["skipped"] == local["skipped"]
    assert sorted(Path(s["source"]).name for s in local["skipped"]) == sorted([*BAD, "notes.txt"])
    assert ray_summary["settings"]["cam"] == local["settings"]["cam"]
    lines = image_lines(save_dir)
    assert sorted(x["folder"] for x in lines) == NAMES, "every image recorded exactly once"
    assert not leftovers(save_dir)


def ray_worker_pids() -> list[int]:
    import psutil

    pids = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "CamWorker" in cmd:  # Ray titles an actor's process after its class: ray::MapWorker(MapBatches(CamWorker))
            pids.append(p.pid)
    return pids


@pytest.mark.slow
def test_ray_run_writes_what_a_local_run_writes(ray_cluster, images, local_run, tmp_path):
    from ultralytics_cam.distributed import cam_ray

    summary = cam_ray(str(model_file("detect")), images, workers=2, project=tmp_path, **OPTIONS)
    save_dir = tmp_path / "cam"
    assert summary == summary_of(save_dir)
    assert_same_run(save_dir, local_run)
    (session,) = [x for x in Manifest(save_dir).lines() if x.get("event") == "run"]
    assert session["engine"] == "ray"


@pytest.mark.slow
def test_ray_worker_killed_mid_run_still_does_every_image_once(ray_cluster, images, local_run, tmp_path):
    """SIGKILL one actor part-way: Ray restarts it and retries its batch; every image ends done exactly once."""
    from ultralytics_cam.distributed import cam_ray

    save_dir = tmp_path / "cam"
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["summary"] = cam_ray(
                str(model_file("detect")), images, workers=2, batch_size=2, project=tmp_path, **OPTIONS
            )
        except BaseException as e:  # reported by the assertion below
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.time() + 300
    while thread.is_alive() and time.time() < deadline:
        pids = ray_worker_pids()
        if pids and (save_dir / MANIFEST_NAME).exists() and len(image_lines(save_dir)) >= 4:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.01)
    done_at_kill = len(image_lines(save_dir))
    thread.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert killed is not None and done_at_kill < N, "a worker was killed while the run was going"
    assert killed not in ray_worker_pids()
    assert_same_run(save_dir, local_run)


@pytest.mark.slow
def test_ray_resume_after_the_driver_is_stopped(ray_cluster, images, local_run, tmp_path):
    """A driver (its own process, joining the cluster through RAY_ADDRESS) killed part-way, then resumed."""
    from ultralytics_cam.distributed import cam_ray

    code = (
        "import sys; from ultralytics_cam.distributed import cam_ray; "
        f"cam_ray(sys.argv[1], sys.argv[2], workers=2, batch_size=2, project=sys.argv[3], **{OPTIONS!r})"
    )
    env = {**cli_env(tmp_path, block_downloads=False), "RAY_ADDRESS": ray_cluster}  # Ray talks to a local server
    driver = subprocess.Popen(
        [sys.executable, "-c", code, str(model_file("detect")), str(images), str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    save_dir = tmp_path / "cam"
    deadline = time.time() + 300
    while driver.poll() is None and time.time() < deadline:
        if (save_dir / MANIFEST_NAME).exists() and len(image_lines(save_dir)) >= 4:
            break
        time.sleep(0.01)
    assert driver.poll() is None, f"the driver ended before it could be stopped: {driver.stderr.read()[-2000:]}"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    driver.stderr.close()
    before = len(image_lines(save_dir))
    assert 4 <= before < N and not (save_dir / "summary.json").exists()

    summary = cam_ray(str(model_file("detect")), images, workers=2, project=tmp_path, resume=True, **OPTIONS)
    assert summary["sessions"] == 2 and summary["save_dir"] == str(save_dir)
    assert_same_run(save_dir, local_run)
    for name in NAMES:
        assert sorted(p.name for p in (save_dir / name).iterdir()) == IMAGE_FILES


@pytest.fixture
def no_ray(monkeypatch):
    """Imports of ray fail as they do where the [ray] extra is not installed (ray itself may be installed here)."""
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)


def test_engine_ray_without_ray_says_how_to_install_it(no_ray):
    from ultralytics_cam import distributed

    with pytest.raises(ImportError, match=r'pip install "ultralytics-cam\[ray\]"'):
        distributed.import_ray()


def test_output_names_follow_ultralytics_deduplication():
    from ultralytics_cam.distributed import output_names

    files = ["/a/bus.jpg", "/b/bus.jpg", "/a/bus.png", "/a/zidane.jpg"]
    assert output_names(files, set()) == ["bus", "bus-2", "bus-3", "zidane"]
    assert output_names(files[1:], {"bus"}) == ["bus-2", "bus-3", "zidane"]


@pytest.mark.slow
def test_cli_engine_ray_joins_the_cluster_of_ray_address(ray_cluster, images, local_run, tmp_path):
    """``yolo-cam predict engine=ray`` in its own process: joins RAY_ADDRESS, writes the run, resumes to a no-op."""
    env = {**cli_env(tmp_path, block_downloads=False), "RAY_ADDRESS": ray_cluster}  # Ray talks to a local server
    script = Path(sys.executable).with_name("yolo-cam")
    args = [script, "predict", f"model={model_file('detect')}", f"source={images}", "engine=ray", "workers=2"]
    args += [f"{k}={v}" for k, v in OPTIONS.items()]
    proc = subprocess.run(args, cwd=tmp_path, env=env, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{N} images explained on Ray" in proc.stderr and "3 inputs skipped" in proc.stderr
    save_dir = tmp_path / "runs" / "detect" / "cam"
    assert_same_run(save_dir, local_run)
    again = subprocess.run(
        [*args, "resume=True"], cwd=tmp_path, env=env, check=False, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(image_lines(save_dir)) == N and summary_of(save_dir)["sessions"] == 2


def test_cli_engine_ray_without_ray_says_how_to_install_it(no_ray, capsys):
    from ultralytics.utils import ASSETS

    from ultralytics_cam import cli

    assert cli.main(["predict", f"model={model_file('detect')}", f"source={ASSETS}", "engine=ray"]) == cli.EXIT_USAGE
    assert 'pip install "ultralytics-cam[ray]"' in capsys.readouterr().err


def test_cli_refuses_an_unknown_engine(capsys):
    from ultralytics_cam import cli

    assert cli.main(["predict", "model=x.pt", "source=.", "engine=spark"]) == cli.EXIT_USAGE
    assert "engine='spark' is not valid: use one of local, ray" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_run_with_an_in_memory_model(ray_cluster, tmp_path):
    """A model without a weights file (built from YAML, changed in memory) reaches the actors through Ray's store."""
    from ultralytics_cam.distributed import cam_ray

    from conftest import tiny_detector

    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"im{i}.png"), render("detect", seed=i, imgsz=96)[0])
    model = tiny_detector()
    assert getattr(model, "ckpt_path", None) is None
    summary = cam_ray(model, src, workers=1, imgsz=64, max_det=3, project=tmp_path / "ray")
    model.cam(src, save=True, imgsz=64, max_det=3, project=tmp_path / "local", verbose=False)
    assert summary["counts"]["images"] == 3 and summary["counts"]["predictions"] == 9
    for i in range(3):
        a, b = (tmp_path / run / "cam" / f"im{i}" / "heatmap.npy" for run in ("ray", "local"))
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_cli_engine_ray_sigterm_writes_an_interrupted_summary_and_resumes(ray_cluster, images, local_run, tmp_path):
    """SIGTERM to ``yolo-cam predict engine=ray``: the pool stops, summary.json says interrupted for what is done,
    the exit code is 143 as for a local run, and ``resume=True`` goes on to the complete run."""
    env = {**cli_env(tmp_path, block_downloads=False), "RAY_ADDRESS": ray_cluster}  # Ray talks to a local server
    script = Path(sys.executable).with_name("yolo-cam")
    args = [script, "predict", f"model={model_file('detect')}", f"source={images}", "engine=ray", "workers=2"]
    args += [f"{k}={v}" for k, v in OPTIONS.items()]
    t0 = time.time()
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    save_dir = tmp_path / "runs" / "detect" / "cam"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (save_dir / MANIFEST_NAME).exists() and len(image_lines(save_dir)) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be stopped: {proc.stderr.read()[-2000:]}"
    signalled = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    stop_seconds, total_seconds = time.time() - signalled, time.time() - t0
    assert proc.returncode == 143, err[-3000:]

    summary = summary_of(save_dir)
    done = image_lines(save_dir)
    assert summary["status"] == "interrupted" and summary["interrupted"] is True
    assert 4 <= summary["counts"]["images"] == len(done) < N
    assert sorted(i["folder"] for i in summary["images"]) == sorted(x["folder"] for x in done)
    assert (
        Manifest(save_dir).lines()[-1]["event"] == "end" and Manifest(save_dir).lines()[-1]["status"] == "interrupted"
    )
    assert f"interrupted after {len(done)} images" in err
    for line in done:
        assert sorted(p.name for p in (save_dir / line["folder"]).iterdir()) == IMAGE_FILES

    from ultralytics_cam.distributed import cam_ray

    resumed = cam_ray(
        str(model_file("detect")), images, workers=2, project=tmp_path / "runs" / "detect", resume=True, **OPTIONS
    )
    assert resumed["sessions"] == 2 and resumed["save_dir"] == str(save_dir)
    assert_same_run(save_dir, local_run)
    print(
        f"\nray SIGTERM: {len(done)} of {N} images done at the signal, exit 143 {stop_seconds:.1f}s after it "
        f"({total_seconds:.1f}s from start)"
    )
