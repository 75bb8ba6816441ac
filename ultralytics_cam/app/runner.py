"""The app's run controller: one ``yolo-cam predict`` run at a time, in a background thread, with progress and stop.

The controller is shared by every browser tab of the app (one per server), so all tabs see the same run. The page
polls :meth:`RunController.snapshot`; Python callers can also :meth:`~RunController.subscribe` to every change.
A run is exactly the CLI's: :func:`ultralytics_cam.api.cam_predictor` with ``save=True``, iterated with
``stream=True``; Stop asks for ``interrupted`` and closes the stream, which writes ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._logging import LOGGER, PREFIX

if TYPE_CHECKING:
    from .settings import RunSettings

__all__ = ["ACTIVE", "GalleryItem", "RunBusyError", "RunController", "RunFailure", "RunState", "explain_error"]

#: States in which a run holds the controller (a second Start is refused).
ACTIVE = ("starting", "running", "stopping")


class RunBusyError(RuntimeError):
    """Start was pressed while a run is in progress."""


@dataclass(frozen=True)
class RunFailure:
    """A run error as the page shows it: the message, and which advice goes with it (never a stack trace).

    Attributes:
        kind: ``weights``, ``cuda_oom``, ``device``, ``options``, ``source`` or ``other``; the app's advice text for
            it is ``advice_<kind>`` in :mod:`ultralytics_cam.app.i18n`.
        message: one line that says what went wrong.
    """

    kind: str
    message: str


@dataclass(frozen=True)
class GalleryItem:
    """One finished image: its name and the two pictures the app shows."""

    name: str
    folder: str
    heatmap: str
    detection: str


@dataclass
class RunState:
    """Everything the page shows about the current (or last) run.

    Attributes:
        status: ``idle``, then ``starting`` (loading the model), ``running``, ``stopping``, and at the end
            ``completed``, ``interrupted`` (Stop) or ``failed``.
        done: images (and video frames) finished.
        total: inputs to do, when known.
        rate: images per second since the first finished image.
        eta: seconds left at that rate.
        current: file name of the image in progress.
        items: the finished images, in order.
        image_errors: inputs that were skipped (``{"source", "reason"}``, as in ``summary.json``).
        failure: the run error, if the run failed.
        save_dir: the run folder, once it is known.
        report: the run's ``index.html``, when the run wrote one.
        version: grows by one on every change (the page re-draws only what changed).
    """

    status: str = "idle"
    done: int = 0
    total: int | None = None
    rate: float | None = None
    eta: float | None = None
    current: str = ""
    items: list[GalleryItem] = field(default_factory=list)
    image_errors: list[dict[str, Any]] = field(default_factory=list)
    failure: RunFailure | None = None
    save_dir: str | None = None
    report: str | None = None
    version: int = 0


def explain_error(exc: BaseException, stage: str) -> RunFailure:
    """Map an exception of a run to what the page shows.

    Args:
        exc: the exception.
        stage: where it happened: ``load`` (reading the weights), ``setup`` (options, device) or ``run``.
    """
    import torch

    from ..errors import CamError

    text = f"{exc}".strip().splitlines()[0] if f"{exc}".strip() else type(exc).__name__
    oom = isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in text.lower()
    )
    if oom:
        return RunFailure("cuda_oom", f"CUDA out of memory: {text}")
    if stage == "load":
        return RunFailure("weights", text)
    if isinstance(exc, ValueError) and ("device=" in text or "CUDA" in text) and stage == "setup":
        return RunFailure("device", text)
    if isinstance(exc, (CamError, ValueError, TypeError)) and stage == "setup":
        return RunFailure("options", text)
    return RunFailure("other", f"{type(exc).__name__}: {text}")


class RunController:
    """Runs one CAM run at a time in a background thread and keeps its state for every page that asks.

    Args:
        on_run_dir: called with each run folder as soon as it is known (the app lets the page serve files from it).
    """

    def __init__(self, on_run_dir: Callable[[Path], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._state = RunState()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listeners: list[Callable[[RunState], None]] = []
        self._on_run_dir = on_run_dir

    # -- what the page calls -------------------------------------------------------------------------------------------
    def snapshot(self) -> RunState:
        """Return a copy of the current state (safe to read while the run goes on).

        The lists are copied, not their items: gallery items and failures are frozen, and the run replaces an error
        list rather than changing it, so a snapshot costs a few pointers per image even in a long run.
        """
        with self._lock:
            s = self._state
            return dataclasses.replace(s, items=list(s.items), image_errors=list(s.image_errors))

    def subscribe(self, listener: Callable[[RunState], None]) -> None:
        """Call ``listener`` with a snapshot after every change (in the run's thread; keep it short)."""
        self._listeners.append(listener)

    def is_running(self) -> bool:
        """Whether a run holds the controller."""
        with self._lock:
            return self._state.status in ACTIVE

    def start(self, settings: RunSettings) -> None:
        """Start a run of ``settings`` (:class:`~ultralytics_cam.app.settings.RunSettings`) in the background.

        Raises:
            RunBusyError: a run is already in progress (the new one is not started).
        """
        with self._lock:
            if self._state.status in ACTIVE:
                raise RunBusyError("a run is already in progress")
            self._stop.clear()
            self._state = RunState(status="starting", version=self._state.version + 1)
            self._thread = threading.Thread(target=self._work, args=(settings,), name="yolo-cam-app-run", daemon=True)
            self._thread.start()
        self._notify()

    def stop(self) -> bool:
        """Ask the run to stop after the current image; return False when no run is in progress."""
        with self._lock:
            if self._state.status not in ACTIVE:
                return False
            self._stop.set()
            if self._state.status != "stopping":
                self._state.status = "stopping"
                self._state.version += 1
        self._notify()
        return True

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait for the run's thread to end (or ``timeout`` seconds); return the state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.snapshot()

    # -- the run -------------------------------------------------------------------------------------------------------
    def _update(self, new_items: list[GalleryItem] | None = None, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                setattr(self._state, k, v)
            self._state.items.extend(new_items or [])
            self._state.version += 1
        self._notify()

    def _notify(self) -> None:
        if not self._listeners:
            return
        state = self.snapshot()
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception as e:  # a listener's bug must not stop the run
                LOGGER.warning(f"{PREFIX}app progress listener failed: {type(e).__name__}: {e}")

    def _fail(self, exc: BaseException, stage: str) -> None:
        failure = explain_error(exc, stage)
        # The page gets one line and advice; the terminal keeps the whole story for a bug report.
        LOGGER.error(f"{PREFIX}app run failed ({stage}): {failure.message}", exc_info=exc)
        self._update(status="failed", failure=failure, current="")

    def _work(self, settings: RunSettings) -> None:
        stage = "load"
        try:
            from ..api import cam_predictor
            from ..cli import load_model

            model = load_model(settings.model)
            stage = "setup"
            predictor = cam_predictor(model, **settings.predictor_kwargs())
            if self._stop.is_set():  # Stop while the model was loading: nothing was started, nothing is written
                self._update(status="interrupted")
                return
            stage = "run"
            self._run(predictor, settings.source)
        except Exception as e:  # the thread must end with a state the page can show
            self._fail(e, stage)

    def _run(self, predictor: Any, source: Any) -> None:
        from ..cli import count_inputs

        def on_start(p: Any) -> None:
            self._update(total=count_inputs(p.dataset), save_dir=str(p.save_dir))
            if self._on_run_dir is not None:
                self._on_run_dir(Path(p.save_dir))

        def on_batch(p: Any) -> None:
            paths = p.batch[0] if p.batch else []
            self._update(current=Path(str(paths[0])).name if paths else "")

        predictor.add_callback("on_predict_start", on_start)
        predictor.add_callback("on_predict_batch_start", on_batch)
        with self._lock:  # a Stop that came in meanwhile keeps its "stopping"
            if self._state.status == "starting":
                self._state.status = "running"
                self._state.version += 1
        self._notify()
        done, first, error = 0, None, None
        gen = predictor(source=source, stream=True)
        try:
            for _ in gen:
                done += 1
                now = time.perf_counter()
                first = first or now
                total = self._state.total  # written only by this thread
                rate = (done - 1) / (now - first) if done > 1 and now > first else None
                left = (total - done) if total else None
                changes: dict[str, Any] = {
                    "done": done,
                    "rate": rate,
                    "eta": left / rate if rate and left is not None and left >= 0 else None,
                    "new_items": self._new_items(predictor, len(self._state.items)),
                    "image_errors": self._skipped(predictor),  # the run lists the source folder once
                }
                self._update(**changes)
                if self._stop.is_set():
                    break
        except Exception as e:  # the generator has ended: summary.json says failed, with the error
            error = e
        finally:
            if self._stop.is_set() and predictor.cam_run is not None:
                predictor.cam_run.interrupt_requested = True  # summary.json says interrupted, as Ctrl-C does
            gen.close()  # ends the run: summary.json written, videos renamed into place
        self._finish(predictor, done, error)

    def _finish(self, predictor: Any, done: int, error: Exception | None = None) -> None:
        import json

        save_dir = Path(predictor.save_dir)
        summary: dict[str, Any] = {}
        if (save_dir / "summary.json").is_file():
            summary = json.loads((save_dir / "summary.json").read_text(encoding="utf-8"))
        skipped = summary.get("skipped", self._skipped(predictor))
        report = save_dir / "index.html"
        changes: dict[str, Any] = {
            "image_errors": skipped,
            "new_items": self._new_items(predictor, len(self._state.items)),
            "save_dir": str(save_dir),
            "report": str(report) if report.is_file() else None,
            "current": "",
            "eta": None,
        }
        if error is not None:
            self._update(**changes)
            self._fail(error, "run")
        elif self._stop.is_set():
            self._update(status="interrupted", **changes)
        elif done == 0:
            reasons = "; ".join(f"{Path(s['source']).name}: {s['reason']}" for s in skipped[:5])
            failure = RunFailure("source", f"no input could be explained{' (' + reasons + ')' if reasons else ''}.")
            self._update(status="failed", failure=failure, **changes)
        else:
            self._update(status="completed", **changes)

    @staticmethod
    def _new_items(predictor: Any, seen: int) -> list[GalleryItem]:
        """The images the run saved since the first ``seen`` (their folders, from the run's own record)."""
        run = predictor.cam_run
        if run is None:
            return []
        out = []
        for record in run.images[seen:]:
            folder = Path(run.save_dir) / record["folder"]
            out.append(
                GalleryItem(
                    name=Path(record["source"]).name,
                    folder=str(folder),
                    heatmap=str(folder / "heatmap.png"),
                    detection=str(folder / "detection.png"),
                )
            )
        return out

    @staticmethod
    def _skipped(predictor: Any) -> list[dict[str, Any]]:
        run = predictor.cam_run
        return run.skipped(predictor) if run is not None else []
