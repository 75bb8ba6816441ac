"""``yolo-cam app`` in a real headless Chromium: the real command serves the page, Playwright fills and presses it.

One app (a ``yolo-cam app`` subprocess on a free port) serves the module's tests one after another, as one user would
use it. After the finished run the page is screenshotted; with UPDATE_SCREENSHOTS=1 it is saved to
docs/images/app.png, the screenshot the README shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from browser import ConsoleErrors, browser
from test_app import images_folder, require_gradio

from conftest import MODELS, ROOT

pytestmark = pytest.mark.slow

SCREENSHOT = ROOT / "docs" / "images" / "app.png"  # refreshed when UPDATE_SCREENSHOTS=1 (else a temporary file)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_cwd(tmp_path_factory):
    """The folder the app is started in (its Browse panel starts there)."""
    return tmp_path_factory.mktemp("app")


@contextlib.contextmanager
def serve_app(cwd, *args: str):
    """Run ``yolo-cam app`` on a free port in ``cwd``; yield ``(process, url, log file)``; stop it."""
    require_gradio()
    port = _free_port()
    log = open(cwd / "app.log", "w+", encoding="utf-8")  # noqa: SIM115  (closed below, after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ultralytics_cam.cli", "app", f"port={port}", *args],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:  # the URL is printed for the user once the server answers
            log.seek(0)
            printed = log.read()
            if f"the app is running at {url}" in printed:
                break
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"yolo-cam app did not start:\n{printed}")
            time.sleep(0.5)
        urllib.request.urlopen(url, timeout=10).close()
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def app_url(app_cwd):
    """One ``yolo-cam app`` for the module's tests; yields its URL."""
    with serve_app(app_cwd) as (_, url, _):
        yield url


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module."""
    with browser() as b:
        yield b


@pytest.fixture
def console_errors():
    """Console errors of every tab a test opens; the test fails on any."""
    errors = ConsoleErrors()
    yield errors
    assert errors == [], errors


def open_tab(chromium, url, errors):
    p = errors.attach(chromium.new_page(viewport={"width": 1280, "height": 900}))
    p.goto(url)
    p.wait_for_selector("#cam-start")
    return p


@pytest.fixture
def page(chromium, app_url, console_errors):
    """A fresh tab on the app."""
    p = open_tab(chromium, app_url, console_errors)
    yield p
    p.close()


def fill(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")  # Gradio sends a changed value on blur


def wait_for_status(page, *statuses: str, timeout: float = 120) -> str:
    selector = ", ".join(f'#cam-status[data-status="{s}"]' for s in statuses)
    page.wait_for_selector(selector, timeout=timeout * 1000)
    return page.get_attribute("#cam-status", "data-status")


def start_and_wait(page, timeout: float = 120) -> str:
    """Press Start and return how the new run ended (not the previous run, which the page shows until then)."""
    before = int(page.get_attribute("#cam-status", "data-version"))
    page.click("#cam-start")
    page.wait_for_function(
        "([v, ends]) => { const s = document.querySelector('#cam-status');"
        " return s && Number(s.dataset.version) > v && ends.includes(s.dataset.status); }",
        arg=[before, ["completed", "interrupted", "failed"]],
        timeout=timeout * 1000,
    )
    return page.get_attribute("#cam-status", "data-status")


def test_a_run_from_the_page_writes_the_folders_and_fills_the_gallery(
    page, chromium, app_url, console_errors, tmp_path
):
    source = images_folder(tmp_path)
    out = tmp_path / "输出 folder"
    page.wait_for_function("document.querySelector('#cam-task textarea, #cam-task input').value === 'detect'")
    fill(page, "cam-source", source)
    fill(page, "cam-project", out)
    fill(page, "cam-imgsz", 320)
    assert start_and_wait(page) == "completed", page.inner_text("#cam-status")
    save_dir = out / "cam"
    folders = sorted(p.name for p in save_dir.iterdir() if p.is_dir())
    assert folders == sorted(p.stem for p in source.iterdir())
    for f in folders:
        assert (save_dir / f / "detection.png").is_file() and (save_dir / f / "heatmap.png").is_file()
    summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["counts"]["images"] == 4
    assert "4 / 4" in page.inner_text("#cam-status") and str(save_dir) in page.inner_text("#cam-status")
    served = page.request.get(app_url + page.get_attribute("#cam-summary", "href"))  # the run folder is served
    assert served.ok and served.json()["status"] == "completed"
    has_report = (save_dir / "index.html").is_file()
    assert page.locator("#cam-report").count() == int(has_report)  # linked exactly when the run wrote one
    if has_report:
        with page.expect_popup() as popup:
            page.click("#cam-report")  # the report opens from the app, in a new tab
        report = popup.value
        report.wait_for_load_state()
        assert "index.html" in report.url and report.locator("body").inner_text().strip()
        report.close()

    gallery = page.locator("#cam-gallery img")
    gallery.first.wait_for()
    page.wait_for_function("document.querySelectorAll('#cam-gallery img').length >= 4")
    text = page.inner_text("#cam-gallery")
    assert all(p.name in text for p in source.iterdir())  # every finished image, captioned with its file name
    gallery.first.click()  # full size, beside its detection.png
    page.locator("#cam-detection img").wait_for()
    page.locator("#cam-heatmap img").wait_for()

    # A second tab sees the same run.
    other = open_tab(chromium, app_url, console_errors)
    assert wait_for_status(other, "completed", timeout=30) == "completed"
    other.wait_for_function("document.querySelectorAll('#cam-gallery img').length >= 4")
    other.close()

    shot = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "app.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a real page, not a blank one


def test_stop_from_the_page_keeps_the_finished_images(page, chromium, app_url, console_errors, tmp_path):
    source = images_folder(tmp_path, copies=50)  # 200 images at imgsz=1280: far longer than the test waits
    out = tmp_path / "out"
    fill(page, "cam-source", source)
    fill(page, "cam-project", out)
    fill(page, "cam-imgsz", 1280)
    page.click("#cam-start")
    page.wait_for_function(  # the new run, not the previous one still on the page
        "(s => s && s.dataset.status === 'running' && Number(s.dataset.done) >= 2)"
        "(document.querySelector('#cam-status'))",
        timeout=120_000,
    )
    page.click("#cam-start")  # a second Start while it runs is refused politely
    page.wait_for_function("document.querySelector('#cam-message').innerText.includes('already in progress')")
    other = open_tab(chromium, app_url, console_errors)  # a second tab sees the run in progress, and can stop it
    assert wait_for_status(other, "running", timeout=30) == "running"
    other.click("#cam-stop")
    wait_for_status(other, "stopping", "interrupted", timeout=60)  # the click reached the server
    other.close()
    assert wait_for_status(page, "interrupted", "completed", "failed") == "interrupted"
    summary = json.loads((out / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] is True
    done = summary["counts"]["images"]
    assert 2 <= done < 200
    folders = [p for p in (out / "cam").iterdir() if p.is_dir()]
    assert len(folders) == done
    assert all((f / "heatmap.png").is_file() and (f / "detection.png").is_file() for f in folders)
    assert f"{done} / 200" in page.inner_text("#cam-status")


def test_bad_weights_show_the_error_and_advice(page, tmp_path):
    bad = tmp_path / "坏的 best.pt"
    bad.write_bytes(b"not a model at all")
    fill(page, "cam-model", bad)
    fill(page, "cam-source", images_folder(tmp_path))
    fill(page, "cam-project", tmp_path / "out")
    assert start_and_wait(page, timeout=60) == "failed"
    error = page.inner_text("#cam-error")
    assert "坏的 best.pt" in error
    assert "Choose a .pt file saved by Ultralytics" in page.inner_text("#cam-advice")
    body = page.inner_text("body")
    assert "Traceback" not in body and 'File "' not in body


def test_browse_picks_the_folder_of_a_ticked_image(page, app_cwd):
    folder = app_cwd / "照片"
    folder.mkdir()
    for png in sorted((ROOT / "ultralytics_cam" / "assets" / "demo").glob("*.png"))[:2]:
        (folder / png.name).write_bytes(png.read_bytes())
    page.get_by_text("Browse (tick any image").click()
    page.locator("li", has_text="照片").locator('[aria-label="expand directory"]').first.click(force=True)
    page.locator("li", has_text="shapes_1.png").last.locator("input[type=checkbox]").first.check()
    page.wait_for_function(
        f"document.querySelector('#cam-source textarea, #cam-source input').value === {json.dumps(str(folder))}"
    )


def test_uploaded_weights_and_images_make_a_run(page, tmp_path):
    demo = sorted((ROOT / "ultralytics_cam" / "assets" / "demo").glob("*.png"))[:2]
    page.get_by_text("…or upload a .pt file").click()
    page.set_input_files("#cam-weights-file input[type=file]", str(MODELS / "pose.pt"))
    page.wait_for_function("document.querySelector('#cam-task textarea, #cam-task input').value === 'pose'")
    page.get_by_text("…or upload images").click()
    page.set_input_files("#cam-uploads input[type=file]", [str(p) for p in demo])
    for p in demo:  # both uploaded: the file list names them
        page.locator(f'#cam-uploads [aria-label="{p.name}"]').wait_for(state="attached")
    fill(page, "cam-project", tmp_path / "out")
    fill(page, "cam-imgsz", 320)
    assert start_and_wait(page) == "completed", page.inner_text("#cam-status")
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["settings"]["ultralytics"]["task"] == "pose"
    assert sorted(i["folder"] for i in summary["images"]) == [p.stem for p in demo]  # the uploads, not the folder


def test_ctrl_c_stops_the_run_and_writes_summary_json(chromium, console_errors, tmp_path):
    source = images_folder(tmp_path, copies=50)
    with serve_app(tmp_path, f"source={source}", f"project={tmp_path / 'out'}") as (proc, url, log):
        page = open_tab(chromium, url, console_errors)
        page.click("#cam-start")
        page.wait_for_function(
            "(s => s && s.dataset.status === 'running' && Number(s.dataset.done) >= 1)"
            "(document.querySelector('#cam-status'))",
            timeout=120_000,
        )
        page.close()
        proc.send_signal(signal.SIGINT)  # Ctrl-C in the terminal that runs the app
        assert proc.wait(60) == 0
        log.seek(0)
        printed = log.read()
    summary = json.loads((tmp_path / "out" / "cam" / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] is True and 1 <= summary["counts"]["images"] < 200
    assert "stopping the run after the current image" in printed
    assert (tmp_path / "out" / "cam" / summary["images"][0]["folder"] / "heatmap.png").is_file()
