"""The run manifest (SPEC §11): an append-only record that proves which outputs of a saving run are complete.

``manifest.jsonl`` in the run folder holds one JSON object per line:

===========  =========================================================================================================
``run``      a session started (first run or a resume): time, the settings it ran with, the engine
``image``    one image's folder was published: source, folder, prediction count, timings and every file with its size
``segment``  a closed segment of a video's overlay (:mod:`ultralytics_cam.segments`): source, folder, frame range
             (``first``, ``last``), ``end`` (the video ended with it), fps, predictions, files
``video``    one video's files were renamed into place after its last frame: source, folder, frames, files
``end``      a session ended (``completed``, ``stopped``, ``interrupted``, ``failed``)
===========  =========================================================================================================

Why this is enough to resume after ``kill -9``: an image's folder is built under a hidden name and renamed into place
(:func:`ultralytics_cam.saving.write_image_folder`), and only *then* its line is appended, flushed and fsynced. A
line therefore never names a half-written folder, and a folder without a line is redone. The file sizes in each line
catch what a power loss (rather than a killed process) can do to files that were renamed but not yet on disk. A line
torn by a kill in the middle of a write is the last one; it is ignored and cut off before the next append.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._logging import LOGGER, PREFIX

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "ResumeState",
    "check_resumable",
    "clean_partials",
    "resume_dir",
]

#: File name of the manifest inside the run folder.
MANIFEST_NAME = "manifest.jsonl"

#: Settings that may change between the sessions of one run: where and how fast it runs, not what it computes.
FREE_SETTINGS = frozenset(
    {"source", "batch", "device", "workers", "resume", "verbose", "name", "project", "exist_ok", "stream_buffer"}
)


@dataclass
class ResumeState:
    """What the manifest of an earlier session proves.

    Attributes:
        images: source -> the ``image`` line of every image whose folder is complete on disk.
        videos: source -> the ``video`` line of every video whose files are complete on disk.
        sessions: the ``run`` lines, oldest first.
        partial: source -> a video cut off part-way: ``folder``, ``segments`` (the ``segment`` lines from its first
            frame on, without a gap, whose files are complete), the ``frames`` they cover, and ``end`` (whether the
            video ended with them). A resume goes on at frame ``frames + 1``.
        redo: sources that have a line but whose files are missing or of the wrong size (redone).
        seconds: the working time of the earlier sessions (each from its start to its last line).
    """

    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    partial: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    redo: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> set[str]:
        """The sources that need no more work."""
        return set(self.images) | set(self.videos)


class Manifest:
    """The append-only ``manifest.jsonl`` of one run folder."""

    def __init__(self, save_dir: str | Path) -> None:
        """Refer to the manifest of ``save_dir`` (nothing is read or written yet)."""
        self.path = Path(save_dir) / MANIFEST_NAME
        self._file: Any = None

    # -- reading -----------------------------------------------------------------------------------------------------
    def lines(self) -> list[dict[str, Any]]:
        """Every complete line (a torn last line, left by a kill in mid-write, is ignored)."""
        if not self.path.exists():
            return []
        out = []
        for raw in self.path.read_bytes().split(b"\n"):
            if not raw.strip():
                continue
            try:
                out.append(json.loads(raw))
            except ValueError:
                LOGGER.warning(f"{PREFIX}ignoring a torn line in {self.path} (the run was killed while writing it)")
        return out

    def state(self) -> ResumeState:
        """Read the manifest and check every recorded output against the disk."""
        state = ResumeState()
        save_dir = self.path.parent
        start = last = None
        segments: dict[str, list[dict[str, Any]]] = {}
        for line in self.lines():
            event = line.get("event")
            if event == "run":
                if start is not None and last is not None:
                    state.seconds += max(last - start, 0.0)
                state.sessions.append(line)
                start = last = line.get("time")
                continue
            last = line.get("time", last)
            if event == "segment":
                segments.setdefault(line["source"], []).append(line)
                continue
            if event not in ("image", "video"):
                continue
            records = state.images if event == "image" else state.videos
            if _complete(save_dir / line["folder"], line.get("files", {})):
                records[line["source"]] = line
                if line["source"] in state.redo:
                    state.redo.remove(line["source"])
            else:
                records.pop(line["source"], None)
                state.redo.append(line["source"])
        if start is not None and last is not None:
            state.seconds += max(last - start, 0.0)
        for source, lines in segments.items():
            if source not in state.videos and (part := _segment_chain(save_dir, lines)) is not None:
                state.partial[source] = part
        return state

    # -- writing -----------------------------------------------------------------------------------------------------
    def append(self, entry: dict[str, Any], sync: bool = True) -> None:
        """Append one line and flush it, so that it survives the process being killed right after.

        With ``sync`` (the default) it is also fsynced, to survive a power loss; the Ray driver records a whole
        batch of results with ``sync=False`` and then calls :meth:`sync` once (group commit: one fsync per batch).
        """
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(self.path)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        self._file.write(json.dumps({**entry, "time": round(time.time(), 3)}, ensure_ascii=False) + "\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        """Fsync what was appended (after ``append(..., sync=False)``)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _complete(folder: Path, files: dict[str, int]) -> bool:
    """Whether every file of a manifest line exists with its recorded size."""
    try:
        return bool(files) and all((folder / name).stat().st_size == size for name, size in files.items())
    except OSError:
        return False


