"""``yolo-cam``: the command line, in Ultralytics' own argument language.

::

    yolo-cam predict model=best.pt source=imgs/ method=HiResCAM
    yolo-cam predict model=best.pt source=video.mp4 method=EigenCAM
    yolo-cam val model=best.pt data=data.yaml method=GradCAM
    yolo-cam demo | methods | layers model=best.pt | plugins | version | help

Arguments are parsed with Ultralytics' own helpers (``merge_equals_args``, ``parse_key_value_pair``,
``smart_value``), Ultralytics keys are checked by ``get_cfg`` on a copy (its names, defaults and messages; its global
config is never touched) and the CAM keys by :class:`~ultralytics_cam.config.CamConfig`. Unknown keys get a "did you
mean". Exit codes: 0 success, 1 the run failed, 2 usage error, 130 interrupted (SIGINT, Ctrl-C), 143 terminated
(SIGTERM, as ``timeout``, ``kill``, Docker, Kubernetes and Slurm send); both signals stop the run the same way.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import listings

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "MODES",
    "MODE_SPECS",
    "Command",
    "ModeSpec",
    "main",
    "parse_args",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

#: Keys of ``yolo-cam val`` besides the CAM and Ultralytics keys (``integrations.val_hook.cam_val``'s own).
VAL_KEYS = ("kinds", "max_images", "strict")
#: Keys of ``yolo-cam predict`` besides the CAM and Ultralytics keys: ``engine=local|ray`` (docs/scale.md).
PREDICT_KEYS = ("engine",)
ENGINES = ("local", "ray")
#: Keys of ``yolo-cam layers``.
LAYERS_KEYS = ("model", "imgsz", "task")
#: Keys of ``yolo-cam eval`` (``ultralytics_cam.ranking.evaluate``'s options): the ones its help explains. (``task``
#: is no key of any mode: :func:`parse_args` takes it out of the keys, as it does a bare task word.)
#: The DRISE options (CAM keys) that ``eval`` and ``compare`` pass on to every candidate / model.
DRISE_KEYS = ("drise_masks", "drise_cell", "drise_keep", "seed")
EVAL_KEYS = (*listings.EVAL_KEY_HELP, *DRISE_KEYS)
#: Keys of ``yolo-cam compare`` (``ultralytics_cam.ranking.compare``'s options and the CAM keys it passes on).
COMPARE_KEYS = ("model", "source", "method", "layers", "target", "max_images", "conf", "imgsz", "device", "project",
                "name", "exist_ok", "verbose", *DRISE_KEYS)  # fmt: skip
#: Keys of ``yolo-cam report``.
REPORT_KEYS = ("dir",)
#: Keys of ``yolo-cam app``: where it listens, its language, and what its form starts with.
APP_KEYS = ("host", "port", "lang", "model", "source", "project")

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEMO_MODEL = ASSETS_DIR / "models" / "detect.pt"
DEMO_IMAGES = ASSETS_DIR / "demo"


class UsageError(Exception):
    """The command line is wrong (exit code 2)."""


class RunError(Exception):
    """The command line was fine but the run failed (exit code 1)."""


@dataclass(frozen=True)
class ModeSpec:
    """One ``yolo-cam`` mode: everything the command line needs to know about it, in one entry of :data:`MODE_SPECS`.

    Attributes:
        name: the word on the command line (``yolo-cam NAME``).
        summary: one line for ``yolo-cam help``.
        example: example arguments shown under the summary ('' for none).
        run: runs a parsed :class:`Command` of this mode and returns the exit code.
        help: returns the text of ``yolo-cam NAME help``.
        keys: returns the ``key=value`` keys the mode accepts (None: it takes none).
        positional: the key a bare word fills (``yolo-cam report runs/detect/cam`` sets ``dir``); None: bare words
            are errors.
        refused: whether Ultralytics keys that cannot be used with CAM (``REFUSED_ULTRALYTICS_KEYS``) are refused
            with their reason rather than as keys of another mode.
    """

    name: str
    summary: str
    example: str
    run: Callable[[Command], int]
    help: Callable[[], str]
    keys: Callable[[], list[str]] | None = None
    refused: bool = False
    positional: str | None = None


@dataclass
class Command:
    """A parsed command line.

    Attributes:
        mode: one of :data:`MODES`.
        task: a task word given on the line (``detect``, ``segment``, ...), if any.
        args: every ``key=value`` (values converted by Ultralytics' ``smart_value``).
        help: ``help`` (or ``-h``) was given: explain the mode instead of running it.
    """

    mode: str
    task: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    help: bool = False


# -- parsing ----------------------------------------------------------------------------------------------------------
def _cam_keys() -> dict[str, Any]:
    from .config import CAM_DEFAULTS

    return CAM_DEFAULTS


def _ultralytics_keys() -> dict[str, Any]:
    from ultralytics.utils import DEFAULT_CFG_DICT

    keys: dict[str, Any] = DEFAULT_CFG_DICT  # Ultralytics' default.yaml, read by its untyped YAML.load
    return keys


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def parse_args(argv: list[str]) -> Command:
    """Parse ``yolo-cam`` arguments the way ``yolo`` parses its own.

    Raises:
        UsageError: an argument cannot be parsed, a word is neither a mode, a task nor a key, or a key is unknown
            for the mode (with close matches).
    """
    from ultralytics.cfg import TASKS, merge_equals_args, parse_key_value_pair

    cam_keys, ult_keys = _cam_keys(), _ultralytics_keys()
    bool_keys = {k for k, v in {**ult_keys, **cam_keys}.items() if isinstance(v, bool)}
    mode: str | None
    task: str | None
    args: dict[str, Any]
    bare: list[tuple[str, str]]
    mode, task, args, want_help, bare = None, None, {}, False, []
    for a in merge_equals_args(list(argv)):
        word = a.lstrip("-") if a.startswith("-") and "=" not in a else a
        if a.startswith("--") and "=" in a:
            word = a[2:]  # '--conf=0.5' is read as 'conf=0.5', as 'yolo' does
        if word.lower() in {"help", "h"}:
            want_help = True
        elif "=" in word:
            try:
                k, v = parse_key_value_pair(word)
            except (NameError, SyntaxError, ValueError, AssertionError) as e:
                raise UsageError(f"could not read '{a}' ({e}). Arguments are key=value pairs, e.g. conf=0.25.") from e
            if k == "mode":
                mode = _set_mode(mode, str(v))
            elif k == "cfg" and v is not None:
                args = {**_load_cfg(v), **args}
            else:
                args[k] = v
        elif word in MODES:
            mode = _set_mode(mode, word)
        elif word in TASKS:
            task = word
        elif word in bool_keys or word in {"half", "int8", "end2end", "nms"}:
            args[word] = True  # a bare boolean key sets it, as 'yolo show' and 'yolo half' do
        elif word in cam_keys or word in ult_keys:
            example = cam_keys.get(word, ult_keys.get(word))
            raise UsageError(f"'{word}' needs a value: {word}=VALUE, e.g. {word}={example}.")
        else:
            bare.append((a, word))  # a path for a mode that takes one (report), else an error below
    positional = MODE_SPECS[mode].positional if mode is not None else None
    if bare and (positional is None or len(bare) > 1 or positional in args):
        a, word = bare[0] if positional is None else bare[-1]
        choices = [*MODES, *TASKS, *cam_keys, *ult_keys]
        raise UsageError(f"'{a}' is not a yolo-cam mode, task or key.{_suggest(word, choices)} See 'yolo-cam help'.")
    if bare and positional is not None:  # (positional is never None here: that case raised above)
        args[positional] = bare[0][0]
    if "task" in args:
        task = args.pop("task")
        if task not in TASKS:
            raise UsageError(
                f"task={task!r} is not a task.{_suggest(str(task), list(TASKS))} Tasks: {', '.join(TASKS)}."
            )
    if mode is None:
        mode = "predict" if args else "help"
        if args:
            _say(f"no mode given; using 'predict'. Modes: {', '.join(MODES)}.")
    cmd = Command(mode=mode, task=task, args=args, help=want_help)
    if not cmd.help:
        check_keys(cmd)
    return cmd


def _set_mode(current: str | None, new: str) -> str:
    if new not in MODES:
        raise UsageError(f"mode={new!r} is not a yolo-cam mode.{_suggest(new, list(MODES))} Modes: {', '.join(MODES)}.")
    if current is not None and current != new:
        raise UsageError(f"two modes given: '{current}' and '{new}'. Give one of: {', '.join(MODES)}.")
    return new


def _load_cfg(path: Any) -> dict[str, Any]:
    from ultralytics.utils import YAML

    try:
        loaded = YAML.load(str(path))  # type: ignore[no-untyped-call]  # Ultralytics' YAML.load has no annotations
        return {k: v for k, v in loaded.items() if k != "cfg"}
    except Exception as e:
        raise UsageError(f"cfg={path!r} could not be read as a YAML file of key: value pairs ({e}).") from e


def allowed_keys(mode: str) -> list[str]:
    """Return the keys ``mode`` accepts."""
    spec = MODE_SPECS.get(mode)
    return spec.keys() if spec is not None and spec.keys is not None else []


def _all_keys() -> list[str]:
    """Every CAM and Ultralytics key (``yolo`` accepts them all)."""
    from .config import DEPRECATED_ULTRALYTICS_KEYS

    return [*_cam_keys(), *_ultralytics_keys(), *DEPRECATED_ULTRALYTICS_KEYS]


def _predict_keys() -> list[str]:
    from .config import REFUSED_ULTRALYTICS_KEYS

    # 'engine' is ours; 'resume' (docs/scale.md) and 'workers' (actors with engine=ray) are Ultralytics' own keys
    return [*(k for k in _all_keys() if k not in REFUSED_ULTRALYTICS_KEYS), *PREDICT_KEYS]


def _val_keys() -> list[str]:
    return [*VAL_KEYS, *_all_keys()]


def _layers_keys() -> list[str]:
    return list(LAYERS_KEYS)


def _app_keys() -> list[str]:
    return list(APP_KEYS)


def check_keys(cmd: Command) -> None:
    """Check that every key exists for the mode.

    Raises:
        UsageError: a key is unknown (with "did you mean"), refused with CAM (with why), or belongs to another mode.
    """
    from .config import REFUSED_ULTRALYTICS_KEYS

    allowed = set(allowed_keys(cmd.mode))
    everything = list(dict.fromkeys([*_all_keys(), *(k for m in MODE_SPECS for k in allowed_keys(m))]))
    for k in cmd.args:
        if k in allowed:
            continue
        if k in REFUSED_ULTRALYTICS_KEYS and MODE_SPECS[cmd.mode].refused:
            raise UsageError(f"'{k}' cannot be used with CAM: {REFUSED_ULTRALYTICS_KEYS[k]}.")
        if not allowed:
            raise UsageError(f"'yolo-cam {cmd.mode}' takes no key=value arguments, got '{k}'.")
        if k in everything:
            raise UsageError(
                f"'{k}' is not used by 'yolo-cam {cmd.mode}' (it takes: {_short(allowed_keys(cmd.mode))})."
            )
        raise UsageError(
            f"'{k}' is not a valid key.{_suggest(k, [*allowed, *everything])} See 'yolo-cam {cmd.mode} help'."
        )


def _short(keys: list[str]) -> str:
    return ", ".join(keys[:12]) + (", and every 'yolo' key" if len(keys) > 12 else "")


def check_values(cmd: Command) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check every value; return (CAM options, Ultralytics options).

    Raises:
        UsageError: a value is invalid; the message names the key and what it accepts.
    """
    from ultralytics.cfg import get_cfg

    from .config import DEPRECATED_ULTRALYTICS_KEYS, CamConfig, check_ultralytics_numbers, renamed_ultralytics_keys

    cam_keys = _cam_keys()
    cam = {k: v for k, v in cmd.args.items() if k in cam_keys}
    ult = {k: v for k, v in cmd.args.items() if k not in cam}
    ult_only = {k: v for k, v in ult.items() if k in _ultralytics_keys() or k in DEPRECATED_ULTRALYTICS_KEYS}
    try:
        CamConfig(**cam)
    except (ValueError, TypeError) as e:
        raise UsageError(str(e)) from e
    try:
        get_cfg(dict(_ultralytics_keys()), dict(ult_only))  # a copy: Ultralytics' checks and messages, no global change
    except (ValueError, TypeError, SyntaxError, KeyError) as e:
        raise UsageError(str(e).split("\n")[0]) from e
    try:
        check_ultralytics_numbers(ult_only)  # ranges Ultralytics leaves to fail mid-run (batch=0: ZeroDivisionError)
    except ValueError as e:
        raise UsageError(str(e)) from e
    return cam, renamed_ultralytics_keys(ult)


# -- models and sources ------------------------------------------------------------------------------------------------
def load_model(name: Any, task: str | None = None, *, default: bool = False) -> Any:
    """Load a model as ``yolo`` does (``distributed.load_weights``: RT-DETR by name, else ``YOLO``), with clear errors.

    Raises:
        UsageError: the file does not exist and is not an Ultralytics asset.
        RunError: it could not be downloaded (offline) or loaded.
    """
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    from .distributed import load_weights  # (Ray itself is imported only when engine=ray runs)

    name = str(name)
    path = Path(name)
    downloadable = path.name in GITHUB_ASSETS_NAMES
    if path.suffix == ".pt" and not path.exists() and not downloadable:
        raise UsageError(f"model='{name}' does not exist. Pass model=path/to/weights.pt (or a .yaml to build one).")
    try:
        return load_weights(name, task)
    except FileNotFoundError as e:
        raise UsageError(f"model='{name}' was not found ({e}).") from e
    except Exception as e:
        if downloadable and not path.exists():
            what = "the default model" if default else "model"
            raise RunError(
                f"could not download {what} '{name}' ({type(e).__name__}: {str(e).strip()[:200]}). Pass a local "
                "model with model=path/to/best.pt, or try 'yolo-cam demo', which runs the bundled demo model offline."
            ) from e
        raise RunError(f"could not load model='{name}': {type(e).__name__}: {e}") from e


def _is_path_like(source: Any) -> bool:
    s = str(source)
    return not (
        isinstance(source, int)
        or s.isnumeric()
        or s.lower().startswith(("http://", "https://", "rtsp://", "rtmp://", "tcp://", "screen"))
        or "*" in s
        or s.lower().endswith(".streams")
    )


def check_source(source: Any) -> None:
    """Check a local source before loading a model: it exists and holds something Ultralytics reads.

    Raises:
        UsageError: it does not exist, or is a file or folder with no image or video Ultralytics reads.
    """
    from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS

    if isinstance(source, (list, tuple)):
        for s in source:
            check_source(s)
        return
    if not _is_path_like(source):
        return
    formats = f"images: {', '.join(sorted(IMG_FORMATS))}; videos: {', '.join(sorted(VID_FORMATS))}"
    path = Path(str(source))
    if not path.exists():
        raise UsageError(f"source='{source}' does not exist. Use an image, video, folder, glob, URL or webcam index.")
    if path.is_dir():
        readable = IMG_FORMATS | VID_FORMATS
        if not any(p.suffix[1:].lower() in readable for p in path.glob("*.*")):  # stops at the first one
            raise UsageError(f"source='{source}' has no image or video files ({formats}).")
    elif path.suffix[1:].lower() not in IMG_FORMATS | VID_FORMATS | {"txt", "csv"}:
        raise UsageError(f"source='{source}' is a '{path.suffix}' file, not an image or video ({formats}).")


def check_project(project: Any) -> None:
    """Check that ``project=`` can hold run folders: not a file, and not below one.

    Raises:
        UsageError: ``project`` (or a folder above it) is an existing file.
    """
    if project is None:
        return
    path = Path(str(project)).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"project='{project}' cannot hold run folders: '{p}' is a file. Use a folder path.")
            return


