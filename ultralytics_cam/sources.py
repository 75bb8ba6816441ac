"""Reading a run's files: one bad file is skipped with its true reason, never the run (SPEC §12).

Ultralytics' ``LoadImagesAndVideos`` opens videos eagerly and raises ``FileNotFoundError("Failed to open video")``
for the first one it cannot open, which ends the whole run (or never starts it). Images it cannot decode are dropped
with a bare "Image Read Error", whatever the cause. :class:`SkippingSourcesMixin` hands Ultralytics a subclass of its
own loader instead (Ultralytics accepts a ready loader as a source), which

- skips a video that cannot be opened, or that opens but yields no frame, and goes on with the next file; a video
  that ends before the frames its container announced keeps what was decoded, with a note;
- records every skipped file with its real reason: a folder named like an image, a broken symbolic link or a link
  loop, a file this user may not read, an empty file, or a file that cannot be decoded;
- warns once per bad file (Ultralytics' own warning is replaced, not repeated);
- warns that a multi-page TIFF is explained by its first page only.

The loader keeps everything else of Ultralytics' (listing, order, batching, video strides, the prefetch thread's
copies: the records are shared by those shallow copies). :class:`CamRun` reads the records into ``summary.json``.

The mixin also keeps per-image folders off the run-level names (:data:`ultralytics_cam.writers.RUN_LEVEL_NAMES`): an
input whose stem is ``summary.json`` gets Ultralytics' own next free name, ``summary.json-2``.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ._logging import LOGGER, PREFIX

if TYPE_CHECKING:  # what the mixins are mixed into, for typing (at run time they stand on object)
    from ultralytics.engine.predictor import BasePredictor as _PredictorBase
else:
    _PredictorBase = object

__all__ = ["SkippingSourcesMixin", "skipping_loader", "unreadable_reason"]

#: Reasons of files the loader could not use (also matched by the tests and documented in docs/reliability.md).
NOT_DECODED = {
    "image": "could not be read as an image (corrupt, truncated, or not an image file)",
    "video": "could not be opened as a video (corrupt, truncated, or a codec OpenCV cannot read)",
}
NO_FRAMES = "the video opened but no frame could be decoded"


def unreadable_reason(path: str | Path, kind: str = "image") -> str:
    """Return why ``path`` could not be read as an ``kind`` ("image" or "video"), in words a user can act on."""
    path = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (the link points back to itself)"
        if os.path.islink(path):
            return f"a broken symbolic link (its target '{os.readlink(path)}' does not exist)"
        if e.errno == errno.ENOENT:
            return "the file disappeared during the run"
        return f"cannot be read ({e.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return f"a folder, not an {kind} file (only its name ends in '{Path(path).suffix}')"
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file (a device, socket or pipe), not an {kind} file"
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return "permission denied: this user may not read the file"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if st.st_size == 0:
        return "an empty file (0 bytes)"
    return NOT_DECODED[kind]


def tiff_pages(path: str) -> int:
    """Return how many pages a TIFF file holds (1 when it cannot be told)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:
        return 1


