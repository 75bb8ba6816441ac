"""Peak memory of one saving CAM run per image (issue 9): does it grow with predictions x original pixels?

Each case runs in a fresh Python process (peak RSS is per process), as ``yolo-cam predict`` would: a YAML-built
yolo11n (random weights, nothing downloaded), ``conf=0`` so that ``max_det`` sets the number of predictions, and
``save=True`` so the writers run too. It prints one line per case: predictions, peak RSS, and the per-image times that
``summary.json`` recorded.

    python benchmarks/memory.py                # the issue's three cases
    python benchmarks/memory.py --json out.json
    python benchmarks/memory.py --huge         # 16 to 256 megapixels: what max_pixels' default is chosen from

Cases: a 12-megapixel photo (bus.jpg resized to 4000 x 3000) with 1 and 30 predictions, and bus.jpg (810 x 1080) with
300 predictions. ``--huge`` (issue 21): square photos of 16, 64, 100, 128 and 256 megapixels, 1 prediction each, run
with ``max_pixels=0`` (no limit) so that those over the default 100 megapixels are explained too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = (  # (name, (height, width) of the photo or None for bus.jpg as it is, predictions)
    ("12MP photo, 1 prediction", (3000, 4000), 1),
    ("12MP photo, 30 predictions", (3000, 4000), 30),
    ("bus.jpg, 300 predictions", None, 300),
)

HUGE_CASES = tuple(
    (f"{side * side / 1e6:.0f}MP photo, 1 prediction", (side, side), 1) for side in (4000, 8000, 10000, 11314, 16000)
)

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
import cv2, torch
import ultralytics_cam  # noqa: F401  (adds Model.cam)
from ultralytics import YOLO
from ultralytics.utils import ASSETS

size, max_det, out, extra = json.loads(sys.argv[1])
torch.manual_seed(0)
image = cv2.imread(str(ASSETS / "bus.jpg"))
if size is not None:
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
path = os.path.join(out, "photo.jpg")
cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 90])
shape = list(image.shape[:2])
del image  # this process's own copy of the photo is not the run's memory (768 MB at 256 megapixels)
model = YOLO("yolo11n.yaml")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
results = model.cam(path, conf=0.0, max_det=max_det, save=True, project=out, name="run", exist_ok=True, **extra)
wall = time.perf_counter() - t0
summary = json.loads((__import__("pathlib").Path(results[0].save_dir) / "summary.json").read_text())
print(json.dumps({
    "shape": shape,
    "predictions": len(results[0].cam),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_before_run_mb": base / 1024,
    "seconds": round(wall, 2),
    "ms_per_image": summary["ms_per_image"],
    "heatmap_npy_mb": os.path.getsize(os.path.join(results[0].save_dir, "photo", "heatmap.npy")) / 2**20,
}))
"""


def run_case(size: tuple[int, int] | None, max_det: int, extra: dict | None = None) -> dict:
    """Run one case in a fresh process (``extra``: more ``model.cam`` options); return its measurements."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([size, max_det, out, extra or {}])],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "YOLO_CONFIG_DIR": out},
        )
    if proc.returncode != 0:
        raise RuntimeError(f"case {size} x {max_det} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every case and print a table (and optionally write the numbers as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    parser.add_argument("--huge", action="store_true", help="16 to 256 megapixel photos instead (max_pixels=0)")
    args = parser.parse_args()
    rows = []
    for name, size, n in HUGE_CASES if args.huge else CASES:
        m = run_case(size, n, {"max_pixels": 0} if args.huge else None)
        rows.append({"case": name, **m})
        speed = m["ms_per_image"]
        print(
            f"{name:<28} {m['shape'][1]}x{m['shape'][0]:<6} predictions={m['predictions']:<4} "
            f"peak RSS={m['peak_rss_mb']:.0f} MB (before the run {m['rss_before_run_mb']:.0f} MB)  "
            f"wall={m['seconds']:.1f}s  postprocess={speed.get('postprocess', 0):.0f} ms  "
            f"write={speed.get('write', 0):.0f} ms  heatmap.npy={m['heatmap_npy_mb']:.1f} MB",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