# -- running -----------------------------------------------------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT or SIGTERM) raised as an exception; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def _exit_code(e: BaseException) -> int:
    return getattr(e, "exit_code", EXIT_INTERRUPTED)


#: The signals that stop a run cleanly: Ctrl-C, and what ``timeout``, ``kill``, Docker, Kubernetes and Slurm send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt:
    """Context manager: the first SIGINT or SIGTERM asks the run to stop after the current batch, a second aborts.

    Attributes:
        requested: a stop signal arrived.
        signum: the first one that arrived (its exit code is 128 + signum: 130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def exit_code(self) -> int:
        """128 + the first signal's number."""
        return 128 + (self.signum or signal.SIGINT)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise Interrupted(self.signum or signum)
        self.requested, self.signum = True, signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        _say(f"{name}: stopping after the current batch and writing summary.json ({name} again aborts).")

    def __enter__(self) -> GracefulInterrupt:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: keep the default behaviour
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


def count_inputs(dataset: Any) -> int | None:
    """Return how many images / frames a loaded Ultralytics source will yield (None when unknown, e.g. streams)."""
    files, flags = getattr(dataset, "files", None), getattr(dataset, "video_flag", None)
    if files is None or flags is None:
        n = len(getattr(dataset, "im0", []) or [])
        return n or None
    import cv2

    total = 0
    stride = max(int(getattr(dataset, "vid_stride", 1) or 1), 1)
    bad = getattr(dataset, "skipped", None) or {}  # known-bad videos (ultralytics_cam.sources): not opened again
    for f, is_video in zip(files, flags):
        if is_video and f not in bad:
            cap = cv2.VideoCapture(f)
            total += int(cap.get(cv2.CAP_PROP_FRAME_COUNT) / stride)
            cap.release()
        elif not is_video:
            total += 1
    return total


