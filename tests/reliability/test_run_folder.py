"""Issue 21, cases 1 and 4: the run folder is the run's own, from its claim to its end.

- Case 1, deterministically, for every front end (``yolo-cam predict``, ``model.cam(save=True)``, the app, Ray):
  another run takes the name between the moment Ultralytics picks it and the moment the folder would be created.
  The run must take the next name, and leave the other run's folder as it was. (``test_concurrent_runs.py`` races
  real processes.)
- Case 4: the run folder deleted while the run goes on. The run must fail, say what was lost, and not recreate the
  folder and report every image explained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from corpus import bus, check_image_folder, write_image

from conftest import require, tiny_detector

# Ray Data's DataContext warns about its own deprecated fields while it builds and copies itself (ray 2.x); we set
# none of them (the same filter as tests/test_ray.py).
RAY_WARNINGS = "ignore:`(use_push_based_shuffle|use_polars|use_arrow_tensor_v2)` is deprecated:DeprecationWarning"
FRONT_ENDS = ["cli", "model.cam", "app", pytest.param("ray", marks=pytest.mark.filterwarnings(RAY_WARNINGS))]


@pytest.fixture(scope="module")
def tiny_pt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.pt"
    tiny_detector().save(path)
    return path


def _images(folder: Path, assets: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        write_image(folder / f"im_{i}.jpg", bus(assets, 64, 48, shift=9 * i))
    return folder


@pytest.fixture
def rival(monkeypatch):
    """Another run takes each folder name right after Ultralytics picked it (its ``get_save_dir``), as a process
    started at the same moment would; returns the folders it took."""
    import ultralytics.engine.predictor as engine_predictor

    real, taken = engine_predictor.get_save_dir, []

    def get_save_dir(args, name=None):
        folder = Path(real(args, name))
        if args.save and not args.exist_ok and not getattr(args, "resume", False):
            folder.mkdir(parents=True)
            (folder / "rival.txt").write_text("another run's folder", encoding="utf-8")
            taken.append(folder)
        return folder

    monkeypatch.setattr(engine_predictor, "get_save_dir", get_save_dir)
    return taken


def _run(front_end: str, tiny_pt: Path, src: Path, project: Path, request) -> None:
    opts = {"imgsz": 64, "max_det": 2}
    if front_end == "cli":
        from ultralytics_cam import cli

        args = [f"{k}={v}" for k, v in opts.items()]
        assert cli.main(["predict", f"model={tiny_pt}", f"source={src}", f"project={project}", "name=cd", *args]) == 0
    elif front_end == "model.cam":
        from ultralytics import YOLO

        YOLO(tiny_pt).cam(src, save=True, project=project, name="cd", verbose=False, **opts)
    elif front_end == "app":
        import importlib.util

        require(
            importlib.util.find_spec("gradio") is not None, 'the app needs Gradio: pip install "ultralytics-cam[app]"'
        )
        from ultralytics_cam.app.runner import RunController
        from ultralytics_cam.app.settings import build_settings

        controller = RunController()
        controller.start(build_settings(model=str(tiny_pt), source=str(src), project=str(project), imgsz=64))
        state = controller.wait(120)
        assert state.status == "completed", state
        assert Path(state.save_dir).name == "cam-2", state.save_dir  # the app shows the folder it wrote
    else:
        request.getfixturevalue("ray_cluster")
        from ultralytics_cam.distributed import cam_ray

        summary = cam_ray(str(tiny_pt), src, workers=1, project=project, name="cd", **opts)
        assert summary["status"] == "completed", summary


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_a_name_taken_after_ultralytics_picked_it_is_not_shared(tmp_path, assets, tiny_pt, rival, front_end, request):
    src = _images(tmp_path / "src", assets, 2)
    project = tmp_path / "out"
    name = "cam" if front_end == "app" else "cd"  # the app names its runs as model.cam does
    _run(front_end, tiny_pt, src, project, request)

    assert [p.name for p in rival] == [name], rival
    assert sorted(p.name for p in (project / name).iterdir()) == ["rival.txt"], "the other run's folder was written"
    mine = project / f"{name}-2"
    summary = json.loads((mine / "summary.json").read_text(encoding="utf-8"))
    assert summary["save_dir"] == str(mine) and summary["counts"]["images"] == 2
    for i in range(2):
        check_image_folder(mine / f"im_{i}")


# -- case 4: the run folder deleted while the run goes on --------------------------------------------------------------
def test_a_run_folder_deleted_mid_run_fails_and_says_what_was_lost(tmp_path, assets, tiny_pt, capsys, monkeypatch):
    from ultralytics_cam import cli, summary

    src = _images(tmp_path / "src", assets, 5)
    save_dir = tmp_path / "out" / "cam"
    real = summary.CamRun.record_image

    def record_then_delete(self, line, sync=True):
        real(self, line, sync)
        if len(self.images) == 2:  # someone deletes the folder (a cleanup script, rm -rf by mistake)
            shutil.rmtree(save_dir)

    monkeypatch.setattr(summary.CamRun, "record_image", record_then_delete)
    code = cli.main(["predict", f"model={tiny_pt}", f"source={src}", f"project={tmp_path / 'out'}", "imgsz=64"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert "deleted" in err and "2 images" in err and "lost" in err, err
    assert "explained" not in err, err
    assert not save_dir.exists(), f"the folder was recreated: {sorted(p.name for p in save_dir.rglob('*'))}"


def test_a_manifest_deleted_mid_run_fails_and_says_what_was_lost(tmp_path, assets, tiny_pt, capsys, monkeypatch):
    from ultralytics_cam import cli, summary

    src = _images(tmp_path / "src", assets, 5)
    save_dir = tmp_path / "out" / "cam"
    real = summary.CamRun.record_image

    def record_then_delete(self, line, sync=True):
        real(self, line, sync)
        if len(self.images) == 2:
            (save_dir / "manifest.jsonl").unlink()

    monkeypatch.setattr(summary.CamRun, "record_image", record_then_delete)
    code = cli.main(["predict", f"model={tiny_pt}", f"source={src}", f"project={tmp_path / 'out'}", "imgsz=64"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED, err
    assert "manifest.jsonl was deleted" in err and "2 images" in err, err
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir()) == ["im_0", "im_1"], "kept, none added"
