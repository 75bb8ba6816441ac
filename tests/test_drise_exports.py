"""Exported models: DRISE runs through Ultralytics' own backend for ONNX, TorchScript and OpenVINO, the maps agree with
the .pt's, gradient methods are refused naming the backend, and ``yolo-cam predict`` / ``compare`` take the exports.

The small trained test models are exported inside the session (conftest ``exported``, once per task and format). With
the same seed every backend sees the same masks, so an fp32 export's maps equal the .pt's up to the backends' float
differences: measured here (160 px, 32 masks) a correlation above 0.999 on every backend and task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ultralytics_cam.agreement import map_agreement, summarise_agreement
from ultralytics_cam.blackbox import BlackBoxEngine
from ultralytics_cam.errors import UnsupportedModelError

from conftest import render, trained

# AutoBackend loads TorchScript with torch.jit.load, which torch 2.14 marks deprecated (Ultralytics' call, not ours).
pytestmark = pytest.mark.filterwarnings("ignore:.torch.jit.load. is deprecated:FutureWarning")

KW = {"method": "DRISE", "drise_masks": 32, "verbose": False}
#: Lowest correlation of a matched prediction's maps between the .pt and an fp32 export (measured above 0.999).
MIN_CORRELATION = 0.99


def load(path, task):
    from ultralytics import YOLO

    return YOLO(str(path), task=task)


@pytest.mark.parametrize(
    ("task", "fmt"),
    [
        ("detect", "onnx"),
        ("detect", "torchscript"),
        ("detect", "openvino"),
        ("segment", "onnx"),
        ("pose", "onnx"),
        ("obb", "onnx"),
        ("classify", "onnx"),
    ],
)
def test_drise_on_an_export_gives_the_maps_of_the_pt(exported, task, fmt):
    model = load(exported(task, fmt), task)
    im = render(task, seed=3, imgsz=96 if task == "classify" else 160)[0]
    (r,) = model.cam(im, **KW)
    (ref,) = trained(task).cam(im, **KW)
    assert len(r.cam) == len(ref.cam) > 0 and r.cam.method == "DRISE"
    rows = map_agreement(ref, r)
    summary = summarise_agreement(rows)
    assert summary["matched"] == len(rows), rows  # the export finds the same predictions
    assert summary["min_correlation"] >= MIN_CORRELATION, rows


def test_a_static_batch_one_export_runs_one_masked_image_per_forward(exported, monkeypatch):
    batches = []
    real = BlackBoxEngine._proposals

    def counted(self, masked, result, postprocess):
        batches.append((self.batch, len(masked)))
        return real(self, masked, result, postprocess)

    monkeypatch.setattr(BlackBoxEngine, "_proposals", counted)
    load(exported("detect", "onnx"), "detect").cam(render("detect", seed=3)[0], **{**KW, "drise_masks": 5})
    assert batches == [(1, 1)] * 5  # exported with batch=1 and without dynamic=True: one image per forward


def test_gradient_methods_on_an_export_are_refused_naming_the_backend_and_drise(exported):
    model = load(exported("detect", "onnx"), "detect")
    with pytest.raises(UnsupportedModelError, match=r"method 'HiResCAM' needs gradients.*onnx export.*method='DRISE'"):
        model.cam(render("detect", seed=3)[0])
    with pytest.raises(UnsupportedModelError, match="torchscript export"):
        load(exported("detect", "torchscript"), "detect").cam(render("detect", seed=3)[0], method="EigenCAM")


def test_yolo_cam_predict_and_compare_take_an_export(exported, tmp_path):
    """The CLI in-process (its subprocess twin would only add start-up time): predict on the ONNX, then compare."""
    import cv2

    from ultralytics_cam import cli

    onnx = exported("detect", "onnx")
    pt = onnx.with_suffix(".pt")
    image = tmp_path / "shapes.png"
    cv2.imwrite(str(image), render("detect", seed=3)[0])
    code = cli.main(["predict", f"model={onnx}", f"source={image}", "method=DRISE", "drise_masks=16",
                     f"project={tmp_path}", "name=p", "verbose=False"])  # fmt: skip
    assert code == cli.EXIT_OK
    cam = json.loads((tmp_path / "p" / "shapes" / "cam.json").read_text(encoding="utf-8"))
    assert cam["method"] == "DRISE" and cam["predictions"]
    assert cli.main(["predict", f"model={onnx}", f"source={image}", f"project={tmp_path}"]) == cli.EXIT_USAGE
    code = cli.main(["compare", f"model={pt},{onnx}", f"source={image}", "method=DRISE", "drise_masks=16",
                     f"project={tmp_path}", "name=c"])  # fmt: skip
    assert code == cli.EXIT_OK
    data = json.loads((tmp_path / "c" / "compare.json").read_text(encoding="utf-8"))
    assert data["reference"] == pt.name and data["models"] == [pt.name, onnx.name]
    agreement = data["agreement"][onnx.name]
    assert agreement["matched"] == agreement["predictions"] > 0
    assert agreement["min_correlation"] >= MIN_CORRELATION
    assert (tmp_path / "c" / data["images"][0]["figure"]).is_file()


def test_compare_reports_when_two_models_look_at_different_things():
    """The correlation can fail: the same predictions explained by DRISE and by ConfidenceMap's box fill disagree."""
    im = render("detect", seed=11)[0]
    (a,) = trained("detect").cam(im, **KW)
    (b,) = trained("detect").cam(im, method="ConfidenceMap", verbose=False)
    rows = map_agreement(a, b)
    assert all(row["match"] == row["prediction"] for row in rows)  # the same model: the same rows
    assert np.mean([row["correlation"] for row in rows]) < 0.9


