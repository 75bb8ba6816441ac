"""``yolo-cam eval`` and ``yolo-cam compare``: which method and layers to use, and how models differ, with evidence.

:func:`evaluate` runs every method x layer-set candidate on a sample of the user's images and ranks them by
faithfulness (:mod:`ultralytics_cam.metrics`: insertion minus deletion area, averaged over the image-level and
box-level variants), with localisation (pointing game and energy in the prediction's own box or mask) and the time per
image beside it, the baselines (random map, ``ConfidenceMap``, each candidate's inverted map) always reported. It
writes ``eval.json``, ``eval.csv``, figures and ``index.html`` into ``runs/<task>/eval``.

:func:`compare` runs one method on the same images with several models and saves a figure per image (rows models,
columns detection and heatmap) into ``runs/<task>/compare``, with every model's per-prediction map correlation to the
first model's (:mod:`ultralytics_cam.agreement`): a ``.pt`` beside its exports shows whether the deployed model still
looks at the same things.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._logging import LOGGER, PREFIX

if TYPE_CHECKING:
    from .metrics import FaithfulnessScorer, _Case

__all__ = [
    "DEFAULT_METHODS",
    "EvalInterrupted",
    "EvalReport",
    "compare",
    "evaluate",
    "load_sample",
    "split_layer_sets",
]

#: The methods ``yolo-cam eval`` ranks when ``methods=`` is not given.
DEFAULT_METHODS = ("HiResCAM", "LayerCAM", "GradCAM", "EigenCAM")
#: Faithfulness differences below this are ties in the recommendation.
TIE = 0.01
#: Sample images that get figures (their results are kept until the end of the run).
FIGURE_IMAGES = 5
#: Columns of ``eval.csv`` and of the printed table, in order.
COLUMNS = (
    "rank",
    "method",
    "layers",
    "faithfulness",
    "image_deletion",
    "image_insertion",
    "box_deletion",
    "box_insertion",
    "inverted_faithfulness",
    "pointing_game",
    "energy_in_box",
    "ms_per_image",
    "predictions",
    "empty_maps",
    "error",
)


def split_layer_sets(layers: Any) -> list[str]:
    """Candidate layer sets: a string with sets separated by ``;`` or spaces (``"auto 15,18;9"``), or a list.

    Each set keeps today's ``layers=`` syntax (``auto``, indices, module names, commas between layers).

    Raises:
        ValueError: no set was given.
    """
    if layers is None:
        return ["auto"]
    if isinstance(layers, (list, tuple)):
        sets = [",".join(map(str, s)) if isinstance(s, (list, tuple)) else str(s) for s in layers]
    else:
        sets = [s for s in re.split(r"[;\s]+", str(layers)) if s]
    sets = [s.strip().strip(",") for s in sets if s.strip().strip(",")]
    if not sets:
        raise ValueError(f"layers={layers!r} holds no layer set; e.g. layers='auto;16,19,22;9'.")
    return list(dict.fromkeys(sets))


def _split_methods(methods: Any) -> list[str]:
    if methods is None:
        return list(DEFAULT_METHODS)
    items = re.split(r"[,;\s]+", methods) if isinstance(methods, str) else [str(m) for m in methods]
    items = [m for m in items if m]
    if not items:
        raise ValueError(f"methods={methods!r} names no method; e.g. methods=HiResCAM,LayerCAM ('yolo-cam methods').")
    return list(dict.fromkeys(items))


def load_sample(source: Any, max_images: int) -> list[tuple[str, np.ndarray]]:
    """Read at most ``max_images`` images (or video frames) of ``source`` with Ultralytics' loader: (name, BGR)."""
    from ultralytics.data.build import load_inference_source

    if not isinstance(max_images, int) or isinstance(max_images, bool) or max_images < 1:
        raise ValueError(f"max_images={max_images!r} must be a positive integer.")
    from .writers import unique_name

    dataset = load_inference_source(source)
    out: list[tuple[str, np.ndarray]] = []
    taken: set[str] = set()  # names figures and rows: bus.jpg and bus.png must not share figures/bus.png
    for paths, images, _ in dataset:
        for p, im in zip(paths, images):
            stem = Path(str(p)).stem or f"image{len(out)}"
            name = stem if getattr(dataset, "mode", "image") == "image" else f"{stem}_{getattr(dataset, 'frame', 0)}"
            out.append((unique_name(name, taken), im))
            if len(out) >= max_images:
                return out
    return out


