"""Semantic segmentation and depth (issue 10): rows, targets, region=, methods, invariants, oracle, CLI and callbacks.

YAML-built YOLO26 models (Ultralytics ships semantic and depth configs for YOLO26 only) at two scales, on a square
copy of bus.jpg at the input size, so the letterbox (semantic) and the stretch (depth) are the identity and the rows
can be checked pixel for pixel against what ``Results`` shows.
"""

from __future__ import annotations

import copy
import functools
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_cli import _save_dir, yolo_cam  # noqa: F401 - the fixture runs the installed console script
from test_invariants import assert_unchanged, snapshot

from ultralytics_cam import MethodError, TargetError
from ultralytics_cam.plugins import method_specs

from conftest import trained, yaml_model

SIZE = 96  # the input size: a SIZE x SIZE image is fed unchanged
SEM = ["yolo26n-sem.yaml", "yolo26s-sem.yaml"]
DEPTH = ["yolo26n-depth.yaml", "yolo26s-depth.yaml"]


@pytest.fixture(scope="module")
def image(assets):
    return cv2.resize(cv2.imread(str(assets / "bus.jpg")), (SIZE, SIZE))


@functools.cache
def cached(task):
    """One model per task for the tests that only read it (the method sweep)."""
    return semantic_model() if task == "semantic" else depth_model()


def semantic_model(name="yolo26n-sem.yaml"):
    """A random-weight semantic model whose classifier is scaled up, so several classes share the image."""
    model = yaml_model(name)
    conv = model.model.model[-1].classifier[-1]
    gen = torch.Generator().manual_seed(0)
    conv.weight.data = torch.randn(conv.weight.shape, generator=gen)  # 14 of 19 classes paint part of the image
    conv.bias.data.zero_()
    return model


def depth_model(name="yolo26n-depth.yaml"):
    """A random-weight depth model whose output layer is redrawn: the default one predicts an almost constant depth
    (1.1994-1.2027 m on bus.jpg), whose nearest and farthest 10 % are plateaus of float ties."""
    model = yaml_model(name)
    conv = model.model.model[-1].head[-1]
    gen = torch.Generator().manual_seed(0)
    conv.weight.data = torch.randn(conv.weight.shape, generator=gen) * 0.5
    return model


def to_tensor(image):
    return torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255


# -- rows --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SEM)
def test_semantic_rows_are_the_painted_classes_largest_first(name, image):
    model = semantic_model(name)
    (r,) = model.cam(image, imgsz=SIZE, verbose=False)
    painted = r.semantic_mask.data.cpu().numpy()
    ids, counts = np.unique(painted, return_counts=True)
    assert len(ids) >= 2  # the test means something only with several classes
    assert set(r.cam.cls.tolist()) == set(ids.tolist())
    areas = [row["area"] for row in r.cam.rows]
    assert areas == sorted(areas, reverse=True)
    for c, row in zip(r.cam.cls.tolist(), r.cam.rows):
        assert row["class"] == c and row["name"] == r.names[c]
        assert row["area"] == pytest.approx(counts[ids == c][0] / painted.size, abs=1e-6)
    maps = r.cam.maps
    assert maps.shape == (len(ids), SIZE, SIZE) and np.isfinite(maps).all() and maps.max() <= 1 and maps.min() >= 0
    assert r.cam.target == "class" and r.cam.layers == [16]  # auto: the classifier's input (P4 feeds the aux head)


def test_semantic_rows_follow_results_through_the_letterbox(assets):
    """bus.jpg (810 x 1080) letterboxed into 96 px: the rows are still exactly the classes ``Results`` paints, and the
    maps come back at the original size with the padding cropped."""
    model = cached("semantic")
    (r,) = model.cam(str(assets / "bus.jpg"), imgsz=SIZE, verbose=False)
    painted = r.semantic_mask.data.cpu().numpy()
    assert set(r.cam.cls.tolist()) == set(np.unique(painted).tolist())
    assert r.cam.maps.shape == (len(r.cam), 1080, 810) and np.isfinite(r.cam.maps).all()
    assert r.cam.geometry.kind == "letterbox"