def run_predict(model: Any, source: Any, cam: dict[str, Any], ult: dict[str, Any], verbose: bool) -> int:
    """Run a saving CAM prediction with a progress bar and a clean Ctrl-C; return the exit code."""
    from ultralytics.utils.tqdm import TQDM

    from .api import cam_predictor
    from .errors import CamError

    try:
        predictor = cam_predictor(model, **cam, **{**ult, "save": ult.get("save", True), "verbose": False})
    except CamError as e:
        raise UsageError(str(e)) from e
    except Exception as e:
        raise RunError(f"could not set up the run: {type(e).__name__}: {e}") from e
    bar = None

    def start(p: Any) -> None:
        nonlocal bar
        desc = f"yolo-cam {p.cam_config.method}"
        bar = TQDM(total=count_inputs(p.dataset), desc=desc, unit="img", disable=not verbose, file=sys.stderr)

    predictor.add_callback("on_predict_start", start)
    t0 = time.time()
    seen = 0
    with GracefulInterrupt() as stop:
        gen = predictor(source=source, stream=True)
        try:
            for _ in gen:
                seen += 1
                if bar is not None:
                    bar.update(1)
                if stop.requested:
                    break
            else:
                if bar is not None and bar.total and 0 < bar.n < bar.total:
                    bar.total = bar.n  # the estimate counted unreadable images, which yield nothing: end at 100%
        except KeyboardInterrupt as e:  # a second signal, or one that arrived before the handlers were in place
            stop.requested = True
            stop.signum = stop.signum or getattr(e, "signum", signal.SIGINT)
        except Exception as e:  # (the generator has ended the run and written what it could)
            raise RunError(_failure(predictor, e)) from e
        finally:
            if stop.requested and predictor.cam_run is not None:
                predictor.cam_run.interrupt_requested = True
            gen.close()  # ends the run: videos renamed into place, summary.json written
            if bar is not None:
                bar.close()
    code = _report(predictor, seen, time.time() - t0, stop.requested, verbose)
    return stop.exit_code if code == EXIT_INTERRUPTED else code


