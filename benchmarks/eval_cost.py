"""What does ``yolo-cam eval`` cost with its default settings? The issue-20 case, re-runnable with one command.

The case of issue 20: HiResCAM, GradCAM, EigenCAM and LayerCAM ranked on three ordinary photos holding 14 detections
with a fine-tuned YOLOv8s took about 25 minutes on a 2-core CPU; the target is at most 8 minutes, default settings.
No such model is on this machine, so two stand-ins, each with about 14 explained predictions:

- ``yaml``: a YOLOv8s-sized model built from Ultralytics' ``yolov8s.yaml`` (random weights, class biases drawn around 0
  as tests/conftest.py's ``tiny_detector`` does, so it predicts), on Ultralytics' bus.jpg and zidane.jpg, ``max_det=7``
  (7 predictions per image). Its predictions do not depend on the pixels, so every curve is flat and nothing about
  the verdicts can be read; and its gradient maps are often empty (random weights), which shares their curves with
  the random map's, so it UNDERestimates a trained model's cost (measured: 938 forwards where non-empty maps need
  about 2,560; count those with the estimate and time them with ``--time-forwards``);
- ``real``: the real benchmark model (``benchmarks/real``, ``--real-model``) on three of its validation images with
  ``max_det=5``.

For each: plain ``model.predict`` per image (the reference, in the same run), then ``ultralytics_cam.evaluate`` with
the default settings and the four methods; printed and written as JSON: the wall time and the process's CPU time
(on a shared machine the CPU time of a 1-thread run is what an idle machine's wall time would be, near enough), the
estimate printed before the run, the forwards, and the machine's load average::

    python benchmarks/eval_cost.py                          # the YAML YOLOv8s stand-in on bus.jpg and zidane.jpg
    python benchmarks/eval_cost.py --case real --real-model /work/cache/real/ABD.pt --real-images DIR
    python benchmarks/eval_cost.py --time-forwards        # only the CPU and wall ms of one batch of 16 forwards

``--time-forwards`` times the scorer's own forward path (batch 16, distinct images, after a warm-up) on each image of
the case: with the forward count an eval needs (its estimate), CPU ms per forward x forwards is the eval's cost on an
idle core, measurable even while the machine is shared.
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

METHODS = "HiResCAM,GradCAM,EigenCAM,LayerCAM"


def yaml_yolov8s() -> object:
    """YOLOv8s from its YAML, seeded, with class biases drawn around 0 so that random weights still predict."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    model = YOLO("yolov8s.yaml")
    gen = torch.Generator().manual_seed(0)
    for branch in model.model.model[-1].cv3:
        bias = branch[-1].bias
        bias.data = torch.randn(bias.shape, generator=gen) * 2
    return model


def time_forwards(model: object, source: list[str]) -> int:
    """Print the CPU and wall ms per forward of the eval's scorer on a batch of 16 distinct copies of each image."""
    import cv2
    import torch

    from ultralytics_cam import metrics

    for path in source:
        im = cv2.imread(path)
        scorer = metrics.FaithfulnessScorer(model)
        scorer._ensure_setup(im)
        images = [im.copy() for _ in range(16)]
        for k, x in enumerate(images):
            x[0, 0, 0] = k  # distinct images: nothing shared
        list(scorer._predict_raw(images[:2]))  # warm-up
        c0, t0 = time.process_time(), time.perf_counter()
        list(scorer._predict_raw(images))
        cpu, wall = (time.process_time() - c0) * 1000 / 16, (time.perf_counter() - t0) * 1000 / 16
        print(f"{Path(path).name} {im.shape[1]}x{im.shape[0]}: {cpu:.0f} ms CPU, {wall:.0f} ms wall per forward, "
              f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


def main() -> int:
    """Run one case; print the table and the numbers (and write them with --json)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["yaml", "real"], default="yaml")
    p.add_argument("--real-model", help="the real benchmark model (.pt), for --case real")
    p.add_argument("--real-images", help="a folder of the real set's images, for --case real (the first 3 are used)")
    p.add_argument("--max-images", type=int, default=3)
    p.add_argument("--max-det", type=int, default=None, help="default: 7 (yaml), 5 (real)")
    p.add_argument("--json", help="write the numbers here")
    p.add_argument("--time-forwards", action="store_true", help="only time one batch of 16 perturbed forwards")
    args = p.parse_args()

    import torch
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    import ultralytics_cam

    if args.case == "yaml":
        model, source, max_det = yaml_yolov8s(), [str(ASSETS / "bus.jpg"), str(ASSETS / "zidane.jpg")], 7
        conf = 0.25
    else:
        if not args.real_model or not args.real_images:
            p.error("--case real needs --real-model and --real-images")
        images = sorted(Path(args.real_images).glob("*.png")) + sorted(Path(args.real_images).glob("*.jpg"))
        model, source, max_det, conf = YOLO(args.real_model), [str(x) for x in images[: args.max_images]], 5, 0.25
    max_det = args.max_det or max_det
    if args.time_forwards:
        return time_forwards(model, source)
    load_before = os.getloadavg()
    model.predict(source[0], conf=conf, max_det=max_det, verbose=False)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    plain = model.predict(source, conf=conf, max_det=max_det, verbose=False)
    predict_ms = (time.perf_counter() - t0) * 1000 / len(source)
    predict_cpu_ms = (time.process_time() - c0) * 1000 / len(source)
    predictions = sum(len(r) for r in plain)
    t0, c0 = time.perf_counter(), time.process_time()
    report = ultralytics_cam.evaluate(
        model, source, methods=METHODS, conf=conf, max_det=max_det, project=tempfile.mkdtemp(), name="eval"
    )
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "case": args.case,
        "images": len(source),
        "predictions": predictions,
        "predict_ms_per_image": round(predict_ms, 1),
        "predict_cpu_ms_per_image": round(predict_cpu_ms, 1),
        "eval_seconds": round(seconds, 1),
        "eval_cpu_seconds": round(cpu_seconds, 1),
        "eval_seconds_per_predict": round(seconds * 1000 / predict_ms, 1),
        "threads": torch.get_num_threads(),
        "estimate": report.settings["estimate"],
        "cost": report.settings["cost"],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print(report.table())
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