def _model_label(model: Any) -> str:
    return Path(str(getattr(model, "ckpt_path", None) or getattr(model, "model_name", None) or "model")).name


def _save_dir(task: str, project: Any, name: str, exist_ok: bool) -> Path:
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir

    args = SimpleNamespace(project=project, name=name, task=task, mode="predict", exist_ok=exist_ok)
    return Path(get_save_dir(args))


def _nan_to_none(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class EvalReport:
    """The result of :func:`evaluate`.

    Attributes:
        ranking: one dict per candidate, best first (keys: :data:`COLUMNS`).
        baselines: mean areas and faithfulness of the random map and ``ConfidenceMap`` on the same predictions.
        recommendation: one sentence: which candidate to use by default, and why.
        images: names of the sample images.
        settings: the options of the run.
        status: ``completed`` or ``interrupted``.
        save_dir: where the files were written (None with ``save=False``).
    """

    ranking: list[dict[str, Any]]
    baselines: dict[str, dict[str, float]]
    recommendation: str
    images: list[str]
    settings: dict[str, Any]
    status: str = "completed"
    save_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Everything ``eval.json`` holds."""
        from .summary import versions

        return {
            "schema_version": 1,
            "status": self.status,
            "settings": self.settings,
            "images": self.images,
            "recommendation": self.recommendation,
            "ranking": [{k: _nan_to_none(v) for k, v in r.items()} for r in self.ranking],
            "baselines": {b: {k: _nan_to_none(v) for k, v in s.items()} for b, s in self.baselines.items()},
            "metric": "faithfulness = insertion AUC - deletion AUC, mean of image-level and box-level (higher is "
            "better); deletion fills with '{}', insertion reveals onto a blurred image".format(self.settings["fill"]),
            "versions": versions(),
        }

    def csv_text(self) -> str:
        """``eval.csv``: one row per candidate and one per baseline."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.ranking:
            writer.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
        for name, s in self.baselines.items():
            writer.writerow({"method": f"baseline:{name}", **{k: _fmt(s.get(k)) for k in COLUMNS if k in s}})
        return buf.getvalue()

    def table(self) -> str:
        """The ranking as a text table, baselines last, with the recommendation."""
        head = ("#", "method", "layers", "faithful", "del img", "ins img", "del box", "ins box", "inverted", "point",
                "energy", "ms/img")  # fmt: skip
        keys = ("rank", "method", "layers", "faithfulness", "image_deletion", "image_insertion", "box_deletion",
                "box_insertion", "inverted_faithfulness", "pointing_game", "energy_in_box", "ms_per_image")  # fmt: skip
        rows = [[_fmt(r.get(k), 0 if k == "ms_per_image" else 3) for k in keys] for r in self.ranking]
        rows += [["", f"({name})", "", *[_fmt(s.get(k), 3) for k in keys[3:8]], "", "", "", ""]
                 for name, s in self.baselines.items()]  # fmt: skip
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *rows]]
        errors = [f"{r['method']} layers={r['layers']}: {r['error']}" for r in self.ranking if r.get("error")]
        empty = [
            f"{r['method']} layers={r['layers']} ({r['empty_maps']} of {r['predictions']})"
            for r in self.ranking
            if r.get("empty_maps")
        ]
        notes = ["", "Empty maps (these layers do not feed those predictions; they score as a random map): "
                 + ", ".join(empty)] if empty else []  # fmt: skip
        return "\n".join([*lines, *(["", "Failed:", *errors] if errors else []), *notes, "", self.recommendation])


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`evaluate`, raised after the finished candidates were written (``.report``)."""

    def __init__(self, report: EvalReport) -> None:
        super().__init__("eval interrupted")
        self.report = report


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _recommend(ranking: list[dict[str, Any]], baselines: dict[str, dict[str, float]]) -> str:
    ok = [r for r in ranking if not r.get("error") and not math.isnan(r["faithfulness"])]
    if not ok:
        return "No candidate could be evaluated: no image had a prediction to explain, or every candidate failed."
    best = ok[0]
    conf = baselines.get("confidence", {}).get("faithfulness", float("nan"))
    rand = baselines.get("random", {}).get("faithfulness", float("nan"))
    loc = "" if math.isnan(best["pointing_game"]) else f", pointing game {best['pointing_game']:.2f}"
    f = best["faithfulness"]
    if abs(f - conf) < TIE and abs(f - rand) < TIE:  # e.g. a model whose predictions ignore the pixels
        verdict = "ties with the random map and ConfidenceMap, so the ranking carries no information"
    elif f > max(conf, rand) + TIE:
        verdict = "beats the random map and ConfidenceMap"
    elif f <= conf + TIE:
        verdict = "does not beat ConfidenceMap, so no candidate explains more than the boxes themselves"
    else:
        verdict = "beats ConfidenceMap but not the random map"
    return (
        f"Recommended: method={best['method']} layers={best['layers']}, the most faithful candidate (faithfulness "
        f"{best['faithfulness']:.3f} vs {rand:.3f} for a random map and {conf:.3f} for ConfidenceMap; it {verdict}"
        f"{loc}, {best['ms_per_image']:.0f} ms/image)."
    )


def evaluate(
    model: Any,
    source: Any = None,
    *,
    methods: Any = None,
    layers: Any = "auto",
    target: str | None = None,
    max_images: int = 20,
    steps: int = 10,
    fill: str = "gray",
    conf: float = 0.25,
    imgsz: Any = None,
    device: Any = None,
    batch: int = 16,
    save: bool = True,
    project: Any = None,
    name: str = "eval",
    exist_ok: bool = False,
    progress: bool = False,
    **cam_kwargs: Any,
) -> EvalReport:
    """Rank CAM methods x layer sets by faithfulness on a sample of images; write ``eval.json``/``eval.csv``.

    Args:
        model: an Ultralytics model (``YOLO("best.pt")``).
        source: images to evaluate on (anything ``model.predict`` reads); Ultralytics' sample images by default.
        methods: method names (a list, or a string separated by commas); default :data:`DEFAULT_METHODS`.
        layers: candidate layer sets (a list, or a string with sets separated by ``;`` or spaces:
            ``"auto;16,19,22;9"``), each in ``model.cam``'s ``layers=`` syntax.
        target: what each map explains (``model.cam``'s ``target``; the task's default when None).
        max_images: images of ``source`` to use (the first ones).
        steps: deletion/insertion steps (:class:`~ultralytics_cam.metrics.FaithfulnessScorer`).
        fill: what deleted pixels become: ``gray`` (114) or ``blur``.
        conf: confidence threshold of the explained predictions, as in ``model.cam``.
        imgsz: model input size, as in ``model.cam``.
        device: as in ``model.cam``.
        batch: perturbed images per forward pass.
        save: write ``eval.json``, ``eval.csv``, figures and ``index.html`` into ``runs/<task>/eval``.
        project: the run folder's parent, as in Ultralytics.
        name: the run folder's name (``eval``, ``eval2``, ... unless ``exist_ok``).
        exist_ok: reuse an existing run folder.
        progress: show a progress bar (the CLI does).
        **cam_kwargs: other ``model.cam`` options for every candidate (``max_det``, ``classes``, ``iou``, ...).

    Returns:
        An :class:`EvalReport`; ``report.table()`` is what ``yolo-cam eval`` prints.

    Raises:
        ValueError: an option is invalid (the message names it).
        EvalInterrupted: Ctrl-C, after writing the finished candidates (``status: interrupted``); a
            ``KeyboardInterrupt`` carrying the :class:`EvalReport`.
    """
    from . import metrics
    from .config import CamConfig

    method_list, layer_sets = _split_methods(methods), split_layer_sets(layers)
    for m in method_list:  # names and layer syntax checked before anything runs; the message names the bad value
        for layer_set in layer_sets:
            CamConfig(method=m, layers=layer_set)
    if fill not in metrics.FILLS:
        raise ValueError(f"fill={fill!r} is not a fill; use one of {', '.join(metrics.FILLS)}.")
    if source is None:
        from ultralytics.utils import ASSETS

        LOGGER.warning(f"{PREFIX}'source' is missing. Using 'source={ASSETS}'.")
        source = ASSETS
    sample = load_sample(source, max_images)
    if not sample:
        raise ValueError(f"source={source!r} holds no image.")
    names, images = [n for n, _ in sample], [im for _, im in sample]
    # The perturbed predictions are kept down to a tenth of conf (at most 0.01), so scores fade rather than vanish.
    scorer = metrics.FaithfulnessScorer(
        model, steps=steps, fill=fill, batch=batch, conf=min(0.01, conf / 10), imgsz=imgsz, device=device
    )
    cam_kwargs = {**cam_kwargs, "conf": conf, "verbose": False, **({"target": target} if target else {})}
    cam_kwargs.update({k: v for k, v in {"imgsz": imgsz, "device": device}.items() if v is not None})
    settings = {
        "model": str(getattr(model, "ckpt_path", None) or getattr(model, "model_name", "") or ""),
        "task": model.task,
        "source": str(source) if not isinstance(source, (list, tuple)) else [str(s) for s in source][:50],
        "methods": method_list,
        "layers": layer_sets,
        "target": target,
        "max_images": max_images,
        "steps": steps,
        "fill": fill,
        "conf": conf,
        "imgsz": imgsz,
        "device": None if device is None else str(device),
        **{k: v for k, v in cam_kwargs.items() if k not in ("conf", "verbose", "target")},
    }
    cases: dict[int, _Case] = {}
    baseline_rows: list[dict[str, Any]] = []
    ranking: list[dict[str, Any]] = []
    first_results: dict[tuple[str, str], Any] = {}
    bar = None
    if progress:
        import sys

        from ultralytics.utils.tqdm import TQDM

        bar = TQDM(total=len(method_list) * len(layer_sets) * len(images), desc="yolo-cam eval", unit="img",
                   file=sys.stderr)  # fmt: skip
    status = "completed"
    try:
        for method in method_list:
            for layer_set in layer_sets:
                row = _evaluate_candidate(
                    model, images, method, layer_set, cam_kwargs, scorer, cases, baseline_rows, bar, first_results
                )
                ranking.append(row)
    except KeyboardInterrupt:
        status = "interrupted"
        LOGGER.warning(f"{PREFIX}eval interrupted: keeping the {len(ranking)} finished candidates")
    finally:
        if bar is not None:
            bar.close()
    ranking.sort(key=lambda r: (bool(r.get("error")), -_nan_low(r["faithfulness"])))
    for i, r in enumerate(ranking, 1):
        r["rank"] = i
    baselines = {
        b: s for b, s in metrics.summarise(baseline_rows, ("random", "confidence")).items() if b != "map"
    }  # the same predictions for every candidate: one baseline per image
    report = EvalReport(ranking, baselines, _recommend(ranking, baselines), names, settings, status)
    if save:
        _write_eval(report, model, names, images, first_results, project, name, exist_ok)
    if status == "interrupted":
        raise EvalInterrupted(report)
    return report


def _nan_low(v: float) -> float:
    return -1e9 if v is None or math.isnan(v) else v


def _evaluate_candidate(
    model: Any,
    images: list[np.ndarray],
    method: str,
    layer_set: str,
    cam_kwargs: dict[str, Any],
    scorer: FaithfulnessScorer,
    cases: dict[int, _Case],
    baseline_rows: list[dict[str, Any]],
    bar: Any,
    first_results: dict[tuple[str, str], Any],
) -> dict[str, Any]:
    """Run one candidate on every image and score it; an error (e.g. a refused method) is recorded, not raised."""
    from . import metrics
    from .errors import CamError

    row: dict[str, Any] = {
        "method": method,
        "layers": layer_set,
        "faithfulness": float("nan"),
        "empty_maps": 0,
        "error": "",
    }
    t0 = time.perf_counter()
    try:
        results = model.cam(list(images), method=method, layers=layer_set, **cam_kwargs)
    except (CamError, ValueError, TypeError) as e:
        LOGGER.warning(f"{PREFIX}eval: {method} layers={layer_set} failed: {e}")
        if bar is not None:
            bar.update(len(images))
        return {**row, "error": str(e).split("\n")[0]}
    wall = (time.perf_counter() - t0) * 1000 / len(images)
    # Ultralytics' own per-image timing (preprocess + inference + postprocess, the backward included), without the
    # one-off set-up of the run; the wall time per image when it is missing.
    speeds = [sum(r.speed.values()) for r in results if getattr(r, "speed", None)]
    row["ms_per_image"] = float(np.mean(speeds)) if speeds else wall
    method = results[0].cam.method if results else method  # the canonical spelling
    row["method"] = method
    rows: list[dict[str, Any]] = []
    own: dict[str, list[float]] = {"pointing_game": [], "energy_in_box": []}
    for j, r in enumerate(results):
        if j < FIGURE_IMAGES:  # kept for the figures only: every candidate's maps of every image would not fit
            first_results.setdefault((method, layer_set), [None] * FIGURE_IMAGES)[j] = r
        if len(r.cam):
            case = cases.get(j)
            if case is None or not _same_predictions(case, r):
                case = cases[j] = scorer.prepare(r)
                baseline_rows[:] = [b for b in baseline_rows if b["image"] != j]
                for name, maps in metrics.baseline_maps(r, r.cam.maps, ("random", "confidence"), seed=j + 1).items():
                    for i, c in enumerate(scorer.curves(case, maps)):
                        _put(baseline_rows, j, i, name, c.aucs())
            maps = r.cam.maps
            for name, m in (("map", maps), ("inverted", metrics.inverted_maps(maps))):
                for i, c in enumerate(scorer.curves(case, m)):
                    _put(rows, j, i, name, c.aucs())
            for k, v in metrics.own_region_scores(r, maps).items():
                own[k] += v
            row["empty_maps"] = row.get("empty_maps", 0) + int((maps.reshape(len(maps), -1).max(1) <= 0).sum())
        if bar is not None:
            bar.update(1)
    summary = metrics.summarise(rows, ("map", "inverted"))
    s = summary.get("map", {})
    row.update({k: s.get(k, float("nan")) for k in COLUMNS[3:8]})
    row["inverted_faithfulness"] = summary.get("inverted", {}).get("faithfulness", float("nan"))
    for k, v in own.items():
        row[k] = float(np.nanmean(v)) if v and not np.isnan(v).all() else float("nan")
    row["predictions"] = len(rows)
    return row


def _put(rows: list[dict[str, Any]], image: int, prediction: int, name: str, aucs: dict[str, float]) -> None:
    for r in rows:
        if r["image"] == image and r["prediction"] == prediction:
            r[name] = aucs
            return
    rows.append({"image": image, "prediction": prediction, name: aucs})


def _same_predictions(case: _Case, result: Any) -> bool:
    """The candidate explained the same predictions the prepared case holds (the maps rank the same boxes)."""
    cls = result.cam.cls.numpy()
    if len(cls) != len(case.cls) or (cls != case.cls).any():
        return False
    key = "xywhr" if "xywhr" in case.ref else "xyxy" if "xyxy" in case.ref else None
    if key is None:
        return True
    now = result.obb.xywhr if key == "xywhr" else result.boxes.xyxy
    return bool(np.allclose(now.float().cpu().numpy(), case.ref[key], atol=0.5))


def _write_eval(
    report: EvalReport,
    model: Any,
    names: list[str],
    images: list[np.ndarray],
    first_results: dict[tuple[str, str], Any],
    project: Any,
    name: str,
    exist_ok: bool,
) -> None:
    from .writers import atomic_write_bytes, write_json

    save_dir = _save_dir(model.task, project, name, exist_ok)
    save_dir.mkdir(parents=True, exist_ok=True)
    report.save_dir = save_dir
    report.files = [write_json(save_dir / "eval.json", report.as_dict())]
    report.files.append(atomic_write_bytes(save_dir / "eval.csv", report.csv_text().encode("utf-8")))
    try:
        report.files += _eval_figures(report, names, first_results, save_dir)
    except Exception as e:  # figures are a convenience: the ranking is already written
        LOGGER.warning(f"{PREFIX}eval: could not draw the figures ({type(e).__name__}: {e})")
    try:
        from .report import write_report

        report.files.append(write_report(save_dir))
    except Exception as e:
        LOGGER.warning(f"{PREFIX}eval: could not write index.html ({type(e).__name__}: {e})")
    LOGGER.info(f"{PREFIX}eval results saved to {save_dir}")


def _eval_figures(
    report: EvalReport, names: list[str], first_results: dict[tuple[str, str], Any], save_dir: Path
) -> list[Path]:
    """Figures of the first :data:`FIGURE_IMAGES` sample images: best candidate, across methods, across layers.

    ``<image>_best.png`` explains the recommended candidate; ``_methods`` shows the methods on the best layer set;
    ``_layers`` the layer sets with the best method.
    """
    from . import figures

    ok = [r for r in report.ranking if not r.get("error")]
    if not ok:
        return []
    best = ok[0]
    out = []
    for j, image_name in enumerate(names[:FIGURE_IMAGES]):
        across_methods = [
            (r["method"], first_results[(r["method"], r["layers"])][j])
            for r in ok
            if r["layers"] == best["layers"] and (r["method"], r["layers"]) in first_results
        ]
        across_layers = [
            (f"layers={r['layers']}", first_results[(r["method"], r["layers"])][j])
            for r in ok
            if r["method"] == best["method"] and (r["method"], r["layers"]) in first_results
        ]
        fig_dir = save_dir / "figures"
        best_result = first_results.get((best["method"], best["layers"]), [None] * FIGURE_IMAGES)[j]
        if best_result is not None:  # the recommended candidate: original | heatmap | overlay
            out.append(figures.explain_figure(best_result, fig_dir / f"{image_name}_best.png"))
        out.append(figures.grid_figure(across_methods, fig_dir / f"{image_name}_methods.png", title=image_name))
        out.append(figures.grid_figure(across_layers, fig_dir / f"{image_name}_layers.png", title=image_name))
    return out


def _with_correlation(label: str, summary: dict[str, Any]) -> str:
    """``label`` with the mean map correlation to the reference model (``r = 0.998, 4/4 matched``)."""
    mean = summary["mean_correlation"]
    corr = "r = n/a" if mean is None else f"r = {mean:.3f}"
    return f"{label} ({corr}, {summary['matched']}/{summary['predictions']} matched)"


def compare(
    models: list[Any],
    source: Any = None,
    *,
    method: str = "HiResCAM",
    labels: list[str] | None = None,
    max_images: int = 20,
    save: bool = True,
    project: Any = None,
    name: str = "compare",
    exist_ok: bool = False,
    **cam_kwargs: Any,
) -> tuple[list[list[Any]], Path | None]:
    """Run ``method`` with every model on the same images; save one figure per image (rows models).

    Every model after the first is compared with the first, prediction by prediction (matched by class and box IoU):
    the correlation of their maps goes into each row's label, ``compare.json`` (``agreement``) and the log. Exported
    models (``best.onnx``, ...) take ``method="DRISE"``.

    Args:
        models: two or more Ultralytics models (the same task); the first is the reference.
        source: images (the first ``max_images`` are used); Ultralytics' sample images by default.
        method: the CAM method for every model.
        labels: a row label per model (default: each model's file name).
        max_images: images of ``source`` to use.
        save: write ``figures/<image>.png``, ``compare.json`` and ``index.html`` into ``runs/<task>/compare``.
        project: the run folder's parent, as in Ultralytics.
        name: the run folder's name.
        exist_ok: reuse an existing run folder.
        **cam_kwargs: any other ``model.cam`` option (``layers``, ``target``, ``conf``, ``imgsz``, ...).

    Returns:
        (results per model, the run folder or None).

    Raises:
        ValueError: fewer than two models, or models of different tasks.
    """
    if len(models) < 2:
        raise ValueError(f"compare needs two or more models, got {len(models)}; e.g. model=before.pt,after.pt.")
    tasks = {m.task for m in models}
    if len(tasks) > 1:
        raise ValueError(f"compare needs models of one task, got {', '.join(sorted(tasks))}.")
    labels = labels or [_model_label(m) for m in models]
    if source is None:
        from ultralytics.utils import ASSETS

        source = ASSETS
    sample = load_sample(source, max_images)
    names, images = [n for n, _ in sample], [im for _, im in sample]
    per_model = [m.cam(list(images), method=method, verbose=False, **cam_kwargs) for m in models]
    if not save:
        return per_model, None
    from . import figures
    from .agreement import map_agreement, summarise_agreement
    from .writers import write_json

    save_dir = _save_dir(models[0].task, project, name, exist_ok)
    fig_dir = save_dir / "figures"
    entries = []
    overall: dict[str, list[dict[str, Any]]] = {label: [] for label in labels[1:]}
    for j, image_name in enumerate(names):
        # every other model's maps against the first model's, prediction by prediction (docs/drise.md)
        agree = {label: map_agreement(per_model[0][j], res[j]) for label, res in zip(labels[1:], per_model[1:])}
        for label, rows_of in agree.items():
            overall[label] += rows_of
        shown = [labels[0]] + [_with_correlation(label, summarise_agreement(agree[label])) for label in labels[1:]]
        rows = [(label, res[j]) for label, res in zip(shown, per_model)]
        path = figures.compare_figure(rows, fig_dir / f"{image_name}.png", title=f"{image_name}: {method}")
        agreement = {label: {**summarise_agreement(a), "rows": a} for label, a in agree.items()}
        entries.append({"name": image_name, "figure": path.relative_to(save_dir).as_posix(),
                        "predictions": {label: len(res[j].cam) for label, res in zip(labels, per_model)},
                        "agreement": agreement})  # fmt: skip
    summary = {label: summarise_agreement(rows_of) for label, rows_of in overall.items()}
    for label, s in summary.items():
        LOGGER.info(f"{PREFIX}compare: {label} vs {labels[0]}: {_with_correlation('maps', s)}")
    write_json(
        save_dir / "compare.json",
        {"schema_version": 1, "method": method, "models": labels, "reference": labels[0], "agreement": summary,
         "images": entries},
    )  # fmt: skip
    try:
        from .report import write_report

        write_report(save_dir)
    except Exception as e:
        LOGGER.warning(f"{PREFIX}compare: could not write index.html ({type(e).__name__}: {e})")
    LOGGER.info(f"{PREFIX}compare results saved to {save_dir}")
    return per_model, save_dir