def _failure(predictor: Any, e: Exception) -> str:
    return f"the run failed: {type(e).__name__}: {e}. {_what_exists(predictor)}"


def _what_exists(predictor: Any) -> str:
    """Say what the run left on disk, from what is there (never claim a folder or file that was not created)."""
    run, save_dir = predictor.cam_run, Path(predictor.save_dir)
    if run is not None and getattr(run, "lost", None) is not None:  # the folder went during the run (the error says)
        return "Nothing more was written." if save_dir.is_dir() else f"{save_dir} is gone; nothing more was written."
    if not save_dir.is_dir():
        return "Nothing was written."
    if run is None or not (run.images or run.videos):  # (a resume that failed early: the folder holds earlier ones)
        images, videos = _output_folders(save_dir)
        if images or videos:
            held = " and ".join(_plural(n, w) for n, w in ((images, "image folder"), (videos, "video folder")) if n)
            return f"This session finished no input; {save_dir} holds {held} from earlier sessions."
    if run is None:
        return f"Nothing was written; {save_dir} is as it was."
    done = [_plural(len(run.images), "finished image"), _plural(len(run.videos), "video")]
    done = [d for d, n in zip(done, (len(run.images), len(run.videos))) if n]
    has_summary = (save_dir / "summary.json").is_file()
    if done:
        return f"{' and '.join(done)}{' and summary.json' if has_summary else ''} are in {save_dir}."
    return f"No input was finished; {'summary.json is' if has_summary else 'only an empty folder is'} in {save_dir}."


