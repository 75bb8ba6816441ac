"""Issue 21, cases 8 and 9: the report shows every run, whatever its file names and whatever its records hold.

- Case 8: ``cam1:0001.png`` broke its images in ``index.html`` (``cam1:`` was read as a URL scheme). Every ``src`` and
  ``href`` is now a percent-encoded relative URL behind ``./``.
- Case 9: ``yolo-cam report`` on a run whose ``cam.json`` or ``summary.json`` has the wrong types ended with
  ``the run failed: AttributeError`` and named no file, and a ``peak`` given as a string broke the page's table. Now
  each file and what was wrong is named, and the page renders what each record holds.

The browser tests drive the system Chromium (``tests/browser.py``: they skip without it, and fail in CI).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from browser import ConsoleErrors, browser
from corpus import bus, write_image

from ultralytics_cam import cli

from conftest import tiny_detector

#: File names a URL would misread: a scheme, a fragment, a query, an escape, spaces and non-ASCII letters.
NAMES = ["cam1:0001.png", "a#b.png", "50% off?.png", "ünï cødé 画像.png", "plain.png"]


@pytest.fixture(scope="module")
def awkward_run(tmp_path_factory, assets) -> Path:
    """A saved run over images whose names a URL misreads."""
    root = tmp_path_factory.mktemp("names")
    src = root / "src"
    src.mkdir()
    for i, name in enumerate(NAMES):
        write_image(src / name, bus(assets, 64, 48, shift=7 * i))
    tiny_detector().cam(src, save=True, project=root / "out", imgsz=64, max_det=2, verbose=False)
    return root / "out" / "cam"


def page_data(run: Path) -> dict:
    """The data embedded in a run's index.html (what its script renders)."""
    text = (run / "index.html").read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert blob, "no data in index.html"
    return json.loads(blob.group(1).replace("<\\/", "</"))


def _resolves(run: Path, url: str) -> Path:
    """The file a relative URL of index.html points at, as a browser resolves it."""
    absolute = urljoin((run / "index.html").as_uri(), url)
    assert urlsplit(absolute).scheme == "file", (url, absolute)
    return Path(unquote(urlsplit(absolute).path))


def test_every_image_url_is_an_escaped_relative_url_to_its_file(awkward_run):
    data = page_data(awkward_run)
    assert sorted(im["name"] for im in data["images"]) == sorted(NAMES)
    for im in data["images"]:
        assert len(im["images"]) == 2, im
        for url in im["images"]:
            assert url.startswith("./") and urlsplit(url).scheme == "" and not set(url) & set(" #?:"), url
            target = _resolves(awkward_run, url)
            assert target.is_file() and target.parent.name == Path(im["name"]).stem, (url, target)


def test_every_image_of_an_awkwardly_named_run_loads_in_a_browser(awkward_run):
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 900})
        errors = ConsoleErrors()
        errors.attach(page)
        page.goto((awkward_run / "index.html").as_uri())
        page.wait_for_load_state("load")
        for img in page.query_selector_all("img"):
            img.scroll_into_view_if_needed()
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=10_000)
        widths = page.evaluate("[...document.images].map(i => i.naturalWidth)")
        assert len(widths) == 2 * len(NAMES) and all(w > 0 for w in widths), widths
        assert not errors, errors


# -- case 9: records with the wrong types ------------------------------------------------------------------------------
@pytest.fixture
def damaged_run(tmp_path, assets) -> Path:
    """A run whose records were edited by hand: wrong types in one cam.json, another one a list, summary.json's
    settings and counts of the wrong kind."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        write_image(src / f"im_{i}.jpg", bus(assets, 64, 48, shift=9 * i))
    tiny_detector().cam(src, save=True, project=tmp_path / "out", imgsz=64, max_det=2, conf=0.0, verbose=False)
    run = tmp_path / "out" / "cam"
    cam = json.loads((run / "im_0" / "cam.json").read_text(encoding="utf-8"))
    assert cam["predictions"], "the test needs a prediction to damage"
    cam["predictions"][0].update(peak="top left", confidence="high", box={"x": 1})
    (run / "im_0" / "cam.json").write_text(json.dumps(cam), encoding="utf-8")
    (run / "im_1" / "cam.json").write_text('["not", "a", "record"]', encoding="utf-8")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary.update(settings=["HiResCAM"], counts="three")
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run


def test_yolo_cam_report_names_each_damaged_file_and_still_writes_the_page(damaged_run, capsys):
    (damaged_run / "index.html").unlink()
    code = cli.main(["report", str(damaged_run)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(damaged_run / "index.html")
    err = captured.err
    assert "AttributeError" not in err and "the run failed" not in err, err
    cam0, cam1, summary = (str(damaged_run / p) for p in ("im_0/cam.json", "im_1/cam.json", "summary.json"))
    assert f"{cam0}: prediction 0: 'confidence' is a string" in err, err
    assert f"{cam0}: prediction 0: 'peak' is a string" in err and f"{cam0}: prediction 0: 'box' is an object" in err
    assert f"{cam1} is a list" in err, err
    assert f"{summary}: 'settings' is a list" in err and f"{summary}: 'counts' is a string" in err, err
    data = page_data(damaged_run)
    assert sorted(im["name"] for im in data["images"]) == ["im_0.jpg", "im_1.jpg", "im_2.jpg"]
    shown = next(im for im in data["images"] if im["name"] == "im_0.jpg")["predictions"][0]
    assert shown["peak"] == "top left" and shown["confidence"] == "high", shown
    assert len(data["problems"]) == 6, data["problems"]


def test_a_damaged_record_renders_in_a_browser(damaged_run):
    cli.main(["report", str(damaged_run)])
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 900})
        errors = ConsoleErrors()
        errors.attach(page)
        page.goto((damaged_run / "index.html").as_uri())
        page.wait_for_load_state("load")
        rows = page.evaluate(
            "[...document.querySelectorAll('#images > tbody > tr')].map(r => r.children[0].textContent)"
        )
        assert sorted(rows) == ["im_0.jpg", "im_1.jpg", "im_2.jpg"], rows
        cells = page.evaluate("[...document.querySelectorAll('table.preds td')].map(td => td.textContent)")
        assert "top left" in cells and "high" in cells, cells
        problems = page.evaluate("[...document.querySelectorAll('#problems li')].map(li => li.textContent)")
        assert len(problems) == 6 and any("'peak' is a string" in p for p in problems), problems
        assert not errors, errors
