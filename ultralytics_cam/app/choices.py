"""What the form offers: methods from the registry, the devices of this machine, a model's task and layers."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ModelInfo", "device_choices", "method_choices", "model_info"]


def method_choices() -> list[tuple[str, str]]:
    """Return ``(label, name)`` for every usable method of the registry, plugins included, with its one-line summary.

    Refused methods are left out: the form offers only what can run (``yolo-cam methods`` lists the others and why).
    """
    from ..plugins import method_specs

    return [(f"{s.name}: {s.summary}", s.name) for s in method_specs().values() if s.refused is None]


def device_choices() -> list[str]:
    """Return the devices that exist on this machine: every CUDA GPU (``cuda:0``, ...) first, then ``cpu``."""
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return [*gpus, "cpu"]


@dataclass(frozen=True)
class ModelInfo:
    """A weights file as the form shows it.

    Attributes:
        task: the task stored in the weights (detect, segment, pose, obb, classify).
        layers: ``yolo-cam layers``' rows: index, from, type, output shape at ``imgsz``, and whether ``auto`` uses it.
        auto: the indices that ``layers="auto"`` reads, as ``layers=`` accepts them ("16,19,22").
    """

    task: str
    layers: list[list[Any]]
    auto: str


def model_info(path: str, imgsz: int = 640) -> ModelInfo:
    """Read a weights file's task and layer table (cached per file, modification time and size).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        Exception: whatever Ultralytics raises for a file that is not a model (the caller maps it to advice).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"model='{path}' does not exist.")
    return _model_info(str(p.resolve()), p.stat().st_mtime_ns, int(imgsz))


@functools.lru_cache(maxsize=8)
def _model_info(path: str, mtime_ns: int, imgsz: int) -> ModelInfo:
    from ..cli import load_model
    from ..layers import layer_table

    model = load_model(path)  # as the run loads it (RT-DETR by name, else YOLO)
    net = model.model
    if isinstance(net, str):  # an exported model: no layers to list (DRISE reads none)
        return ModelInfo(task=model.task, layers=[], auto="")
    net.eval()
    rows = layer_table(net, imgsz)
    table = [
        [
            r["index"],
            str(r["from"]).replace(" ", ""),
            r["type"],
            "x".join(map(str, r["shape"])) if isinstance(r["shape"], tuple) else str(r["shape"]),
            "auto" if r["auto"] else ("" if r["usable"] else "-"),
        ]
        for r in rows
    ]
    auto = ",".join(str(r["index"]) for r in rows if r["auto"])
    return ModelInfo(task=model.task, layers=table, auto=auto)
