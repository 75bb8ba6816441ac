"""``index.html``: a self-contained report of any run folder (predict, val failures, eval, compare).

The page has no network dependency: its style and script are inline (from ``report_template.html``), the run's data
is embedded as JSON, and images are referenced by paths relative to the run folder (so the folder can be moved or
zipped). The browser renders one page of images at a time (:data:`PAGE_SIZE`) with lazily loaded ``<img>`` elements,
so a run of 5,000 images stays responsive. The image table sorts by any column (click its header) and filters by
class; each image's table of predictions sorts the same way. An eval ranking, a val run's failure kinds and a
comparison's figures appear when the folder holds them.

:func:`write_report` rebuilds the page from the files in the folder (``yolo-cam report runs/detect/cam``);
:func:`write_run_report` is the run-level writer that predict runs call when they write ``summary.json``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ._logging import LOGGER, PREFIX

__all__ = ["PAGE_SIZE", "collect", "render", "write_report", "write_run_report"]

#: Images per page of the report.
PAGE_SIZE = 50
_IMAGE_FILES = ("detection.png", "heatmap.png")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _image_entry(
    run_dir: Path, folder: str, source: str | None = None, ms: float | None = None
) -> dict[str, Any] | None:
    """One image of a predict run: its two pictures and its predictions' statistics (from ``cam.json``)."""
    record = _read_json(run_dir / folder / "cam.json")
    if record is None:
        return None
    preds = [
        {
            "class": p.get("name", str(p.get("class"))),
            "confidence": p.get("confidence"),
            "energy_in_box": p.get("energy_in_box"),
            "peak": p.get("peak"),
            "box": p.get("box"),
        }
        for p in record.get("predictions", [])
    ]
    pictures = [f"{folder}/{name}" for name in _IMAGE_FILES if (run_dir / folder / name).is_file()]
    return {
        "name": Path(source or record.get("source") or folder).name,
        "folder": folder,
        "images": pictures,
        "predictions": preds,
        "ms": ms,
        "method": record.get("method"),
    }


def collect(run_dir: str | Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the report shows, read from the run folder (``summary`` instead of ``summary.json`` when given)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"'{run_dir}' is not a folder; pass a run folder such as runs/detect/cam.")
    summary = summary if summary is not None else _read_json(run_dir / "summary.json")
    data: dict[str, Any] = {"title": run_dir.name, "kinds": [], "images": [], "page_size": PAGE_SIZE}
    if summary:
        data["kinds"].append("predict")
        cam = summary.get("settings", {}).get("cam", {})
        ult = summary.get("settings", {}).get("ultralytics", {})
        data["summary"] = {
            "status": summary.get("status"),
            "model": ult.get("model"),
            "task": ult.get("task"),
            "method": cam.get("method"),
            "layers": cam.get("layers"),
            "target": cam.get("target"),
            "counts": summary.get("counts"),
            "ms_per_image": summary.get("ms_per_image"),
            "skipped": len(summary.get("skipped", [])),
        }
        for line in summary.get("images", []):
            entry = _image_entry(run_dir, line.get("folder", ""), line.get("source"), line.get("ms"))
            if entry is not None:
                data["images"].append(entry)
        data["videos"] = [
            {"name": Path(v.get("source", "")).name, "folder": v.get("folder"), "frames": v.get("frames")}
            for v in summary.get("videos", [])
        ]
    elif not (run_dir / "eval.json").is_file():  # a run without summary.json (e.g. still running): its folders
        for sub in sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "cam.json").is_file()):
            entry = _image_entry(run_dir, sub.name)
            if entry is not None:
                data["images"].append(entry)
        if data["images"]:
            data["kinds"].append("predict")
    evaluation = _read_json(run_dir / "eval.json")
    if evaluation:
        data["kinds"].append("eval")
        figures = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png"))
        data["eval"] = {k: evaluation.get(k) for k in ("status", "settings", "recommendation", "ranking", "baselines")}
        data["eval"]["figures"] = figures
    comparison = _read_json(run_dir / "compare.json")
    if comparison:
        data["kinds"].append("compare")
        data["compare"] = comparison
    failures_dir = run_dir if (run_dir / "failures.json").is_file() else run_dir / "cam_failures"
    failures = _read_json(failures_dir / "failures.json")
    if failures:
        data["kinds"].append("val failures")
        prefix = "" if failures_dir == run_dir else f"{failures_dir.name}/"
        rows = []
        for f in failures.get("failures", []):
            files = [f"{prefix}{p}" for p in f.get("files", []) if (failures_dir / p).is_file()]
            rows.append(
                {k: f.get(k) for k in ("image", "kind", "name", "true_name", "confidence", "iou")} | {"files": files}
            )
        data["failures"] = {"counts": failures.get("counts", {}), "rows": rows}
        sheet = failures_dir / "contact_sheet.jpg"
        if sheet.is_file():
            data["failures"]["contact_sheet"] = f"{prefix}contact_sheet.jpg"
    return data


def render(data: dict[str, Any]) -> str:
    """The HTML page of ``data`` (from :func:`collect`)."""
    blob = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    title = html.escape(f"ultralytics-cam: {data.get('title', 'run')}")
    template = (Path(__file__).with_name("report_template.html")).read_text(encoding="utf-8")
    return template.replace("__TITLE__", title).replace("__DATA__", blob)


def write_report(run_dir: str | Path, summary: dict[str, Any] | None = None) -> Path:
    """Write ``index.html`` into ``run_dir`` from the files there (atomically); return its path.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
    """
    from .writers import atomic_write_bytes

    run_dir = Path(run_dir)
    page = render(collect(run_dir, summary))
    return atomic_write_bytes(run_dir / "index.html", page.encode("utf-8"))


def write_run_report(summary: dict[str, Any], save_dir: Path) -> list[Path]:
    """The run-level writer: ``index.html`` of a predict run, written with ``summary.json``."""
    try:
        return [write_report(save_dir, summary)]
    except Exception as e:  # the report must never fail the run whose files it shows
        LOGGER.warning(f"{PREFIX}could not write index.html ({type(e).__name__}: {e})")
        return []
