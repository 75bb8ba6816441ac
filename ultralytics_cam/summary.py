"""One saving CAM run: per-image folders, video outputs, skipped inputs and ``summary.json``.

A :class:`CamRun` is created by the CAM predictor when ``save=True`` and is told about every saved image and video
frame. When the run ends (completed, stopped, interrupted or failed) it renames the videos' files into place and
writes ``summary.json`` with the writers of :mod:`ultralytics_cam.writers`.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from ._logging import LOGGER, PREFIX
from .config import CAM_DEFAULTS
from .manifest import Manifest, ResumeState, RunFolderLostError, check_resumable, clean_partials, input_identity
from .saving import claim_run_dir, write_image_folder, write_run_files
from .segments import SegmentWriter, join_segments, remove_segments
from .sources import unreadable_reason
from .writers import CAM_JSON_SCHEMA, SaveConfig, cam_record, write_image_file, write_json

__all__ = ["VIDEO_PARTIAL", "CamRun", "RunOutcome", "unsupported_inputs", "versions"]

#: Name under which Ultralytics' video writer writes a video's overlay until the run ends (its suffix is replaced by
#: the writer's own: ``.avi`` on Linux, ``.mp4`` on macOS).
VIDEO_PARTIAL = ".heatmap-partial.mp4"
JSONL_PARTIAL = ".cam-partial.jsonl"

#: The Ultralytics options recorded in ``summary.json`` even when they are at their defaults.
RECORDED_ARGS = (
    "model",
    "task",
    "source",
    "imgsz",
    "conf",
    "iou",
    "classes",
    "max_det",
    "agnostic_nms",
    "batch",
    "device",
    "half",
    "vid_stride",
    "retina_masks",
)


def versions() -> dict[str, str]:
    """Return the versions of ultralytics-cam and the packages it runs on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("ultralytics-cam", "ultralytics", "torch", "grad-cam", "opencv-python", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            if dist == "opencv-python":  # the headless build provides the same cv2
                import cv2

                out[dist] = cv2.__version__
            else:
                out[dist] = "not installed"
    out["python"] = platform.python_version()
    return out


def _formats() -> tuple[set[str], set[str]]:
    from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS

    return IMG_FORMATS, VID_FORMATS


def unsupported_inputs(source: Any) -> list[dict[str, Any]]:
    """Return the files of a folder, glob or list source that Ultralytics' loader ignores by type, with the reason.

    Ultralytics' ``LoadImagesAndVideos`` keeps only known image and video suffixes and drops the rest silently;
    this lists what it dropped (hidden files excepted, as its folder glob skips them too).
    """
    img, vid = _formats()
    if isinstance(source, (str, Path)):
        s = str(source)
        if s.lower().endswith((".txt", ".csv")) or s.startswith(("http://", "https://", "rtsp://", "rtmp://")):
            return []  # a list of sources, or a URL
        if os.path.isdir(s):
            files = sorted(glob.glob(os.path.join(glob.escape(os.path.abspath(s)), "*.*")))
        elif "*" in s:
            files = sorted(glob.glob(os.path.abspath(s), recursive=True))
        else:
            files = []
    elif isinstance(source, (list, tuple)) and all(isinstance(p, (str, Path)) for p in source):
        files = [os.path.abspath(str(p)) for p in source]
    else:
        return []
    out = []
    for f in files:
        suffix = f.rpartition(".")[-1].lower()
        if os.path.isfile(f) and suffix not in img and suffix not in vid:
            out.append(
                {
                    "source": f,
                    "reason": f"unsupported file type '.{suffix}' (images: {', '.join(sorted(img))}; "
                    f"videos: {', '.join(sorted(vid))})",
                }
            )
    return out


class RunOutcome:
    """How a saving run ended, read from how the block it wraps exits; the status ``summary.json`` records.

    ``completed`` (no exception), ``interrupted`` (Ctrl-C, or SIGTERM turned into ``KeyboardInterrupt`` or
    ``SystemExit``), ``stopped`` (the consumer closed the stream: ``GeneratorExit``; ``interrupted`` instead when
    ``interrupt_requested()`` says a signal asked for it), or ``failed`` with the error. The local stream
    (``CamPredictorMixin.stream_inference``) and the Ray driver (``distributed.cam_ray``) both end their runs through
    it. A block may also set ``status`` itself (a pool stopped by a signal returns normally). Exceptions are never
    swallowed.
    """

    def __init__(self, interrupt_requested: Callable[[], bool] = lambda: False) -> None:
        self.interrupt_requested = interrupt_requested
        self.status = "completed"
        self.error: str | None = None

    def __enter__(self) -> RunOutcome:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            return
        if issubclass(kind, (KeyboardInterrupt, SystemExit)):
            self.status = "interrupted"
        elif issubclass(kind, GeneratorExit):
            self.status = "interrupted" if self.interrupt_requested() else "stopped"
        else:
            self.status, self.error = "failed", f"{kind.__name__}: {error}"


class CamRun:
    """Records one saving CAM run and writes its run-level files.

    Attributes:
        save_dir: the run folder (``runs/<task>/cam``, then Ultralytics' increment rule: ``cam-2``, ...).
        interrupt_requested: set by a caller that stops the run on purpose (``yolo-cam`` on Ctrl-C), so the summary
            says ``interrupted`` rather than ``stopped``.
    """

    def __init__(self, predictor: Any, source: Any) -> None:
        """Start recording a run of ``predictor`` over ``source``."""
        args = predictor.args
        self.save_dir = Path(predictor.save_dir)
        self.source = source
        self.interrupt_requested = False
        self.started = self._t0 = time.time()
        self.config = SaveConfig(
            save_maps=bool(predictor.cam_config.save_maps),
            plot={
                "line_width": args.line_width,
                "boxes": args.show_boxes,
                "conf": args.show_conf,
                "labels": args.show_labels,
            },
            model=str(args.model) if args.model is not None else None,
            task=args.task,
        )
        self.settings = {"cam": predictor.cam_config.to_dict(), "ultralytics": _recorded_args(args, source)}
        self.images: list[dict[str, Any]] = []
        self.videos: dict[str, dict[str, Any]] = {}  # video path -> its record
        self.write_seconds = 0.0
        self._speed_sums = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        self._frames = 0
        self._predictions = 0
        self._saved_paths: set[str] = set()
        # resumable runs (SPEC §11): every published image / finished video is recorded in manifest.jsonl
        self.manifest: Manifest | None = None
        self.previous = ResumeState()  # what earlier sessions of this run completed (empty for a new run)
        self.engine = "local"
        # images that could not be decoded, reported by the engine (engine=ray)
        self.unreadable: list[dict[str, Any]] = []
        self.notes: dict[str, str] = {}  # inputs explained in part, reported by the engine (engine=ray)
        # videos (SPEC §11): each video file's overlay is written in closed segments (ultralytics_cam.segments)
        self._open: dict[str, SegmentWriter] = {}  # video -> its open segment
        self._segments: dict[str, list[dict[str, Any]]] = {}  # video -> its closed segments' manifest lines, in order
        self._current: dict[str, float] = {}  # the video file the loader is in -> its overlay's fps
        self._complete: set[str] = set()  # videos joined and recorded by this session
        self._inputs: dict[str, dict[str, Any] | None] = {}  # video -> what identifies its file (manifest "input")
        # the run folder this run opened (device, inode): a folder deleted or replaced mid-run is detected (issue 21)
        self._folder_id: tuple[int, int] | None = None
        self.resumed = False
        self.lost: str | None = None  # what was lost, once the folder or manifest was found gone

    # -- the run folder ----------------------------------------------------------------------------------------------
    def claim(self, predictor: Any) -> None:
        """Make the run folder this run's own (:func:`ultralytics_cam.saving.claim_run_dir`) and watch it.

        A new run claims its folder with an exclusive create, so runs started at the same moment on one ``name`` get
        distinct folders; a resumed run goes on in the folder it resumes. ``predictor.save_dir`` follows.
        """
        if not self.resumed:
            args = predictor.args
            self.save_dir = claim_run_dir(self.save_dir, str(args.name or self.save_dir.name), bool(args.exist_ok))
            predictor.save_dir = self.save_dir
        self.watch()

    def watch(self) -> None:
        """Remember which folder ``save_dir`` is now, for :meth:`check_folder` (creating it if needed)."""
        self.save_dir.mkdir(parents=True, exist_ok=True)
        st = os.stat(self.save_dir)
        self._folder_id = (st.st_dev, st.st_ino)

    def check_folder(self) -> None:
        """Check that the run folder and its manifest are still the ones this run opened.

        A folder deleted, moved or replaced while the run went on would be created anew by the next write, and the run
        would report every image explained while the earlier ones are gone.

        Raises:
            RunFolderLostError: the folder or the manifest is not the one the run opened; ``lost`` says what was lost.
        """
        if self._folder_id is None or self.lost is not None:
            return
        try:
            st = os.stat(self.save_dir)
            same = (st.st_dev, st.st_ino) == self._folder_id
        except OSError:
            same = False
        try:
            if self.manifest is not None:
                self.manifest.check()
        except RunFolderLostError:
            if same:  # only the manifest went: the folders stay, but a resume cannot tell them complete
                self.lost = (
                    f"{self.save_dir / 'manifest.jsonl'} was deleted or replaced during the run: the records of the "
                    f"{len(self.images)} images finished before are lost (their folders are kept; a resume would "
                    "explain them again)"
                )
                raise RunFolderLostError(self.lost) from None
        if not same:
            counts = ((len(self.images), "image"), (len(self.videos), "video"))
            done = " and ".join(_count(n, w) for n, w in counts if n)
            self.lost = (
                f"the run folder {self.save_dir} was deleted, moved or replaced during the run: "
                + (f"the {done} finished before were lost with it" if done else "nothing had been finished in it")
                + "; the run stopped rather than write into a new folder that would look complete"
            )
            raise RunFolderLostError(self.lost)

    # -- resuming ----------------------------------------------------------------------------------------------------
    def resume_from(self, state: ResumeState) -> None:
        """Continue the run recorded by ``state`` (this run's folder): check settings, clean up, count its outputs.

        Raises:
            ValueError: the settings differ from the run's own in a way that changes the outputs.
        """
        check_resumable(state.sessions, self.settings, self.save_dir, CAM_DEFAULTS)
        self.resumed = True
        for p in clean_partials(self.save_dir):
            LOGGER.info(f"{PREFIX}removed {p.name}, left in {p.parent} by the interrupted run")
        self.previous = state
        if state.sessions:
            self.started = state.sessions[0].get("time", self.started)
        for line in state.images.values():
            self.add_image(line)
        self._predictions += sum(v.get("predictions", 0) for v in state.videos.values())
        for key, part in state.partial.items():
            if part["end"]:  # saved to its last frame, killed before the join: join it now
                self._complete_previous_video(key, part)
        LOGGER.info(
            f"{PREFIX}resuming {self.save_dir}: {len(state.images)} images and {len(state.videos)} videos are complete"
            + (f", {n} half-written outputs will be redone" if (n := len(state.redo) - len(state.changed)) else "")
            + (f", {len(state.changed)} changed inputs will be explained again" if state.changed else "")
            + (f", {len(state.corrupt)} corrupt manifest lines were skipped" if state.corrupt else "")
            + "".join(
                f"; {Path(k).name} goes on at frame {p['frames'] + 1}" for k, p in state.partial.items() if not p["end"]
            )
        )

    @property
    def done(self) -> set[str]:
        """The sources no session needs to work on any more (earlier sessions' and videos joined by this one)."""
        return self.previous.done | self._complete

    def _log(self, entry: dict[str, Any], sync: bool = True) -> None:
        """Append a manifest line (the session's ``run`` line first)."""
        self.check_folder()
        if self.manifest is None:
            self.manifest = Manifest(self.save_dir)
            self.manifest.append(
                {"event": "run", "schema_version": CAM_JSON_SCHEMA, "engine": self.engine, "settings": self.settings}
            )
        self.manifest.append(entry, sync=sync)

    def add_image(self, line: dict[str, Any]) -> None:
        """Count an image saved elsewhere (an earlier session, a Ray worker) from its manifest line."""
        self.images.append({k: line[k] for k in ("source", "folder", "predictions", "ms")})
        for k, v in (line.get("speed") or {}).items():
            if k in self._speed_sums:
                self._speed_sums[k] += v
        self.write_seconds += (line.get("speed") or {}).get("write", 0.0) / 1e3
        self._predictions += line["predictions"]
        self._saved_paths.add(line["source"])
        if isinstance(line.get("note"), str):  # explained in part (a Ray worker downscaled it)
            self.notes[line["source"]] = line["note"]

    def record_image(self, line: dict[str, Any], sync: bool = True) -> None:
        """Record an image written by :meth:`write_image` (here or by a Ray worker): count it, append its line."""
        self.add_image(line)
        self._log(line, sync=sync)

    # -- recording ---------------------------------------------------------------------------------------------------
    def _timed(self, result: Any, t0: float) -> None:
        self.write_seconds += time.perf_counter() - t0
        for k in self._speed_sums:
            self._speed_sums[k] += float((result.speed or {}).get(k) or 0.0)
        self._predictions += len(result.cam)
        self._saved_paths.add(str(result.path))

    def save_image(self, result: Any, save_path: Path) -> list[Path]:
        """Write the folder of ``result``, named after ``save_path``'s stem (Ultralytics' de-duplicated name).

        It is counted from its manifest line, as a Ray worker's image and an earlier session's are, so the timings in
        ``summary.json`` are the manifest's (ms rounded to 3 decimals) whichever engine or session saved the image.
        """
        files, line = self.write_image(result, save_path)
        self.record_image(line)
        return files

    def write_image(self, result: Any, save_path: Path) -> tuple[list[Path], dict[str, Any]]:
        """Write the folder of ``result`` without recording it; return its files and its manifest line.

        A Ray worker writes with this and leaves the recording to the driver (:meth:`record_image`).
        """
        t0 = time.perf_counter()
        self.check_folder()
        folder = self.save_dir / Path(save_path).stem
        config = SaveConfig(**{**self.config.__dict__, "source": str(result.path)})
        files = write_image_folder(result.cam, folder, config)
        line = {
            "event": "image",
            "source": str(result.path),
            "folder": folder.name,
            "predictions": len(result.cam),
            "ms": round(sum(float(v or 0) for v in (result.speed or {}).values()), 2),
            **image_line_extras(result, files, folder, t0),
        }
        return files, line

    def video_folder(self, result: Any, save_path: Path) -> Path:
        """Return (creating it) the folder of the video ``result`` is a frame of.

        A video an earlier session cut off part-way keeps its folder and goes on with its recorded segments.
        """
        key = str(result.path)
        if key not in self.videos:
            part = self.previous.partial.get(key)
            folder = self.save_dir / (part["folder"] if part else Path(save_path).stem)
            folder.mkdir(parents=True, exist_ok=True)
            for stale in [folder / JSONL_PARTIAL, *folder.glob(Path(VIDEO_PARTIAL).stem + ".*")]:
                stale.unlink(missing_ok=True)  # left by a run that crashed into this folder (exist_ok=True)
            if part is None:
                remove_segments(folder)  # segments of an earlier run into this folder that this run does not build on
            self.videos[key] = {"source": key, "folder": folder.name, "frames": 0, "predictions": 0}
            if part is not None:
                self.videos[key].update(frames=part["frames"], predictions=part["predictions"], meta=part["meta"])
                self._predictions += part["predictions"]
            self._segments[key] = list(part["segments"]) if part else []
        name: str = self.videos[key]["folder"]
        return self.save_dir / name

    def save_frame(
        self,
        result: Any,
        save_path: Path,
        frame: int | None,
        frames_dir: bool = False,
        overlay: Any = None,
        fps: float = 30.0,
        last: bool = False,
    ) -> None:
        """Record one video frame: its ``cam.jsonl`` line and, given its ``overlay``, the frame in the open segment.

        With an ``overlay`` (a video file), the frame goes into the video's open segment, which is closed when full
        and, at the video's ``last`` frame, joined with the others into the overlay video. Without one (a stream), the
        line is appended to the stream's partial ``cam.jsonl`` (the overlay is Ultralytics' own stream writer's).
        """
        t0 = time.perf_counter()
        self.check_folder()
        key = str(result.path)
        for other in [k for k in self._current if k != key]:  # the loader moved on: that video has ended
            self._complete_video(other)
        folder = self.video_folder(result, save_path)
        video = self.videos[key]
        frame = frame if frame is not None else video["frames"] + 1
        record = cam_record(result.cam, self.config)
        line = {"frame": frame, "predictions": record["predictions"]}
        if "meta" not in video:
            video["meta"] = {k: v for k, v in record.items() if k not in {"predictions", "source"}}
        if overlay is None:
            with open(folder / JSONL_PARTIAL, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            self._current[key] = fps
            seg = self._open.get(key)
            if seg is None:
                seg = self._open[key] = SegmentWriter(folder, frame, fps)
            seg.write(overlay, line)
        if frames_dir:
            (folder / "frames").mkdir(exist_ok=True)
            write_image_file(folder / "frames" / f"{frame}.jpg", overlay if overlay is not None else result.cam.plot())
        video["frames"] += 1
        video["predictions"] += len(result.cam)
        self._frames += 1
        self._timed(result, t0)
        if overlay is not None:
            if last:
                self._complete_video(key)
            elif self._open[key].full():  # the segment this frame went into
                self._close_segment(key, end=False)

    # -- video segments (resumable videos) -----------------------------------------------------------------------------
    def _close_segment(self, key: str, end: bool) -> None:
        """Close the open segment of video ``key`` and record it in the manifest."""
        seg = self._open.pop(key, None)
        files = seg.close() if seg is not None else None
        if seg is None or not files:
            return
        video = self.videos[key]
        line = {
            "event": "segment",
            "source": key,
            "folder": video["folder"],
            "first": seg.first,
            "last": seg.last,
            "end": end,
            "fps": seg.fps,
            "predictions": seg.predictions,
            **({"meta": video.get("meta", {})} if seg.first == 1 else {}),  # cam.json's provenance, once per video
            **self._input_entry(key),
            "files": files,
        }
        self._log(line)
        self._segments[key].append(line)

    def _join(self, key: str, end: bool) -> list[str]:
        """Close video ``key``'s open segment, join its segments into its overlay and ``cam.jsonl``, write cam.json."""
        fps = self._current.pop(key, None) or self._fps_of(key)  # before the close: it records a segment
        self._close_segment(key, end=end)
        files = join_segments(self.save_dir / self.videos[key]["folder"], self._segments[key], fps)
        self._write_cam_json(key, files)
        return files

    def _write_cam_json(self, key: str, files: list[str]) -> None:
        """Set the files of video ``key`` and write its ``cam.json``: provenance, frames and files."""
        video = self.videos[key]
        video["files"] = files
        write_json(
            self.save_dir / video["folder"] / "cam.json",
            {
                **video.get("meta", {}),
                "schema_version": CAM_JSON_SCHEMA,
                "source": key,
                "frames": video["frames"],
                "files": files,
            },
        )

    def _complete_video(self, key: str) -> None:
        """The video ``key`` ended: close its last segment, join them, record the video, delete the segments."""
        files = self._join(key, end=True)
        folder = self.save_dir / self.videos[key]["folder"]
        sizes = {name: (folder / name).stat().st_size for name in [*files, "cam.json"]}
        video = self.videos[key]
        video.pop("meta", None)
        self._log({"event": "video", **video, **self._input_entry(key), "files": sizes})
        remove_segments(folder)
        self._complete.add(key)

    def _input_entry(self, key: str) -> dict[str, Any]:
        """``{"input": ...}``, what identifies video ``key`` for a resume (taken once per video), or nothing."""
        if key not in self._inputs:
            self._inputs[key] = input_identity(key)
        identity = self._inputs[key]
        return {"input": identity} if identity else {}

    def _fps_of(self, key: str) -> float:
        segments = self._segments.get(key) or []
        return segments[-1].get("fps", 30.0) if segments else 30.0

    def _complete_previous_video(self, key: str, part: dict[str, Any]) -> None:
        """Join a video an earlier session saved to its end (a kill came before the join): nothing to explain."""
        self.videos[key] = {
            "source": key,
            "folder": part["folder"],
            "frames": part["frames"],
            "predictions": part["predictions"],
            "meta": part["meta"],
        }
        self._segments[key] = list(part["segments"])
        self._predictions += part["predictions"]
        self._complete_video(key)
        LOGGER.info(f"{PREFIX}joined the {part['frames']} frames of {key} saved before the interruption")

    # -- the end -------------------------------------------------------------------------------------------------------
    def _finish_videos(self, status: str) -> None:
        """End the videos: complete them if the run completed, else make what is saved viewable.

        A completed run went past every file, so the video it was in has ended: it is joined and recorded. Otherwise
        a video's open segment is closed and recorded, and its segments are joined into a viewable overlay of the
        frames saved so far (the segments stay for a resume). Streams' partial files are renamed into place.
        """
        if status == "completed":  # the loader went past every file: the videos it was in have ended
            for key in list(self._current):
                self._complete_video(key)
            for key, part in self.previous.partial.items():  # saved to the end, joined in no session yet
                if key not in self.videos and key not in self.previous.done:
                    self._complete_previous_video(key, part)
        for key, video in self.videos.items():
            if key in self._complete:
                continue
            folder = self.save_dir / video["folder"]
            if self._segments.get(key) or key in self._open:  # a video file cut off part-way
                self._join(key, end=False)
                video.pop("meta", None)
                continue
            files = []  # a stream: Ultralytics' writer's overlay and the JSON lines
            for partial in sorted(folder.glob(Path(VIDEO_PARTIAL).stem + ".*")):
                final = folder / ("heatmap" + partial.suffix)
                os.replace(partial, final)
                files.append(final.name)
            if (folder / JSONL_PARTIAL).exists():
                os.replace(folder / JSONL_PARTIAL, folder / "cam.jsonl")
                files.append("cam.jsonl")
            self._write_cam_json(key, files)
            video.pop("meta", None)

    def _previous_videos(self) -> list[dict[str, Any]]:
        keys = ("source", "folder", "frames", "predictions", "files")
        return [{k: v[k] for k in keys if k in v} for v in self.previous.videos.values()]

    @functools.cached_property
    def _unsupported(self) -> list[dict[str, Any]]:
        """The source's files of unsupported types: listed once, as the source does not change during a run."""
        return unsupported_inputs(self.source)

    def skipped(self, predictor: Any) -> list[dict[str, Any]]:
        """Return the inputs that produced no output: unsupported file types and unreadable images."""
        out = [*self._unsupported, *self.unreadable]
        dataset = getattr(predictor, "dataset", None)
        recorded = getattr(dataset, "skipped", None)  # ultralytics_cam.sources' loader: each file with its reason
        if isinstance(recorded, dict):
            return out + [{"source": f, "reason": reason} for f, reason in recorded.items()]
        # Ultralytics' own loader (an image URL, downloaded then read by it): the files it read but nothing was saved of
        files, flags = getattr(dataset, "files", None), getattr(dataset, "video_flag", None)
        if files is None or flags is None:
            return out
        decoded = set(self._saved_paths)
        batch = getattr(predictor, "batch", None)
        if batch:  # a batch read but not saved when the run stopped mid-batch was decoded all right
            decoded.update(str(p) for p in batch[0])
        reached = min(int(getattr(dataset, "count", 0)), len(files))
        for f, is_video in zip(files[:reached], flags[:reached]):
            if not is_video and f not in decoded:
                out.append({"source": f, "reason": unreadable_reason(f, "image")})
        return out

    def summary(self, predictor: Any, status: str, error: str | None = None) -> dict[str, Any]:
        """Return the content of ``summary.json``."""
        seconds = self.previous.seconds + time.time() - self._t0  # earlier sessions' working time, then this one
        n = len(self.images) + self._frames
        skipped = self.skipped(predictor)
        speed = {k: round(v / n, 2) for k, v in self._speed_sums.items()} if n else {}
        if n:
            speed["write"] = round(self.write_seconds * 1e3 / n, 2)
            speed["wall"] = round(seconds * 1e3 / n, 2)
        return {
            "schema_version": CAM_JSON_SCHEMA,
            "status": status,
            "interrupted": status == "interrupted",
            "error": error,
            "save_dir": str(self.save_dir),
            "started": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
            "sessions": len(self.previous.sessions) + 1,
            "settings": self.settings,
            "versions": versions(),
            "counts": {
                "images": len(self.images),
                "videos": len(self.videos) + len(self.previous.videos),
                "frames": sum(v["frames"] for v in [*self.videos.values(), *self.previous.videos.values()]),
                "predictions": self._predictions,
                "skipped": len(skipped),
            },
            "ms_per_image": speed,
            "images": self.images,
            "videos": [*self._previous_videos(), *self.videos.values()],
            "skipped": skipped,
            "notes": [*partly_explained(predictor), *({"source": k, "note": v} for k, v in self.notes.items())],
        }

    def finish(self, predictor: Any, status: str, error: str | None = None) -> dict[str, Any]:
        """Finish the videos and write ``summary.json`` (when the run got as far as its folder); return the summary."""
        if self.lost is None:
            with contextlib.suppress(RunFolderLostError):  # found gone now: nothing more is written (self.lost says)
                self.check_folder()
        if self.lost is not None:  # writing would make a new folder that holds only what came after
            status, error = "failed", error or f"RunFolderLostError: {self.lost}"
            if self.manifest is not None:
                self.manifest.close()
            return self.summary(predictor, status, error)
        self._finish_videos(status)
        summary = self.summary(predictor, status, error)
        if self.save_dir.exists() or self.images or self.videos:
            write_run_files(summary, self.save_dir)
        if self.manifest is not None:
            self.manifest.append({"event": "end", "status": status, "error": error})
            self.manifest.close()
        warned = getattr(getattr(predictor, "dataset", None), "skipped", None) or {}  # the loader warned as it met them
        for s in summary["skipped"]:
            if s["source"] not in warned:
                LOGGER.warning(f"{PREFIX}skipped {s['source']}: {s['reason']}")
        return summary


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def partly_explained(predictor: Any) -> list[dict[str, Any]]:
    """The inputs explained only in part (a multi-page TIFF: its first page), as ultralytics_cam.sources' loader saw."""
    notes = getattr(getattr(predictor, "dataset", None), "notes", None) or {}
    return [{"source": f, "note": n} for f, n in notes.items()]


def image_line_extras(result: Any, files: list[Path], folder: Path, t0: float) -> dict[str, Any]:
    """The parts of an ``image`` manifest line besides its summary record: per-phase timings and file sizes."""
    speed = {k: float((result.speed or {}).get(k) or 0.0) for k in ("preprocess", "inference", "postprocess")}
    speed["write"] = (time.perf_counter() - t0) * 1e3
    sizes = {Path(f).relative_to(folder).as_posix(): Path(f).stat().st_size for f in files}
    identity = input_identity(result.path)  # a resume explains the image again if another file takes its name
    return {
        "speed": {k: round(v, 3) for k, v in speed.items()},
        "files": sizes,
        **({"input": identity} if identity else {}),
    }


def _recorded_args(args: Any, source: Any) -> dict[str, Any]:
    """The Ultralytics options of a run: the important ones always, the others when not at their defaults."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    # verbose and resume: how the run logged and was started, not what it made
    skip = {"mode", "save_dir", "cfg", "tracker", "verbose", "resume"}
    out = {}
    for k, v in vars(args).items():
        if k in skip:
            continue
        if k in RECORDED_ARGS or v != DEFAULT_CFG_DICT.get(k):
            out[k] = v
    out["source"] = source if isinstance(source, (str, Path, int)) else type(source).__name__
    recorded: dict[str, Any] = json.loads(json.dumps(out, default=str))
    return recorded
