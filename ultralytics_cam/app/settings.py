"""From the app's form to the settings of a ``yolo-cam predict`` run, checked the way the command line checks them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FORM_DEFAULTS", "FormError", "RunSettings", "build_settings"]

#: What the form shows before the user changes anything: the old tool's suggestions (conf 0.2, imgsz 640) and
#: Ultralytics' own ``max_det``.
FORM_DEFAULTS: dict[str, Any] = {
    "method": "HiResCAM",
    "layers": "auto",
    "conf": 0.2,
    "max_det": 300,
    "imgsz": 640,
    "show_boxes": True,
    "renormalize": False,
}


class FormError(ValueError):
    """A form value is missing or invalid; the message names the field and what it accepts."""


@dataclass(frozen=True)
class RunSettings:
    """One run, as :func:`ultralytics_cam.api.cam_predictor` takes it.

    Attributes:
        model: path of the ``.pt`` weights (or of an exported model, with ``method="DRISE"``).
        source: a folder or file path, or the list of uploaded files.
        cam: CAM options (``method``, ``layers``, ``show_boxes``, ``renormalize``).
        ultralytics: Ultralytics predict arguments (``conf``, ``max_det``, ``imgsz``, ``device``, ``project``).
    """

    model: str
    source: str | list[str]
    cam: dict[str, Any] = field(default_factory=dict)
    ultralytics: dict[str, Any] = field(default_factory=dict)

    def predictor_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``cam_predictor``: a saving run, as ``yolo-cam predict`` makes."""
        return {**self.cam, **self.ultralytics, "save": True, "verbose": False}


def _path_text(value: Any) -> str:
    """A typed path without the quotes a copied Windows path often carries."""
    return str(value or "").strip().strip('"').strip("'").strip()


def _black_box(method: Any) -> bool:
    """Whether ``method`` names a black-box method (DRISE), which runs on exported models; False if unknown."""
    from ..errors import CamError
    from ..plugins import get_method_spec

    try:
        return bool(get_method_spec(str(method or FORM_DEFAULTS["method"])).black_box)
    except CamError:  # an unknown method is reported by the full check below
        return False


def build_settings(
    *,
    model: str,
    source: str = "",
    uploads: list[str] | None = None,
    project: str = "",
    method: str = FORM_DEFAULTS["method"],
    layers: str = FORM_DEFAULTS["layers"],
    device: str = "cpu",
    conf: float = FORM_DEFAULTS["conf"],
    max_det: int = FORM_DEFAULTS["max_det"],
    imgsz: int = FORM_DEFAULTS["imgsz"],
    show_boxes: bool = FORM_DEFAULTS["show_boxes"],
    renormalize: bool = FORM_DEFAULTS["renormalize"],
) -> RunSettings:
    """Check the form and return the run it describes.

    Uploaded files, when there are any, are the input instead of the typed folder. An empty output folder means
    Ultralytics' own ``runs/<task>``; inside it the run gets ``cam``, ``cam-2``, ... as ``yolo-cam predict`` does.

    Raises:
        FormError: a field is missing or invalid (the message names it and says what it accepts).
    """
    from ..cli import Command, UsageError, check_source, check_values

    model = _path_text(model)
    if not model:
        raise FormError("the weights file is missing: choose a .pt file trained with Ultralytics.")
    model_path = Path(model).expanduser()
    if not model_path.exists():
        raise FormError(f"model='{model}' does not exist. Choose a .pt weights file on this computer.")
    if model_path.suffix.lower() != ".pt" and not _black_box(method):  # an export (a file, or an OpenVINO folder)
        kind = f"a '{model_path.suffix}' file" if model_path.suffix else "a folder"
        raise FormError(
            f"model='{model}' is {kind}. Gradient methods need PyTorch weights (.pt); exported models (ONNX, "
            "OpenVINO, TorchScript, TensorRT, ...) are explained by the black-box method DRISE: choose method DRISE."
        )
    uploads = [str(u) for u in (uploads or []) if u]
    if uploads:
        src: str | list[str] = uploads
    else:
        src = _path_text(source)
        if not src:
            raise FormError("the input is missing: type or browse an image folder, or upload images.")
        src = str(Path(src).expanduser())
    out = _path_text(project)
    if out:
        out_path = Path(out).expanduser().resolve()
        if out_path.exists() and not out_path.is_dir():
            raise FormError(f"the output folder '{out}' is a file. Choose a folder (it is created when missing).")
        out = str(out_path)
    args = {
        "method": str(method or FORM_DEFAULTS["method"]),
        "layers": _path_text(layers) or "auto",
        "show_boxes": bool(show_boxes),
        "renormalize": bool(renormalize),
        "conf": _number("conf", conf, float),
        "max_det": _number("max_det", max_det, int),
        "imgsz": _number("imgsz", imgsz, int),
        "device": str(device or "cpu"),
        "model": str(model_path),
    }
    if out:
        args["project"] = out
    try:
        check_source(src)
        cam, ult = check_values(Command(mode="predict", args=args))
    except UsageError as e:
        raise FormError(str(e)) from e
    # check_values has rejected a conf outside [0, 1] and a max_det below 1 (Ultralytics' own bounds); the form asks
    # more of imgsz than Ultralytics does
    if ult["imgsz"] < 32:
        raise FormError(f"imgsz={ult['imgsz']} is not valid: use an image size of at least 32 (640 is usual).")
    ult.pop("model")
    return RunSettings(model=str(model_path), source=src, cam=cam, ultralytics=ult)


def _number(name: str, value: Any, kind: type) -> Any:
    """A number from the form (Gradio gives floats, or None for an emptied field)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise FormError(f"{name}={value!r} is not a number.") from e
    if kind is int and number != int(number):
        raise FormError(f"{name}={value!r} is not valid: use a whole number.")
    return kind(number)
