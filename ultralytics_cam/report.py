"""``index.html``: a self-contained report of any run folder (predict, val failures, eval, compare).

The page has no network dependency: its style and script are inline (from ``report_template.html``), the run's data
is embedded as JSON, and images are referenced by URLs relative to the run folder (so the folder can be moved or
zipped): each path percent-encoded behind ``./`` (:func:`relative_url`), so that a file name such as ``cam1:0001.png``
is not read as a URL scheme, nor ``#`` or ``?`` as a fragment or query. The browser renders one page of images at a
time (:data:`PAGE_SIZE`) with lazily loaded ``<img>`` elements, so a run of 5,000 images stays responsive. The image
table sorts by any column (click its header) and filters by class; each image's table of predictions sorts the same
way. An eval ranking, a val run's failure kinds and a comparison's figures appear when the folder holds them. A file
with the wrong types never stops the page: it shows what can be read and names each file and what was wrong.

:func:`write_report` rebuilds the page from the files in the folder (``yolo-cam report runs/detect/cam``);
:func:`write_run_report` is the run-level writer that predict runs call when they write ``summary.json``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._logging import LOGGER, PREFIX

__all__ = ["PAGE_SIZE", "collect", "relative_url", "render", "write_report", "write_run_report"]

#: Images per page of the report.
PAGE_SIZE = 50
_IMAGE_FILES = ("detection.png", "heatmap.png")


def relative_url(path: str) -> str:
    """Return the URL of ``path`` (relative to the run folder, ``/``-separated) for a ``src`` or ``href``.

    ``./`` first and every character a URL reserves percent-encoded: ``cam1:0001/heatmap.png`` is not read as the
    scheme ``cam1:``, nor ``a#b`` as a fragment.
    """
    return "./" + quote(path, safe="/")


def _read_json(path: Path, problems: list[str]) -> Any:
    """The JSON in ``path`` (None when there is none); a file that exists but is not JSON is named in ``problems``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        problems.append(f"{path}: could not be read ({type(e).__name__}: {e})")
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        problems.append(f"{path}: not valid JSON ({e})")
        return None


def _typed(value: Any, kind: type, default: Any, where: str, problems: list[str]) -> Any:
    """``value`` if it is a ``kind`` (or absent), else ``default`` with a problem naming the file and the field."""
    if value is None:
        return default
    if isinstance(value, kind):
        return value
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    problems.append(f"{where} is {_json_kind(value)}, not {names.get(kind, kind.__name__)}")
    return default


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}
    return f"{kinds.get(type(value), type(value).__name__)} ({json.dumps(value, default=str)[:40]})"


def _prediction(p: Any, where: str, problems: list[str]) -> dict[str, Any]:
    """One prediction's row: the fields as the record holds them (the page shows any value as text)."""
    if not isinstance(p, dict):
        problems.append(f"{where} is {_json_kind(p)}, not an object")
        return {"class": str(p), "confidence": None, "energy_in_box": None, "peak": None, "box": None}
    row = {k: p.get(k) for k in ("confidence", "energy_in_box", "peak", "box")}
    row["class"] = p.get("name", str(p.get("class")))
    wrong = [(k, "a number") for k in ("confidence", "energy_in_box") if not _is_number(row[k], none=True)]
    wrong += [(k, "a list of numbers") for k in ("peak", "box") if row[k] is not None and not isinstance(row[k], list)]
    problems.extend(f"{where}: '{k}' is {_json_kind(row[k])}, not {what}" for k, what in wrong)
    return row


def _is_number(v: Any, none: bool = False) -> bool:
    return (none and v is None) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _image_entry(
    run_dir: Path, folder: str, problems: list[str], source: Any = None, ms: Any = None
) -> dict[str, Any] | None:
    """One image of a predict run: its two pictures and its predictions' statistics (from ``cam.json``)."""
    path = run_dir / folder / "cam.json"
    record = _read_json(path, problems)
    if record is None:
        return None
    if not isinstance(record, dict):
        problems.append(f"{path} is {_json_kind(record)}, not an object: its predictions are not shown")
        record = {}
    preds = _typed(record.get("predictions"), list, [], f"{path}: 'predictions'", problems)
    rows = [_prediction(p, f"{path}: prediction {i}", problems) for i, p in enumerate(preds)]
    pictures = [relative_url(f"{folder}/{name}") for name in _IMAGE_FILES if (run_dir / folder / name).is_file()]
    name = source if isinstance(source, str) else record.get("source")
    return {
        "name": Path(name if isinstance(name, str) and name else folder).name,
        "folder": folder,
        "images": pictures,
        "predictions": rows,
        "ms": ms if _is_number(ms) else None,
        "method": record.get("method"),
    }


