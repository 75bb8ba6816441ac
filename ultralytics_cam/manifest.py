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

Why a record is checked before it is trusted (issue 21): the manifest is a file in a folder anyone may edit, copy or
damage. Every record must follow the schema of its event (:data:`RECORD_FIELDS`), and every path in it must stay
inside the run folder (a folder is one name in it; a file is a relative path inside that folder; neither may be
absolute, hold ``..`` or resolve through a symbolic link to somewhere else). A record that breaks either rule is
skipped with a warning naming its line and never followed, so a resume can neither write outside its run nor crash
on it; its input is simply explained again. ``image``, ``segment`` and ``video`` records also carry ``input``, what
identifies the file they were made from (:func:`input_identity`): an input replaced since then is explained again.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    "RunFolderLostError",
    "check_resumable",
    "clean_partials",
    "input_change",
    "input_identity",
    "record_problem",
    "resume_dir",
]

#: File name of the manifest inside the run folder.
MANIFEST_NAME = "manifest.jsonl"

#: Settings that may change between the sessions of one run: where and how fast it runs, not what it computes.
FREE_SETTINGS = frozenset(
    {"source", "batch", "device", "workers", "resume", "verbose", "name", "project", "exist_ok", "stream_buffer"}
    | {"max_pixels", "oversize"}  # which image files are read (and at what size), not how any map is computed
)


#: Each event's required fields and their JSON types (``bool`` is not a number here); other fields are optional.
RECORD_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "run": {},
    "image": {"source": (str,), "folder": (str,), "predictions": (int,), "ms": (int, float), "files": (dict,)},
    "segment": {"source": (str,), "folder": (str,), "first": (int,), "last": (int,), "files": (dict,)},
    "video": {"source": (str,), "folder": (str,), "frames": (int,), "predictions": (int,), "files": (dict,)},
    "end": {},
}
#: Optional fields and their JSON types, checked when present.
OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "time": (int, float),
    "settings": (dict,),
    "speed": (dict,),
    "input": (dict,),
    "meta": (dict,),
    "end": (bool,),
    "fps": (int, float),
}
#: Inputs up to this size get a content hash in their record (read once more when written: cheap next to the CAM);
#: larger ones are identified by size and modification time only.
HASH_MAX_BYTES = 64 * 2**20