def test_semantic_classes_and_region_restrict_the_rows(image):
    model = semantic_model()
    (full,) = model.cam(image, imgsz=SIZE, verbose=False)
    keep = full.cam.cls.tolist()[1:]
    (some,) = model.cam(image, imgsz=SIZE, classes=keep, verbose=False)
    assert some.cam.cls.tolist() == keep
    box = [0, 0, SIZE // 3, SIZE // 3]
    (part,) = model.cam(image, imgsz=SIZE, region=box, verbose=False)
    inside = np.unique(full.semantic_mask.data.cpu().numpy()[: SIZE // 3, : SIZE // 3])
    assert set(part.cam.cls.tolist()) == set(inside.tolist())
    assert all(row["region"] == [[0.0, 0.0, SIZE // 3, SIZE // 3]] for row in part.cam.rows)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[: SIZE // 3, : SIZE // 3] = True
    (masked,) = model.cam(image, imgsz=SIZE, region=mask, verbose=False)
    assert masked.cam.cls.tolist() == part.cam.cls.tolist()
    np.testing.assert_allclose(masked.cam.maps, part.cam.maps, atol=1e-6)


@pytest.mark.parametrize("name", DEPTH)
def test_depth_targets_and_regions(name, image):
    model = depth_model(name)
    rows = {}
    for target in ("near", "far", "mean"):
        (r,) = model.cam(image, imgsz=SIZE, target=target, verbose=False)
        assert len(r.cam) == 1 and r.cam.target == target and r.cam.rows[0]["target"] == target
        rows[target] = r.cam.rows[0]["depth"]
    depth = r.depth.data.cpu().numpy()
    assert rows["mean"] == pytest.approx(float(depth.mean()), rel=1e-4)
    assert rows["near"] <= rows["mean"] <= rows["far"]
    k = round(0.1 * depth.size)
    ordered = np.sort(depth.ravel())
    assert rows["near"] == pytest.approx(float(depth[depth <= ordered[k - 1]].mean()), rel=1e-5)  # ties included
    assert rows["far"] == pytest.approx(float(depth[depth >= ordered[-k]].mean()), rel=1e-5)
    (default,) = model.cam(image, imgsz=SIZE, verbose=False)
    assert default.cam.target == "near"  # the default target of depth
    boxes = [[0, 0, 48, 48], [40, 30, 96, 90]]
    (r,) = model.cam(image, imgsz=SIZE, region=boxes, verbose=False)
    assert r.cam.target == "mean" and len(r.cam) == 2  # region= without a target: the mean depth of each box
    for (x1, y1, x2, y2), row in zip(boxes, r.cam.rows):
        assert row["region"] == [x1, y1, x2, y2]
        assert row["depth"] == pytest.approx(float(depth[y1:y2, x1:x2].mean()), rel=1e-4)
    assert r.cam.maps.shape == (2, SIZE, SIZE) and np.isfinite(r.cam.maps).all()


# -- every method runs or is refused with the reason -----------------------------------------------------------------
REFUSED = {
    "ConfidenceMap": "draws each prediction's box",
    "DRISE": "pixel regions without one",
    "FullGrad": "not supported",
    "SESS": "not supported",
}
SLOW = {"ScoreCAM", "AblationCAM"}  # one forward per channel group: ~20-30 s on the depth head at 64 px


@pytest.mark.parametrize("task", ["semantic", "depth"])
@pytest.mark.parametrize(
    "method", [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in method_specs()]
)
def test_every_method_runs_or_is_refused_with_the_reason(task, method, image):
    model = cached(task)
    small = cv2.resize(image, (64, 64))
    expected = REFUSED.get(method)
    if task == "depth" and method == "FinerCAM":
        expected = "explains only target 'class'"  # depth has no classes to compare
    if expected:
        with pytest.raises(MethodError, match=expected):
            model.cam(small, method=method, imgsz=64, verbose=False)
        return
    (r,) = model.cam(small, method=method, imgsz=64, verbose=False)
    assert len(r.cam) >= 1
    maps = r.cam.maps
    assert maps.shape[1:] == (64, 64) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


# -- bad input ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("region", "message"),
    [
        ([10, 10, 5, 20], "region=.*is not a box"),
        ("a,b", "region='a,b' is not valid"),
        ([1, 2, 3], "region=.*is not a box"),
        (np.zeros((4, 4), np.uint8), "boolean"),
    ],
)
def test_bad_region_is_refused_naming_the_option(region, message):
    with pytest.raises(ValueError, match=message):
        yaml_model("yolo26n-depth.yaml").cam(np.zeros((32, 32, 3), np.uint8), region=region, imgsz=32)


def test_options_that_do_not_fit_the_task_are_refused(image):
    with pytest.raises(TargetError, match="target='near' is not available for task 'semantic'"):
        semantic_model().cam(image, target="near", imgsz=SIZE)
    with pytest.raises(TargetError, match="Valid targets: near, far, mean"):
        yaml_model("yolo26n-depth.yaml").cam(image, target="box", imgsz=SIZE)
    with pytest.raises(ValueError, match="region= applies to semantic and depth models"):
        yaml_model("yolo11n.yaml").cam(image, region=[0, 0, 10, 10], imgsz=SIZE)
    with pytest.raises(ValueError, match="region= mask has shape"):
        semantic_model().cam(image, region=np.ones((10, 10), bool), imgsz=SIZE)


def test_val_failure_hook_accepts_dense_tasks_and_checks_their_options():
    """Semantic and depth models take the hook (behaviour: tests/test_val_failures_dense.py); bad options still fail."""
    from ultralytics_cam import add_val_failure_hook

    for name in ("yolo26n-sem.yaml", "yolo26n-depth.yaml"):
        model = yaml_model(name)
        add_val_failure_hook(model)
        assert any(getattr(f, "_ultralytics_cam", False) for f in model.callbacks["on_val_start"])
        with pytest.raises(ValueError, match="kinds"):
            add_val_failure_hook(model, kinds=("low_io",))


# -- the model is left as it was ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["yolo26n-sem.yaml", "yolo26n-depth.yaml"])
def test_model_is_unchanged_and_predict_identical(name, image):
    model = yaml_model(name)
    kw = {"imgsz": SIZE, "verbose": False}
    plain_before = model.predict(image, **kw)[0]
    before = snapshot(model)
    model.cam(image, method="GradCAM", **kw)
    model.cam(image, method="EigenCAM", **kw)
    assert_unchanged(model, before)
    plain_after = model.predict(image, **kw)[0]
    field = "semantic_mask" if "sem" in name else "depth"
    assert torch.equal(getattr(plain_before, field).data, getattr(plain_after, field).data)


# -- oracle: grad-cam's own classes on the same scalar target ---------------------------------------------------------
class Outputs(torch.nn.Module):
    """The raw head output, per image (nc, h, w) logits or (1, h, w) depth: grad-cam hands it to each target."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, (list, tuple)) else out


def grad_cam_maps(net, layers, x, targets, method):
    import pytorch_grad_cam

    net = copy.deepcopy(net).eval()
    for p in net.parameters():  # trained checkpoints are saved frozen; grad-cam needs something that requires grad
        p.requires_grad_(True)
    cam = getattr(pytorch_grad_cam, method)(Outputs(net), [net.model[i] for i in layers])
    try:
        return cam(x.repeat(len(targets), 1, 1, 1), targets)
    finally:
        cam.activations_and_grads.release()


def rescaled(ref):
    """Divide each map by its own peak (grad-cam divides by ``1e-7 + max``, visible on random weights)."""
    peak = ref.reshape(len(ref), -1).max(1)[:, None, None]
    return np.where(peak > 0, ref / np.where(peak > 0, peak, 1), 0)


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("method", ["GradCAM", "HiResCAM", "XGradCAM", "LayerCAM", "GradCAMPlusPlus"])
def test_semantic_maps_match_grad_cam(method, weights, image):
    """Target: the class's logits, bilinearly upsampled to the input as the predictor does, summed over the pixels
    painted as that class (the painted map recomputed here from the raw logits, independently of our code); on a
    random-weight model and on the project's trained one (scripts/make_test_models.py)."""
    model = semantic_model() if weights == "random" else trained("semantic")
    (r,) = model.cam(image, method=method, layers=[16], imgsz=SIZE, verbose=False)
    x = to_tensor(image)
    with torch.no_grad():
        logits = Outputs(model.model.eval())(x)
    painted = F.interpolate(logits, (SIZE, SIZE), mode="bilinear", align_corners=False)[0].argmax(0)
    targets = [
        lambda out, c=int(c): (
            F.interpolate(out[None, c : c + 1], (SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
            * (painted == c)
        ).sum()
        for c in r.cam.cls
    ]
    ref = grad_cam_maps(model.model, [16], x, targets, method)
    np.testing.assert_allclose(r.cam.maps_input.numpy(), rescaled(ref), atol=2e-3)


@pytest.mark.parametrize("weights", ["random", "trained"])
@pytest.mark.parametrize("target", ["near", "far"])
@pytest.mark.parametrize("method", ["GradCAM", "HiResCAM", "LayerCAM"])
def test_depth_maps_match_grad_cam(method, target, weights, image):
    """Target: the mean of the upsampled depth over the nearest (negated) / farthest 10 % of the pixels.

    The pixels are picked on ``r.depth`` (the same numbers our selection saw): random-weight depth heads predict
    plateaus (12 distinct values on bus.jpg at 96 px), so a pick made on a second forward would differ by float noise
    at the cut. The target itself is evaluated on grad-cam's own forward."""
    model = depth_model() if weights == "random" else trained("depth")
    (r,) = model.cam(image, method=method, target=target, layers=[22], imgsz=SIZE, verbose=False)
    x = to_tensor(image)
    depth = torch.as_tensor(r.depth.data).float()
    values = depth.flatten().sort().values
    k = round(0.1 * depth.numel())
    pick = depth <= values[k - 1] if target == "near" else depth >= values[-k]
    sign = -1 if target == "near" else 1

    def value(out):
        up = F.interpolate(out[None], (SIZE, SIZE), mode="bilinear", align_corners=True)[0, 0]
        return sign * (up * pick).sum() / pick.sum()

    ref = grad_cam_maps(model.model, [22], x, [value], method)
    np.testing.assert_allclose(r.cam.maps_input.numpy(), rescaled(ref), atol=2e-3)


# -- callbacks and the command line ------------------------------------------------------------------------------------
def test_predict_callbacks_attach_the_same_maps(image):
    from ultralytics_cam import add_cam_callbacks

    model = yaml_model("yolo26n-depth.yaml")
    (want,) = model.cam(image, imgsz=SIZE, method="HiResCAM", verbose=False)
    add_cam_callbacks(model, method="HiResCAM", strict=True)
    (got,) = model.predict(image, imgsz=SIZE, verbose=False)
    assert got.cam.rows == want.cam.rows
    np.testing.assert_allclose(got.cam.maps, want.cam.maps, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra"), [("yolo26n-sem.yaml", ()), ("yolo26n-depth.yaml", ("region=0,0,40,40",))])
def test_cli_predict_writes_the_layout(yolo_cam, tmp_path, image, name, extra):  # noqa: F811
    cv2.imwrite(str(tmp_path / "im.jpg"), image)
    proc = yolo_cam("predict", f"model={name}", "source=im.jpg", f"imgsz={SIZE}", *extra)
    assert proc.returncode == 0, proc.stderr
    folder = _save_dir(proc) / "im"
    for f in ("detection.png", "heatmap.png", "cam.json"):
        assert (folder / f).is_file(), f
    record = json.loads((folder / "cam.json").read_text())
    assert record["task"] == ("semantic" if "sem" in name else "depth")
    assert record["rows"] and len(record["rows"]) == len(record["predictions"])
    if extra:
        assert record["target"] == "mean" and record["rows"][0]["region"] == [0, 0, 40, 40]
    plot = cv2.imread(str(folder / "detection.png"))
    assert plot.shape[:2] == (SIZE, SIZE) and not np.array_equal(plot, image)  # Ultralytics drew its own plot


# -- locality: a region's map cannot leave the region's receptive field ------------------------------------------------
@pytest.mark.parametrize("method", ["HiResCAM", "LayerCAM", "GradCAMElementWise"])
def test_semantic_region_map_stays_inside_the_region_receptive_field(method, image):
    """An exact property, on any weights: with region=[0, 0, 32, 32] the target reads input pixels 0-31, i.e. (bilinear,
    align_corners=False, stride 8) logit cells 0-4, which the classifier's 3x3 conv reads from head-input cells 0-5.
    Element-wise maps are therefore zero from cell 7 on (input pixel 56; cell 6 is zero, the map's bilinear upsampling
    reaches from cell 5 to pixel 52) and carry their energy in the region's corner."""
    model = cached("semantic")
    (r,) = model.cam(image, method=method, region=[0, 0, 32, 32], imgsz=SIZE, verbose=False)
    assert len(r.cam) >= 1
    maps = r.cam.maps
    assert maps.max() > 0
    assert np.abs(maps[:, 56:, :]).max() == 0 and np.abs(maps[:, :, 56:]).max() == 0
    (full,) = model.cam(image, method=method, imgsz=SIZE, verbose=False)
    assert np.abs(full.cam.maps[:, 56:, 56:]).max() > 0  # without region= the same classes light up elsewhere too


@pytest.mark.parametrize("task", ["semantic", "depth"])
def test_a_batch_explains_each_image_as_alone(task, image):
    """The dense backward packs images into one batched backward: each image's rows and maps equal a run on it alone."""
    model = cached(task)
    other = np.ascontiguousarray(image[:, ::-1])
    kw = {"imgsz": SIZE, "verbose": False, "method": "HiResCAM"}
    together = model.cam([image, other], batch=2, **kw)
    for im, r in zip([image, other], together):
        (alone,) = model.cam(im, **kw)
        assert r.cam.rows == alone.cam.rows
        np.testing.assert_allclose(r.cam.maps, alone.cam.maps, atol=1e-4)


@pytest.mark.parametrize("task", ["semantic", "depth"])
def test_aug_smooth_keeps_the_rows_and_changes_the_maps(task, image):
    """aug_smooth (six flipped / brightened passes, each row's pixels mirrored with the input) keeps the rows."""
    model = cached(task)
    (plain,) = model.cam(image, imgsz=SIZE, verbose=False)
    (r,) = model.cam(image, imgsz=SIZE, aug_smooth=True, verbose=False)
    assert r.cam.rows == plain.cam.rows
    maps = r.cam.maps
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0
    assert not np.allclose(maps, plain.cam.maps, atol=1e-3)


def test_plugin_target_reads_the_dense_selection(image):
    """A plugin's target gets the rows' pixels (``DenseSelection.masks``) and is the one used: here minus the mean
    logit (a positive multiple of the class target would give the same min-max scaled maps, so the negative makes the
    maps differ from target="class", and the calls are counted)."""
    from ultralytics_cam import TargetSpec, hookimpl
    from ultralytics_cam.heads import Block
    from ultralytics_cam.plugins import get_plugin_manager, reset

    calls = []

    def mean_logit(ctx):
        calls.append([len(s) for s in ctx.selections])
        sums = ctx.adapter.block(Block.CLASS_LOGIT, ctx.head_out, ctx.selections, ctx.imgsz)
        return [-v / s.masks.sum((1, 2)).clamp(min=1) for v, s in zip(sums, ctx.selections)]

    class Plugin:
        @hookimpl
        def ultralytics_cam_register_targets(self):
            return [TargetSpec("mean_logit", mean_logit, tasks=("semantic",), summary="mean class logit")]

    reset()
    try:
        get_plugin_manager().register(Plugin(), name="dense-test")
        model = cached("semantic")
        (r,) = model.cam(image, target="mean_logit", imgsz=SIZE, verbose=False)
        (c,) = model.cam(image, target="class", imgsz=SIZE, verbose=False)
        assert r.cam.target == "mean_logit" and r.cam.rows == c.cam.rows
        assert calls and all(n == len(r.cam) for batch in calls for n in batch), calls  # each row's target
        assert not np.allclose(r.cam.maps, c.cam.maps, atol=1e-3)  # the plugin's target made these maps
        with pytest.raises(TargetError, match="not available for task 'depth'"):
            cached("depth").cam(image, target="mean_logit", imgsz=SIZE)
    finally:
        reset()