def test_the_val_failure_hook_explains_an_exports_failures_with_drise(exported, tmp_path):
    """``model.val`` of an ONNX export with the hook: the deliberate failures are found and each gets its map."""
    from test_val_failures import IMGSZ, VAL, _clean, _edited, _found, _write_detection_set

    from ultralytics_cam import add_val_failure_hook

    model = trained("detect")
    clean = _clean(model, "detect", 3, seed=1000, root=tmp_path, min_objects=2)
    images, expected = {}, {}
    for name, edit, k in (("a_drop", "drop", 0), ("b_add", "add", 1), ("c_change", "change", 2)):
        objects, failure = _edited("detect", clean[k:] + clean[:k], edit)
        images[name] = (clean[k][0], objects)
        expected[f"{name}.png"] = failure
    data = _write_detection_set(tmp_path / "shapes", "detect", images)
    onnx = load(exported("detect", "onnx"), "detect")
    add_val_failure_hook(onnx, method="DRISE", drise_masks=32, strict=True)
    metrics = onnx.val(data=str(data), imgsz=IMGSZ, project=str(tmp_path), name="val", **VAL)
    folder = tmp_path / "val" / "cam_failures"
    report = json.loads((folder / "failures.json").read_text(encoding="utf-8"))
    assert metrics.box.map50 > 0 and report["method"] == "DRISE" and report["layers"] == []
    assert _found(report) == expected
    for row in report["failures"]:
        assert len(row["files"]) == (3 if row["kind"] == "wrong_class" else 2)
        assert all((folder / f).is_file() for f in row["files"])
    missed = next(r for r in report["failures"] if r["kind"] == "missed")
    assert missed["map_confidence"] == [pytest.approx(missed["confidence"], abs=1e-5)]  # nothing is drawn there
    wrong = next(r for r in report["failures"] if r["kind"] == "wrong_class")
    assert wrong["map_confidence"][0] > wrong["map_confidence"][1]  # the model prefers what is drawn


def test_the_app_runs_drise_on_an_export_and_refuses_gradient_methods_there(exported, tmp_path):
    import importlib.util

    import cv2

    from conftest import require

    require(importlib.util.find_spec("gradio") is not None, "the app needs pip install 'ultralytics-cam[app]'")
    from ultralytics_cam.app.choices import model_info
    from ultralytics_cam.app.runner import RunController
    from ultralytics_cam.app.settings import FormError, build_settings

    onnx = exported("detect", "onnx")
    source = tmp_path / "imgs"
    source.mkdir()
    cv2.imwrite(str(source / "shapes.png"), render("detect", seed=3)[0])
    form = {"model": str(onnx), "source": str(source), "project": str(tmp_path / "out"), "imgsz": 160}
    with pytest.raises(FormError, match=r"Gradient methods need PyTorch weights.*choose method DRISE"):
        build_settings(**form, method="HiResCAM")
    settings = build_settings(**form, method="DRISE")
    settings.cam["drise_masks"] = 16  # the form keeps DRISE's default; a test needs fewer masks
    info = model_info(str(onnx), 160)
    assert info.task == "detect" and info.layers == []  # an export has no layer table
    controller = RunController()
    controller.start(settings)
    state = controller.wait(120)
    assert state.status == "completed", state.failure
    assert [i.name for i in state.items] == ["shapes.png"] and Path(state.items[0].heatmap).is_file()
