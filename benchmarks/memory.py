"""Peak memory of one saving CAM run per image (issue 9): does it grow with predictions x original pixels?

Each case runs in a fresh Python process (peak RSS is per process), as ``yolo-cam predict`` would: a YAML-built
yolo11n (random weights, nothing downloaded), ``conf=0`` so that ``max_det`` sets the number of predictions, and
``save=True`` so the writers run too. It prints one line per case: predictions, peak RSS, and the per-image times that
``summary.json`` recorded.

    python benchmarks/memory.py                # the issue's three cases
    python benchmarks/memory.py --json out.json

Cases: a 12-megapixel photo (bus.jpg resized to 4000 x 3000) with 1 and 30 predictions, and bus.jpg (810 x 1080) with
300 predictions.
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

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
import cv2, torch
import ultralytics_cam  # noqa: F401  (adds Model.cam)
from ultralytics import YOLO
from ultralytics.utils import ASSETS

size, max_det, out = json.loads(sys.argv[1])
torch.manual_seed(0)
image = cv2.imread(str(ASSETS / "bus.jpg"))
if size is not None:
    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
path = os.path.join(out, "photo.jpg")
cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 90])
model = YOLO("yolo11n.yaml")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
results = model.cam(path, conf=0.0, max_det=max_det, save=True, project=out, name="run", exist_ok=True)
wall = time.perf_counter() - t0
summary = json.loads((__import__("pathlib").Path(results[0].save_dir) / "summary.json").read_text())
print(json.dumps({
    "shape": list(image.shape[:2]),
    "predictions": len(results[0].cam),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "rss_before_run_mb": base / 1024,
    "seconds": round(wall, 2),
    "ms_per_image": summary["ms_per_image"],
    "heatmap_npy_mb": os.path.getsize(os.path.join(results[0].save_dir, "photo", "heatmap.npy")) / 2**20,
}))
"""


def run_case(size: tuple[int, int] | None, max_det: int) -> dict:
    """Run one case in a fresh process; return its measurements."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps([size, max_det, out])],
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
    args = parser.parse_args()
    rows = []
    for name, size, n in CASES:
        m = run_case(size, n)
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
