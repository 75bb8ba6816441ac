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
- warns that a multi-page TIFF is explained by its first page only;
- reads an image's size from its header before decoding it, and does not decode one over ``max_pixels`` (skipped
  with the reason, or decoded smaller and downscaled with ``oversize="downscale"``); an image OpenCV refuses to
  decode (over its own 2**30-pixel limit) is skipped with that reason instead of ending the run (issue 21);
- skips a path of a ``.txt`` / ``.csv`` source list that does not exist (Ultralytics refuses the whole list).

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

__all__ = [
    "SkippingSourcesMixin",
    "image_size",
    "list_entries",
    "list_source",
    "read_image",
    "skipping_loader",
    "unreadable_reason",
]

#: Reasons of files the loader could not use (also matched by the tests and documented in docs/reliability.md).
NOT_DECODED = {
    "image": "could not be read as an image (corrupt, truncated, or not an image file)",
    "video": "could not be opened as a video (corrupt, truncated, or a codec OpenCV cannot read)",
}
NO_FRAMES = "the video opened but no frame could be decoded"
#: The most pixels OpenCV decodes (its ``CV_IO_MAX_IMAGE_PIXELS``, set by the environment variable of that name).
OPENCV_MAX_PIXELS = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS") or 1 << 30)
#: File suffixes OpenCV can decode at 1/2, 1/4 or 1/8 of their size directly (``IMREAD_REDUCED_*``: JPEG's DCT scaling).
REDUCED_DECODE_SUFFIXES = (".jpg", ".jpeg", ".jpe")


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


def image_size(path: str | Path) -> tuple[int, int] | None:
    """Return ``(width, height)`` of an image file from its header, without decoding it (None when unknown).

    Pillow's format plugins read the header only. They are called through Pillow's registry of openers (``Image.ID``,
    ``Image.OPEN``, as ``Image.open`` itself does) rather than through ``Image.open``, for two reasons: its
    decompression-bomb guard refuses the very images whose size we need, and Ultralytics replaces ``Image.open`` with
    a version that tries to install ``pi-heif`` for any file Pillow cannot identify (a damaged file would start an
    install attempt).
    """
    from PIL import Image

    Image.init()  # every format plugin registered (once; a no-op after)
    try:
        with open(path, "rb") as fp:
            prefix = fp.read(16)
            for fmt in Image.ID:
                factory, accept = Image.OPEN[fmt]
                try:
                    if accept is not None and accept(prefix) is not True:  # (a str is a "maybe" with a warning: no)
                        continue
                    fp.seek(0)
                    w, h = factory(fp, str(path)).size  # the header only
                    return int(w), int(h)
                except Exception:  # not this format (SyntaxError, struct.error, ...): try the next, as Pillow does
                    continue
    except OSError:
        return None
    return None


def _pixels_text(size: tuple[int, int]) -> str:
    w, h = size
    return f"{w * h / 1e6:.1f} megapixels ({w} x {h})"