def _segment_chain(save_dir: Path, lines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The segments of one video that a resume can build on: from frame 1 on, without a gap, files complete."""
    latest = {line["first"]: line for line in lines}  # a segment redone by a later session replaces the earlier line
    chain, expected = [], 1
    for line in sorted(latest.values(), key=lambda x: x["first"]):
        if line["first"] != expected or not _complete(save_dir / line["folder"], line.get("files", {})):
            break
        chain.append(line)
        expected = line["last"] + 1
    if not chain:
        return None
    return {
        "folder": chain[-1]["folder"],
        "segments": chain,
        "frames": expected - 1,
        "predictions": sum(x.get("predictions", 0) for x in chain),
        "fps": chain[-1].get("fps", 30.0),
        "end": bool(chain[-1].get("end")),
        "meta": chain[0].get("meta") or {},
    }


def _cut_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (a write killed half-way), so the next line starts on its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def clean_partials(save_dir: str | Path) -> list[Path]:
    """Remove what a killed run leaves behind: staging folders, temporary files, open segments, half-joined videos.

    Those are ``.cam-partial-*`` folders, ``.*.tmp`` files, a video's ``segments/.partial-*`` and
    ``.heatmap-partial.*``. Only where the writers put them is looked at: the run folder and, one level below, the
    image and video folders (temporary files inside a staging folder go with it).
    """
    save_dir = Path(save_dir)
    removed = []
    patterns = (".cam-partial-*", ".*.tmp", "*/.*.tmp", "*/frames/.*.tmp", "*/.heatmap-partial.*", "*/segments/.*")
    for pattern in patterns:
        for p in save_dir.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def resume_dir(save_dir: str | Path, name: str, resume: Any) -> Path | None:
    """Return the run folder to resume, or None when there is nothing to resume.

    As Ultralytics' ``resume`` for training picks the latest ``last.pt``: ``resume=True`` picks, among the folder
    ``project/name`` and its increments (``name-2``, ``name-3``, ...), the one whose manifest was written last;
    ``resume=path/to/run`` resumes that folder.

    Raises:
        FileNotFoundError: ``resume`` names a folder without a manifest.
    """
    if resume is True:
        parent = Path(save_dir).parent
        family = re.compile(re.escape(name) + r"(-\d+)?")
        runs = [p for p in parent.glob(f"{name}*") if family.fullmatch(p.name) and (p / MANIFEST_NAME).is_file()]
        return max(runs, key=lambda p: (p / MANIFEST_NAME).stat().st_mtime, default=None)
    folder = Path(str(resume))
    if not (folder / MANIFEST_NAME).is_file():
        raise FileNotFoundError(
            f"resume='{resume}' has no {MANIFEST_NAME}: pass resume=True (the latest run) or the folder of a run "
            "saved by ultralytics-cam 'save=True' (runs/<task>/cam, cam-2, ...)."
        )
    return folder


def check_resumable(sessions: list[dict[str, Any]], settings: dict[str, Any], folder: Path) -> None:
    """Refuse to resume a run with settings that change its outputs (its folders would mix two kinds of maps).

    Raises:
        ValueError: a CAM option or an Ultralytics option other than :data:`FREE_SETTINGS` differs; the message
            names each one with both values.
    """
    if not sessions:
        return
    old = sessions[0].get("settings") or {}
    diffs: list[str] = []
    for group in ("cam", "ultralytics"):
        a, b = old.get(group) or {}, settings.get(group) or {}
        diffs.extend(
            f"{k}={a.get(k)!r} before, {b.get(k)!r} now"
            for k in sorted(set(a) | set(b))
            if k not in FREE_SETTINGS and a.get(k) != b.get(k)
        )
    if diffs:
        raise ValueError(
            f"cannot resume {folder} with different settings ({'; '.join(diffs)}). Resume with the run's own "
            "settings, or start a new run without resume."
        )
