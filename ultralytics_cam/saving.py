"""The save path: one image's folder, and the run-level files, written by every registered writer.

The writers themselves (:mod:`ultralytics_cam.writers`) only declare what they write; this module runs them, in
registration order, built-ins first (:func:`ultralytics_cam.plugins.writer_registry`). An image's folder is built
under a hidden temporary name and renamed into place when every file is written, so a folder that exists is complete.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .writers import SaveConfig, WriterSpec

if TYPE_CHECKING:
    from .result import CamResult

__all__ = ["claim_run_dir", "write_image_folder", "write_run_files", "writer_specs"]

#: Most names :func:`claim_run_dir` tries (Ultralytics' ``increment_path`` stops at ``name-9999`` too).
MAX_CLAIMS = 9999


def writer_specs() -> list[WriterSpec]:
    """Return every registered writer (built-ins and plugins); everything that writes goes through here."""
    from .plugins import writer_registry

    return writer_registry().values()


def write_image_folder(
    cam: CamResult, folder: str | Path, config: SaveConfig | None = None, specs: list[WriterSpec] | None = None
) -> list[Path]:
    """Write one image's files into ``folder`` with every per-image writer; return the written paths.

    The files are written into a hidden sibling folder first, which is renamed to ``folder`` once complete. If
    ``folder`` already exists (``exist_ok=True`` runs, ``CamResult.save`` into an existing folder), the new files
    replace the same-named files in it, and nothing else in it is touched.
    """
    folder = Path(folder)
    config = config or SaveConfig()
    specs = writer_specs() if specs is None else specs
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = folder.parent / f".cam-partial-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        written: list[Path] = []
        for spec in specs:
            if spec.write_image is not None:
                written += spec.write_image(cam, stage, config) or []
        _publish(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [folder / Path(p).relative_to(stage) for p in written]


def _publish(stage: Path, folder: Path) -> None:
    """Move a completed staging folder to ``folder``: one rename, or file by file into an existing folder.

    A symbolic link where an output goes is replaced, never written through: the run folder is the run's own, and a
    link there (left by a damaged or tampered run) could lead the files anywhere (issue 21).

    Raises:
        OSError: ``folder`` cannot take the files (a file where the folder goes).
    """
    if folder.is_symlink():
        from ._logging import LOGGER, PREFIX

        LOGGER.warning(f"{PREFIX}{folder} was a symbolic link (to {os.readlink(folder)}): replaced by the folder")
        folder.unlink()
    if not folder.exists():
        try:
            os.replace(stage, folder)
        except OSError:  # published meanwhile by another writer (a retried Ray batch): merge into it file by file
            if not folder.is_dir():
                raise
        else:
            return
    for entry in sorted(stage.iterdir()):
        target = folder / entry.name
        if entry.is_dir() and target.is_dir():
            _publish(entry, target)
        else:
            os.replace(entry, target)
    stage.rmdir()


def claim_run_dir(save_dir: str | Path, name: str, exist_ok: bool = False) -> Path:
    """Create the run folder for this run alone and return it: ``save_dir``, or the next free name after it.

    Every saving run claims its folder here: ``yolo-cam predict``, ``model.cam(save=True)``, the app and the Ray
    driver. ``save_dir`` is the folder Ultralytics picked (``get_save_dir``: ``project/name``, or the first free
    ``name-2``, ``name-3``, ...), and ``name`` the run's name. Ultralytics' ``increment_path`` only *checks* which name
    is free, and the folder is created later, at the first write: two runs started at the same moment both get
    ``name`` and write into one folder (issue 21). So the folder is made here with an exclusive create (``mkdir``
    fails when the name exists, atomically, also on network file systems), and when another run got there first the
    next name is taken from ``increment_path`` (the same rule and names) and claimed the same way. With ``exist_ok``
    the folder is shared on purpose, as in Ultralytics.

    Raises:
        FileExistsError: no free name up to ``name-9999``.
        OSError: the folder cannot be created (no permission, a file in the way).
    """
    from ultralytics.utils.files import increment_path

    folder = Path(save_dir)
    if exist_ok:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    base = folder.parent / Path(name).name  # project/name: what increment_path numbers
    for _ in range(MAX_CLAIMS):
        try:
            folder.mkdir()
        except FileExistsError:
            folder = Path(increment_path(base))  # the first name free now (another run may take it first: try again)
            continue
        return folder
    raise FileExistsError(f"no free run folder name after {base}: {MAX_CLAIMS} tried (pass another name=)")


def write_run_files(summary: dict[str, Any], save_dir: str | Path, specs: list[WriterSpec] | None = None) -> list[Path]:
    """Write the run-level files of ``summary`` into ``save_dir`` with every run writer; return the written paths."""
    specs = writer_specs() if specs is None else specs
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for spec in specs:
        if spec.write_run is not None:
            written += spec.write_run(summary, save_dir) or []
    return written
