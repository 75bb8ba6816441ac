"""What ``yolo-cam`` prints: help, ``methods``, ``layers``, ``plugins`` and ``version`` as plain text.

Each function returns a string (the CLI prints it), so the listings are testable without a shell and reusable from
Python. Ultralytics' own option descriptions are read from its ``default.yaml``, so ``yolo-cam predict help``
explains the Ultralytics keys in Ultralytics' words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .registry import Spec

__all__ = [
    "CAM_KEY_HELP",
    "EVAL_KEY_HELP",
    "MODE_HELP_TEXTS",
    "PREDICT_KEYS",
    "app_help",
    "compare_help",
    "eval_help",
    "help_text",
    "layers_help",
    "layers_text",
    "methods_text",
    "plugins_text",
    "predict_help",
    "report_help",
    "ultralytics_key_help",
    "val_help",
    "version_text",
]

#: The Ultralytics keys that matter to a CAM run, in the order ``yolo-cam predict help`` explains them.
PREDICT_KEYS = (
    "model",
    "source",
    "conf",
    "iou",
    "imgsz",
    "device",
    "batch",
    "max_det",
    "classes",
    "agnostic_nms",
    "quantize",
    "vid_stride",
    "stream_buffer",
    "retina_masks",
    "rect",
    "project",
    "name",
    "exist_ok",
    "verbose",
    "save",
    "save_txt",
    "save_conf",
    "save_crop",
    "save_frames",
    "show",
    "show_labels",
    "show_conf",
    "line_width",
)

#: The CAM keys: description and an example value.
CAM_KEY_HELP: dict[str, tuple[str, str]] = {
    "method": ("CAM method, case-insensitive; 'yolo-cam methods' lists them", "EigenCAM"),
    "target": (
        "what each map explains: class, box, all; per task mask, keypoints, angle; depth: near, far, mean",
        "box",
    ),
    "layers": ("'auto' (the head's inputs), indices or module names; 'yolo-cam layers' lists them", "16,19,22"),
    "alpha": ("weight of the heatmap in overlays, 0..1", "0.4"),
    "colormap": ("OpenCV colormap of overlays (jet, turbo, viridis, inferno, ...)", "turbo"),
    "show_boxes": ("draw Ultralytics' boxes, labels and keypoints over the heatmap overlay", "False"),
    "renormalize": ("scale each map to its own range inside its box, zero outside", "True"),
    "eigen_smooth": ("first principal component instead of the channel sum (grad-cam's eigen_smooth)", "True"),
    "aug_smooth": ("average over flipped and brightened copies of the input (grad-cam's aug_smooth)", "True"),
    "save_maps": ("also save every prediction's own map: maps.npy and maps/<i>_<class>.png", "True"),
    "region": ("semantic and depth: explain only these boxes x1,y1,x2,y2 (a list: one map per box)", "0,0,320,240"),
    "max_pixels": ("an image file with more pixels is not decoded (skipped, or see oversize); 0: no limit", "4e8"),
    "oversize": ("an image over max_pixels: skip (listed in summary.json) or downscale (to max_pixels)", "downscale"),
    "drise_masks": ("DRISE: random masks per image, one forward pass each (docs/drise.md)", "500"),
    "drise_cell": ("DRISE: mask cell size in model-input pixels", "48"),
    "drise_keep": ("DRISE: probability that a mask keeps a cell, in (0, 1)", "0.6"),
    "seed": ("seed of DRISE's random masks (same seed, same maps)", "1"),
}

#: Example values for Ultralytics keys whose default makes a poor example.
_EXAMPLES = {
    "model": "best.pt",
    "source": "imgs/",
    "conf": "0.5",
    "iou": "0.5",
    "imgsz": "320",
    "device": "cpu",
    "batch": "8",
    "max_det": "100",
    "classes": "[0,2]",
    "vid_stride": "2",
    "project": "my_runs",
    "name": "exp",
    "line_width": "2",
    "data": "data.yaml",
}

#: ``yolo-cam val`` keys beyond Ultralytics' val arguments: description and example.
VAL_KEY_HELP: dict[str, tuple[str, str]] = {
    "method": ("CAM method of the failure heatmaps", "GradCAM"),
    "conf": ("confidence above which an unmatched prediction counts as a false positive", "0.25"),
    "kinds": (
        "which failures to explain: false_positive, missed, wrong_class, poor_localisation, misclassified (classify), "
        "low_iou (semantic), depth_error (depth)",
        "false_positive,missed",
    ),
    "max_images": ("save heatmaps for at most this many images, the worst first (all failures are still listed)", "50"),
    "strict": ("raise on a CAM error instead of logging it and going on", "True"),
}


@functools.cache
def ultralytics_key_help() -> dict[str, str]:
    """Return Ultralytics' own one-line description of every key, read from the comments of its ``default.yaml``."""
    from ultralytics.utils import DEFAULT_CFG_PATH

    out: dict[str, str] = {}
    for line in DEFAULT_CFG_PATH.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\w+):[^#]*#\s*(?:\([^)]*\)\s*)?(.*)$", line)
        if m:
            out[m[1]] = m[2].strip()
    return out


def _key_line(key: str, default: Any, text: str, example: str) -> str:
    left = f"  {key}={default}"
    example = f" (e.g. {key}={example})" if example and example != str(default) else ""
    return f"{left:<30} {text}{example}"


def _ultralytics_lines(keys: tuple[str, ...] | list[str], defaults: dict[str, Any] | None = None) -> list[str]:
    """One line per key with its default (``defaults`` first: what the mode really uses) and Ultralytics' words."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    defaults = {**DEFAULT_CFG_DICT, **(defaults or {})}
    texts = ultralytics_key_help()
    return [_key_line(k, defaults.get(k), texts.get(k, ""), _EXAMPLES.get(k, "")) for k in keys if k in defaults]


def help_text() -> str:
    """Return ``yolo-cam help``: the modes, examples and CAM keys (each mode's own help is its ``ModeSpec.help``)."""
    from .cli import MODE_SPECS
    from .config import CAM_DEFAULTS

    lines = [
        "yolo-cam: class activation maps for every prediction of Ultralytics YOLO models.",
        "Tasks: detect, segment, semantic, depth, classify, pose, obb.",
        "",
        "Usage:",
        "  yolo-cam MODE key=value ...        (the 'yolo' argument language: key=value, no dashes)",
        "",
        "Modes:",
    ]
    lines += [
        f"  {m.name:<9} {m.summary}" + (f"\n  {'':<9} e.g. yolo-cam {m.name} {m.example}" if m.example else "")
        for m in MODE_SPECS.values()
    ]
    lines += [
        "",
        "Examples:",
        "  yolo-cam demo",
        "  yolo-cam predict model=best.pt source=imgs/ method=HiResCAM",
        "  yolo-cam predict model=best.pt source=video.mp4 method=EigenCAM",
        "  yolo-cam predict model=best.pt source=imgs/ layers=16,19,22 target=box save_maps=True",
        "  yolo-cam val model=best.pt data=data.yaml method=GradCAM",
        "  yolo-cam layers model=best.pt",
        "",
        "CAM keys (every mode that runs a model; 'yolo-cam predict help' lists the Ultralytics keys):",
    ]
    lines += [_key_line(k, CAM_DEFAULTS[k], *CAM_KEY_HELP[k]) for k in CAM_DEFAULTS if k in CAM_KEY_HELP]
    lines += [
        "",
        "Output: runs/<task>/cam, cam-2, ... (project=, name=, exist_ok=), a folder per image with",
        "detection.png, heatmap.png, heatmap.npy and cam.json, and summary.json for the run.",
        "Exit codes: 0 success, 1 the run failed, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
    ]
    return "\n".join(lines)


def predict_help(mode: str = "predict") -> str:
    """Return ``yolo-cam predict help`` (or ``demo help``): every CAM key and the Ultralytics keys that matter."""
    from .config import CAM_DEFAULTS, REFUSED_ULTRALYTICS_KEYS

    lines = [
        "yolo-cam predict model=MODEL source=SOURCE [key=value ...]"
        if mode == "predict"
        else "yolo-cam demo [key=value ...]: predict with the bundled demo model on the bundled images",
        "",
        "Explains every kept prediction with its own class activation map and writes, under",
        "runs/<task>/cam (cam-2, cam-3, ... unless exist_ok=True), one folder per image:",
        "  detection.png  heatmap.png  heatmap.npy  cam.json  (+ maps.npy, maps/ with save_maps=True)",
        "and summary.json (settings, versions, counts, time per image, skipped inputs). A video gives",
        "heatmap.avi (.mp4 on macOS) and cam.jsonl (one line per frame) in its folder.",
        "Ctrl-C stops after the current batch and keeps every finished image (exit code 130).",
        "",
        "CAM keys:",
    ]
    lines += [_key_line(k, CAM_DEFAULTS[k], *CAM_KEY_HELP[k]) for k in CAM_DEFAULTS if k in CAM_KEY_HELP]
    from .api import PREDICT_DEFAULTS

    lines += ["", "Ultralytics keys (names and checks of 'yolo predict'; the defaults a CAM run uses):"]
    lines += _ultralytics_lines(PREDICT_KEYS, {**PREDICT_DEFAULTS, "save": True})
    lines += [
        "",
        "Large runs (docs/scale.md):",
        "  resume=True   continue the latest run after a crash or a kill (resume=DIR: that run folder)",
        "  engine=ray    the same run on a Ray Data actor pool; RAY_ADDRESS joins a cluster",
        '                (pip install "ultralytics-cam[ray]")',
        "  workers=N     engine=ray: actors in the pool (default: one per GPU, else the CPUs less one)",
    ]
    lines += [
        "",
        "Every other 'yolo' key is accepted and passed on to Ultralytics ('yolo cfg' lists them).",
        "Not accepted with CAM: " + "; ".join(f"{k} ({why})" for k, why in REFUSED_ULTRALYTICS_KEYS.items()) + ".",
        "verbose=False hides the progress bar.",
    ]
    return "\n".join(lines)


def val_help() -> str:
    """Return ``yolo-cam val help``."""
    from .config import CAM_DEFAULTS

    lines = [
        "yolo-cam val model=MODEL data=DATA.yaml [key=value ...]",
        "",
        "Runs Ultralytics' validation and saves, per image with a failure, the heatmaps of its failures",
        "(false positives and missed objects; semantic: the classes with the lowest IoU; depth: the grid cells",
        "with the largest error), with failures.json / failures.csv.",
        "",
        "CAM keys:",
    ]
    lines += [_key_line(k, "", text, ex) for k, (text, ex) in VAL_KEY_HELP.items()]
    lines += [
        _key_line(k, CAM_DEFAULTS[k], *CAM_KEY_HELP[k]) for k in CAM_DEFAULTS if k in CAM_KEY_HELP and k != "method"
    ]
    lines += ["", "Ultralytics keys (names, defaults and checks of 'yolo val'):"]
    lines += _ultralytics_lines(["model", "data", "imgsz", "batch", "device", "iou", "half", "project", "name"])
    lines += ["", "Every other 'yolo val' key is accepted and passed on to Ultralytics."]
    return "\n".join(lines)


def train_help() -> str:
    """Return ``yolo-cam train help``."""
    from .config import CAM_DEFAULTS
    from .integrations.train_cam import CLI_KEYS

    lines = [
        "yolo-cam train model=MODEL data=DATA.yaml [key=value ...]",
        "",
        "Runs Ultralytics' training; at the end of chosen epochs the EMA model that validation just scored explains",
        "fixed probe images. In the training folder: cam/epoch_<NNN>/ (the 'yolo-cam predict' layout per epoch),",
        "cam/timeline/<image>.mp4, cam/timeline.png, cam_metrics.csv and cam_metrics.png; the images also go to the",
        "trackers Ultralytics logs to (tensorboard, mlflow, wandb, clearml, comet, dvc). resume=True continues.",
        "",
        "Training CAM keys:",
    ]
    lines += [_key_line(k, "", text, ex) for k, (_, text, ex) in CLI_KEYS.items()]
    lines += [
        _key_line(k, CAM_DEFAULTS[k], *CAM_KEY_HELP[k]) for k in CAM_DEFAULTS if k in CAM_KEY_HELP and k != "region"
    ]
    lines += ["", "Ultralytics keys (names, defaults and checks of 'yolo train'):"]
    lines += _ultralytics_lines(["model", "data", "epochs", "imgsz", "batch", "device", "resume", "project", "name"])
    lines += ["", "Every other 'yolo train' key is accepted and passed on to Ultralytics."]
    return "\n".join(lines)


#: ``yolo-cam eval`` keys: description and example.
EVAL_KEY_HELP: dict[str, tuple[str, str]] = {
    "model": ("the model to evaluate (.pt)", "best.pt"),
    "source": ("images to evaluate on (the first max_images)", "imgs/"),
    "methods": ("methods to rank, separated by commas", "HiResCAM,LayerCAM,GradCAM,EigenCAM"),
    "layers": ("candidate layer sets separated by ';' or spaces, each in the layers= syntax", "'auto;16,19,22;9'"),
    "target": ("what each map explains (the task's default when not given)", "box"),
    "max_images": ("images of the source to use (default 20)", "50"),
    "protocol": ("default, or odexai: the ODExAI benchmark's settings (black fill, 2000 px steps)", "odexai"),
    "steps": ("equal steps per curve instead of the fine schedules (default: fine)", "20"),
    "fill": ("what deleted pixels become: gray (114), blur or road (noisy linear imputation)", "road"),
    "per_image": ("score at most this many predictions per image, by class and size (default all)", "5"),
    "inverted": ("also score every map inverted (default False)", "True"),
    "sanity": ("head-randomisation sanity check of every candidate (default True)", "False"),
    "early_stop": ("stop a deletion curve once its prediction is gone (not exact, see docs; default False)", "True"),
    "seed": ("seed of the random baseline, sampling, ROAD noise, sanity check and bootstrap", "1"),
    "conf": ("confidence threshold of the explained predictions (default 0.25)", "0.1"),
    "imgsz": ("model input size", "640"),
    "device": ("device to run on", "cpu"),
    "batch": ("perturbed images per forward pass (default 16)", "32"),
    "project": ("parent folder of the run folder (default runs/<task>)", "my_runs"),
    "name": ("run folder name (default eval, then eval2, ...)", "exp"),
    "exist_ok": ("write into an existing run folder", "True"),
    "verbose": ("show the progress bar (default True)", "False"),
    "max_det": ("at most this many predictions explained per image (Ultralytics' max_det)", "10"),
    "classes": ("explain only these classes (Ultralytics' classes)", "[0,2]"),
    "iou": ("NMS IoU threshold (Ultralytics' iou)", "0.5"),
}


def eval_help() -> str:
    """Return ``yolo-cam eval help``."""
    return "\n".join(
        [
            "yolo-cam eval model=MODEL source=SOURCE [methods=...] [layers='auto;16,19,22'] [key=value ...]",
            "",
            "Ranks every method x layer set on a sample of your images by faithfulness: insertion minus deletion",
            "area (the prediction's own score as its map's top pixels are removed or revealed), the mean of the",
            "image-level and box-level variants, with localisation (pointing game, energy in box) and ms per image.",
            "A random map, ConfidenceMap and the centre prior are scored the same way; a candidate 'beats' one only",
            "where the paired bootstrap 95 % interval of the difference excludes 0. The sanity column is the rank",
            "correlation of each map with the head's weights randomised ('!': the maps barely depend on the head).",
            "The cost is estimated and printed before the run starts (docs/eval.md).",
            "Prints the ranking and a recommendation; writes runs/<task>/eval: eval.json, eval.csv, figures/",
            "and index.html. Ctrl-C keeps the finished candidates (exit code 130).",
            "",
            *[_key_line(k, "", text, ex) for k, (text, ex) in EVAL_KEY_HELP.items()],
        ]
    )


def compare_help() -> str:
    """Return ``yolo-cam compare help``."""
    return "\n".join(
        [
            "yolo-cam compare model=A.pt,B.pt[,...] source=SOURCE [method=HiResCAM] [key=value ...]",
            "",
            "Runs one CAM method with every model on the same images (the first max_images) and saves a figure per",
            "image, a row per model with its detections and its heatmap, into runs/<task>/compare with index.html.",
            "Every model after the first is compared with the first, prediction by prediction: the correlation of",
            "their maps is in each row's label and in compare.json ('agreement'). Exported models (best.onnx,",
            "OpenVINO, TorchScript, ...) take method=DRISE: yolo-cam compare model=best.pt,best.onnx method=DRISE",
            "",
            _key_line("model", "", "two or more models, separated by commas; the first is the reference", "a.pt,b.pt"),
            _key_line("method", "HiResCAM", "the CAM method of every model", "DRISE"),
            *[
                _key_line(k, "", text, ex)
                for k, (text, ex) in EVAL_KEY_HELP.items()
                if k in ("source", "layers", "target", "max_images", "conf", "imgsz", "device", "project", "name")
            ],
            *[_key_line(k, "", *CAM_KEY_HELP[k]) for k in ("drise_masks", "drise_cell", "drise_keep", "seed")],
        ]
    )


def report_help() -> str:
    """Return ``yolo-cam report help``."""
    return "\n".join(
        [
            "yolo-cam report RUN_DIR",
            "",
            "(Re)builds RUN_DIR/index.html, the self-contained report of a run folder: predict runs (detection and",
            "heatmap per image, a sortable table of predictions, a class filter, pages of 50 images), eval rankings,",
            "comparisons and val failures. Open it in any browser; it needs no network.",
        ]
    )


def layers_help() -> str:
    """Return ``yolo-cam layers help``."""
    return "\n".join(
        [
            "yolo-cam layers model=MODEL [imgsz=640]",
            "",
            "Lists every top-level layer of the model: index, the layers it reads (from), type and output shape",
            "at imgsz; the layers that layers=auto reads are marked 'auto'. Use the indices in layers=16,19,22.",
            "",
            *_ultralytics_lines(["model", "imgsz"]),
        ]
    )


def app_help() -> str:
    """Return ``yolo-cam app help``."""
    return "\n".join(
        [
            "yolo-cam app [host=127.0.0.1] [port=7860] [lang=en] [model=MODEL] [source=FOLDER] [project=FOLDER]",
            "",
            "Starts a local web app for batch heatmaps and prints its URL; open it in a browser. Choose the input",
            "folder, the weights, the method, the layers, the device, conf, max_det and imgsz, press Start and watch",
            "the progress and the gallery; Stop keeps every finished image. A run from the app is a 'yolo-cam",
            'predict\' run: same folders, same summary.json. Needs the extra: pip install "ultralytics-cam[app]".',
            "",
            "Keys:",
            _key_line("host", "127.0.0.1", "address to listen on; only this machine can connect by default", "0.0.0.0"),
            _key_line("port", None, "port to listen on; by default the first free one from 7860", "8080"),
            _key_line("lang", "en", "language of the page: en, zh-Hans (简体中文), zh-Hant (繁體中文)", "zh-Hans"),
            _key_line("model", None, "weights the form starts with (default: the bundled demo model)", "best.pt"),
            _key_line("source", None, "input folder the form starts with (default: the bundled demo images)", "imgs/"),
            _key_line("project", None, "output folder the form starts with (default: runs/<task>)", "my_runs"),
        ]
    )


#: ``yolo-cam MODE help`` of the modes that take no keys.
MODE_HELP_TEXTS = {
    "methods": "yolo-cam methods\n\nLists every CAM method: name (for method=), whether it needs gradients, "
    "whether each prediction gets its own map, where it comes from, and the refused methods with the reason.",
    "plugins": "yolo-cam plugins\n\nLists the installed plugins (entry-point group 'ultralytics_cam') and the "
    "methods, targets and writers each registers.",
    "version": "yolo-cam version\n\nPrints the versions of ultralytics-cam, ultralytics, torch, grad-cam, OpenCV, "
    "NumPy and Python.",
}


def methods_text() -> str:
    """Return ``yolo-cam methods``: every method with gradients / per-prediction / source / summary; refused after."""
    from .plugins import method_specs

    specs = list(method_specs(include_unknown=True).values())
    ok = [s for s in specs if s.refused is None]
    refused = [s for s in specs if s.refused is not None]
    width = max(len(s.name) for s in specs) + 2
    lines = [f"{'method':<{width}}{'gradients':<11}{'per-box':<9}{'from':<17}summary"]
    lines.extend(
        f"{s.name:<{width}}{'yes' if s.needs_gradients else 'no':<11}{'yes' if s.per_prediction else 'no':<9}"
        f"{s.source:<17}{s.summary}"
        for s in ok
    )
    if refused:
        lines += ["", "Not available:"]
        lines += [f"{s.name:<{width}}{s.refused}" for s in refused]
    lines += ["", "Use: yolo-cam predict model=best.pt source=imgs/ method=NAME (case-insensitive)."]
    return "\n".join(lines)


def layers_text(net: torch.nn.Module, model_name: str, imgsz: int | Sequence[int] = 640) -> str:
    """Return ``yolo-cam layers``: index, from, type and output shape of every layer; ``auto`` ones marked."""
    from .layers import layer_table

    rows = layer_table(net, imgsz)
    lines = [
        f"{model_name}: {len(rows)} layers, output shapes at imgsz={imgsz}; 'auto' marks what layers=auto reads",
        f"{'index':>5}  {'from':<14}{'type':<22}{'output shape':<22}note",
    ]
    for r in rows:
        shape = "x".join(map(str, r["shape"])) if isinstance(r["shape"], tuple) else str(r["shape"])
        note = "auto" if r["auto"] else ("" if r["usable"] else "not a feature map")
        src = str(r["from"]).replace(" ", "")
        lines.append(f"{r['index']:>5}  {src:<14}{r['type']:<22}{shape:<22}{note}".rstrip())
    auto = ",".join(str(r["index"]) for r in rows if r["auto"])
    lines += [
        "",
        f"Use: layers=auto (= {auto}), indices such as layers={auto}, or names such as model.{auto.split(',')[0]}.",
    ]
    return "\n".join(lines)


def plugins_text() -> str:
    """Return ``yolo-cam plugins``: each plugin, then every registered method, target and writer with its provider."""
    from . import plugins
    from .errors import PluginError

    lines = ["plugins:"]
    for info in plugins.plugin_infos():
        where = f"{info.dist} {info.version}".strip() or "?"
        what = ", ".join(f"{len(names)} {kind}{'s' * (len(names) > 1)}" for kind, names in info.registered.items())
        status = f"  ERROR: {info.error}" if info.error else ""
        lines.append(f"  {info.name:<24}{where:<28}{what}{status}".rstrip())
    lines.append("")
    groups: list[tuple[str, Callable[[], Sequence[Spec]]]] = [
        ("methods", plugins.registered_method_specs),
        ("targets", plugins.registered_target_specs),
        ("writers", plugins.registered_writer_specs),
    ]
    for kind, collect in groups:
        try:
            specs = collect()
        except PluginError as e:  # two plugins register one name: say so here and list the other groups
            lines += [f"{kind}: ERROR: {e}", ""]
            continue
        lines.append(f"{kind} ({len(specs)}):")
        for s in specs:
            state = "  (refused)" if getattr(s, "refused", None) else ""
            lines.append(f"  {s.name:<22}{getattr(s, 'provider', ''):<20}{getattr(s, 'summary', '')}{state}".rstrip())
        lines.append("")
    return "\n".join(lines).rstrip()


def version_text() -> str:
    """Return ``yolo-cam version``: one ``name version`` line per package."""
    from .summary import versions

    return "\n".join(f"{name} {v}" for name, v in versions().items())