def _output_folders(save_dir: Path) -> tuple[int, int]:
    """How many image and video folders (each with its cam.json) ``save_dir`` holds."""
    folders = [p for p in save_dir.iterdir() if p.is_dir() and (p / "cam.json").is_file()]
    videos = sum((p / "cam.jsonl").is_file() or (p / "segments").is_dir() for p in folders)
    return len(folders) - videos, videos


def _report(predictor: Any, seen: int, seconds: float, interrupted: bool, verbose: bool) -> int:
    summary_path = Path(predictor.save_dir) / "summary.json"
    summary = {}
    if predictor.cam_run is not None and summary_path.exists():
        import json

        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    skipped = summary.get("skipped", [])
    if interrupted and summary.get("status", "interrupted") == "interrupted":  # (a signal after the end: completed)
        counts = summary.get("counts", {"images": seen, "frames": 0})
        what = [_plural(n, w) for n, w in ((counts["images"], "image"), (counts["frames"], "video frame")) if n]
        _say(f"interrupted after {' and '.join(what) or 'no input'}; {_what_exists(predictor)}")
        return EXIT_INTERRUPTED
    counts = summary.get("counts", {})
    if seen == 0 and summary.get("sessions", 1) > 1 and counts.get("images", 0) + counts.get("frames", 0):
        _say(f"nothing left to do: {predictor.save_dir} was already complete ({_plural(counts['images'], 'image')}).")
        return EXIT_OK  # a resumed run that had nothing left to do succeeded
    if seen == 0:
        reasons = "; ".join(f"{Path(s['source']).name}: {s['reason']}" for s in skipped[:5])
        where = f" summary.json is in {predictor.save_dir}." if summary else ""
        raise RunError(f"no input could be explained{' (' + reasons + ')' if reasons else ''}.{where}")
    if verbose:
        counts = summary.get("counts", {"images": seen, "frames": 0})
        done = " and ".join(
            _plural(n, word) for n, word in ((counts["images"], "image"), (counts["frames"], "video frame")) if n
        )
        where = f" -> {predictor.save_dir}" if summary else ""
        if summary.get("sessions", 1) > 1:  # a resumed run: the counts cover every session, the time this one
            done += f" ({seen} in this session)"
        rate = seen / seconds if seconds > 0 else 0.0
        _say(f"{done or seen} explained with {predictor.cam_config.method} in {seconds:.1f}s ({rate:.2f} img/s){where}")
    if skipped:
        _say(f"{_plural(len(skipped), 'input')} skipped (listed with reasons in {summary_path}).")
    return EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _predict(cmd: Command, *, demo: bool = False) -> int:
    cam, ult = check_values(cmd)
    source = ult.pop("source", None)
    model_name = ult.pop("model", None)
    verbose = bool(ult.pop("verbose", True))
    if demo:
        if not DEMO_MODEL.exists() or not DEMO_IMAGES.is_dir():
            raise RunError(f"the bundled demo files are missing from this installation ({DEMO_MODEL}, {DEMO_IMAGES}).")
        model_name = model_name or str(DEMO_MODEL)
        if source is None:
            from ultralytics.data.utils import IMG_FORMATS

            source = [str(p) for p in sorted(DEMO_IMAGES.iterdir()) if p.suffix[1:].lower() in IMG_FORMATS]
    default_model = model_name is None
    if default_model:
        from ultralytics.cfg import TASK2MODEL

        model_name = TASK2MODEL[cmd.task] if cmd.task else (_ultralytics_keys().get("model") or "yolo26n.pt")
        _say(f"'model' is missing; using Ultralytics' default 'model={model_name}'.")
    if source is None:
        from ultralytics.utils import ASSETS

        source = str(ASSETS)
        _say(f"'source' is missing; using 'source={source}'.")
    engine = ult.pop("engine", "local")
    if engine not in ENGINES:
        raise UsageError(f"engine={engine!r} is not valid: use one of {', '.join(ENGINES)}.")
    check_source(source)
    check_project(ult.get("project"))
    if engine == "ray":
        from .distributed import run_predict_ray

        return run_predict_ray(load_model(model_name, cmd.task, default=default_model), source, cam, ult, verbose)
    model = load_model(model_name, cmd.task, default=default_model)
    return run_predict(model, source, cam, ult, verbose)


