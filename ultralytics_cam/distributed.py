"""``engine=ray``: the same saving CAM run on a Ray Data actor pool (SPEC §11).

The driver lists the source with Ultralytics' own loader (the same files, order and output names as a local run),
takes out what an earlier session completed (``resume``), and streams the rest through ``map_batches`` with a
callable class: each actor builds the CAM predictor once (:func:`ultralytics_cam.api.cam_predictor`, one GPU per actor
when the cluster has GPUs), reads its images with Ultralytics' ``imread`` and writes each image's folder with the run's
own writers (:meth:`ultralytics_cam.summary.CamRun.write_image`). The driver records every finished image in the
manifest as it arrives and writes ``summary.json`` at the end, so the run folder is the one a local run writes.

Ray is an optional extra (``pip install "ultralytics-cam[ray]"``) and is imported only when this engine runs.
``ray.init`` starts a local cluster with the machine's cores, or joins the cluster named by ``RAY_ADDRESS``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ._logging import LOGGER, PREFIX

__all__ = ["RAY_INSTALL_HINT", "cam_ray", "import_ray", "output_names", "run_predict_ray"]

RAY_INSTALL_HINT = 'engine=ray needs Ray Data: pip install "ultralytics-cam[ray]"'
#: Environment variables the actors need to behave as the driver (offline mode, Ultralytics settings, verbosity).
FORWARDED_ENV = ("YOLO_OFFLINE", "YOLO_CONFIG_DIR", "YOLO_VERBOSE")
#: Most blocks the list of files is cut into (a block per batch below that; larger blocks above).
MAX_BLOCKS = 20_000


def import_ray() -> Any:
    """Import Ray with Ray Data, or fail with the command that installs it.

    Raises:
        ImportError: Ray (or its ``data`` extra) is not installed; the message says how to install it.
    """
    try:
        import ray
        import ray.data  # noqa: F401  # loads Ray Data, so ``ray.data`` works on the module returned
    except ImportError as e:
        raise ImportError(f"{RAY_INSTALL_HINT} ({e}).") from e
    return ray


def output_names(files: list[str], taken: set[str]) -> list[str]:
    """Return each file's output folder name, de-duplicated in order as Ultralytics' predictor does.

    Same-stem files get ``bus``, ``bus-2``, ...; the names in ``taken`` (folders of a resumed run) are already in use,
    and no file is given a run-level name (``summary.json.jpg`` -> ``summary.json-2``), as in a local run.
    """
    from .writers import unique_name

    bases = set(taken)
    return [unique_name(Path(f).stem, bases) for f in files]


def load_weights(path: str | Path, task: str | None = None) -> Any:
    """Load a weights file as ``yolo`` does: RT-DETR by name, else ``YOLO`` (which picks World / YOLOE itself)."""
    from ultralytics.models import RTDETR, YOLO

    return RTDETR(str(path)) if "rtdetr" in Path(str(path)).stem.lower() else YOLO(str(path), task=task)


class CamWorker:
    """One actor of the pool: loads the model and builds the CAM predictor once, then explains batches of files."""

    def __init__(self, model: Any, task: str | None, save_dir: str, kwargs: dict[str, Any], read_flag: int) -> None:
        """Build the predictor (``model`` is a weights path or an Ultralytics model put in the object store)."""
        from .api import cam_predictor
        from .summary import CamRun

        if isinstance(model, (str, Path)):
            model = load_weights(model, task)
        else:  # an in-memory model, put in the object store by the driver
            import ray

            model = ray.get(model)
        self.predictor = cam_predictor(model, **{**kwargs, "save": False, "verbose": False})
        self.predictor.save_dir = Path(save_dir)
        self.run = CamRun(self.predictor, None)
        self.run.watch()  # the driver's folder: a worker stops rather than recreate it if it is deleted mid-run
        self.read_flag = read_flag

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Explain and write each file of ``batch``; return one JSON manifest line (or an error) per file."""
        from .sources import read_image, unreadable_reason

        config = self.predictor.cam_config
        lines, errors = [], []
        for source, folder in zip(map(str, batch["source"]), map(str, batch["folder"])):
            # what the local loader reads the file with: Ultralytics' imread, within max_pixels
            im, reason, note = read_image(source, self.read_flag, config.max_pixels, config.oversize)
            if im is None:
                lines.append("")
                errors.append(reason or unreadable_reason(source, "image"))  # the reason a local run gives
                continue
            (result,) = self.predictor(source=im, stream=False)
            result.path = source
            _, line = self.run.write_image(result, self.run.save_dir / (folder + Path(source).suffix))
            if note is not None:
                line["note"] = note  # the driver lists it in summary.json's notes
            lines.append(json.dumps(line, ensure_ascii=False))
            errors.append("")
        return {"index": batch["index"], "source": batch["source"], "line": lines, "error": errors}


