"""DRISE on a model and its exports: time per image, agreement between backends, cost and stability against the masks.

Run from the repository root (the real benchmark model of ``benchmarks/real``, or any ``.pt`` and images)::

    python benchmarks/drise.py --model /work/cache/real/ABD.pt --source /work/cache/real/images/val --images 3
    python benchmarks/drise.py --model tests/models/segment.pt --source imgs/ --formats onnx --masks 250,500

The model is exported by Ultralytics into a temporary folder (``--formats``, default ONNX, OpenVINO, TorchScript; a
format whose exporter is not installed is reported and skipped), then, on the same images:

1. **backends**: ``model.cam(method="DRISE")`` with the default options and seed 0 on the ``.pt`` and each export; the
   wall time per image (one call over all images, after a one-mask warm-up call) and, per prediction matched between
   the ``.pt`` and the export (class and box IoU >= 0.5), the correlation of the maps;
2. **masks**: the ``.pt`` (or ``--stability-format``: an export, whose maps equal the ``.pt``'s, faster on a CPU) with
   every ``--masks`` count under seeds 0 and 1: the time per image and the per-prediction correlation between the two
   seeds (how stable the maps are at that cost);
3. **figure**: ``yolo-cam compare`` of the ``.pt`` and its ONNX export on the first image (``--figure``).

Writes ``--json`` (every number) and prints the markdown tables of docs/drise.md. The timings are ratios of one run
on one machine; a shared machine makes them noisy (say so when quoting them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

FORMATS = ("onnx", "openvino", "torchscript")


def export_all(weights: Path, folder: Path, formats: list[str], imgsz: int) -> dict[str, Path]:
    """Export ``weights`` (copied into ``folder``) to every format that installs here; {format: path}."""
    from ultralytics import YOLO

    local = folder / weights.name
    shutil.copy(weights, local)
    out = {}
    for fmt in formats:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[fmt] = Path(YOLO(str(local)).export(format=fmt, imgsz=imgsz, verbose=False))
        except Exception as e:  # an exporter that does not install here: reported, not fatal
            print(f"{fmt}: export failed ({type(e).__name__}: {e})", file=sys.stderr)
    return out


def run(model, images, **kw):
    """``model.cam`` over ``images`` in one call, after a one-mask warm-up; (results, wall ms per image)."""
    model.cam(images[0], method="DRISE", verbose=False, **{**kw, "drise_masks": 1})
    t0 = time.perf_counter()
    results = model.cam(list(images), method="DRISE", verbose=False, **kw)
    return results, (time.perf_counter() - t0) * 1000 / len(images)


def agreement(a, b):
    """Per-prediction map correlation of two runs over the same images, summarised."""
    from ultralytics_cam.agreement import map_agreement, summarise_agreement

    rows = [row for ra, rb in zip(a, b) for row in map_agreement(ra, rb)]
    return summarise_agreement(rows)


def main() -> None:
    """Export, run, measure; write the JSON and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the .pt weights")
    parser.add_argument("--source", required=True, help="a folder of images (the first --images are used)")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=None, help="default: the model's training size")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--masks", default="250,500,1000", help="mask counts of the cost / stability table")
    parser.add_argument("--backend-masks", type=int, default=None, help="masks of the backend table (the default)")
    parser.add_argument("--stability-format", default="pt", help="backend of the masks table (pt or an export)")
    parser.add_argument("--json", default="drise_benchmark.json")
    parser.add_argument("--figure", default=None, help="where to copy the .pt vs ONNX compare figure")
    args = parser.parse_args()

    from ultralytics import YOLO

    import ultralytics_cam
    from ultralytics_cam.config import CAM_DEFAULTS
    from ultralytics_cam.ranking import load_sample

    weights = Path(args.model).resolve()
    pt = YOLO(str(weights))
    imgsz = args.imgsz or int(pt.overrides.get("imgsz") or 640)
    sample = load_sample(args.source, args.images)
    images = [im for _, im in sample]
    report = {
        "model": str(weights),
        "images": [n for n, _ in sample],
        "imgsz": imgsz,
        "defaults": {k: CAM_DEFAULTS[k] for k in ("drise_masks", "drise_cell", "drise_keep", "seed")},
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        exports = export_all(weights, Path(tmp), [f for f in args.formats.split(",") if f], imgsz)
        kw = {"imgsz": imgsz} if args.backend_masks is None else {"imgsz": imgsz, "drise_masks": args.backend_masks}
        report["backend_masks"] = args.backend_masks or CAM_DEFAULTS["drise_masks"]
        ref, ref_ms = run(pt, images, **kw)
        report["predictions"] = sum(len(r.cam) for r in ref)
        backends = {"pt": {"ms_per_image": round(ref_ms)}}
        for fmt, path in exports.items():
            res, ms = run(YOLO(str(path), task=pt.task), images, **kw)
            backends[fmt] = {"ms_per_image": round(ms), **agreement(ref, res)}
            print(f"{fmt}: {backends[fmt]}", file=sys.stderr)
        report["backends"] = backends
        counts = [int(n) for n in args.masks.split(",") if n]
        masks = {}
        fmt = args.stability_format
        stable = pt if fmt == "pt" else YOLO(str(exports[fmt]), task=pt.task)
        report["stability_format"] = fmt
        for n in counts:
            if n == report["backend_masks"] and fmt == "pt":  # the .pt run of the backend table: the same masks
                a, ms = ref, ref_ms
            else:
                a, ms = run(stable, images, imgsz=imgsz, drise_masks=n, seed=0)
            b, _ = run(stable, images, imgsz=imgsz, drise_masks=n, seed=1)
            masks[n] = {"ms_per_image": round(ms), **agreement(a, b)}
            print(f"{n} masks: {masks[n]}", file=sys.stderr)
        report["masks"] = masks
        if args.figure and "onnx" in exports:
            _, save_dir = ultralytics_cam.compare(
                [pt, YOLO(str(exports["onnx"]), task=pt.task)],
                [images[0]],
                method="DRISE",
                labels=[weights.name, exports["onnx"].name],
                **kw,
                project=tmp,
                name="compare",
            )
            assert save_dir is not None
            figure = next((save_dir / "figures").glob("*.png"))
            Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(figure, args.figure)
            report["figure"] = args.figure
    Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(tables(report))


def tables(report: dict) -> str:
    """The markdown tables of docs/drise.md."""
    lines = [
        "| backend | ms / image | predictions matched | map correlation to .pt (mean / min) |",
        "|---|---:|---:|---:|",
    ]
    for fmt, b in report["backends"].items():
        if fmt == "pt":
            lines.append(f"| pt | {b['ms_per_image']} | (reference) | |")
        else:
            lines.append(f"| {fmt} | {b['ms_per_image']} | {b['matched']}/{b['predictions']} | "
                         f"{b['mean_correlation']} / {b['min_correlation']} |")  # fmt: skip
    lines += ["", f"| masks ({report['stability_format']}) | ms / image | correlation seed 0 vs 1 (mean / min) |",
              "|---:|---:|---:|"]  # fmt: skip
    for n, m in report["masks"].items():
        lines.append(f"| {n} | {m['ms_per_image']} | {m['mean_correlation']} / {m['min_correlation']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