class RunFolderLostError(OSError):
    """The run folder, or its manifest, is no longer the one the run opened: deleted, moved or replaced mid-run.

    Writing on would recreate the folder and report outputs that are gone, so the run stops with what was lost.
    """


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
        redo: sources that have a line but whose files are missing or of the wrong size, or whose input changed
            since (redone).
        changed: the sources of ``redo`` whose input changed (another file under the same name).
        corrupt: the numbers of the lines skipped as corrupt (not JSON objects, off the schema, paths leading out).
        seconds: the working time of the earlier sessions (each from its start to its last line).
    """

    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    partial: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    redo: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    corrupt: list[int] = field(default_factory=list)
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
    def records(self) -> list[tuple[int, Any]]:
        """Every complete line as ``(line number, parsed JSON)``; a torn line (a kill in mid-write) is ignored."""
        if not self.path.exists():
            return []
        out = []
        for n, raw in enumerate(self.path.read_bytes().split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                out.append((n, json.loads(raw)))
            except ValueError:
                LOGGER.warning(f"{PREFIX}{self.path} line {n}: not JSON (a line torn by a kill, or damage); ignored")
        return out

    def lines(self) -> list[dict[str, Any]]:
        """Every complete line that is a JSON object, unchecked (:meth:`state` checks each one)."""
        return [line for _, line in self.records() if isinstance(line, dict)]

    def state(self) -> ResumeState:
        """Read the manifest and check every record: its schema, its paths, its files on disk and its input."""
        state = ResumeState()
        save_dir = self.path.parent
        start = last = None
        segments: dict[str, list[dict[str, Any]]] = {}
        for n, line in self.records():
            problem = record_problem(line, save_dir)
            if problem is not None:
                state.corrupt.append(n)
                LOGGER.warning(f"{PREFIX}{self.path} line {n}: {problem}; the record is skipped, never followed")
                continue
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
            source = line["source"]
            change = input_change(source, line.get("input"))
            if change is None and _complete(save_dir / line["folder"], line["files"]):
                records[source] = line
                if source in state.redo:
                    state.redo.remove(source)
                if source in state.changed:
                    state.changed.remove(source)
            else:
                records.pop(source, None)
                state.redo.append(source)
                if change is not None:
                    state.changed.append(source)
                    LOGGER.warning(f"{PREFIX}{source} changed since it was explained ({change}): explained again")
        if start is not None and last is not None:
            state.seconds += max(last - start, 0.0)
        for source, lines in segments.items():
            if source in state.videos:
                continue
            change = next((c for x in lines if (c := input_change(source, x.get("input"))) is not None), None)
            if change is not None:  # another video under the same name: its saved segments are not built on
                LOGGER.warning(f"{PREFIX}{source} changed since its first frames were saved ({change}): redone")
                continue
            if (part := _segment_chain(save_dir, lines)) is not None:
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
        else:
            self.check()
        self._file.write(json.dumps({**entry, "time": round(time.time(), 3)}, ensure_ascii=False) + "\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    def check(self) -> None:
        """Check that the open file is still ``manifest.jsonl``.

        Lines appended to a deleted file are lost with it, silently: a resume could not tell what is complete.

        Raises:
            RunFolderLostError: the file was deleted or replaced since it was opened.
        """
        if self._file is None:
            return
        opened = os.fstat(self._file.fileno())
        try:
            current = os.stat(self.path)
        except OSError:
            current = None
        if (
            opened.st_nlink == 0
            or current is None
            or (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino)
        ):
            raise RunFolderLostError(f"{self.path} was deleted or replaced during the run")

    def sync(self) -> None:
        """Fsync what was appended (after ``append(..., sync=False)``)."""
        if self._file is not None:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def record_problem(line: Any, save_dir: Path) -> str | None:
    """Why a manifest record cannot be trusted (None when it can): off its event's schema, or a path leading out.

    A record's ``folder`` must be one name inside ``save_dir`` (where the writers put every image and video folder)
    and every key of its ``files`` a relative path inside that folder; neither may be absolute, hold ``..``, or
    resolve (through a symbolic link) to somewhere outside.
    """
    if not isinstance(line, dict):
        return f"a JSON {type(line).__name__}, not a record (a JSON object)"
    event = line.get("event")
    if event not in RECORD_FIELDS:
        return f"unknown event {event!r} (expected one of {', '.join(RECORD_FIELDS)})"
    for key, types in RECORD_FIELDS[event].items():
        if key not in line:
            return f"a{'n' * (event[0] in 'aeiou')} '{event}' record without '{key}'"
        if not _is_type(line[key], types):
            return f"'{key}' is {line[key]!r}, not {' or '.join(_JSON_NAMES[t] for t in types)}"
    for key, types in OPTIONAL_FIELDS.items():
        if line.get(key) is not None and not _is_type(line[key], types):
            return f"'{key}' is {line[key]!r}, not {' or '.join(_JSON_NAMES[t] for t in types)}"
    if event == "segment" and not 1 <= line["first"] <= line["last"]:
        return f"frames {line['first']} to {line['last']} are not a range of frames from 1"
    if "folder" not in line:
        return None
    folder, files = line["folder"], line["files"]
    if (why := _outside(save_dir, folder, single=True)) is not None:
        return f"folder {folder!r} {why}"
    for name, size in files.items():
        if (why := _outside(save_dir / folder, name, single=False)) is not None:
            return f"file {name!r} {why}"
        if not _is_type(size, (int,)) or size < 0:
            return f"the size of file {name!r} is {size!r}, not a number of bytes"
    return None


_JSON_NAMES = {str: "a string", int: "a whole number", float: "a number", dict: "an object", bool: "true or false"}


def _is_type(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true/false is no number
        return bool in types
    return isinstance(value, types)


def _outside(base: Path, name: str, single: bool) -> str | None:
    """Why the relative path ``name`` does not stay inside ``base`` (None: it does)."""
    if not name or "\x00" in name:
        return "is empty or holds a NUL character"
    path = Path(name)  # this platform's rules: on Windows 'C:x' and '\\x' are absolute or anchored, on Linux names
    if path.is_absolute() or path.anchor:
        return "is an absolute path (records name paths inside the run folder)"
    if any(p in ("..", ".") for p in path.parts) or (single and len(path.parts) != 1):
        return "leads out of its folder (records name one folder of the run, and files inside it)"
    try:
        inside = (base / name).resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError):  # a link loop
        return "cannot be resolved (a symbolic link loop)"
    return None if inside else "resolves through a symbolic link to outside the run folder"


def input_identity(path: str | Path) -> dict[str, Any] | None:
    """What identifies the input file ``path`` now: size, modification time, and a content hash when cheap.

    None when ``path`` is no file (an array, a stream frame). The hash (BLAKE2b of the bytes) is taken for files up to
    :data:`HASH_MAX_BYTES`: it tells a copy whose modification time changed (not redone) from another file of the
    same size (redone).
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not os.path.isfile(path):
        return None
    identity: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if st.st_size <= HASH_MAX_BYTES:
        with contextlib.suppress(OSError):
            identity["blake2b"] = _digest(path)
    return identity


def input_change(path: str | Path, recorded: Any) -> str | None:
    """Why the file ``path`` is not the input a record was made from (None: the same, or it cannot be told).

    Size first, then modification time; a record with a content hash is compared by content when only the time
    differs. A record without ``input`` (written before issue 21) and a file that is gone cannot be told.
    """
    if not isinstance(recorded, dict) or not _is_type(recorded.get("size"), (int,)):
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if st.st_size != recorded["size"]:
        return f"{st.st_size} bytes now, {recorded['size']} then"
    if st.st_mtime_ns == recorded.get("mtime_ns"):
        return None
    digest = recorded.get("blake2b")
    if not isinstance(digest, str):
        return "modified since (same size; no content hash to compare)"
    try:
        return None if _digest(path) == digest else "same size, other content"
    except OSError:
        return None


def _digest(path: str | Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def check_resumable(
    sessions: list[dict[str, Any]], settings: dict[str, Any], folder: Path, cam_defaults: dict[str, Any] | None = None
) -> None:
    """Refuse to resume a run with settings that change its outputs (its folders would mix two kinds of maps).

    A CAM option the earlier session did not record (it was added by a later release) was, in effect, at its default
    there: it counts as unchanged when it is at its default (``cam_defaults``) now.

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
        defaults = cam_defaults if group == "cam" and cam_defaults else {}
        new_at_default = {k for k, v in b.items() if k not in a and k in defaults and v == defaults[k]}
        diffs.extend(
            f"{k}={a.get(k)!r} before, {b.get(k)!r} now"
            for k in sorted(set(a) | set(b))
            if k not in FREE_SETTINGS and k not in new_at_default and a.get(k) != b.get(k)
        )
    if diffs:
        raise ValueError(
            f"cannot resume {folder} with different settings ({'; '.join(diffs)}). Resume with the run's own "
            "settings, or start a new run without resume."
        )