def _val(cmd: Command) -> int:
    cam, ult = check_values(cmd)
    if "data" not in ult or ult["data"] is None:
        raise UsageError("'data' is missing: yolo-cam val needs data=path/to/data.yaml.")
    try:
        from .integrations.val_hook import cam_val
    except ImportError as e:
        raise RunError(
            f"'yolo-cam val' needs ultralytics_cam.integrations.val_hook, which this installation lacks ({e})."
        ) from e
    from .errors import CamError

    model_name = ult.pop("model", None)
    default_model = model_name is None
    if default_model:
        model_name = _ultralytics_keys().get("model") or "yolo26n.pt"
        _say(f"'model' is missing; using Ultralytics' default 'model={model_name}'.")
    kinds = ult.pop("kinds", None)
    if isinstance(kinds, str):
        kinds = tuple(k.strip() for k in kinds.split(",") if k.strip())
    elif isinstance(kinds, list):
        kinds = tuple(kinds)
    kwargs: dict[str, Any] = {**cam, **{k: ult.pop(k) for k in ("conf", "max_images", "strict") if k in ult}}
    if kinds is not None:
        kwargs["kinds"] = kinds
    model = load_model(model_name, cmd.task, default=default_model)
    try:
        cam_val(model, **kwargs, **ult)
    except CamError as e:
        raise UsageError(str(e)) from e
    except Exception as e:
        raise RunError(f"the val run failed: {type(e).__name__}: {e}") from e
    return EXIT_OK


def _train_keys() -> list[str]:
    from .integrations.train_cam import CLI_KEYS

    return [*CLI_KEYS, *_all_keys()]


def _train(cmd: Command) -> int:
    """``yolo-cam train``: Ultralytics' training with the training CAM callback; every ``yolo train`` key works."""
    from .errors import CamError
    from .integrations.train_cam import CLI_KEYS, add_train_cam_callback

    args = dict(cmd.args)
    options = {CLI_KEYS[k][0]: args.pop(k) for k in list(args) if k in CLI_KEYS}
    cam, ult = check_values(Command(cmd.mode, cmd.task, args))
    if ult.get("data") is None and not ult.get("resume"):
        raise UsageError("'data' is missing: yolo-cam train needs data=path/to/data.yaml (or resume=True).")
    model_name = ult.pop("model", None) or _ultralytics_keys().get("model") or "yolo26n.pt"
    check_project(ult.get("project"))
    model = load_model(model_name, cmd.task, default="model" not in cmd.args)
    if isinstance(options.get("images"), str) and "," in options["images"]:
        options["images"] = [p.strip() for p in options["images"].split(",") if p.strip()]
    try:
        add_train_cam_callback(model, **options, **cam)
    except (CamError, ValueError, TypeError) as e:
        message = str(e)
        for key, (option, *_) in CLI_KEYS.items():  # name the key the user typed: cam_every=0, not every=0
            message = message.replace(f"{option}=", f"{key}=") if key in cmd.args else message
        raise UsageError(message) from e
    try:
        model.train(**ult)
    except Exception as e:
        raise RunError(f"the training failed: {type(e).__name__}: {e}") from e
    return EXIT_OK


