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
    "CompareInterrupted",
    "EvalInterrupted",
    "EvalReport",
    "compare",
    "evaluate",
    "load_sample",
    "split_layer_sets",
]

#: The methods ``yolo-cam eval`` ranks when ``methods=`` is not given.
DEFAULT_METHODS = ("HiResCAM", "LayerCAM", "GradCAM", "EigenCAM")
#: Sample images that get figures (their results are kept until the end of the run).
FIGURE_IMAGES = 5
#: Columns of ``eval.csv`` and of the printed table, in order (then the points, ``image_deletion@5%``, ...).
COLUMNS = (
    "rank",
    "method",
    "layers",
    "faithfulness",
    "vs_baseline",
    "ci95_diff",
    "ci95_low",
    "ci95_high",
    "image_deletion",
    "image_insertion",
    "box_deletion",
    "box_insertion",
    "inverted_faithfulness",
    "sanity",
    "sanity_flagged",
    "pointing_game",
    "energy_in_box",
    "ms_per_image",
    "predictions",
    "empty_maps",
    "error",
)
#: The areas every candidate and baseline reports.
AREAS = ("faithfulness", "image_deletion", "image_insertion", "box_deletion", "box_insertion")
#: The baselines eval scores on every image (``inverted`` is per candidate, on request).
EVAL_BASELINES = ("random", "confidence", "centre")


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
    """The eval / compare run folder, claimed for this run alone (two runs started at once get two folders)."""
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir

    from .saving import claim_run_dir

    args = SimpleNamespace(project=project, name=name, task=task, mode="predict", exist_ok=exist_ok)
    return claim_run_dir(get_save_dir(args), name, exist_ok)


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
            "schema_version": 2,
            "status": self.status,
            "settings": self.settings,
            "images": self.images,
            "recommendation": self.recommendation,
            "ranking": [_json_ready(r) for r in self.ranking],
            "baselines": {b: _json_ready(s) for b, s in self.baselines.items()},
            "metric": "faithfulness = insertion AUC - deletion AUC, mean of image-level and box-level (higher is "
            "better); deletion fills with '{}', insertion reveals onto a blurred image; ci95: paired bootstrap 95 % "
            "interval of the candidate minus each baseline, per metric; sanity: rank correlation of each map with "
            "the head's weights randomised".format(self.settings["fill"]),
            "versions": versions(),
        }

    def csv_text(self) -> str:
        """``eval.csv``: one row per candidate and one per baseline (the points after the fixed columns)."""
        points = sorted({k for r in [*self.ranking, *self.baselines.values()] for k in r if "@" in k}, key=_point_key)
        fields = [*COLUMNS, *points]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.ranking:
            writer.writerow({k: _fmt(v) for k, v in _flat_row(r).items()})
        for name, s in self.baselines.items():
            writer.writerow({"method": f"baseline:{name}", **{k: _fmt(s.get(k)) for k in fields if k in s}})
        return buf.getvalue()

    def table(self) -> str:
        """The ranking as a text table, baselines last, with the recommendation."""
        from .verdicts import table

        return table(self.ranking, self.baselines, self.recommendation, bool(self.settings.get("inverted")))


def _point_key(k: str) -> tuple[str, float]:
    name, _, pct = k.partition("@")
    return name, float(pct.rstrip("%"))


def _flat_row(r: dict[str, Any]) -> dict[str, Any]:
    """A ranking row with its interval against the best baseline and its sanity check as plain columns."""
    out = {k: v for k, v in r.items() if k not in ("ci95", "sanity")}
    best = r.get("best_baseline")
    ci = r.get("ci95", {}).get("faithfulness", {}).get(best or "", {})
    out.update(vs_baseline=best or "", ci95_diff=ci.get("diff"), ci95_low=ci.get("low"), ci95_high=ci.get("high"))
    sanity = r.get("sanity") or {}
    out.update(sanity=sanity.get("rank_correlation"), sanity_flagged=sanity.get("flagged"))
    return out