def collect(run_dir: str | Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the report shows, read from the run folder (``summary`` instead of ``summary.json`` when given).

    A file with the wrong types (hand-edited, from another version, damaged) never stops the page: what can be read is
    shown, and ``data["problems"]`` names each file and what was wrong with it.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"'{run_dir}' is not a folder; pass a run folder such as runs/detect/cam.")
    problems: list[str] = []
    summary_path = run_dir / "summary.json"
    if summary is None:
        summary = _read_json(summary_path, problems)
    if summary is not None and not isinstance(summary, dict):
        problems.append(f"{summary_path} is {_json_kind(summary)}, not an object: the image folders are listed instead")
        summary = None
    data: dict[str, Any] = {"title": run_dir.name, "kinds": [], "images": [], "page_size": PAGE_SIZE}
    if summary:
        data["kinds"].append("predict")
        settings = _typed(summary.get("settings"), dict, {}, f"{summary_path}: 'settings'", problems)
        cam = _typed(settings.get("cam"), dict, {}, f"{summary_path}: 'settings.cam'", problems)
        ult = _typed(settings.get("ultralytics"), dict, {}, f"{summary_path}: 'settings.ultralytics'", problems)
        data["summary"] = {
            "status": summary.get("status"),
            "model": ult.get("model"),
            "task": ult.get("task"),
            "method": cam.get("method"),
            "layers": cam.get("layers"),
            "target": cam.get("target"),
            "counts": _typed(summary.get("counts"), dict, {}, f"{summary_path}: 'counts'", problems),
            "ms_per_image": summary.get("ms_per_image"),
            "skipped": len(_typed(summary.get("skipped"), list, [], f"{summary_path}: 'skipped'", problems)),
        }
        images = _typed(summary.get("images"), list, [], f"{summary_path}: 'images'", problems)
        for i, line in enumerate(images):
            folder = line.get("folder") if isinstance(line, dict) else None
            if not isinstance(folder, str) or not folder:
                problems.append(f"{summary_path}: image {i} is {_json_kind(line)}, without a 'folder' name")
                continue
            entry = _image_entry(run_dir, folder, problems, line.get("source"), line.get("ms"))
            if entry is not None:
                data["images"].append(entry)
        videos = _typed(summary.get("videos"), list, [], f"{summary_path}: 'videos'", problems)
        data["videos"] = [
            {"name": Path(str(v.get("source", ""))).name, "folder": v.get("folder"), "frames": v.get("frames")}
            for v in videos
            if isinstance(v, dict)
        ]
    elif not (run_dir / "eval.json").is_file():  # a run without summary.json (e.g. still running): its folders
        for sub in sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / "cam.json").is_file()):
            entry = _image_entry(run_dir, sub.name, problems)
            if entry is not None:
                data["images"].append(entry)
        if data["images"]:
            data["kinds"].append("predict")
    evaluation = _read_json(run_dir / "eval.json", problems)
    if isinstance(evaluation, dict) and evaluation:
        data["kinds"].append("eval")
        figures = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").glob("*.png"))
        data["eval"] = {k: evaluation.get(k) for k in ("status", "settings", "recommendation", "ranking", "baselines")}
        where = run_dir / "eval.json"
        data["eval"]["ranking"] = _typed(data["eval"]["ranking"], list, [], f"{where}: 'ranking'", problems)
        data["eval"]["baselines"] = _typed(data["eval"]["baselines"], dict, {}, f"{where}: 'baselines'", problems)
        data["eval"]["figures"] = [relative_url(f) for f in figures]
    comparison = _read_json(run_dir / "compare.json", problems)
    if isinstance(comparison, dict) and comparison:
        data["kinds"].append("compare")
        entries = _typed(comparison.get("images"), list, [], f"{run_dir / 'compare.json'}: 'images'", problems)
        data["compare"] = {
            **comparison,
            "images": [{**e, "figure": relative_url(str(e.get("figure", "")))} for e in entries if isinstance(e, dict)],
        }
    failures_dir = run_dir if (run_dir / "failures.json").is_file() else run_dir / "cam_failures"
    failures = _read_json(failures_dir / "failures.json", problems)
    if isinstance(failures, dict) and failures:
        data["kinds"].append("val failures")
        prefix = "" if failures_dir == run_dir else f"{failures_dir.name}/"
        rows = []
        for f in _typed(failures.get("failures"), list, [], f"{failures_dir / 'failures.json'}: 'failures'", problems):
            if not isinstance(f, dict):
                continue
            files = [relative_url(f"{prefix}{p}") for p in f.get("files", []) if (failures_dir / str(p)).is_file()]
            rows.append(
                {k: f.get(k) for k in ("image", "kind", "name", "true_name", "confidence", "iou")} | {"files": files}
            )
        data["failures"] = {"counts": failures.get("counts", {}), "rows": rows}
        sheet = failures_dir / "contact_sheet.jpg"
        if sheet.is_file():
            data["failures"]["contact_sheet"] = relative_url(f"{prefix}contact_sheet.jpg")
    data["problems"] = problems
    return data


def render(data: dict[str, Any]) -> str:
    """The HTML page of ``data`` (from :func:`collect`)."""
    blob = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    title = html.escape(f"ultralytics-cam: {data.get('title', 'run')}")
    template = (Path(__file__).with_name("report_template.html")).read_text(encoding="utf-8")
    return template.replace("__TITLE__", title).replace("__DATA__", blob)


def write_report(run_dir: str | Path, summary: dict[str, Any] | None = None, problems: list[str] | None = None) -> Path:
    """Write ``index.html`` into ``run_dir`` from the files there (atomically); return its path.

    Each file that had the wrong types is added to ``problems`` when a list is given (else logged as a warning); the
    page shows what could be read, and names them.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
    """
    from .writers import atomic_write_bytes

    run_dir = Path(run_dir)
    data = collect(run_dir, summary)
    if problems is not None:
        problems.extend(data["problems"])
    else:
        for problem in data["problems"]:
            LOGGER.warning(f"{PREFIX}index.html: {problem}")
    page = render(data)
    return atomic_write_bytes(run_dir / "index.html", page.encode("utf-8"))


def write_run_report(summary: dict[str, Any], save_dir: Path) -> list[Path]:
    """The run-level writer: ``index.html`` of a predict run, written with ``summary.json``."""
    try:
        return [write_report(save_dir, summary)]
    except Exception as e:  # the report must never fail the run whose files it shows
        LOGGER.warning(f"{PREFIX}could not write index.html ({type(e).__name__}: {e})")
        return []
