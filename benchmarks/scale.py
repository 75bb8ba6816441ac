"""engine=ray against the local engine: images/s of the same saving run over the same images (docs/scale.md).

Run from the repository root (needs the ``[ray]`` extra)::

    python benchmarks/scale.py                         # 200 synthetic 160 px images, the bundled detect.pt
    python benchmarks/scale.py --images 1000 --workers 4 --imgsz 320 --json scale.json

Both engines write the full layout (a folder per image, ``manifest.jsonl``, ``summary.json``) into a temporary
folder. Two rates per engine:

- **end to end**: images / wall time of the whole call, with what it costs to start (model load; for Ray the local
  cluster, the actors and their imports), as a user waits for it;
- **steady**: images / time between the first and the last image recorded in ``manifest.jsonl`` (each line carries
  the time it was written; the images recorded with the first line are not counted), the rate once everything is
  running: what more images or more workers scale.

The Ray cluster is started by the script with ``--cpus`` CPUs (default: this machine's) before the clock starts for
the Ray row, as a long-lived cluster would be; the line below the table says how long that took.
"""

from __future__ import annotations

import argparse
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


def make_images(folder: Path, n: int, imgsz: int) -> None:
    """Write ``n`` synthetic detection images (the shapes the bundled model was trained on)."""
    import cv2
    import numpy as np

    import synthetic_shapes

    folder.mkdir(parents=True)
    for i in range(n):
        im, _ = synthetic_shapes.render_image("detect", np.random.default_rng(i), imgsz)
        cv2.imwrite(str(folder / f"im{i:05d}.png"), im)


def steady_rate(save_dir: Path) -> float:
    """Images per second between the first and the last image line of the run's manifest.

    The images recorded with the first line (the Ray driver records a whole batch at once, within milliseconds) were
    done before the interval starts, so they are not counted in it.

    Returns:
        The rate, or NaN when no image line came after the first batch.
    """
    from ultralytics_cam.manifest import Manifest

    times = [x["time"] for x in Manifest(save_dir).lines() if x.get("event") == "image"]
    after = sum(t > times[0] + 0.05 for t in times)
    return after / (times[-1] - times[0]) if after else float("nan")


def main() -> None:
    """Run both engines over the same images and print the table."""
    from ultralytics_cam.cli import DEMO_MODEL  # after the YOLO_* settings above: it imports Ultralytics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=8, help="files per map_batches call")
    parser.add_argument("--model", default=str(DEMO_MODEL))  # the bundled trained detect model
    parser.add_argument("--method", default="HiResCAM")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    import ray
    from ultralytics import YOLO

    import ultralytics_cam  # noqa: F401  (adds model.cam)
    from ultralytics_cam.distributed import cam_ray

    tmp = Path(tempfile.mkdtemp(prefix="ucam-scale-"))
    src = tmp / "imgs"
    make_images(src, args.images, args.imgsz)
    opts = {"imgsz": args.imgsz, "method": args.method, "verbose": False}
    rows = []

    t0 = time.perf_counter()
    YOLO(args.model).cam(src, save=True, project=tmp / "local", stream=False, **opts)
    wall = time.perf_counter() - t0
    rows.append(
        {"engine": "local", "workers": 1, "end_to_end": args.images / wall, "steady": steady_rate(tmp / "local/cam")}
    )

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    cam_ray(args.model, src, workers=args.workers, batch_size=args.batch_size, project=tmp / "ray", **opts)
    wall = time.perf_counter() - t0
    rows.append(
        {
            "engine": "ray",
            "workers": args.workers,
            "end_to_end": args.images / wall,
            "steady": steady_rate(tmp / "ray/cam"),
        }
    )
    ray.shutdown()

    print(f"\n{args.images} images of {args.imgsz} px, {args.method}, {args.model}, {os.cpu_count()} CPUs\n")
    print("| engine | workers | images/s end to end | images/s steady |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r['workers']} | {r['end_to_end']:.2f} | {r['steady']:.2f} |")
    print(f"\n(ray.init with {args.cpus} CPUs took {ray_start:.1f} s before the Ray row's clock started)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "ray_init_s": ray_start, "rows": rows}, indent=2), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