@functools.cache
def _loader_class() -> type:
    """The skipping subclass of Ultralytics' loader (built on first use: importing the loaders imports OpenCV)."""
    from ultralytics.data.loaders import LoadImagesAndVideos

    class SkippingImagesAndVideos(LoadImagesAndVideos):
        """``LoadImagesAndVideos`` that skips unreadable files, records why, and warns once per file.

        Attributes:
            skipped: ``{path: reason}`` of every file it could not use, in the order met.
            notes: ``{path: note}`` of files read only in part (multi-page TIFFs).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.skipped: dict[str, str] = {}
            self.notes: dict[str, str] = {}
            self._frames_read: dict[str, int] = {}
            self._frames_expected: dict[str, int] = {}  # what each video's container announced (after vid_stride)
            self._resume_at: dict[str, int] = {}  # video -> frames a resumed run already saved (skipped on opening)
            super().__init__(*args, **kwargs)

        def _skip(self, path: str, reason: str) -> None:
            if path not in self.skipped:
                self.skipped[path] = reason
                LOGGER.warning(f"{PREFIX}skipped {path}: {reason}")

        def _new_video(self, path: str) -> None:
            try:
                super()._new_video(path)
            except FileNotFoundError:  # "Failed to open video": the capture stays closed, so the loader moves on
                self.frames = 0
                self._skip(path, unreadable_reason(path, "video"))
            else:
                self._frames_expected.setdefault(path, self.frames)
                if self._resume_at.get(path):
                    self._skip_frames(path, self._resume_at[path])

        def resume_videos(self, saved: dict[str, int]) -> None:
            """Start each video of ``saved`` (path -> frames already saved) at its first frame not saved.

            The frames before are grabbed (decoded, not retrieved or explained) rather than sought with
            ``CAP_PROP_POS_FRAMES``: FFmpeg's seek lands on a key frame and OpenCV's frame position is not exact for
            every codec and container, while grabbing yields exactly the frames a run from the start reads, so the
            frame numbers and the maps of the resumed frames are those an uninterrupted run computes.
            """
            self._resume_at = {p: n for p, n in saved.items() if n > 0}
            first = next((f for f, v in zip(self._paths, self.video_flag) if v), None)
            if first in self._resume_at and self.cap is not None and self.cap.isOpened() and self.frame == 0:
                self._skip_frames(first, self._resume_at[first])  # the video the loader opened up front

        def _skip_frames(self, path: str, n: int) -> None:
            """Grab the ``n`` frames (each ``vid_stride`` source frames) a resumed run saved before."""
            grabbed = 0
            cap: Any = self.cap  # a cv2.VideoCapture (typing infers None from the loader's unannotated __init__)
            while grabbed < n and all(cap.grab() for _ in range(self.vid_stride)):
                grabbed += 1
            self.frame = grabbed
            self._frames_read[path] = grabbed  # decoded: not a truncated video
            LOGGER.info(f"{PREFIX}resuming {Path(path).name} at frame {grabbed + 1} ({grabbed} frames saved before)")

        @property
        def _paths(self) -> list[str]:
            """``files``: str paths (typing infers list[BufferedReader] from a variable the loader's code reuses)."""
            return cast("list[str]", self.files)

        def _append_image(
            self, paths: list[str], imgs: list[Any], info: list[str], path: str, im0: Any, idx: int
        ) -> None:
            if im0 is None:
                self._skip(path, unreadable_reason(path, "image"))
                return
            if path.lower().endswith((".tif", ".tiff")) and path not in self.notes and (n := tiff_pages(path)) > 1:
                self.notes[path] = f"a multi-page TIFF: only the first of its {n} pages is explained"
                LOGGER.warning(f"{PREFIX}{path} is {self.notes[path]}")
            super()._append_image(paths, imgs, info, path, im0, idx)

        def __next__(self) -> tuple[list[str], list[Any], list[str]]:
            first = getattr(self, "count", 0)
            try:
                batch = super().__next__()
            except StopIteration:
                self._check_videos(first)
                raise
            for p in batch[0]:
                self._frames_read[p] = self._frames_read.get(p, 0) + 1
            self._check_videos(first)
            return batch

        def _check_videos(self, first: int) -> None:
            """Look at the videos the loader moved past: none decoded (skipped) or fewer than announced (a note)."""
            for i in range(first, min(self.count, self.nf)):
                path = self._paths[i]
                if not self.video_flag[i] or path in self.skipped:
                    continue
                read, expected = self._frames_read.get(path, 0), self._frames_expected.get(path, 0)
                if not read:
                    reason = unreadable_reason(path, "video")
                    self._skip(path, NO_FRAMES if reason == NOT_DECODED["video"] else reason)
                elif read < expected and path not in self.notes:
                    self.notes[path] = f"truncated or damaged: only {read} of its {expected} frames could be decoded"
                    LOGGER.warning(f"{PREFIX}{path} is {self.notes[path]}")

    return SkippingImagesAndVideos


def _is_local_files(source: Any) -> bool:
    """Whether Ultralytics would read ``source`` with ``LoadImagesAndVideos`` (a path, folder, glob or file list)."""
    if not isinstance(source, (str, Path)):
        return False
    s = str(source)
    lower = s.lower()
    stream = s.isnumeric() or lower.endswith(".streams") or lower.startswith(("rtsp://", "rtmp://", "tcp://"))
    screen = lower == "screen" or (lower.startswith("screen ") and not Path(s).exists())  # Ultralytics' own rule
    return not (stream or screen or lower.startswith(("http://", "https://")))


def skipping_loader(source: Any, batch: int = 1, vid_stride: int = 1, channels: int = 3) -> Any:
    """Return a skipping ``LoadImagesAndVideos`` for a local-file ``source``, else ``source`` unchanged.

    Raises:
        FileNotFoundError: as Ultralytics' loader, when the source does not exist or holds no image or video.
    """
    if not _is_local_files(source):
        return source
    from ultralytics.data.loaders import SourceTypes

    loader = _loader_class()(source, batch=batch, vid_stride=vid_stride, channels=channels)
    loader.source_type = SourceTypes()  # files: not a stream, screenshot, in-memory image or tensor
    return loader


class SkippingSourcesMixin(_PredictorBase):
    """Mixed in just above a task predictor: Ultralytics' sources with bad files skipped, output names kept apart."""

    def setup_source(self, source: Any, stride: int | None = None) -> None:
        """Give Ultralytics the skipping loader for local files; every other source goes through unchanged."""
        args = self.args
        channels = getattr(getattr(self, "model", None), "channels", 3)
        loader = skipping_loader(source, batch=args.batch, vid_stride=args.vid_stride, channels=channels)
        # ClassificationPredictor.setup_source takes no stride: pass it only when one was given
        super().setup_source(*((loader,) if stride is None else (loader, stride)))

    def write_results(self, i: int, p: Any, im: Any, s: list[str]) -> str:
        """Reserve the run-level names (any case) before Ultralytics picks this input's output name."""
        from .writers import RUN_LEVEL_NAMES

        bases = getattr(self, "_bases", None)
        stem = Path(p).stem
        if isinstance(bases, set) and stem.casefold() in RUN_LEVEL_NAMES:
            bases.add(stem)  # Ultralytics' de-duplication then names the folder '<stem>-2' (or the next free one)
        return super().write_results(i, p, im, s)
