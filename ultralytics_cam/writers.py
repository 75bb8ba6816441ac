"""The files of a CAM run (SPEC §6): a small registry of writers and atomic file writes.

A writer is declared by a :class:`WriterSpec`: ``write_image`` writes some of the per-image files of one image into
its folder, ``write_run`` writes per-run files (``summary.json``) into the run folder. The built-in writers are

============  ==============================================================================================
detection     ``detection.png``: Ultralytics' own plot of the predictions (boxes, masks, keypoints, labels)
heatmap       ``heatmap.png``: the CAM overlay at the original size (boxes drawn when ``show_boxes``)
heatmap_npy   ``heatmap.npy``: the raw combined map, float32 (H, W) in [0, 1]; huge images: see below
cam_json      ``cam.json``: model, method, layers, target and, per prediction, class, confidence, box, peak, energy
maps          with ``save_maps=True``: ``maps.npy`` (n, H, W) and one overlay per prediction in ``maps/``
summary       ``summary.json`` in the run folder: settings, versions, counts, timings, skipped inputs
report        ``index.html`` in the run folder: the browsable report (:mod:`ultralytics_cam.report`)
============  ==============================================================================================

``heatmap.npy`` of a huge image is stored smaller: a map carries no detail finer than the model input it was computed
on, so when the image's long side exceeds ``max(HEATMAP_NPY_MAX_SIDE, model input side)`` the map is resized (area
interpolation, values stay in [0, 1]) to that long side, and ``cam.json`` records its ``heatmap_npy`` shape and
``scale`` (stored / original; 1.0 when stored at full size). An 8000 x 6000 photo at imgsz=640 gives a 2048 x 1536
map (12.6 MB instead of 192 MB). ``heatmap.png`` and ``CamResult.heatmap`` in Python stay at the original size.

Every file is written atomically: bytes go to a hidden temporary file beside the target, which is then renamed onto
it, so a crash or Ctrl-C never leaves a half-written file. The save path (:mod:`ultralytics_cam.saving`, above the
registry) also builds each image's folder under a hidden temporary name and renames it into place when every file is
written, so a folder that exists is complete. Paths go through Python's own file API (images are encoded in memory
with ``cv2.imencode``, as ``ultralytics.utils.patches.imwrite`` does), so non-ASCII and long paths work on every
platform.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .result import CamResult

__all__ = [
    "CAM_JSON_SCHEMA",
    "HEATMAP_NPY_MAX_SIDE",
    "RUN_LEVEL_NAMES",
    "SaveConfig",
    "WriterSpec",
    "atomic_write_bytes",
    "builtin_writer_specs",
    "cam_record",
    "heatmap_npy_layout",
    "unique_name",
    "write_image_file",
    "write_json",
    "write_npy",
]

#: Version of the layout of ``cam.json``, ``cam.jsonl`` lines and ``summary.json``; bumped on incompatible changes.
CAM_JSON_SCHEMA = 1

#: Names in a run folder that belong to the run, not to one input (lower case: file systems may ignore case). A
#: per-image folder never takes one of them: ``summary.json.jpg`` is saved as ``summary.json-2/``. Every run-level
#: file or folder a writer, the report, the manifest or an evaluation adds must be listed here.
RUN_LEVEL_NAMES = frozenset(
    {
        "summary.json",  # the run summary (writers: summary)
        "index.html",  # the browsable report of the run
        "manifest.jsonl",  # the resume manifest (ultralytics_cam.manifest)
        "eval.json",  # yolo-cam eval
        "failures.json",  # yolo-cam val's failure report
        "failures.csv",
        "contact_sheet.jpg",
        "cam_failures",
        "eval.csv",  # yolo-cam eval (with eval.json and figures/)
        "figures",
        "compare.json",  # yolo-cam compare
        "labels",  # Ultralytics' save_txt
        "crops",  # Ultralytics' save_crop
    }
)


def unique_name(stem: str, taken: set[str]) -> str:
    """The output name of an input called ``stem``: ``stem``, else ``stem-2``, ``stem-3``, ... (added to ``taken``).

    Ultralytics' predictor de-duplicates same-stem inputs this way (``bus.jpg``, ``bus.png`` -> ``bus``, ``bus-2``);
    a run-level name (:data:`RUN_LEVEL_NAMES`, any case) is never given to an input. Every place that names an
    input's folder or file without Ultralytics' predictor (the Ray driver, the val report, eval / compare figures)
    names it here.
    """
    name, k = stem, 1
    while name in taken or name.casefold() in RUN_LEVEL_NAMES:
        k += 1
        name = f"{stem}-{k}"
    taken.add(name)
    return name


@dataclass(frozen=True)
class SaveConfig:
    """What the per-image writers need besides the :class:`~ultralytics_cam.result.CamResult`.

    Attributes:
        save_maps: also write every prediction's own map (``maps.npy`` and ``maps/*.png``).
        plot: keyword arguments for Ultralytics' ``Results.plot`` in ``detection.png`` (``line_width``, ``boxes``,
            ``conf``, ``labels``), as ``yolo predict`` passes them from its ``show_*`` and ``line_width`` options.
        model: the model file, recorded in ``cam.json``.
        task: the model's task, recorded in ``cam.json``.
        source: the input the image came from, recorded in ``cam.json``.
    """

    save_maps: bool = False
    plot: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    task: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class WriterSpec:
    """One output writer.

    Attributes:
        name: unique name, shown by ``yolo-cam plugins``.
        write_image: ``(cam_result, folder, config) -> paths | None``: writes files of one image into ``folder``
            (which exists) and returns what it wrote; ``None`` for run-level writers.
        write_run: ``(summary, save_dir) -> paths | None``: writes run-level files from the run's summary dict;
            ``None`` for per-image writers.
        summary: one line for ``yolo-cam plugins``.
        provider: the package that registered the writer.
    """

    name: str
    write_image: Callable[[CamResult, Path, SaveConfig], list[Path] | None] | None = None
    write_run: Callable[[dict[str, Any], Path], list[Path] | None] | None = None
    summary: str = ""
    provider: str = field(default="ultralytics-cam", compare=False)


# -- atomic writes -----------------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    The temporary name is short (``.<8 hex>.tmp``), so a target whose name is already at the file system's length
    limit still works; it is removed again if anything (including ``KeyboardInterrupt``) stops the write.
    """
    path = Path(path)
    tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_image_file(path: str | Path, image: np.ndarray) -> Path:
    """Encode a BGR image by ``path``'s suffix (``.png``, ``.jpg``, ...) and write it atomically."""
    import cv2

    path = Path(path)
    ok, buf = cv2.imencode(path.suffix, image)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as '{path.suffix}' for {path}.")
    return atomic_write_bytes(path, buf.tobytes())


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write an array in NumPy's ``.npy`` format, atomically."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def _jsonable(obj: Any) -> Any:
    """Turn paths, NumPy scalars/arrays and tensors into JSON values (``json.dumps(default=...)``)."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy arrays, torch tensors
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return str(obj)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON (non-ASCII kept readable), atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=_jsonable)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


# -- what the files contain --------------------------------------------------------------------------------------------
def cam_record(cam: CamResult, config: SaveConfig | None = None) -> dict[str, Any]:
    """Return the content of ``cam.json`` for one image (also one line of a video's ``cam.jsonl``, minus provenance)."""
    config = config or SaveConfig()
    h, w = cam.geometry.orig_hw
    return {
        "schema_version": CAM_JSON_SCHEMA,
        "source": config.source if config.source is not None else getattr(cam.result, "path", None),
        "image": {"width": int(w), "height": int(h)},
        "model": config.model,
        "task": config.task,
        "method": cam.method,
        "layers": cam.layers,
        "target": cam.target,
        "path": getattr(cam, "path", None),  # how the gradients were computed: local head replay, dense, or forward
        "display": dict(cam.display),
        "predictions": [{"index": i, **s} for i, s in enumerate(cam.stats())],
        **({"rows": cam.rows} if getattr(cam, "rows", None) is not None else {}),  # semantic / depth: each row's region
    }


def _safe_name(name: str) -> str:
    """A class name usable inside a file name on every platform."""
    bad = '<>:"/\\|?* '
    return "".join("_" if c in bad or ord(c) < 32 else c for c in str(name))[:40] or "class"


# -- built-in writers --------------------------------------------------------------------------------------------------
def _write_detection(cam: CamResult, folder: Path, config: SaveConfig) -> list[Path]:
    return [write_image_file(folder / "detection.png", cam.result.plot(**dict(config.plot)))]


def _write_heatmap(cam: CamResult, folder: Path, config: SaveConfig) -> list[Path]:
    return [write_image_file(folder / "heatmap.png", cam.plot())]


#: Long side (pixels) above which ``heatmap.npy`` is stored downscaled, unless the model input is larger still.
HEATMAP_NPY_MAX_SIDE = 2048


def heatmap_npy_layout(cam: CamResult) -> dict[str, Any]:
    """Return the stored shape and scale of ``heatmap.npy`` for ``cam`` (recorded in ``cam.json``)."""
    h, w = (int(v) for v in cam.geometry.orig_hw)
    limit = max(HEATMAP_NPY_MAX_SIDE, *(int(v) for v in cam.geometry.input_hw))
    scale = min(1.0, limit / max(h, w, 1))
    if scale >= 1.0:
        return {"height": h, "width": w, "scale": 1.0}
    return {"height": max(1, round(h * scale)), "width": max(1, round(w * scale)), "scale": round(scale, 6)}


def _write_heatmap_npy(cam: CamResult, folder: Path, config: SaveConfig) -> list[Path]:
    heatmap = cam.heatmap.astype(np.float32, copy=False)
    layout = heatmap_npy_layout(cam)
    if layout["scale"] < 1.0:
        import cv2

        heatmap = np.clip(cv2.resize(heatmap, (layout["width"], layout["height"]), interpolation=cv2.INTER_AREA), 0, 1)
    return [write_npy(folder / "heatmap.npy", heatmap)]


def _write_cam_json(cam: CamResult, folder: Path, config: SaveConfig) -> list[Path]:
    record = cam_record(cam, config)
    record["heatmap_npy"] = heatmap_npy_layout(cam)
    if config.save_maps:
        record["maps"] = "maps.npy"
        for i, p in enumerate(record["predictions"]):
            p["map"] = f"maps/{_map_png_name(i, p['name'])}"
    return [write_json(folder / "cam.json", record)]


def _map_png_name(i: int, name: str) -> str:
    return f"{i:03d}_{_safe_name(name)}.png"


def _write_maps(cam: CamResult, folder: Path, config: SaveConfig) -> list[Path] | None:
    if not config.save_maps:
        return None
    out = [write_npy(folder / "maps.npy", cam.maps.astype(np.float32, copy=False))]
    (folder / "maps").mkdir(exist_ok=True)
    for i, s in enumerate(cam.stats()):
        out.append(write_image_file(folder / "maps" / _map_png_name(i, s["name"]), cam.plot(index=i)))
    return out


def _write_summary(summary: dict[str, Any], save_dir: Path) -> list[Path]:
    return [write_json(Path(save_dir) / "summary.json", summary)]


def _write_report(summary: dict[str, Any], save_dir: Path) -> list[Path]:
    from .report import write_run_report  # lazily: only runs that save import it

    return write_run_report(summary, Path(save_dir))


def builtin_writer_specs() -> list[WriterSpec]:
    """Return the built-in writers, per-image ones first, in the order they run."""
    return [
        WriterSpec("detection", _write_detection, summary="detection.png: Ultralytics' own plot of the predictions"),
        WriterSpec("heatmap", _write_heatmap, summary="heatmap.png: the CAM overlay (boxes drawn if show_boxes)"),
        WriterSpec("heatmap_npy", _write_heatmap_npy, summary="heatmap.npy: the raw combined map, float32 (H, W)"),
        WriterSpec("cam_json", _write_cam_json, summary="cam.json: provenance and per-prediction statistics"),
        WriterSpec("maps", _write_maps, summary="maps.npy + maps/*.png: every prediction's own map (save_maps=True)"),
        WriterSpec("summary", write_run=_write_summary, summary="summary.json: the run's settings, counts, timings"),
        WriterSpec("report", write_run=_write_report, summary="index.html: the run's browsable report (sort, filter)"),
    ]
