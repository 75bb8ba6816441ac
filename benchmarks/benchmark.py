"""Speed and localisation of every CAM method, side by side with plain ``model.predict``, in one run.

Run from the repository root (defaults: the bundled trained detect model on 24 synthetic images with known boxes)::

    python benchmarks/benchmark.py                      # all methods, markdown table on stdout
    python benchmarks/benchmark.py --methods HiResCAM,GradCAM --images 48 --json bench.json
    python benchmarks/benchmark.py --photos --model yolo11n.yaml --imgsz 640 --conf 0.0001 --max-det 50 --skip-slow

Timing: every contender runs over the same images, round-robin over ``--repeats`` rounds (so drift on a shared
machine hits all alike); the table gives the median seconds per image and the ratio to plain ``model.predict``.
Contenders besides our methods: Ultralytics' own ``predict(visualize=True)`` (LayerCAM, one backward per prediction,
files written to a temporary folder) and our engine forced to one backward per prediction (the approach of the
widely copied single-file YOLO heatmap scripts).

Localisation (``ultralytics_cam.evaluation``), per explained prediction that matches a ground-truth object
(IoU >= 0.5, same class): pointing game = the map's peak lies inside the object's outline; energy in box = share of
the map's sum inside the prediction's box. ``ConfidenceMap`` fills the box by construction: it is the reference a CAM
has to be read against.
``--photos`` times Ultralytics' own bus.jpg and zidane.jpg instead (no ground truth, so no localisation columns), for
full-size images with many predictions (a YAML-built model has random weights: use a low ``--conf``).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
sys.path.insert(0, str(ROOT / "tests"))  # synthetic_shapes lives with the tests (their ground truth)


def synthetic_images(n: int, imgsz: int, seed: int) -> tuple[list[np.ndarray], list[list[dict]]]:
    """Render ``n`` detection images with known objects (seeds beyond the training set's)."""
    import synthetic_shapes

    rng = np.random.default_rng(seed)
    images, truths = [], []
    for _ in range(n):
        im, objects = synthetic_shapes.render_image("detect", rng, imgsz)
        images.append(im)
        truths.append(objects)
    return images, truths


def localisation(results: list, truths: list[list[dict]]) -> dict:
    """Pointing game and energy in box over all images (``ultralytics_cam.evaluation``)."""
    from ultralytics_cam.evaluation import LocalisationScores
    from ultralytics_cam.evaluation import localisation as score_image

    scores = LocalisationScores()
    for r, objects in zip(results, truths):
        score_image(r, objects, scores)
    return scores.as_dict()


def main() -> None:
    """Run the benchmark and print the table."""
    from ultralytics_cam.cli import DEMO_MODEL  # after the YOLO_* settings above: it imports Ultralytics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEMO_MODEL))  # the bundled trained detect model
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--methods", default="all", help="comma-separated method names, or 'all'")
    parser.add_argument("--skip-slow", action="store_true", help="leave out ScoreCAM and AblationCAM")
    parser.add_argument("--json", default=None, help="also write the raw numbers to this file")
    parser.add_argument("--photos", action="store_true", help="time Ultralytics' bus.jpg and zidane.jpg instead")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--max-det", type=int, default=300)
    args = parser.parse_args()

    import torch
    from ultralytics import YOLO

    import ultralytics_cam  # noqa: F401
    from ultralytics_cam import engine
    from ultralytics_cam.plugins import method_specs

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.photos:
        import cv2
        from ultralytics.utils import ASSETS

        images, truths = [cv2.imread(str(ASSETS / n)) for n in ("bus.jpg", "zidane.jpg")], None
    else:
        images, truths = synthetic_images(args.images, args.imgsz, args.seed)
    model = YOLO(args.model)
    kw = {"imgsz": args.imgsz, "conf": args.conf, "max_det": args.max_det, "verbose": False}
    names = [n for n, s in method_specs().items() if s.refused is None]
    if args.methods != "all":
        wanted = {m.lower() for m in args.methods.split(",")}
        names = [n for n in names if n.lower() in wanted]
    if args.skip_slow:
        names = [n for n in names if n not in ("ScoreCAM", "AblationCAM")]

    tmp = tempfile.mkdtemp(prefix="ucam-bench-")

    def plain():
        return model.predict(images, **kw)

    def visualize():
        return model.predict(images, visualize=True, project=tmp, name="vis", exist_ok=True, **kw)

    def per_box():
        budgets = engine.GRADIENT_BUDGET_BYTES, engine.CPU_GRADIENT_BUDGET_BYTES
        engine.GRADIENT_BUDGET_BYTES = engine.CPU_GRADIENT_BUDGET_BYTES = 1  # chunks of one: one backward per box
        try:
            return model.cam(images, method="HiResCAM", head_replay=False, **kw)  # the dense backward, chunks of one
        finally:
            engine.GRADIENT_BUDGET_BYTES, engine.CPU_GRADIENT_BUDGET_BYTES = budgets

    contenders = {"model.predict": plain, "predict(visualize=True)": visualize, "one backward per box": per_box}
    contenders.update({f"cam {n}": (lambda n=n: model.cam(images, method=n, **kw)) for n in names})

    for fn in contenders.values():  # warm-up: model setup, grad-cam import, allocator
        fn()
    times = {k: [] for k in contenders}
    outputs = {}
    for _ in range(args.repeats):
        for key, fn in contenders.items():
            t0 = time.perf_counter()
            outputs[key] = fn()
            times[key].append((time.perf_counter() - t0) / len(images))

    base = statistics.median(times["model.predict"])
    rows = []
    for key in contenders:
        t = statistics.median(times[key])
        explained = key.startswith("cam ") or key == "one backward per box"
        loc = localisation(outputs[key], truths) if explained and truths is not None else {}
        rows.append({"contender": key, "s_per_image": t, "ratio": t / base, **loc})

    n_pred = sum(len(r.boxes) for r in outputs["model.predict"])
    what = "Ultralytics' bus.jpg and zidane.jpg" if args.photos else f"{args.images} synthetic images"
    print(
        f"\n{what} at imgsz {args.imgsz}, {n_pred} predictions at conf {args.conf}, "
        f"{os.path.basename(args.model)}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} rounds\n"
    )
    print("| contender | ms / image | × predict | pointing game | energy in box |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        pg = f"{r['pointing_game']:.3f}" if "pointing_game" in r else ""
        en = f"{r['energy_in_box']:.3f}" if "energy_in_box" in r else ""
        print(f"| {r['contender']} | {r['s_per_image'] * 1e3:.1f} | {r['ratio']:.2f} | {pg} | {en} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
