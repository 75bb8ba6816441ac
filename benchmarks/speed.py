"""Explanation at the cost of a predict? Every contender side by side with plain ``model.predict``, in one run.

Run from the repository root (defaults: YOLOv8s- and YOLO11s-sized YAML models, Ultralytics' bus.jpg and zidane.jpg,
imgsz 640, batch 1, 1 / 10 / 50 / 100 kept predictions per image)::

    python benchmarks/speed.py
    python benchmarks/speed.py --models yolov8s.yaml --counts 10,100 --repeats 5 --json speed.json

For each model and prediction count, the contenders run over the same images, round-robin over ``--repeats`` rounds
(drift on a shared machine hits all alike), each image in its own call (batch 1):

- ``model.predict``: the reference (ratio 1);
- Ultralytics' ``predict(visualize=True)`` (LayerCAM on the head inputs, one backward per prediction, at most 16);
- ``dense path``: ``model.cam(method="HiResCAM", head_replay=False)``, the general batched backward;
- our gradient methods through the local head replay, EigenCAM and ConfidenceMap.

Every ``model.cam`` contender also reads ``r.cam.heatmap`` (all maps combined at the original size), so the time
covers a finished explanation. Predictions are counted per image: random-weight YAML models make thousands of
candidates, so ``conf`` near 0 with ``max_det=N`` keeps exactly N. Columns: ms per image (median), ratio to predict,
ms per explained prediction ((time - predict) / N), and peak RSS (the process's high-water mark, reset before each
contender through /proc/self/clear_refs, Linux only) with its ratio to predict's. A last table compares a loop of
single-frame ``model.cam`` calls with one call over the same frames (the predictor is reused across calls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

GRADIENT_METHODS = [
    "HiResCAM",
    "LayerCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "GradCAMElementWise",
    "EigenGradCAM",
]
OTHER_METHODS = ["EigenCAM", "ConfidenceMap"]


def reset_peak() -> bool:
    """Reset the process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    """The process's peak RSS in MiB (VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_contenders(model, kw: dict, images: list, methods: list[str], tmp: str) -> dict:
    """Each contender: a function that runs every image in its own call and returns the ``Results``."""

    def each(fn):
        return lambda: [fn(im) for im in images]

    def cam(im, **extra):
        (r,) = model.cam(im, **kw, **extra)
        _ = r.cam.heatmap
        return r

    contenders = {
        "model.predict": each(lambda im: model.predict(im, **kw)[0]),
        "predict(visualize=True)": each(
            lambda im: model.predict(im, visualize=True, project=tmp, name="vis", exist_ok=True, **kw)[0]
        ),
        "dense path (HiResCAM, head_replay=False)": each(lambda im: cam(im, method="HiResCAM", head_replay=False)),
    }
    contenders.update({f"cam {m}": each(lambda im, m=m: cam(im, method=m)) for m in methods})
    return contenders


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolov8s.yaml,yolo11s.yaml")
    parser.add_argument("--counts", default="1,10,50,100")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(GRADIENT_METHODS + OTHER_METHODS))
    parser.add_argument("--loop-frames", type=int, default=8, help="frames for the loop-vs-one-call table")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import cv2
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import ASSETS

    import ultralytics_cam  # noqa: F401

    images = [cv2.imread(str(ASSETS / n)) for n in ("bus.jpg", "zidane.jpg")]
    methods = [m for m in args.methods.split(",") if m]
    tmp = tempfile.mkdtemp(prefix="ucam-speed-")
    results = []
    for model_name in args.models.split(","):
        torch.manual_seed(0)
        model = YOLO(model_name)
        for count in [int(c) for c in args.counts.split(",")]:
            kw = {"imgsz": args.imgsz, "conf": 1e-9, "max_det": count, "verbose": False, "batch": 1}

            contenders = make_contenders(model, kw, images, methods, tmp)
            for fn in contenders.values():  # warm-up: setup, grad-cam import, allocator
                fn()
            times = {k: [] for k in contenders}
            peaks = dict.fromkeys(contenders, 0.0)
            kept, paths = {}, {}
            for _ in range(args.repeats):
                for key, fn in contenders.items():
                    reset_peak()
                    t0 = time.perf_counter()
                    out = fn()
                    times[key].append((time.perf_counter() - t0) / len(images))
                    peaks[key] = max(peaks[key], peak_mb())
                    kept[key] = [len(r.boxes) for r in out]
                    if hasattr(out[0], "cam"):
                        paths[key] = out[0].cam.path
                    del out
            base = statistics.median(times["model.predict"])
            for key in contenders:
                t = statistics.median(times[key])
                n = kept[key][0] if kept[key] else 0
                results.append(
                    {
                        "model": model_name,
                        "predictions": count,
                        "kept": kept[key],
                        "contender": key,
                        "path": paths.get(key, ""),
                        "ms": t * 1e3,
                        "ratio": t / base,
                        "ms_per_prediction": (t - base) * 1e3 / n if key != "model.predict" and n else None,
                        "peak_mb": peaks[key],
                        "peak_ratio": peaks[key] / peaks["model.predict"],
                    }
                )
            print(f"done {model_name} x {count}", file=sys.stderr, flush=True)

        # a loop of single-frame calls against one call over the same frames (both through model.cam)
        frames = [images[i % 2] for i in range(args.loop_frames)]
        kw = {"imgsz": args.imgsz, "conf": 1e-9, "max_det": 10, "verbose": False}
        loop_t, list_t = [], []
        model.cam(frames[:1], **kw)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for f in frames:
                model.cam(f, **kw)
            loop_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.cam(frames, **kw)
            list_t.append(time.perf_counter() - t0)
        results.append(
            {
                "model": model_name,
                "contender": "loop vs list",
                "loop_ms_per_frame": statistics.median(loop_t) * 1e3 / len(frames),
                "list_ms_per_frame": statistics.median(list_t) * 1e3 / len(frames),
            }
        )

    print(
        f"\nUltralytics' bus.jpg and zidane.jpg, imgsz {args.imgsz}, batch 1, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), median of {args.repeats} rounds; every model.cam row reads "
        "r.cam.heatmap\n"
    )
    print("| model | predictions | contender | path | ms / image | × predict | ms / prediction | peak RSS MB | × |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        if r["contender"] == "loop vs list":
            continue
        per = f"{r['ms_per_prediction']:.1f}" if r["ms_per_prediction"] is not None else ""
        print(
            f"| {r['model']} | {r['predictions']} | {r['contender']} | {r['path']} | {r['ms']:.0f} | "
            f"{r['ratio']:.2f} | {per} | {r['peak_mb']:.0f} | {r['peak_ratio']:.2f} |"
        )
    print("\n| model | loop of single-frame calls, ms / frame | one call over the list, ms / frame | loop / list |")
    print("|---|---:|---:|---:|")
    for r in results:
        if r["contender"] == "loop vs list":
            ratio = r["loop_ms_per_frame"] / r["list_ms_per_frame"]
            print(f"| {r['model']} | {r['loop_ms_per_frame']:.0f} | {r['list_ms_per_frame']:.0f} | {ratio:.2f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "rows": results}, indent=2, default=str), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
