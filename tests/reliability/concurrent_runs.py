"""Start several saving runs on one ``project``/``name`` at the same moment, many times (issue 21, case 1).

Run as a script by ``test_concurrent_runs.py``::

    python tests/reliability/concurrent_runs.py MODEL SRC OUT --procs 4 --rounds 20

This process imports torch, Ultralytics and ultralytics-cam once and runs no tensor operation itself (so no
OpenMP thread pool exists to be broken by ``fork``); each round forks ``procs`` workers that wait at one barrier and
then all start a run into ``OUT/<round>`` with ``name=cd``: even workers through ``yolo-cam predict`` (``cli.main``,
in-process), odd ones through ``model.cam(save=True)``. Worker ``k`` explains ``SRC/<k>/im_<k>.jpg``. Forking from a
warm process keeps a round near one second on 2 cores, where fresh interpreters would take several.

It prints one JSON line per worker: ``{"round", "worker", "code"}`` (the exit code, 0 for a ``model.cam`` that
returned); the test then reads the run folders.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import sys
from pathlib import Path


def _worker(barrier: object, model: str, src: Path, out: Path, k: int, log: Path) -> None:
    """One run, started as soon as every worker of the round reached the barrier; exits with the run's code."""
    import torch

    torch.set_num_threads(1)
    with (
        open(log, "w", encoding="utf-8") as f,
        contextlib.redirect_stderr(f),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        code = 1
        try:
            if k % 2:
                from ultralytics import YOLO

                yolo = YOLO(model)
                barrier.wait()  # type: ignore[attr-defined]
                yolo.cam(src / str(k), save=True, project=out, name="cd", imgsz=64, max_det=2, verbose=False)
                code = 0
            else:
                from ultralytics_cam import cli

                barrier.wait()  # type: ignore[attr-defined]
                args = ["predict", f"model={model}", f"source={src / str(k)}", f"project={out}", "name=cd"]
                code = cli.main([*args, "imgsz=64", "max_det=2", "verbose=False"])
        except BaseException as e:  # reported through the exit code and the log
            print(f"worker {k}: {type(e).__name__}: {e}", file=f)
        finally:
            f.flush()
    os._exit(code)


def main() -> None:
    """Fork the workers of each round at one barrier; print each worker's exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    a = parser.parse_args()
    a.out, a.src = a.out.resolve(), a.src.resolve()  # a relative project would go under runs/<task>/

    import torch
    from ultralytics import YOLO

    import ultralytics_cam  # noqa: F401
    from ultralytics_cam import cli  # noqa: F401

    # One warm-up run without saving, so the workers inherit every lazily imported module (grad-cam, the plugins,
    # the writers) instead of each importing them. One thread: no OpenMP pool exists for the fork to break.
    torch.set_num_threads(1)
    YOLO(a.model).cam(next(a.src.rglob("*.jpg")), imgsz=64, max_det=2, verbose=False)

    ctx = mp.get_context("fork")
    for r in range(a.rounds):
        barrier = ctx.Barrier(a.procs)
        out = a.out / str(r)
        procs = []
        for k in range(a.procs):
            log = a.out / f"log-{r}-{k}.txt"
            procs.append(ctx.Process(target=_worker, args=(barrier, a.model, a.src, out, k, log)))
        for p in procs:
            p.start()
        for k, p in enumerate(procs):
            p.join(120)
            print(json.dumps({"round": r, "worker": k, "code": p.exitcode}), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