def _init_ray(ray: Any) -> None:
    """Join the cluster of ``RAY_ADDRESS``, or start a local one with this machine's cores (once per process).

    ``ray.init`` replaces the process's SIGTERM handler with one that calls ``sys.exit``; a handler the caller had
    installed (``yolo-cam``'s, which stops the run and writes ``summary.json``) is put back.
    """
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    LOGGER.info(f"{PREFIX}engine=ray: {'joining ' + address if address else 'starting a local Ray cluster'}")
    previous = signal.getsignal(signal.SIGTERM)
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    if callable(previous) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def cam_ray(
    model: Any,
    source: Any,
    *,
    workers: int | None = None,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run a saving CAM run over the images of ``source`` on a Ray Data actor pool; return its ``summary.json``.

    Args:
        model: a weights path (each actor loads it) or an Ultralytics model (put in Ray's object store).
        source: a folder, glob, file, or ``.txt``/``.csv`` list of images that every worker can read.
        workers: actors in the pool (default: one per GPU, else one per CPU of the cluster less one, at least one).
        batch_size: files per ``map_batches`` call (a unit of work handed to one actor).
        progress: called as ``progress(done, total)`` after every image (the CLI's progress bar).
        stop: checked after every batch that arrives; when it returns True the pool is stopped and the run ends
            ``interrupted``, with what is done recorded (``yolo-cam``'s SIGINT / SIGTERM handling).
        **kwargs: what :func:`ultralytics_cam.cam` takes: CAM options and Ultralytics predict arguments, including
            ``project``, ``name`` and ``resume``.

    Returns:
        The run's summary (also written to ``<save_dir>/summary.json``).

    Raises:
        ImportError: Ray Data is not installed (with the install command).
        ValueError: the source holds videos (run them with the local engine), or a resumed run's settings differ.
        KeyboardInterrupt: Ctrl-C during the run, re-raised once the run is recorded as ``interrupted``.
        SystemExit: SIGTERM (through Ray's handler) during the run, re-raised likewise.
    """
    ray = import_ray()
    import cv2

    from .api import cam_predictor
    from .manifest import clean_partials
    from .sources import list_source
    from .summary import CamRun, RunOutcome

    kwargs = {k: v for k, v in kwargs.items() if k not in ("save", "engine", "workers")}
    task = kwargs.get("task")
    path = model if isinstance(model, (str, Path)) else getattr(model, "ckpt_path", None)
    loaded = load_weights(model, task) if isinstance(model, (str, Path)) else model
    device = kwargs.get("device")
    # The driver only names the run folder and records settings: its predictor is never run, so it stays on the CPU.
    driver = cam_predictor(loaded, **{**kwargs, "save": True, "verbose": False, "device": "cpu"})
    state = driver._cam_resume_state()
    run = CamRun(driver, source)
    run.engine = "ray"
    run.settings["ultralytics"]["device"] = device
    if state is not None:
        run.resume_from(state)

    # the listing a local run makes (ultralytics_cam.sources' loader: a missing path of a .txt list is skipped)
    listing = list_source(source)
    listing.close()
    run.unreadable.extend({"source": f, "reason": why} for f, why in listing.skipped.items())
    # str paths; typing infers list[BufferedReader] from a loop variable the loader's unannotated code reuses
    files = cast("list[str]", listing.files)
    videos = [f for f, v in zip(files, listing.video_flag) if v]
    if videos:
        raise ValueError(
            f"engine=ray explains images; {len(videos)} videos in source={source!r} ({Path(videos[0]).name}, ...) "
            "are read frame by frame by one process: run them with the local engine."
        )
    run.claim(driver)  # the run folder, exclusively (saving.claim_run_dir), before any actor writes into it
    order = {f: i for i, f in enumerate(files)}
    todo = [f for f in files if f not in run.previous.done]
    taken = {line["folder"] for line in run.previous.images.values()}
    rows = [{"index": order[f], "source": f, "folder": n} for f, n in zip(todo, output_names(todo, taken))]

    outcome = RunOutcome()
    try:
        with outcome:
            if rows and _run_pool(
                ray,
                run,
                rows,
                path or ray_put(ray, loaded),
                task or loaded.task,
                kwargs,
                workers,
                batch_size,
                progress,
                cv2.IMREAD_GRAYSCALE if getattr(driver.model, "channels", 3) == 1 else cv2.IMREAD_COLOR,
                stop,
            ):
                outcome.status = "interrupted"  # stopped by a signal after a whole batch
            elif not rows:
                LOGGER.info(f"{PREFIX}nothing left to do in {run.save_dir}: every image is complete")
    finally:  # Ctrl-C, or SIGTERM through Ray's own handler (sys.exit), ends as "interrupted" (RunOutcome)
        if outcome.status == "completed":  # every actor is done: staging left by a killed one can go
            for p in clean_partials(run.save_dir):
                LOGGER.info(f"{PREFIX}removed {p.name}, left in {p.parent} by a worker that was killed")
        run.images.sort(key=lambda r: order.get(r["source"], -1))
        run.unreadable.sort(key=lambda r: order.get(r["source"], -1))
        summary = run.finish(driver, outcome.status, outcome.error)
    return summary


def ray_put(ray: Any, model: Any) -> Any:
    """Put an in-memory model (no weights file) in the object store, for every actor to load once."""
    return ray.put(model)


def _run_pool(
    ray: Any,
    run: Any,
    rows: list[dict[str, Any]],
    model: Any,
    task: str,
    kwargs: dict[str, Any],
    workers: int | None,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    read_flag: int,
    stop: Callable[[], bool] | None = None,
) -> bool:
    """Stream ``rows`` through the actor pool and record each image in the run as its result arrives.

    Returns whether ``stop`` ended it early. Leaving the loop closes Ray Data's iterator, which shuts its executor
    down and with it the actor pool.
    """
    if stop is not None and stop():  # stopped while the driver set up: no pool is started
        return True
    _init_ray(ray)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if str(kwargs.get("device", "")) != "cpu" else 0
    if workers is None:
        workers = gpus or max(1, int(resources.get("CPU", 1)) - 1)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    LOGGER.info(f"{PREFIX}engine=ray: {len(rows)} images, {workers} workers{', 1 GPU each' if gpus else ''}")
    # one block per batch: an actor's results reach the driver (and the manifest) batch by batch, not block by block
    blocks = min(-(-len(rows) // batch_size), MAX_BLOCKS)
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(
        CamWorker,
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if gpus else 0,
        fn_constructor_kwargs={
            "model": model,
            "task": task,
            "save_dir": str(run.save_dir),
            "kwargs": kwargs,
            "read_flag": read_flag,
        },
        # A crashed actor is restarted and its batch retried: Ray Data's own defaults for actor pools
        # (max_restarts=-1, max_task_retries=-1). A retried batch rewrites the same folders (each one atomically), and
        # only the driver records images in the manifest, once each, as their results arrive.
        runtime_env={"env_vars": env} if env else None,
    )
    batches = ds.iter_batches(batch_size=None, batch_format="numpy")
    try:
        return _record_batches(batches, run, len(rows), progress, stop)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:  # a stopped run: Ray Data shuts its executor, and the actor pool, down
            close()


def _record_batches(
    batches: Any, run: Any, total: int, progress: Callable[[int, int], None] | None, stop: Callable[[], bool] | None
) -> bool:
    """Record each image of the batches as they arrive; return whether ``stop`` ended it early."""
    done, seen = 0, set()
    for batch in batches:
        for source, line, err in zip(batch["source"], batch["line"], batch["error"]):
            if str(source) in seen:  # a retried batch whose first outputs had already arrived: recorded once
                continue
            seen.add(str(source))
            if err:
                run.unreadable.append({"source": str(source), "reason": str(err)})
            else:
                run.record_image(json.loads(str(line)), sync=False)
            done += 1
            if progress is not None:
                progress(done, total)
        if run.manifest is not None:
            run.manifest.sync()  # group commit: the batch's lines were flushed one by one, fsynced here once
        if stop is not None and stop():
            LOGGER.info(f"{PREFIX}engine=ray: stopping the pool after {done} of {total} images")
            return True
    return False


def run_predict_ray(model: Any, source: Any, cam: dict[str, Any], ult: dict[str, Any], verbose: bool) -> int:
    """``yolo-cam predict engine=ray``: :func:`cam_ray` with a progress bar and the CLI's messages; the exit code.

    SIGINT and SIGTERM stop it as they stop a local run: after the batch that arrives next, the pool is stopped and
    the run-level files are written for what is done (``summary.json`` says ``interrupted``); the exit code is
    130 or 143, and ``resume=True`` goes on. A second signal aborts at once (the summary is still written).

    Raises:
        cli.UsageError: Ray is not installed (with the install command), or an option is invalid.
        cli.RunError: the run failed, or no image could be explained.
    """
    import sys
    import time

    from ultralytics.utils.tqdm import TQDM

    from .cli import EXIT_OK, GracefulInterrupt, RunError, UsageError, _plural, _say
    from .errors import CamError

    try:
        import_ray()
    except ImportError as e:
        raise UsageError(str(e)) from e
    bar = TQDM(total=None, desc="yolo-cam ray", unit="img", disable=not verbose, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    ult = {k: v for k, v in ult.items() if k != "save"}
    workers = ult.pop("workers", None)
    t0 = time.time()
    with GracefulInterrupt() as signals:
        try:
            summary = cam_ray(
                model, source, workers=workers, progress=progress, stop=lambda: signals.requested, **cam, **ult
            )
        except (CamError, ValueError, FileNotFoundError) as e:
            raise UsageError(str(e)) from e
        except Exception as e:
            raise RunError(f"the run failed: {type(e).__name__}: {e}") from e
        finally:
            bar.close()
    seconds = time.time() - t0
    counts, skipped = summary["counts"], summary["skipped"]
    if summary["status"] == "interrupted":
        _say(
            f"interrupted after {_plural(counts['images'], 'image')}; they and summary.json are in "
            f"{summary['save_dir']} (resume=True goes on)."
        )
        return signals.exit_code
    if not counts["images"]:
        reasons = "; ".join(f"{Path(s['source']).name}: {s['reason']}" for s in skipped[:5])
        raise RunError(f"no input could be explained{' (' + reasons + ')' if reasons else ''}.")
    if verbose:
        n = bar.n
        _say(
            f"{_plural(counts['images'], 'image')} explained on Ray in {seconds:.1f}s "
            f"({n / seconds if seconds > 0 else 0.0:.2f} img/s for the {n} of this session) -> {summary['save_dir']}"
        )
    if skipped:
        _say(f"{_plural(len(skipped), 'input')} skipped (listed with reasons in {summary['save_dir']}/summary.json).")
    return EXIT_OK
