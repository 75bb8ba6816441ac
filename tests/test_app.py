"""The app's logic without a browser: form -> run, start, stop, progress events, error mapping, words, choices."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import torch

from ultralytics_cam.app import i18n
from ultralytics_cam.app.choices import device_choices, method_choices, model_info
from ultralytics_cam.app.runner import RunBusyError, RunController, RunFailure, RunState, explain_error
from ultralytics_cam.app.settings import FormError, build_settings
from ultralytics_cam.app.view import errors_markdown, format_seconds, gallery_value, status_html
from ultralytics_cam.errors import LayerError

from conftest import MODELS, ROOT, require

DEMO_MODEL = ROOT / "ultralytics_cam" / "assets" / "models" / "detect.pt"  # shipped: the demo model
DEMO_IMAGES = ROOT / "ultralytics_cam" / "assets" / "demo"
DEMO_PNGS = sorted(DEMO_IMAGES.glob("*.png"))


def images_folder(root: Path, copies: int = 1) -> Path:
    """A folder of the demo images as jpg, png, bmp and webp, named in Chinese, deep enough for a long path."""
    folder = root / "输入图片" / ("很长的文件夹名称" * 6) / ("long folder name " * 8).strip()
    folder.mkdir(parents=True)
    exts = (".jpg", ".png", ".bmp", ".webp")
    for c in range(copies):
        for i, png in enumerate(DEMO_PNGS):
            cv2.imwrite(str(folder / f"形状_{c}_{i}{exts[i % 4]}"), cv2.imread(str(png)))
    return folder


def require_gradio() -> None:
    """Skip without Gradio (the optional [app] extra), except in CI, which installs it: there, fail."""
    __tracebackhide__ = True
    require(importlib.util.find_spec("gradio") is not None, 'the app needs Gradio: pip install "ultralytics-cam[app]"')


def settings_for(source, project, **form):
    return build_settings(model=str(DEMO_MODEL), source=str(source), project=str(project), imgsz=320, **form)


class Events(list):
    """Every snapshot a controller publishes."""

    def __call__(self, state: RunState) -> None:
        self.append(state)


# -- form -> run ------------------------------------------------------------------------------------------------------
def test_form_builds_a_predict_run(tmp_path):
    s = build_settings(
        model=f'"{DEMO_MODEL}"',  # pasted with quotes, as Windows' "Copy as path" gives it
        source=str(DEMO_IMAGES),
        project=str(tmp_path / "out"),
        method="EigenCAM",
        layers="16, 19",
        device="cpu",
        conf=0.2,
        max_det=7.0,  # Gradio's numbers are floats
        imgsz=320,
        show_boxes=False,
        renormalize=True,
    )
    assert s.model == str(DEMO_MODEL)
    assert s.source == str(DEMO_IMAGES)
    assert s.cam == {"method": "EigenCAM", "layers": "16, 19", "show_boxes": False, "renormalize": True}
    assert s.ultralytics == {
        "conf": 0.2,
        "max_det": 7,
        "imgsz": 320,
        "device": "cpu",
        "project": str((tmp_path / "out").resolve()),
    }
    kwargs = s.predictor_kwargs()
    assert kwargs["save"] is True and kwargs["max_det"] == 7 and kwargs["method"] == "EigenCAM"


def test_form_uploads_replace_the_folder_and_empty_output_means_ultralytics_default(tmp_path):
    uploads = [str(p) for p in DEMO_PNGS[:2]]
    s = build_settings(model=str(DEMO_MODEL), source="", uploads=uploads, project="")
    assert s.source == uploads
    assert "project" not in s.ultralytics


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"model": ""}, "weights file is missing"),
        ({"model": "nowhere/best.pt"}, "does not exist"),
        ({"model": "__onnx__"}, "is a '.onnx' file. Gradient methods need PyTorch weights (.pt)"),
        ({"source": ""}, "input is missing"),
        ({"source": "nowhere/imgs"}, "does not exist"),
        ({"conf": 1.5}, "'conf=1.5' is an invalid value. Valid 'conf' values are between 0.0 and 1.0"),
        ({"conf": -0.1}, "'conf=-0.1' is an invalid value. Valid 'conf' values are between 0.0 and 1.0"),
        ({"max_det": 0}, "'max_det=0' is an invalid value. 'max_det' must be >= 1"),
        ({"imgsz": 16}, "imgsz=16 is not valid: use an image size of at least 32"),
        ({"max_det": 2.5}, "whole number"),
        ({"imgsz": None}, "imgsz=None is not a number"),
        ({"method": "GradCam++x"}, "not a known CAM method"),
        ({"method": "FullGrad"}, "not supported"),
    ],
)
def test_form_errors_name_the_field(tmp_path, form, words):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"not a model")
    base = {"model": str(DEMO_MODEL), "source": str(DEMO_IMAGES), "project": str(tmp_path)}
    base.update({k: (str(onnx) if v == "__onnx__" else v) for k, v in form.items()})
    with pytest.raises(FormError, match=re.escape(words)):
        build_settings(**base)


def test_form_refuses_an_output_folder_that_is_a_file(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(FormError, match="is a file"):
        build_settings(model=str(DEMO_MODEL), source=str(DEMO_IMAGES), project=str(tmp_path / "out"))


# -- runs -------------------------------------------------------------------------------------------------------------
def test_run_completes_with_progress_events_and_the_predict_layout(tmp_path):
    source = images_folder(tmp_path)
    project = tmp_path / "输出"
    (project / "cam").mkdir(parents=True)  # an earlier run: never overwritten, the new one is cam-2
    events = Events()
    controller = RunController()
    controller.subscribe(events)
    controller.start(settings_for(source, project))
    state = controller.wait(120)
    assert state.status == "completed", state.failure
    save_dir = project / "cam-2"
    assert state.save_dir == str(save_dir)
    assert state.done == state.total == 4
    assert [i.name for i in state.items] == sorted(p.name for p in source.iterdir())
    for item in state.items:
        assert Path(item.folder).parent == save_dir
        assert Path(item.heatmap).is_file() and Path(item.detection).is_file()
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["interrupted"] is False
    assert summary["counts"]["images"] == 4
    assert list((project / "cam").iterdir()) == []
    # progress events: starting, then running with 1, 2, 3, 4 done, then completed; versions always grow
    statuses = [e.status for e in events]
    assert statuses[0] == "starting" and statuses[-1] == "completed" and "running" in statuses
    done = [e.done for e in events if e.status == "running"]
    assert sorted(set(done)) == [0, 1, 2, 3, 4] and done == sorted(done)
    assert all(a.version < b.version for a, b in itertools.pairwise(events))
    assert any(e.current for e in events if e.status == "running")
    rates = [e for e in events if e.status == "running" and e.done >= 2]
    assert all(e.rate > 0 and e.eta is not None for e in rates)
    assert gallery_value(state) == [(i.heatmap, i.name) for i in state.items]


def test_stop_keeps_finished_images_and_summary_says_interrupted(tmp_path):
    source = images_folder(tmp_path, copies=10)  # 40 images
    controller = RunController()

    def stop_after_two(state: RunState) -> None:
        if state.status == "running" and state.done == 2:
            controller.stop()

    controller.subscribe(stop_after_two)
    controller.start(settings_for(source, tmp_path / "out"))
    state = controller.wait(120)
    assert state.status == "interrupted"
    assert state.done == 2 and len(state.items) == 2 and state.total == 40
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] is True and summary["status"] == "interrupted"
    assert [Path(i["source"]).name for i in summary["images"]] == [i.name for i in state.items]
    for item in state.items:
        files = {p.name for p in Path(item.folder).iterdir()}
        assert {"detection.png", "heatmap.png", "heatmap.npy", "cam.json"} <= files
    folders = [p for p in (tmp_path / "out" / "cam").iterdir() if p.is_dir()]
    assert len(folders) == 2  # nothing half-written for the images after the stop
    assert not controller.stop()  # nothing left to stop


def test_stop_while_the_model_loads_starts_nothing(tmp_path):
    controller = RunController()
    controller.subscribe(lambda state: controller.stop() if state.status == "starting" else None)
    controller.start(settings_for(DEMO_IMAGES, tmp_path / "out"))
    state = controller.wait(60)
    assert state.status == "interrupted" and state.done == 0
    assert not (tmp_path / "out").exists()


def test_second_start_is_refused_while_a_run_is_in_progress(tmp_path):
    source = images_folder(tmp_path, copies=5)
    controller = RunController()
    controller.start(settings_for(source, tmp_path / "out"))
    with pytest.raises(RunBusyError):
        controller.start(settings_for(source, tmp_path / "out"))
    assert controller.is_running()
    deadline = time.time() + 120
    while controller.snapshot().done < 1 and time.time() < deadline:
        time.sleep(0.05)
    controller.stop()
    state = controller.wait(120)
    assert state.status == "interrupted"
    assert len(list((tmp_path / "out").iterdir())) == 1  # only the first run made a folder
    controller.start(settings_for(DEMO_PNGS[0], tmp_path / "out"))  # once it has ended, a new run starts
    assert controller.wait(120).status == "completed"


def test_bad_weights_fail_with_advice_and_no_stack_trace(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"these bytes are not a model")
    controller = RunController()
    controller.start(build_settings(model=str(bad), source=str(DEMO_IMAGES), project=str(tmp_path / "out")))
    state = controller.wait(60)
    assert state.status == "failed"
    assert state.failure.kind == "weights"
    assert "best.pt" in state.failure.message
    page = status_html(state, "en", str)
    assert i18n.translate("advice_weights", "en").split(" (")[0] in page
    assert "Traceback" not in page and 'File "' not in page
    assert not (tmp_path / "out").exists()  # nothing written for a run that never started


def test_cuda_out_of_memory_fails_with_advice_and_summary_says_failed(tmp_path, monkeypatch):
    from ultralytics_cam import api

    real = api.cam_predictor

    def out_of_memory_on_second_image(model, **kwargs):
        predictor = real(model, **kwargs)
        seen = []

        def allocate(p):
            seen.append(1)
            if len(seen) == 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        predictor.add_callback("on_predict_batch_start", allocate)
        return predictor

    monkeypatch.setattr(api, "cam_predictor", out_of_memory_on_second_image)
    controller = RunController()
    controller.start(settings_for(DEMO_IMAGES, tmp_path / "out"))
    state = controller.wait(60)
    assert state.status == "failed"
    assert state.failure.kind == "cuda_oom"
    assert state.done == 1 and len(state.items) == 1  # the finished image is kept and shown
    page = status_html(state, "zh-Hans", str)
    assert "CUDA out of memory" in page and i18n.translate("advice_cuda_oom", "zh-Hans") in page
    assert "Traceback" not in page
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed" and "OutOfMemoryError" in summary["error"]


def test_per_image_errors_are_listed_and_the_run_goes_on(tmp_path, monkeypatch):
    import ultralytics_cam.summary as summary_module

    listings = []  # every listing of the source folder's unsupported files

    def counted(source):
        listings.append(source)
        return unsupported_inputs(source)

    unsupported_inputs = summary_module.unsupported_inputs
    monkeypatch.setattr(summary_module, "unsupported_inputs", counted)
    source = tmp_path / "imgs"
    source.mkdir()
    for png in DEMO_PNGS[:2]:
        shutil.copy(png, source / png.name)
    (source / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (source / "notes.txt").write_text("not an image")
    events = Events()
    controller = RunController()
    controller.subscribe(events)
    controller.start(settings_for(source, tmp_path / "out"))
    state = controller.wait(60)
    assert state.status == "completed"
    assert len(state.items) == 2
    listed = {Path(e["source"]).name for e in state.image_errors}
    assert listed == {"broken.jpg", "notes.txt"}
    # every progress event lists the errors met so far, yet the folder is listed once per run
    running = [e for e in events if e.status == "running" and e.done >= 1]
    assert running and all("notes.txt" in {Path(x["source"]).name for x in e.image_errors} for e in running)
    assert len(listings) == 1, listings
    text = errors_markdown(state, "en")
    assert "broken.jpg" in text and "notes.txt" in text


def test_explain_error_maps_stages_and_kinds():
    assert explain_error(RuntimeError("CUDA out of memory. Tried ..."), "run").kind == "cuda_oom"
    assert explain_error(torch.cuda.OutOfMemoryError("x"), "setup").kind == "cuda_oom"
    assert explain_error(ValueError("Invalid CUDA 'device=cuda:3' requested."), "setup").kind == "device"
    assert explain_error(LayerError("layers=[99] is not a layer"), "setup").kind == "options"
    assert explain_error(OSError("unpickling"), "load").kind == "weights"
    other = explain_error(KeyError("boom"), "run")
    assert other == RunFailure("other", "KeyError: 'boom'")
    assert all(f"advice_{k}" in i18n.TEXTS for k in ("weights", "cuda_oom", "device", "options", "source", "other"))


# -- what the page shows ----------------------------------------------------------------------------------------------
def test_status_shows_done_total_rate_eta_and_current_file():
    state = RunState(status="running", done=3, total=10, rate=2.0, eta=3.5, current="形状 <1>.jpg", save_dir="/r/cam")
    page = status_html(state, "en", lambda p: f"file={p}")
    assert "3 / 10 images" in page and "2.00 images/s" in page and "ETA 0:04" in page
    assert "形状 &lt;1&gt;.jpg" in page  # file names are escaped
    assert 'value="0.3000"' in page and 'data-status="running"' in page
    done = RunState(status="completed", done=10, total=10, save_dir="/r/cam", report="/r/cam/index.html")
    assert 'href="file=/r/cam/index.html"' in status_html(done, "zh-Hant", lambda p: f"file={p}")
    assert format_seconds(3725) == "1:02:05" and format_seconds(None) == ""


def test_every_text_has_all_three_languages():
    for key, entry in i18n.TEXTS.items():
        assert set(entry) == set(i18n.LANGUAGES), key
        assert all(v.strip() for v in entry.values()), key
    assert i18n.translate("start", "zh-Hans") == "开始" and i18n.translate("start", "zh-Hant") == "開始"
    with pytest.raises(ValueError, match="zh-Hans"):
        i18n.check_lang("zh")


# -- choices ----------------------------------------------------------------------------------------------------------
def test_choices_come_from_the_registry_the_weights_and_this_machine():
    from ultralytics_cam.plugins import method_specs

    names = [name for _, name in method_choices()]
    assert names == [n for n, s in method_specs().items() if s.refused is None]
    assert "FullGrad" not in names and "HiResCAM" in names
    assert all(label.startswith(f"{name}: ") for label, name in method_choices())
    devices = device_choices()
    assert devices[-1] == "cpu" and len(devices) == 1 + torch.cuda.device_count() * torch.cuda.is_available()
    info = model_info(str(MODELS / "segment.pt"), 320)
    assert info.task == "segment"
    auto = [row[0] for row in info.layers if row[4] == "auto"]
    assert info.auto == ",".join(map(str, auto)) and auto
    assert info.layers[0][3].startswith("1x")  # output shapes at the chosen size


@pytest.mark.slow
def test_app_package_imports_no_gradio_until_the_page_is_built():
    code = (
        "import sys, ultralytics_cam.app, ultralytics_cam.app.runner, ultralytics_cam.app.settings, "
        "ultralytics_cam.app.view, ultralytics_cam.app.ui; print('gradio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_without_gradio_the_app_says_how_to_install_it(monkeypatch, capsys):
    from ultralytics_cam import cli
    from ultralytics_cam.app import create_app

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    with pytest.raises(ImportError, match=r'pip install "ultralytics-cam\[app\]"'):
        create_app()
    assert cli.main(["app"]) == cli.EXIT_FAILED
    assert 'pip install "ultralytics-cam[app]"' in capsys.readouterr().err


def test_cli_app_checks_its_keys(capsys):
    from ultralytics_cam import cli

    assert cli.main(["app", "lang=fr"]) == cli.EXIT_USAGE
    assert "zh-Hant" in capsys.readouterr().err
    assert cli.main(["app", "port=70000"]) == cli.EXIT_USAGE
    assert cli.main(["app", "hots=0.0.0.0"]) == cli.EXIT_USAGE
    assert "Did you mean 'host'" in capsys.readouterr().err
    assert cli.main(["app", "help"]) == cli.EXIT_OK
    assert "127.0.0.1" in capsys.readouterr().out


@pytest.mark.slow
def test_the_page_speaks_the_chosen_language():
    require_gradio()
    from ultralytics_cam.app import create_app

    for lang, start, ready in (("en", "Start", "Ready."), ("zh-Hans", "开始", "就绪"), ("zh-Hant", "開始", "就緒")):
        blocks, _ = create_app(lang=lang, model=str(DEMO_MODEL), source=str(DEMO_IMAGES))
        config = json.dumps(blocks.get_config_file(), ensure_ascii=False, default=str)
        assert f'"value": "{start}"' in config, lang
        assert i18n.translate("max_det_info", lang) in config  # the 'ratio' explanation
        assert ready in status_html(RunState(), lang, str)


@pytest.mark.slow
def test_closing_the_app_stops_the_run_and_writes_summary_json(tmp_path):
    require_gradio()
    import socket

    from ultralytics_cam.app import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch(port=port)
    assert app.url == f"http://127.0.0.1:{port}/"
    started = []
    app.controller.subscribe(lambda st: started.append(st.done))
    app.controller.start(settings_for(images_folder(tmp_path, copies=10), tmp_path / "out"))
    deadline = time.time() + 120
    while not any(started) and time.time() < deadline:
        time.sleep(0.1)
    app.close(timeout=120)  # what Ctrl-C on 'yolo-cam app' does
    state = app.controller.snapshot()
    assert state.status == "interrupted" and 1 <= state.done < 40
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] is True and summary["counts"]["images"] == state.done
