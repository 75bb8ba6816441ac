"""A video's overlay written in closed segments, so a killed run resumes a video at its first missing frame (SPEC §11).

OpenCV's video writers hold a file's index until they are released: a writer killed after 100 frames leaves a file
that cannot be read. So a saving run writes each video's overlay frames into *segments* of at most
:data:`SEGMENT_FRAMES` frames or :data:`SEGMENT_SECONDS` of work, whichever comes first, in the video's
``segments/`` folder. A segment is written under a hidden name, released, and renamed to ``<first>-<last>.avi`` (its
per-frame ``cam.jsonl`` lines beside it, as ``<first>-<last>.jsonl``); then the run appends a ``segment`` line to the
manifest. A kill loses at most the open segment's frames.

Segments are lossless (FFmpeg's HuffYUV, which the opencv-python wheels bundle; the resume tests check that the
joined video is byte-identical to an uninterrupted run's), so joining them decodes exactly the frames that were
drawn: the final overlay is then encoded once, by Ultralytics' own codec for the platform (MJPG ``.avi`` on Linux,
WMV2 ``.avi`` on Windows, H.264 ``.mp4`` on macOS), and a resumed video's ``heatmap.avi`` is the same file an
uninterrupted run writes. The price is disk while the video runs: at most the raw size, 3 bytes per pixel per frame
(HuffYUV compresses it; 0.85 bytes per pixel measured on smooth 640 x 480 frames), freed when the video's segments
are joined at its end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ._logging import LOGGER, PREFIX
from .writers import atomic_write_bytes

__all__ = [
    "SEGMENTS_DIR",
    "SEGMENT_FRAMES",
    "SEGMENT_SECONDS",
    "SegmentWriter",
    "join_segments",
    "overlay_codec",
    "remove_segments",
]

#: Folder of a video's closed segments, inside the video's folder (removed once they are joined).
SEGMENTS_DIR = "segments"
#: A segment is closed after this many frames ...
SEGMENT_FRAMES = 250
#: ... or after this many seconds of work, so a kill on a slow machine loses little work and a fast GPU run writes
#: few files.
SEGMENT_SECONDS = 10.0
#: Lossless codec of the segments (FFmpeg's HuffYUV: fast, exact round trip), with the platform codec as fallback.
LOSSLESS_FOURCC = "HFYU"


def overlay_codec() -> tuple[str, str]:
    """The suffix and FourCC Ultralytics' ``save_predicted_images`` writes videos with on this platform."""
    from ultralytics.utils import MACOS, WINDOWS

    return (".mp4", "avc1") if MACOS else (".avi", "WMV2") if WINDOWS else (".avi", "MJPG")


def _open_writer(path: Path, fourcc: str, fps: float, size: tuple[int, int]) -> Any:
    import cv2

    return cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)


class SegmentWriter:
    """The open segment of one video: frames and their ``cam.jsonl`` lines, published together by :meth:`close`."""

    def __init__(self, folder: Path, first: int, fps: float) -> None:
        """Start a segment whose first frame is number ``first`` (1-based, as Ultralytics counts video frames)."""
        self.dir = Path(folder) / SEGMENTS_DIR
        self.first, self.last, self.fps = first, first - 1, fps
        self.lines: list[str] = []
        self.predictions = 0
        self.started = time.monotonic()
        self._writer: Any = None
        self._tmp: Path | None = None

    def write(self, image: Any, line: dict[str, Any]) -> None:
        """Add one overlay frame (BGR) and its JSON line."""
        if self._writer is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            size = (image.shape[1], image.shape[0])
            self._tmp = self.dir / f".partial-{self.first:08d}.avi"
            self._writer = _open_writer(self._tmp, LOSSLESS_FOURCC, self.fps, size)
            if not self._writer.isOpened():  # an OpenCV without HuffYUV: the platform codec (joined with one more pass)
                LOGGER.warning(f"{PREFIX}OpenCV cannot write {LOSSLESS_FOURCC}; video segments use MJPG (lossy join)")
                self._writer = _open_writer(self._tmp, "MJPG", self.fps, size)
        self._writer.write(image)
        self.lines.append(json.dumps(line, ensure_ascii=False))
        self.predictions += len(line.get("predictions") or [])
        self.last += 1

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self.last - self.first + 1

    def full(self) -> bool:
        """Whether the segment should be closed now (:data:`SEGMENT_FRAMES` or :data:`SEGMENT_SECONDS` reached)."""
        return self.frames >= SEGMENT_FRAMES or time.monotonic() - self.started >= SEGMENT_SECONDS

    def close(self) -> dict[str, int] | None:
        """Release the writer and rename the segment into place; return its files ``{path: size}`` (None if empty).

        The JSON lines are written (atomically) before the video is renamed: a segment video that exists has its lines.
        """
        if self._writer is None:
            return None
        assert self._tmp is not None  # set together with the writer
        self._writer.release()
        self._writer = None
        stem = f"{self.first:08d}-{self.last:08d}"
        lines = self.dir / f"{stem}.jsonl"
        atomic_write_bytes(lines, ("\n".join(self.lines) + "\n").encode("utf-8"))
        video = self.dir / f"{stem}.avi"
        os.replace(self._tmp, video)
        return {f"{SEGMENTS_DIR}/{p.name}": p.stat().st_size for p in (video, lines)}


def join_segments(folder: Path, segments: list[dict[str, Any]], fps: float) -> list[str]:
    """Join closed segments into the video's ``heatmap<suffix>`` and ``cam.jsonl``; return the two file names.

    Each segment's frames are decoded (exactly: the segments are lossless) and encoded once with Ultralytics' codec,
    into a hidden file renamed into place when complete. The segments are kept (a stopped video's are needed by a
    resume); :func:`remove_segments` deletes them once the video is complete.
    """
    import cv2

    suffix, fourcc = overlay_codec()
    folder = Path(folder)
    tmp = folder / f".heatmap-partial{suffix}"
    writer, lines = None, []
    try:
        for seg in segments:
            video = next(folder / name for name in seg["files"] if name.endswith(".avi"))
            cap = cv2.VideoCapture(str(video))
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if writer is None:
                        writer = _open_writer(tmp, fourcc, fps, (frame.shape[1], frame.shape[0]))
                    writer.write(frame)
            finally:
                cap.release()
            jsonl = next(folder / name for name in seg["files"] if name.endswith(".jsonl"))
            lines.append(jsonl.read_text(encoding="utf-8"))
        if writer is not None:
            writer.release()
            writer = None
            os.replace(tmp, folder / f"heatmap{suffix}")
        atomic_write_bytes(folder / "cam.jsonl", "".join(lines).encode("utf-8"))
    except BaseException:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
        raise
    return [f"heatmap{suffix}", "cam.jsonl"] if segments else ["cam.jsonl"]


def remove_segments(folder: Path) -> None:
    """Delete a video's segments (after they were joined into its complete overlay)."""
    shutil.rmtree(Path(folder) / SEGMENTS_DIR, ignore_errors=True)