def read_image(
    path: str | Path, flags: int, max_pixels: int | None = None, oversize: str = "skip"
) -> tuple[Any, str | None, str | None]:
    """Read an image file as Ultralytics' loader does (``ultralytics.utils.patches.imread``), within a pixel limit.

    Returns ``(image or None, why it was not read, a note)``. An image over ``max_pixels`` is not decoded: skipped
    with the reason, or (``oversize="downscale"``) decoded at 1/2, 1/4 or 1/8 of its size where the format allows
    (JPEG), then resized with area interpolation to ``max_pixels``; the note says so. An image OpenCV refuses to decode
    (over :data:`OPENCV_MAX_PIXELS`, or its assertion on a damaged header) gives a reason instead of an exception.
    """
    import cv2
    import numpy as np
    from ultralytics.utils.patches import imread

    size = image_size(path) if max_pixels or oversize == "downscale" else None
    over = size is not None and max_pixels is not None and size[0] * size[1] > max_pixels
    if over and oversize != "downscale":
        assert size is not None  # (over implies it)
        return None, f"{_pixels_text(size)}, over max_pixels={max_pixels} (oversize=downscale reads it smaller)", None
    try:
        if not over:
            return imread(path, flags=flags), None, None
        assert size is not None
        assert max_pixels is not None  # (both: over implies them)
        ratio = (size[0] * size[1] / max_pixels) ** 0.5  # linear factor to max_pixels
        reduce = max((r for r in (1, 2, 4, 8) if r <= ratio), default=1)
        reduced = _reduced_flag(flags, reduce) if str(path).lower().endswith(REDUCED_DECODE_SUFFIXES) else None
        if reduce > 1 and reduced is not None:
            im = cv2.imdecode(np.fromfile(str(path), np.uint8), reduced)
            im = im[..., None] if im is not None and im.ndim == 2 else im  # as Ultralytics' imread
        else:
            im = imread(path, flags=flags)
    except cv2.error as e:
        first = str(e).strip().splitlines()[-1].split("error: ", 1)[-1].strip()  # without OpenCV's source path
        if size is None:
            size = image_size(path)
        what = f"{_pixels_text(size)}: " if size is not None else ""
        limit = f"OpenCV decodes at most {OPENCV_MAX_PIXELS} pixels"
        return None, f"{what}OpenCV refused to decode it ({first}; {limit})", None
    if im is None or not over:
        return im, None, None
    h, w = im.shape[:2]
    scale = min(1.0, (max_pixels / (h * w)) ** 0.5)
    if scale < 1.0:
        im = cv2.resize(im, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        im = im[..., None] if im.ndim == 2 else im
    h2, w2 = im.shape[:2]
    return im, None, f"downscaled from {_pixels_text(size)} to {w2} x {h2} (over max_pixels={max_pixels})"


def _reduced_flag(flags: int, reduce: int) -> int | None:
    """OpenCV's flag that decodes at ``1 / reduce`` of the size what ``flags`` decodes (None: there is none)."""
    import cv2

    names = {cv2.IMREAD_COLOR: "COLOR", cv2.IMREAD_GRAYSCALE: "GRAYSCALE"}
    flag: int | None = getattr(cv2, f"IMREAD_REDUCED_{names[flags]}_{reduce}", None) if flags in names else None
    return flag


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

        def __init__(
            self, path: Any, *args: Any, max_pixels: int | None = None, oversize: str = "skip", **kwargs: Any
        ) -> None:
            self.skipped: dict[str, str] = {}
            self.notes: dict[str, str] = {}
            self.max_pixels, self.oversize = max_pixels, oversize
            self._frames_read: dict[str, int] = {}
            self._frames_expected: dict[str, int] = {}  # what each video's container announced (after vid_stride)
            self._resume_at: dict[str, int] = {}  # video -> frames a resumed run already saved (skipped on opening)
            self._reasons: dict[str, str] = {}  # image -> why read_image did not read it
            super().__init__(self._listed_paths(path), *args, **kwargs)

        def _listed_paths(self, path: Any) -> Any:
            """A ``.txt`` / ``.csv`` list without its entries that do not exist (each skipped with the reason).

            Ultralytics' loader raises ``FileNotFoundError`` for the first missing entry, which refuses the whole
            list; a missing file in a folder is only skipped. The list is read as Ultralytics reads it; when every
            entry exists, it is handed over unchanged. Otherwise the entries that exist are handed over as absolute
            paths (resolved as Ultralytics resolves them: as given, else relative to the list's folder).

            Raises:
                FileNotFoundError: no entry of the list exists.
            """
            if not isinstance(path, (str, Path)) or Path(path).suffix.lower() not in {".txt", ".csv"}:
                return path
            entries = list_entries(path)
            parent = Path(path).parent
            found: list[str] = []
            missing: list[str] = []
            for p in entries:
                a = str(Path(p).absolute())
                if not _matches(a):
                    a = str((parent / p).absolute())
                (found if _matches(a) else missing).append(a)
            if not missing:
                return path
            for a in missing:
                self._skip(a, f"does not exist (listed in {Path(path).name})")
            if not found:  # (Ultralytics' own message for an empty list names no entry)
                raise FileNotFoundError(f"none of the {len(entries)} paths listed in {path} exists ({missing[0]}, ...)")
            return found

        def _read(self, path: str) -> Any:
            """Read one image within the pixel limit (:func:`read_image`); remember why when it is not read."""
            im, reason, note = read_image(path, self.cv2_flag, self.max_pixels, self.oversize)
            if reason is not None:
                self._reasons[path] = reason
            if note is not None and path not in self.notes:
                self.notes[path] = note
                LOGGER.warning(f"{PREFIX}{path} is {note}")
            return im

        def _next_images(self) -> tuple[list[str], list[Any], list[str]]:
            """The next batch of images, read by :meth:`_read` (Ultralytics' image branch of ``__next__``, redone).

            Ultralytics decodes every image whatever its size, and an OpenCV assertion (an image over its pixel limit)
            ends the run; its loop is repeated here, ThreadPool for batches of 8 or more included, with each image
            read by :func:`read_image`. Videos stay with Ultralytics' own branch.

            Raises:
                StopIteration: no file is left.
            """
            from multiprocessing.pool import ThreadPool

            from ultralytics.utils import NUM_THREADS
            from ultralytics.utils.patches import PIL_FALLBACK_SUFFIXES

            paths: list[str] = []
            imgs: list[Any] = []
            info: list[str] = []
            self.mode = "image"
            while len(imgs) < self.bs and self.count < self.ni:
                n = min(self.bs - len(imgs), self.ni - self.count)
                chunk = self._paths[self.count : self.count + n]
                threaded = self.bs >= 8 and NUM_THREADS > 1 and n >= 8
                # fallback formats stay serial: their lazy PIL plugin registration is not thread-safe (as Ultralytics)
                if threaded and not any(Path(x).suffix.lower() in PIL_FALLBACK_SUFFIXES for x in chunk):
                    with ThreadPool(min(n, NUM_THREADS)) as pool:
                        decoded = pool.map(self._read, chunk)
                else:
                    chunk, decoded = chunk[:1], [self._read(chunk[0])]
                for i, (image_path, im0) in enumerate(zip(chunk, decoded)):
                    self._append_image(paths, imgs, info, image_path, im0, self.count + i + 1)
                self.count += len(chunk)
            if imgs:
                return paths, imgs, info
            if self.count >= self.nf:
                raise StopIteration
            return cast("tuple[list[str], list[Any], list[str]]", super().__next__())  # the videos

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
                self._skip(path, self._reasons.pop(path, "") or unreadable_reason(path, "image"))
                return
            if path.lower().endswith((".tif", ".tiff")) and path not in self.notes and (n := tiff_pages(path)) > 1:
                self.notes[path] = f"a multi-page TIFF: only the first of its {n} pages is explained"
                LOGGER.warning(f"{PREFIX}{path} is {self.notes[path]}")
            super()._append_image(paths, imgs, info, path, im0, idx)

        def __next__(self) -> tuple[list[str], list[Any], list[str]]:
            first = getattr(self, "count", 0)
            try:
                if self.count < self.nf and not self.video_flag[self.count]:
                    batch = self._next_images()
                else:
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


def list_entries(path: str | Path) -> list[str]:
    """Return the entries of a ``.txt`` or ``.csv`` source list, read as Ultralytics' ``LoadImagesAndVideos`` does.

    One entry per line of a ``.txt``, every cell of a ``.csv`` (an optional ``source`` header row); a UTF-8
    byte-order mark is allowed and blank entries are dropped.
    """
    import csv
    from codecs import BOM_UTF8

    data = Path(path).read_bytes()
    content = data.decode("utf-8-sig" if data.startswith(BOM_UTF8) else "utf-8")
    if Path(path).suffix.lower() == ".txt":
        entries = content.splitlines()
    else:
        rows = list(csv.reader(content.splitlines()))
        rows = rows[1:] if rows[:1] == [["source"]] else rows
        entries = [p for row in rows for p in row]
    return [p.strip() for p in entries if p.strip()]


def _matches(path: str) -> bool:
    """Whether a source list's entry names a file, a folder, or a glob that matches (as Ultralytics checks it)."""
    import glob

    return bool(glob.glob(path, recursive=True)) if "*" in path else os.path.exists(path)


def list_source(source: Any) -> Any:
    """Return the skipping loader of ``source`` for its listing: ``files``, ``video_flag`` and ``skipped``.

    What a local run would read, in its order (the Ray driver lists with it). Close it when done (a video may be open).

    Raises:
        FileNotFoundError: as Ultralytics' loader, when the source does not exist or holds no image or video.
    """
    return _loader_class()(source)


def _is_local_files(source: Any) -> bool:
    """Whether Ultralytics would read ``source`` with ``LoadImagesAndVideos`` (a path, folder, glob or file list)."""
    if not isinstance(source, (str, Path)):
        return False
    s = str(source)
    lower = s.lower()
    stream = s.isnumeric() or lower.endswith(".streams") or lower.startswith(("rtsp://", "rtmp://", "tcp://"))
    screen = lower == "screen" or (lower.startswith("screen ") and not Path(s).exists())  # Ultralytics' own rule
    return not (stream or screen or lower.startswith(("http://", "https://")))


def skipping_loader(
    source: Any,
    batch: int = 1,
    vid_stride: int = 1,
    channels: int = 3,
    max_pixels: int | None = None,
    oversize: str = "skip",
) -> Any:
    """Return a skipping ``LoadImagesAndVideos`` for a local-file ``source``, else ``source`` unchanged.

    ``max_pixels`` and ``oversize`` are the CAM options of those names (:func:`read_image`).

    Raises:
        FileNotFoundError: as Ultralytics' loader, when the source does not exist or holds no image or video.
    """
    if not _is_local_files(source):
        return source
    from ultralytics.data.loaders import SourceTypes

    loader = _loader_class()(
        source, batch=batch, vid_stride=vid_stride, channels=channels, max_pixels=max_pixels, oversize=oversize
    )
    loader.source_type = SourceTypes()  # files: not a stream, screenshot, in-memory image or tensor
    return loader


class SkippingSourcesMixin(_PredictorBase):
    """Mixed in just above a task predictor: Ultralytics' sources with bad files skipped, output names kept apart."""

    def setup_source(self, source: Any, stride: int | None = None) -> None:
        """Give Ultralytics the skipping loader for local files; every other source goes through unchanged."""
        args = self.args
        channels = getattr(getattr(self, "model", None), "channels", 3)
        config = getattr(self, "cam_config", None)  # (CamPredictorMixin's; absent on a plain predictor)
        limits = {"max_pixels": config.max_pixels, "oversize": config.oversize} if config is not None else {}
        loader = skipping_loader(source, batch=args.batch, vid_stride=args.vid_stride, channels=channels, **limits)
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