def _json_ready(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    return _nan_to_none(v)


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`evaluate`, raised after the finished candidates were written (``.report``).

    Its ``__cause__`` is the interruption itself (``yolo-cam``'s SIGTERM raises one that carries its exit code).
    """

    def __init__(self, report: EvalReport) -> None:
        super().__init__("eval interrupted")
        self.report = report


class CompareInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during :func:`compare`'s figures, raised after what was finished was written.

    Attributes:
        save_dir: the run folder (None when no figure was finished: nothing was written).
        done: figures finished (listed in ``compare.json``, shown by ``index.html``).
        total: figures the run would have made.
    """

    def __init__(self, save_dir: Path | None, done: int, total: int) -> None:
        super().__init__("compare interrupted")
        self.save_dir, self.done, self.total = save_dir, done, total


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def evaluate(
    model: Any,
    source: Any = None,
    *,
    methods: Any = None,
    layers: Any = "auto",
    target: str | None = None,
    max_images: int = 20,
    protocol: str = "default",
    steps: int | None = None,
    fill: str = "gray",
    per_image: int | None = None,
    inverted: bool = False,
    sanity: bool = True,
    early_stop: bool = False,
    seed: int = 0,
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
        protocol: ``default`` or ``odexai`` (:data:`~ultralytics_cam.metrics.PROTOCOLS`).
        steps: None for the fine schedules, or a number of equal steps per curve.
        fill: what deleted pixels become: ``gray`` (114), ``blur`` or ``road`` (noisy linear imputation).
        per_image: score at most this many predictions per image, stratified by class and size (None: all).
        inverted: also score each map inverted (the ``inverted`` column).
        sanity: run the head-randomisation sanity check (the ``sanity`` column).
        early_stop: stop a deletion curve once its prediction is gone (faster, not exact: see
            :mod:`ultralytics_cam.metrics`).
        seed: seed of the random baseline, the sampling, ROAD's noise, the sanity check and the bootstrap.
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
    from .verdicts import recommend

    method_list, layer_sets = _split_methods(methods), split_layer_sets(layers)
    for m in method_list:  # names and layer syntax checked before anything runs; the message names the bad value
        for layer_set in layer_sets:
            CamConfig(method=m, layers=layer_set)
    if fill not in metrics.FILLS:
        raise ValueError(f"fill={fill!r} is not a fill; use one of {', '.join(metrics.FILLS)}.")
    if protocol not in metrics.PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not a protocol; use one of {', '.join(metrics.PROTOCOLS)}.")
    if per_image is not None and (not isinstance(per_image, int) or isinstance(per_image, bool) or per_image < 1):
        raise ValueError(f"per_image={per_image!r} must be a positive integer (or None: every prediction).")
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
        model, protocol=protocol, steps=steps, fill=fill, batch=batch, conf=min(0.01, conf / 10), imgsz=imgsz,
        device=device, seed=seed, early_stop=early_stop,
    )  # fmt: skip
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
        "protocol": protocol,
        "steps": steps,
        "schedule": {lv: list(metrics.IMAGE_SCHEDULE if lv == "image" else metrics.BOX_SCHEDULE)
                     for lv in scorer.levels} if steps is None and protocol == "default" else None,
        "fill": scorer.fill,
        "per_image": per_image,
        "inverted": inverted,
        "sanity": sanity,
        "early_stop": early_stop,
        "seed": seed,
        "conf": conf,
        "imgsz": imgsz,
        "device": None if device is None else str(device),
        **{k: v for k, v in cam_kwargs.items() if k not in ("conf", "verbose", "target")},
    }  # fmt: skip
    settings["estimate"] = _estimate(model, images, scorer, cam_kwargs, len(method_list) * len(layer_sets), settings)
    state = _EvalState(scorer, per_image, inverted, seed)
    ranking: list[dict[str, Any]] = []
    first_results: dict[tuple[str, str], Any] = {}
    bar = None
    if progress:
        import sys

        from ultralytics.utils.tqdm import TQDM

        bar = TQDM(total=len(method_list) * len(layer_sets) * len(images), desc="yolo-cam eval", unit="img",
                   file=sys.stderr)  # fmt: skip
    status, stop = "completed", None
    t0 = time.perf_counter()
    try:
        for method in method_list:
            for layer_set in layer_sets:
                row = _evaluate_candidate(model, images, method, layer_set, cam_kwargs, state, bar, first_results)
                if sanity and not row.get("error") and row.get("predictions"):
                    row["sanity"] = _sanity(model, images, row["method"], layer_set, cam_kwargs, seed)
                ranking.append(row)
    except KeyboardInterrupt as e:
        status, stop = "interrupted", e  # (stop: SIGINT or SIGTERM, for yolo-cam's exit code 128 + the signal)
        LOGGER.warning(f"{PREFIX}eval interrupted: keeping the {len(ranking)} finished candidates")
    finally:
        if bar is not None:
            bar.close()
    settings["cost"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        "forwards": scorer.forwards,
        "points": scorer.requested,
        "forward_seconds": round(scorer.seconds, 1),
    }
    LOGGER.info(f"{PREFIX}eval took {settings['cost']['seconds']:.0f} s: {scorer.forwards} perturbed forwards for "
                f"{scorer.requested} curve points (the rest shared or stopped early)")  # fmt: skip
    ranking.sort(key=lambda r: (bool(r.get("error")), -_nan_low(r["faithfulness"])))
    # the same predictions for every candidate: one baseline per image
    baselines = {b: s for b, s in metrics.summarise(state.baseline_rows, EVAL_BASELINES).items() if b != "map"}
    best_baseline = max(baselines, key=lambda b: _nan_low(baselines[b].get("faithfulness", float("nan"))), default=None)
    for i, r in enumerate(ranking, 1):
        r["rank"] = i
        r["best_baseline"] = best_baseline
    report = EvalReport(ranking, baselines, recommend(ranking, baselines), names, settings, status)
    if save:
        _write_eval(report, model, names, images, first_results, project, name, exist_ok)
    if status == "interrupted":
        raise EvalInterrupted(report) from stop
    return report


def _nan_low(v: float) -> float:
    return -1e9 if v is None or math.isnan(v) else v


@dataclass
class _EvalState:
    """What every candidate shares: the scorer, the prepared images, the sampled predictions, the baselines' rows."""

    scorer: FaithfulnessScorer
    per_image: int | None
    inverted: bool
    seed: int
    cases: dict[int, _Case] = field(default_factory=dict)
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # image -> the predictions scored
    baseline_rows: list[dict[str, Any]] = field(default_factory=list)


def _estimate(
    model: Any, images: list[np.ndarray], scorer: FaithfulnessScorer, cam_kwargs: dict[str, Any], candidates: int,
    settings: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Count the predictions (one plain predict per image), time a forward, and log the run's cost before it starts.

    The count of forwards is an upper bound: early stops and images shared between curves only lower it.
    """
    import torch

    from .config import split_kwargs

    _, predict_args = split_kwargs(cam_kwargs)
    plain = model.predict(list(images), **{**predict_args, "verbose": False})
    per = settings["per_image"]
    # classify explains one class per image by default; the other tasks every kept prediction
    counts = [min(1 if r.probs is not None else len(r), per or len(r) or 1) for r in plain]
    ms = scorer.time_forward(images[0], choose_threads=True)
    h, w = images[0].shape[:2]
    inner = {lv: max(len(scorer._fractions(lv, (h, w))) - 2, 0) for lv in scorer.levels}
    per_pair = sum(2 * n for lv, n in inner.items() if lv == "image" or model.task != "classify")
    map_sets = candidates * (2 if settings["inverted"] else 1) + len(EVAL_BASELINES)
    forwards = sum(counts) * per_pair * map_sets + sum(2 + 2 * c for c in counts) + len(images)
    cam_runs = candidates * len(images) * (3 if settings["sanity"] else 1)
    seconds = forwards * ms / 1000 + cam_runs * 3 * ms / 1000  # a CAM run: a forward and a backward, about 3 forwards
    LOGGER.info(
        f"{PREFIX}eval: {candidates} candidates x {len(images)} images, {sum(counts)} predictions to score: at most "
        f"{forwards:,} perturbed forwards at {ms:.0f} ms each (measured now) and {cam_runs} CAM runs, about "
        f"{seconds / 60:.1f} min at most; early stops and shared images only lower it"
        + ("; fill=road adds a sparse solve per perturbed image, not counted here" if scorer.fill == "road" else "")
    )
    return {"predictions": sum(counts), "max_forwards": forwards, "ms_per_forward": round(ms, 1),
            "threads": scorer.threads or torch.get_num_threads(), "cam_runs": cam_runs,
            "max_seconds": round(seconds)}  # fmt: skip


def _sanity(
    model: Any, images: list[np.ndarray], method: str, layers: str, cam_kwargs: dict[str, Any], seed: int
) -> dict[str, Any]:
    from .sanity import sanity_correlations
    from .verdicts import SANITY_FLAG

    try:
        corr = sanity_correlations(model, images, method, layers, cam_kwargs, seed=seed)
    except Exception as e:  # the check is evidence beside the ranking: a failure is recorded, never fatal
        LOGGER.warning(f"{PREFIX}eval: the sanity check of {method} layers={layers} failed: {e}")
        return {"rank_correlation": float("nan"), "flagged": False, "predictions": 0, "error": str(e)}
    vals = [c for c in corr if not math.isnan(c)]
    mean = float(np.mean(vals)) if vals else float("nan")
    return {"rank_correlation": mean, "flagged": bool(vals) and mean >= SANITY_FLAG, "predictions": len(vals),
            "test": "head weights randomised (Adebayo et al. 2018), Spearman rank correlation of the maps"}  # fmt: skip


def _evaluate_candidate(
    model: Any,
    images: list[np.ndarray],
    method: str,
    layer_set: str,
    cam_kwargs: dict[str, Any],
    state: _EvalState,
    bar: Any,
    first_results: dict[tuple[str, str], Any],
) -> dict[str, Any]:
    """Run one candidate on every image and score it; an error (e.g. a refused method) is recorded, not raised."""
    from . import metrics
    from .errors import CamError
    from .verdicts import intervals

    row: dict[str, Any] = {
        "method": method,
        "layers": layer_set,
        "faithfulness": float("nan"),
        "empty_maps": 0,
        "error": "",
    }
    scorer = state.scorer
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
            case = state.cases.get(j)
            if case is None or not _same_predictions(case, r):
                case = state.cases[j] = scorer.prepare(r, index=j)
                state.rows[j] = metrics.sample_predictions(r, state.per_image, seed=state.seed + j)
                state.baseline_rows[:] = [b for b in state.baseline_rows if b["image"] != j]
                for name, maps in metrics.baseline_maps(r, r.cam.maps, EVAL_BASELINES, seed=scorer.seed).items():
                    for i, c in zip(state.rows[j], _scored(scorer.curves(case, maps, state.rows[j]), state.rows[j])):
                        _put(state.baseline_rows, j, int(i), name, {**c.aucs(), **c.points()})
            maps = r.cam.maps
            sets = [("map", maps)] + ([("inverted", metrics.inverted_maps(maps))] if state.inverted else [])
            for name, m in sets:
                for i, c in zip(state.rows[j], _scored(scorer.curves(case, m, state.rows[j]), state.rows[j])):
                    _put(rows, j, int(i), name, {**c.aucs(), **c.points()})
            scored = state.rows[j]
            for k, v in metrics.own_region_scores(r, maps).items():
                own[k] += [v[int(i)] for i in scored]
            row["empty_maps"] += int((maps[scored].reshape(len(scored), -1).max(1) <= 0).sum())
        if bar is not None:
            bar.update(1)
    summary = metrics.summarise(rows, ("map", "inverted"))
    s = summary.get("map", {})
    row.update({k: v for k, v in s.items() if k in AREAS or "@" in k})
    row["inverted_faithfulness"] = summary.get("inverted", {}).get("faithfulness", float("nan"))
    for k, v in own.items():
        row[k] = float(np.nanmean(v)) if v and not np.isnan(v).all() else float("nan")
    row["predictions"] = len(rows)
    row["ci95"] = intervals(rows, state.baseline_rows, EVAL_BASELINES, seed=state.seed)
    return row


def _scored(curves: list[Any], rows: np.ndarray) -> list[Any]:
    """The curves of the scored predictions, in the order of ``rows``."""
    return [curves[int(i)] for i in rows]


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
        CompareInterrupted: Ctrl-C or SIGTERM while the figures were written, after ``compare.json`` and
            ``index.html`` were written for the finished ones (``status: interrupted``; nothing when none was).
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
    entries: list[dict[str, Any]] = []
    overall: dict[str, list[dict[str, Any]]] = {label: [] for label in labels[1:]}
    stop: KeyboardInterrupt | None = None
    try:
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
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the finished figures are kept, listed and shown
        stop = e
        if not entries:
            raise CompareInterrupted(None, 0, len(names)) from e
    status = "interrupted" if stop is not None else "completed"
    summary = {label: summarise_agreement(rows_of) for label, rows_of in overall.items()}
    for label, s in summary.items():
        LOGGER.info(f"{PREFIX}compare: {label} vs {labels[0]}: {_with_correlation('maps', s)}")
    write_json(
        save_dir / "compare.json",
        {"schema_version": 1, "status": status, "method": method, "models": labels, "reference": labels[0],
         "agreement": summary, "images": entries},
    )  # fmt: skip
    try:
        from .report import write_report

        write_report(save_dir)
    except Exception as e:
        LOGGER.warning(f"{PREFIX}compare: could not write index.html ({type(e).__name__}: {e})")
    if stop is not None:
        raise CompareInterrupted(save_dir, len(entries), len(names)) from stop
    LOGGER.info(f"{PREFIX}compare results saved to {save_dir}")
    return per_model, save_dir