def _eval(cmd: Command) -> int:
    """``yolo-cam eval``: rank methods x layer sets on a sample of the user's images; print the table."""
    from .errors import CamError
    from .ranking import EvalInterrupted, evaluate

    args = dict(cmd.args)
    model_name, source = args.pop("model", None), args.pop("source", None)
    verbose = bool(args.pop("verbose", True))
    if model_name is None:
        raise UsageError("'model' is missing: yolo-cam eval model=path/to/best.pt source=imgs/.")
    if source is None:
        from ultralytics.utils import ASSETS

        source = str(ASSETS)
        _say(f"'source' is missing; using 'source={source}'.")
    check_source(source)
    model = load_model(model_name, cmd.task)
    try:
        report = evaluate(model, source, progress=verbose, **args)
    except EvalInterrupted as e:
        _say(f"interrupted; the {len(e.report.ranking)} finished candidates are in {e.report.save_dir}")
        return _exit_code(e.__cause__ or e)  # 130 for Ctrl-C, 143 for SIGTERM
    except (CamError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from e
    print(report.table())
    _say(f"eval.json, eval.csv, figures and index.html -> {report.save_dir}")
    return EXIT_OK


def _compare(cmd: Command) -> int:
    """``yolo-cam compare model=a.pt,b.pt``: one method, several models, a figure per image."""
    from .errors import CamError
    from .ranking import CompareInterrupted, compare

    args = dict(cmd.args)
    names = args.pop("model", None)
    names = names if isinstance(names, (list, tuple)) else [n for n in str(names or "").split(",") if n.strip()]
    if len(names) < 2:
        raise UsageError("compare needs two or more models: yolo-cam compare model=before.pt,after.pt source=imgs/.")
    source = args.pop("source", None)
    if source is None:
        from ultralytics.utils import ASSETS

        source = str(ASSETS)
        _say(f"'source' is missing; using 'source={source}'.")
    check_source(source)
    args.pop("verbose", None)
    models = [load_model(n.strip(), cmd.task) for n in names]
    try:
        _, save_dir = compare(models, source, labels=[Path(n.strip()).name for n in names], **args)
    except CompareInterrupted as e:
        if e.save_dir is None:
            _say(f"interrupted: no figure was finished (of {e.total}); nothing was written.")
        else:
            kept = f"they, compare.json and index.html are in {e.save_dir}"
            _say(f"interrupted after {e.done} of {e.total} figures; {kept}")
        return _exit_code(e.__cause__ or e)  # 130 for Ctrl-C, 143 for SIGTERM
    except KeyboardInterrupt as e:  # while the models ran, before any figure
        _say("interrupted before any figure was finished; nothing was written.")
        return _exit_code(e)
    except (CamError, ValueError, TypeError) as e:
        raise UsageError(str(e)) from e
    _say(f"comparison figures and index.html -> {save_dir}")
    return EXIT_OK


def _report_mode(cmd: Command) -> int:
    """``yolo-cam report RUN_DIR``: (re)build the run folder's index.html."""
    from .report import write_report

    folder = cmd.args.get("dir")
    if folder is None:
        raise UsageError("give the run folder: yolo-cam report runs/detect/cam.")
    if not Path(str(folder)).is_dir():
        raise UsageError(f"'{folder}' is not a folder; give a run folder such as runs/detect/cam.")
    problems: list[str] = []  # files with the wrong types: the page shows what it could read, and names them
    path = write_report(str(folder), problems=problems)
    for problem in problems:
        _say(f"warning: {problem}")
    print(path)
    return EXIT_OK


def _layers(cmd: Command) -> int:
    _, ult = check_values(cmd)
    if ult.get("model") is None:
        raise UsageError("'model' is missing: yolo-cam layers model=path/to/best.pt (or a .yaml such as yolo11n.yaml).")
    from .listings import layers_text

    model = load_model(ult["model"], cmd.task)
    imgsz = ult.get("imgsz") or 640
    net = model.model
    net.eval()  # a model built from YAML starts in training mode; BN statistics must not move
    try:
        print(layers_text(net, str(ult["model"]), imgsz))
    except Exception as e:
        raise RunError(
            f"could not list the layers of '{ult['model']}' at imgsz={imgsz}: {type(e).__name__}: {e}"
        ) from e
    return EXIT_OK


def _app(cmd: Command) -> int:
    """Serve the web app (``ultralytics_cam.app``) until Ctrl-C."""
    from .app import launch
    from .app.i18n import check_lang

    host, port, lang = str(cmd.args.get("host", "127.0.0.1")), cmd.args.get("port"), str(cmd.args.get("lang", "en"))
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError(f"port={port!r} is not valid: use a port number from 1 to 65535 (or leave it out).")
    try:
        check_lang(lang)
    except ValueError as e:
        raise UsageError(str(e)) from e
    form = {k: str(cmd.args[k]) for k in ("model", "source", "project") if cmd.args.get(k) is not None}
    try:
        app = launch(host=host, port=port, lang=lang, **form)
    except ImportError as e:
        raise RunError(str(e)) from e
    except OSError as e:
        raise RunError(f"could not serve the app on {host}:{port or 'a free port'}: {e}") from e
    _say(f"the app is running at {app.url} (Ctrl-C stops it)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        _say(f"host={host}: other machines on the network can reach the app and the folders it shows.")
    try:
        app.blocks.block_thread()  # returns on Ctrl-C (Gradio catches it)
    finally:
        if app.controller.is_running():
            _say("stopping the run after the current image; summary.json will say interrupted (Ctrl-C again aborts).")
        app.close()
    return EXIT_OK


def _listing(text: Callable[[], str]) -> Callable[[Command], int]:
    """A mode that prints a listing and succeeds."""

    def run(cmd: Command) -> int:
        print(text())
        return EXIT_OK

    return run


def _help(cmd: Command) -> int:
    print(listings.help_text())
    return EXIT_OK


#: Every mode, in the order ``yolo-cam help`` lists them. Adding a mode is one entry here.
MODE_SPECS: dict[str, ModeSpec] = {
    spec.name: spec
    for spec in (
        ModeSpec(
            "predict",
            "explain every prediction on a source: a folder per image, summary.json",
            "model=best.pt source=imgs/",
            run=_predict,
            help=lambda: listings.predict_help("predict"),
            keys=_predict_keys,
            refused=True,
        ),
        ModeSpec(
            "val",
            "validate and save heatmaps of the failures (false positives, missed objects)",
            "data=data.yaml",
            run=_val,
            help=listings.val_help,
            keys=_val_keys,
        ),
        ModeSpec(
            "train",
            "train as 'yolo train' does; per epoch, the model explains fixed probe images: timelines, trackers",
            "model=yolo11n.pt data=data.yaml epochs=50 cam_images=8 cam_every=1",
            run=_train,
            help=listings.train_help,
            keys=_train_keys,
        ),
        ModeSpec(
            "demo",
            "the bundled demo model on the bundled images, offline",
            "method=EigenCAM",
            run=lambda cmd: _predict(cmd, demo=True),
            help=lambda: listings.predict_help("demo"),
            keys=_predict_keys,
            refused=True,
        ),
        ModeSpec(
            "app",
            "a local web app for batch heatmaps: folders, weights, method, layers, start / stop, gallery",
            "lang=zh-Hans",
            run=_app,
            help=listings.app_help,
            keys=_app_keys,
        ),
        ModeSpec(
            "methods",
            "every CAM method, whether it needs gradients, and why some are refused",
            "",
            run=_listing(listings.methods_text),
            help=lambda: listings.MODE_HELP_TEXTS["methods"],
        ),
        ModeSpec(
            "layers",
            "every layer of a model: index, type, output shape; layers=auto marked",
            "model=best.pt",
            run=_layers,
            help=listings.layers_help,
            keys=_layers_keys,
        ),
        ModeSpec(
            "plugins",
            "installed plugins and the methods, targets and writers they register",
            "",
            run=_listing(listings.plugins_text),
            help=lambda: listings.MODE_HELP_TEXTS["plugins"],
        ),
        ModeSpec(
            "version",
            "versions of ultralytics-cam, ultralytics, torch and grad-cam",
            "",
            run=_listing(listings.version_text),
            help=lambda: listings.MODE_HELP_TEXTS["version"],
        ),
        ModeSpec(
            "eval",
            "rank methods x layers on your images: faithfulness, localisation, speed; a recommendation",
            "model=best.pt source=imgs/ methods=HiResCAM,EigenCAM layers='auto;16,19'",
            run=_eval,
            help=listings.eval_help,
            keys=lambda: list(EVAL_KEYS),
        ),
        ModeSpec(
            "compare",
            "models side by side on the same images and method (a figure per image)",
            "model=before.pt,after.pt source=imgs/",
            run=_compare,
            help=listings.compare_help,
            keys=lambda: list(COMPARE_KEYS),
        ),
        ModeSpec(
            "report",
            "(re)build the browsable index.html of a run folder",
            "runs/detect/cam",
            run=_report_mode,
            help=listings.report_help,
            keys=lambda: list(REPORT_KEYS),
            positional="dir",
        ),
        ModeSpec(
            "help",
            "this help; 'yolo-cam MODE help' explains every key of MODE",
            "",
            run=_help,
            help=listings.help_text,
        ),
    )
}
#: Every mode name, in the order ``yolo-cam help`` lists them.
MODES = tuple(MODE_SPECS)


def _dispatch(argv: list[str]) -> int:
    cmd = parse_args(argv)
    spec = MODE_SPECS[cmd.mode]
    if cmd.help:
        print(spec.help())
        return EXIT_OK
    return spec.run(cmd)


def _say(msg: str) -> None:
    """Status and warnings go to stderr; stdout carries only listings and help."""
    print(f"yolo-cam: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run ``yolo-cam`` with ``argv`` (default: the process's arguments); return the exit code."""
    for stream in (sys.stdout, sys.stderr):  # non-ASCII paths in messages must never crash a legacy console
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else list(argv)
    previous = _terminate_as_interrupt()
    try:
        with _logs_on_stderr():
            return _dispatch(argv)
    except UsageError as e:
        print(f"yolo-cam: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"yolo-cam: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        print("yolo-cam: interrupted.", file=sys.stderr)
        return _exit_code(e)
    except Exception as e:
        print(f"yolo-cam: error: the run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _DropResultsSaved:
    """Drops Ultralytics' "Results saved to <dir>" line: yolo-cam says itself what it saved, and where."""

    @staticmethod
    def filter(record: Any) -> bool:
        return not str(record.msg).startswith("Results saved to")


@contextlib.contextmanager
def _logs_on_stderr() -> Any:
    """Send Ultralytics' (and so ultralytics-cam's) log lines to stderr, so stdout carries only listings and help."""
    from ultralytics.utils import LOGGER

    moved = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    for h in moved:
        h.setStream(sys.stderr)
        h.addFilter(_DropResultsSaved)
    try:
        yield
    finally:
        for h in moved:
            h.removeFilter(_DropResultsSaved)
            h.setStream(sys.stdout)


def _terminate_as_interrupt() -> Any:
    """Make SIGTERM raise :class:`Interrupted` as Ctrl-C raises ``KeyboardInterrupt``; return the old handler."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (yolo-cam called from a worker thread): leave signals alone
        return None


if __name__ == "__main__":
    sys.exit(main())
