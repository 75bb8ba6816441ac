"""The run report ``index.html`` in a real headless Chromium (system package, driven by Playwright).

It loads with no console error, every image has a non-zero natural width, clicking a header sorts the rows, the class
filter removes rows, and a 1,000-image report renders its first page and sorts within stated times.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from browser import ConsoleErrors, browser

from ultralytics_cam import cli
from ultralytics_cam.report import PAGE_SIZE, collect, write_report

from conftest import ROOT, trained

DEMO = ROOT / "ultralytics_cam" / "assets" / "demo"
#: Budgets for the 1,000-image report (measured here, 2 shared CPU cores: 1.2 s to the first page including the browser
#: start, 0.09 s per sort).
FIRST_PAGE_S, SORT_S = 5.0, 1.0


@pytest.fixture(scope="module")
def predict_run(tmp_path_factory):
    """A saved predict run of the demo images: index.html is written with summary.json at the end of the run."""
    project = tmp_path_factory.mktemp("report")
    trained("detect").cam(str(DEMO), save=True, project=project, name="cam", verbose=False)
    return project / "cam"


def _open(b, path):
    page = b.new_page(viewport={"width": 1400, "height": 900})
    errors = ConsoleErrors()
    errors.attach(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def _load_all_images(page):
    """Scroll every (lazy) image into view and wait until each has finished loading."""
    for img in page.query_selector_all("img"):
        img.scroll_into_view_if_needed()
    page.wait_for_function("[...document.images].every(i => i.complete)", timeout=10_000)
    return page.evaluate("[...document.images].map(i => i.naturalWidth)")


def _column(page, index):
    return page.evaluate(
        f"[...document.querySelectorAll('#images > tbody > tr')].map(r => r.children[{index}].textContent)"
    )


def test_predict_run_writes_its_report(predict_run):
    assert (predict_run / "index.html").is_file()
    data = collect(predict_run)
    assert data["kinds"] == ["predict"]
    assert sorted(im["name"] for im in data["images"]) == sorted(p.name for p in DEMO.glob("*.png"))
    assert all(len(im["images"]) == 2 for im in data["images"])  # detection and heatmap
    html = (predict_run / "index.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html  # self-contained: nothing from the network


@pytest.mark.slow
def test_report_loads_sorts_and_filters(predict_run):
    with browser() as b:
        page, errors = _open(b, predict_run / "index.html")
        widths = _load_all_images(page)
        assert len(widths) == 2 * 4 and all(w > 0 for w in widths), widths
        names = _column(page, 0)
        assert sorted(names) == sorted(p.name for p in DEMO.glob("*.png"))
        page.click("#images th[data-key=max_conf]")
        confs = [float(v) for v in _column(page, 3)]
        assert confs == sorted(confs)
        page.click("#images th[data-key=max_conf]")
        assert [float(v) for v in _column(page, 3)] == sorted(confs, reverse=True)
        page.click("#images th[data-key=name]")
        assert _column(page, 0) == sorted(names)
        # filter by class: only images with a circle stay, and their prediction tables show circles only
        page.select_option("#class-filter", "circle")
        classes = _column(page, 2)
        assert 0 < len(classes) < len(names) and all("circle" in c for c in classes)
        shown = page.evaluate(
            "[...document.querySelectorAll('table.preds tbody tr')].map(r => r.children[0].textContent)"
        )
        assert shown and set(shown) == {"circle"}
        page.select_option("#class-filter", "")
        assert len(_column(page, 0)) == len(names)
        assert not errors, errors


@pytest.mark.slow
def test_eval_report_shows_the_ranking(tmp_path):
    import ultralytics_cam

    report = ultralytics_cam.evaluate(
        trained("detect"), DEMO, methods="EigenCAM,HiResCAM", max_images=1, steps=3, project=tmp_path
    )
    with browser() as b:
        page, errors = _open(b, report.save_dir / "index.html")
        rows = page.evaluate("[...document.querySelectorAll('#ranking tbody tr')].map(r => r.children[1].textContent)")
        assert rows[:2] == [r["method"] for r in report.ranking] and "baseline: random" in rows
        assert page.inner_text("#recommendation") == report.recommendation
        table = page.inner_text("#ranking")  # the interval against the best baseline and the sanity check
        assert "vs best baseline [95% CI]" in table and "sanity (rank corr.)" in table
        assert any(f"{b}: " in table for b in ("random", "confidence", "centre"))
        page.click("#ranking th[data-key=method]")
        after = page.evaluate("[...document.querySelectorAll('#ranking tbody tr')].map(r => r.children[1].textContent)")
        assert after == sorted(rows, key=str.casefold)  # the page compares as the browser's locale does
        assert all(w > 0 for w in _load_all_images(page))
        assert not errors, errors


def _big_run(tmp_path, source_folder, n):
    """A run folder of ``n`` images: copies of one real image folder (pictures hard-linked), with a summary."""
    run = tmp_path / "big"
    run.mkdir()
    record = json.loads((source_folder / "cam.json").read_text(encoding="utf-8"))
    lines = []
    for i in range(n):
        folder = run / f"img_{i:04d}"
        folder.mkdir()
        for name in ("detection.png", "heatmap.png"):
            try:
                os.link(source_folder / name, folder / name)
            except OSError:
                shutil.copy(source_folder / name, folder / name)
        for p in record["predictions"]:
            p["confidence"] = round(((i * 7919) % 1000 + 1) / 1000, 3)  # distinct values, so a sort reorders
        (folder / "cam.json").write_text(json.dumps(record), encoding="utf-8")
        lines.append({"source": f"img_{i:04d}.png", "folder": folder.name, "predictions": 1, "ms": 1.0})
    summary = {"status": "completed", "settings": {"cam": {}, "ultralytics": {}}, "counts": {"images": n}}
    write_report(run, {**summary, "images": lines})
    return run


@pytest.mark.slow
def test_a_1000_image_report_stays_responsive(predict_run, tmp_path):
    run = _big_run(tmp_path, next(p for p in predict_run.iterdir() if p.is_dir()), 1000)
    with browser() as b:
        t0 = time.perf_counter()
        page, errors = _open(b, run / "index.html")
        page.wait_for_selector("#images tbody tr")
        first_page = time.perf_counter() - t0
        assert len(_column(page, 0)) == PAGE_SIZE
        assert "page 1 of 20 (1000 images)" in page.inner_text("#page-info")
        before = _column(page, 3)
        # the click handler sorts 1,000 rows and redraws the page synchronously; reading offsetHeight forces layout
        sort_s = page.evaluate(
            "() => { const t = performance.now(); document.querySelector('#images th[data-key=max_conf]').click();"
            " document.body.offsetHeight; return (performance.now() - t) / 1000; }"
        )
        after = [float(v) for v in _column(page, 3)]
        assert after == sorted(after) and after != [float(v) for v in before] and after[0] == 0.001
        page.click("#next")
        assert "page 2 of 20" in page.inner_text("#page-info")
        assert not errors, errors
    print(f"1,000-image report: first page {first_page:.2f} s, sort {sort_s:.3f} s")
    assert first_page < FIRST_PAGE_S, first_page
    assert sort_s < SORT_S, sort_s


def test_yolo_cam_report_rebuilds_the_page(predict_run, capsys):
    """The page rebuilt from the run's files is byte for byte the one the run wrote."""
    written = (predict_run / "index.html").read_bytes()
    (predict_run / "index.html").unlink()
    assert cli.main(["report", str(predict_run)]) == cli.EXIT_OK
    assert (predict_run / "index.html").read_bytes() == written
    assert str(predict_run / "index.html") in capsys.readouterr().out
