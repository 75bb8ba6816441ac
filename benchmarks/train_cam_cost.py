"""What the training CAM callback costs: epoch wall time with and without it, side by side (docs/training.md).

Run from the repository root::

    python benchmarks/train_cam_cost.py                      # yolo11n.yaml, 400 synthetic 160 px images, 3 epochs
    python benchmarks/train_cam_cost.py --conf 0.05          # the same, explaining every prediction above 0.05
    python benchmarks/train_cam_cost.py --model /work/cache/real/ABD.pt --data .../data.yaml --imgsz 640 --epochs 3

Each repeat trains twice with the same seed and arguments (deterministic on the CPU, so both do the same work): once
plain and once with ``add_train_cam_callback(images=8)``, alternating which goes first. Three numbers per pair:

- **callback**: the seconds the callback itself spent per explained epoch (``cam_metrics.csv``'s ``seconds``: the
  copy of the EMA model, the CAM predictor, the files, the scores), as a share of the plain run's epoch: the cost,
  measured where it happens;
- **wall**: the with-callback run's epoch over the plain run's, minus one: the same cost seen from outside, which on
  a shared machine carries the noise of everything else running;
- **end**: the once-per-training summary (timelines, grid, CSV, plot), rebuilt and timed afterwards.

An epoch's time is the difference of two consecutive rows of Ultralytics' ``results.csv`` (its ``time`` column is
written after validation, before ``on_fit_epoch_end``), so every difference from the second epoch on holds exactly one
callback; the first epoch, which holds none and pays the warm-up, is left out. The machine's load average is printed
with the table: timings taken while other work runs are noisy, ratios side by side less so.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # synthetic_shapes lives with the tests (their ground truth)


def epoch_seconds(run: Path) -> list[float]:
    """The wall time of every epoch from the second on, from ``results.csv``'s cumulative ``time`` column."""
    with (run / "results.csv").open(encoding="utf-8") as f:
        times = [float(row["time"]) for row in csv.DictReader(f)]
    return [b - a for a, b in itertools.pairwise(times)]


def callback_seconds(run: Path) -> tuple[list[float], list[int]]:
    """Seconds and explained predictions of every explained epoch, from ``cam_metrics.csv``."""
    with (run / "cam_metrics.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [float(r["seconds"]) for r in rows], [int(r["predictions"]) for r in rows]


def train(args: argparse.Namespace, data: str, project: Path, name: str, cam: bool) -> Path:
    """One training; with ``cam`` under the training callback. Returns the run folder."""
    from ultralytics import YOLO

    import ultralytics_cam

    model = YOLO(args.model)
    if cam:
        ultralytics_cam.add_train_cam_callback(
            model, images=args.images, method=args.method, conf=args.conf, every=1, strict=True
        )
    model.train(
        data=data,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        workers=0,
        device=args.device,
        plots=False,
        project=str(project),
        name=name,
        exist_ok=True,
        verbose=False,
    )
    return project / name


def mean(values: list[float]) -> float:
    """The mean, NaN for none."""
    return sum(values) / len(values) if values else float("nan")


def main() -> None:
    """Train plain and with the callback, side by side; print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="yolo11n.yaml", help="weights or YAML to train (default: yolo11n.yaml)")
    p.add_argument("--data", default=None, help="data.yaml (default: a synthetic detect set, written once)")
    p.add_argument("--n-train", type=int, default=400, help="synthetic set: training images")
    p.add_argument("--n-val", type=int, default=80, help="synthetic set: validation images")
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--images", type=int, default=8, help="probe images")
    p.add_argument("--method", default="HiResCAM")
    p.add_argument("--conf", type=float, default=0.25, help="confidence of the explained predictions")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="train-cam-cost-"))
    data = args.data
    if data is None:
        import synthetic_shapes

        folder = out / f"shapes-{args.n_train}-{args.n_val}-{args.imgsz}"
        yaml = folder / "data.yaml"
        data = str(
            yaml
            if yaml.is_file()
            else synthetic_shapes.make_dataset("detect", folder, args.n_train, args.n_val, imgsz=args.imgsz)
        )
    from ultralytics_cam.integrations.train_cam.timeline import summarise

    rows = []
    for r in range(args.repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        runs = {cam: train(args, data, out, f"{'cam' if cam else 'plain'}-{r}", cam) for cam in order}
        plain, with_cam = epoch_seconds(runs[False]), epoch_seconds(runs[True])
        seconds, predictions = callback_seconds(runs[True])
        t0 = time.perf_counter()
        summarise(runs[True])
        end = time.perf_counter() - t0
        rows.append(
            {
                "plain_epoch_s": mean(plain),
                "cam_epoch_s": mean(with_cam),
                "callback_s": mean(seconds),
                "callback_pct": 100 * mean(seconds) / mean(plain),
                "wall_pct": 100 * (mean(with_cam) / mean(plain) - 1),
                "end_s": end,
                "predictions_per_epoch": mean([float(n) for n in predictions]),
            }
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model={args.model} data={data} imgsz={args.imgsz} epochs={args.epochs} batch={args.batch} "
        f"images={args.images} method={args.method} conf={args.conf} device={args.device}"
    )
    print(f"load average (1 min) after the runs: {load:.2f}; runs in {out}")
    print(
        "| repeat | plain epoch (s) | with callback (s) | callback per epoch (s) | callback / epoch | wall | "
        "predictions explained per epoch | end of training (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows):
        print(
            f"| {i} | {row['plain_epoch_s']:.1f} | {row['cam_epoch_s']:.1f} | {row['callback_s']:.2f} | "
            f"{row['callback_pct']:.1f} % | {row['wall_pct']:+.1f} % | {row['predictions_per_epoch']:.0f} | "
            f"{row['end_s']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "load": load, "rows": rows}, indent=2), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
