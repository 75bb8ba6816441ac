"""What ``yolo-cam eval`` concludes: intervals against the baselines, the sanity flag, the recommendation, the table.

A candidate **beats** a baseline only where the paired bootstrap 95 % interval of its per-prediction faithfulness
minus the baseline's (:mod:`ultralytics_cam.intervals`) lies above 0; it **is beaten** where the interval lies below
0; otherwise the sample cannot tell them apart, and the recommendation says so rather than ranking by a mean.

The recommended candidate is the most faithful one that passes the sanity check: a map that barely changes when the
head's weights are randomised does not explain what the model predicts, however well it scores (on the real
benchmark set EigenCAM ranked first on faithfulness with a rank correlation of 1.00 and a pointing game of 0.07: its
maps are the image's dominant activation pattern, the same for every prediction). A flagged candidate that ranks
higher is named beside the recommendation; when every candidate is flagged, the most faithful is recommended with
the flag.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["BASELINE_LABELS", "METRICS", "SANITY_FLAG", "intervals", "recommend", "sanity_text", "table"]

#: The metrics that get intervals: the ranking's faithfulness and the four areas.
METRICS = ("faithfulness", "image_deletion", "image_insertion", "box_deletion", "box_insertion")
#: How the baselines are named in sentences.
BASELINE_LABELS = {"random": "the random map", "confidence": "ConfidenceMap", "centre": "the centre prior"}
#: A method whose maps keep a rank correlation of at least this with the head's weights randomised is flagged: more
#: than half of its pixel ranking survives without what the head learned (Adebayo et al. 2018 read such maps as
#: independent of the model).
SANITY_FLAG = 0.5
#: Differences this small are float32 rounding of equal curves (a model whose outputs ignore the pixels), not evidence.
NUMERICAL_TIE = 1e-6


def _per_prediction(areas: dict[str, float]) -> dict[str, float]:
    from .metrics import prediction_faithfulness

    return {"faithfulness": prediction_faithfulness(areas), **{k: areas.get(k, float("nan")) for k in METRICS[1:]}}


def intervals(
    rows: list[dict[str, Any]], baseline_rows: list[dict[str, Any]], baselines: tuple[str, ...], seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """``{metric: {baseline: {"diff", "low", "high", "n"}}}``: the candidate minus each baseline, paired by prediction.

    ``rows`` and ``baseline_rows`` hold one dict per scored prediction (``image``, ``prediction``, then ``map`` or the
    baselines' areas). Differences are candidate minus baseline for every metric (lower deletion is better: a
    candidate beats a baseline on deletion where the interval is below 0).
    """
    from .intervals import paired_bootstrap

    by_key = {(b["image"], b["prediction"]): b for b in baseline_rows}
    out: dict[str, dict[str, dict[str, float]]] = {m: {} for m in METRICS}
    for name in baselines:
        pairs = [(r["map"], by_key[(r["image"], r["prediction"])][name]) for r in rows
                 if "map" in r and name in by_key.get((r["image"], r["prediction"]), {})]  # fmt: skip
        ours = [_per_prediction(a) for a, _ in pairs]
        theirs = [_per_prediction(b) for _, b in pairs]
        diffs = {m: np.array([o[m] - t[m] for o, t in zip(ours, theirs)], np.float64) for m in METRICS}
        for m, ci in paired_bootstrap(diffs, seed=seed).items():
            out[m][name] = ci
    return out


def _better(metric: str, ci: dict[str, float]) -> int:
    """+1: the candidate is better than the baseline (the interval excludes 0 on its side), -1: worse, 0: no call."""
    sign = -1 if metric.endswith("deletion") else 1
    low, high = ci.get("low", float("nan")), ci.get("high", float("nan"))
    if math.isnan(low) or math.isnan(high) or max(abs(low), abs(high)) < NUMERICAL_TIE:
        return 0
    if sign * low > 0 and sign * high > 0:
        return 1
    if sign * low < 0 and sign * high < 0:
        return -1
    return 0


def beats_all(row: dict[str, Any], metric: str = "faithfulness") -> bool:
    """The candidate beats every baseline on ``metric`` (each interval excludes 0 on the candidate's side)."""
    cis = row.get("ci95", {}).get(metric, {})
    return bool(cis) and all(_better(metric, ci) == 1 for ci in cis.values())


def _fmt_ci(ci: dict[str, float]) -> str:
    return f"{ci['diff']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}]"


def sanity_text(row: dict[str, Any]) -> str:
    """The sanity column: the rank correlation, with ``!`` when the method is flagged."""
    s = row.get("sanity") or {}
    r = s.get("rank_correlation")
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return ""
    return f"{r:.2f}{'!' if s.get('flagged') else ''}"


def recommend(ranking: list[dict[str, Any]], baselines: dict[str, dict[str, float]]) -> str:
    """One paragraph: the recommended candidate and what it beats, with the intervals."""
    ok = [r for r in ranking if not r.get("error") and not math.isnan(r["faithfulness"])]
    if not ok:
        return "No candidate could be evaluated: no image had a prediction to explain, or every candidate failed."
    sane = [r for r in ok if not (r.get("sanity") or {}).get("flagged")]
    best = sane[0] if sane else ok[0]
    cis = best.get("ci95", {}).get("faithfulness", {})
    loc = "" if math.isnan(best.get("pointing_game", float("nan"))) else f", pointing game {best['pointing_game']:.2f}"
    which = "the most faithful candidate" + (" that passes the sanity check" if best is not ok[0] else "")
    head = (
        f"Recommended: method={best['method']} layers={best['layers']}, {which} (faithfulness "
        f"{best['faithfulness']:.3f}{loc}, {best.get('ms_per_image', float('nan')):.0f} ms/image)."
    )
    above = ok[: ok.index(best)]
    if above:
        head += (" " + _join([f"{r['method']} layers={r['layers']} ({r['faithfulness']:.3f}, rank correlation "
                              f"{r['sanity']['rank_correlation']:.2f})" for r in above])
                 + f" {'ranks' if len(above) == 1 else 'rank'} higher but {'fails' if len(above) == 1 else 'fail'} the "
                 "sanity check: its maps barely change with the head's weights randomised.")  # fmt: skip
    if not cis:
        return head
    calls = {name: _better("faithfulness", ci) for name, ci in cis.items()}
    if all(max(abs(ci["diff"]), abs(ci["low"]), abs(ci["high"])) < NUMERICAL_TIE for ci in cis.values()):
        return (f"{head} It ties with {_join([BASELINE_LABELS.get(n, n) for n in cis])} on every prediction, so the "
                "ranking carries no information (the model's outputs may not depend on the pixels).")  # fmt: skip
    n = next(iter(cis.values())).get("n", 0)
    parts = []
    for verdict, word in ((1, "beats"), (0, "cannot be told apart from"), (-1, "is beaten by")):
        names = [f"{BASELINE_LABELS.get(k, k)} ({_fmt_ci(cis[k])})" for k, v in calls.items() if v == verdict]
        if names:
            parts.append(f"{word} {_join(names)}")
    text = (f"{head} Faithfulness minus each baseline's, with paired bootstrap 95 % intervals over {n} predictions: it "
            f"{'; it '.join(parts)}.")  # fmt: skip
    if all(v == 1 for v in calls.values()):
        text += " It explains more than the boxes and the priors do."
    else:
        winners = [f"{r['method']} layers={r['layers']}" for r in ok if beats_all(r)]
        missed = [BASELINE_LABELS.get(k, k) for k, v in calls.items() if v != 1]
        text += (f" Candidates that beat every baseline: {', '.join(winners)}." if winners else
                 f" No candidate beats every baseline: the evidence does not show the maps say more than "
                 f"{_join(missed)}.")  # fmt: skip
    if (best.get("sanity") or {}).get("flagged"):
        text += (f" Its maps barely change when the head's weights are randomised (rank correlation "
                 f"{best['sanity']['rank_correlation']:.2f}): they do not show what the head learned.")  # fmt: skip
    return text


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(
    ranking: list[dict[str, Any]], baselines: dict[str, dict[str, float]], recommendation: str, inverted: bool
) -> str:
    """The ranking as a text table (intervals against the best baseline), baselines last, then the recommendation."""
    best_base = max(baselines, key=lambda b: _low(baselines[b].get("faithfulness")), default=None)
    head = ["#", "method", "layers", "faithful", f"vs {best_base or 'baseline'} [95% CI]", "del img", "ins img",
            "del box", "ins box", *(["inverted"] if inverted else []), "sanity", "point", "energy",
            "ms/img"]  # fmt: skip
    keys = ("image_deletion", "image_insertion", "box_deletion", "box_insertion")
    rows = []
    for r in ranking:
        ci = r.get("ci95", {}).get("faithfulness", {}).get(best_base or "", None)
        rows.append([_fmt(r.get("rank")), r["method"], r["layers"], _fmt(r.get("faithfulness")),
                     _fmt_ci(ci) if ci and not math.isnan(ci.get("low", float("nan"))) else "",
                     *[_fmt(r.get(k)) for k in keys],
                     *([_fmt(r.get("inverted_faithfulness"))] if inverted else []), sanity_text(r),
                     _fmt(r.get("pointing_game")), _fmt(r.get("energy_in_box")),
                     _fmt(r.get("ms_per_image"), 0)])  # fmt: skip
    for name, s in baselines.items():
        rows.append(["", f"({name})", "", _fmt(s.get("faithfulness")), "", *[_fmt(s.get(k)) for k in keys],
                     *([""] if inverted else []), "", "", "", ""])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head, *rows]]
    errors = [f"{r['method']} layers={r['layers']}: {r['error']}" for r in ranking if r.get("error")]
    empty = [f"{r['method']} layers={r['layers']} ({r['empty_maps']} of {r['predictions']})"
             for r in ranking if r.get("empty_maps")]  # fmt: skip
    notes = ["", "Empty maps (these layers do not feed those predictions; they score as a random map): "
             + ", ".join(empty)] if empty else []  # fmt: skip
    flagged = [f"{r['method']} layers={r['layers']}" for r in ranking if (r.get("sanity") or {}).get("flagged")]
    if flagged:
        notes += ["", f"sanity: rank correlation of each map with the head's weights randomised; '!' (>= "
                  f"{SANITY_FLAG}): the maps barely depend on the head: {', '.join(flagged)}"]  # fmt: skip
    return "\n".join([*lines, *(["", "Failed:", *errors] if errors else []), *notes, "", recommendation])


def _low(v: Any) -> float:
    return -1e9 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
