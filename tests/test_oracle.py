"""Oracle tests: our per-prediction maps equal grad-cam's own classes applied directly to the same target, layers
and input (grad-cam needs the image repeated once per prediction and its hooks; we use one batched backward)."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from conftest import render, trained, yaml_model

SIZE = 160  # a square image of the input size: the letterbox is the identity, so both sides see the same tensor


@pytest.fixture(scope="module")
def shapes_image():
    """A synthetic 160 px image with three shapes, the input size of the trained models."""
    return render("detect", seed=11)[0]


@pytest.fixture(scope="module")
def image(assets):
    return cv2.resize(cv2.imread(str(assets / "bus.jpg")), (SIZE, SIZE))


def to_tensor(image):
    return torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255


class DetectScores(torch.nn.Module):
    """grad-cam pairs target i with output row i: give it each image's raw class logits (nc, anchors)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[1]["scores"]


class ClassifyLogits(DetectScores):
    def forward(self, x):
        return self.net(x)[1]


def reference(net, wrapper, layers, x, targets, cls_name, **call):
    import pytorch_grad_cam

    net = copy.deepcopy(net).eval()
    for p in net.parameters():  # trained checkpoints are saved frozen; grad-cam needs something that requires grad
        p.requires_grad_(True)
    cam = getattr(pytorch_grad_cam, cls_name)(wrapper(net), [net.model[i] for i in layers])
    try:
        return cam(x.repeat(len(targets), 1, 1, 1), targets, **call)
    finally:
        base = getattr(cam, "base_cam", cam)
        if hasattr(base, "activations_and_grads"):
            base.activations_and_grads.release()


def rescaled(ref):
    """Undo grad-cam's absolute epsilon: it divides by ``1e-7 + max``, so maps whose raw values are ~1e-7 (random
    weights) never reach 1. Dividing each map by its own max compares the shapes, which is what must be equal."""
    peak = ref.reshape(len(ref), -1).max(1)[:, None, None]
    return np.where(peak > 0, ref / np.where(peak > 0, peak, 1), 0)


def ours(model, image, method, layers, **kw):
    (r,) = model.cam(image, method=method, layers=layers, imgsz=SIZE, **kw)
    return r.cam


DETECT_METHODS = ["GradCAM", "HiResCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "GradCAMElementWise", "ShapleyCAM"]
SCALE_FREE = ["GradCAM", "HiResCAM", "XGradCAM", "LayerCAM", "GradCAMElementWise"]  # maps ignore the target's scale


@pytest.mark.parametrize(
    ("method", "layers"),
    [(m, [16]) for m in DETECT_METHODS] + [(m, [16, 19, 22]) for m in DETECT_METHODS if m != "ShapleyCAM"],
)  # grad-cam's ShapleyCAM supports a single layer only (its HVP frees the graph)
def test_trained_detector_maps_match_grad_cam(method, layers, shapes_image):
    """The bundled trained detector, one layer and the three fused pyramid levels, on an image it detects well."""
    model = trained("detect")
    cam = ours(model, shapes_image, method, layers)
    assert len(cam) >= 2
    targets = [lambda out, c=int(c), a=int(a): out[c, a] for c, a in zip(cam.cls, cam.index)]
    ref = reference(model.model, DetectScores, layers, to_tensor(shapes_image), targets, method)
    np.testing.assert_allclose(cam.maps_input.numpy(), ref, atol=2e-3)


@pytest.mark.parametrize("method", SCALE_FREE)
def test_random_weight_maps_match_grad_cam_on_one_layer(method, image):
    """A YAML-built yolo11n (random weights) too. Its gradients are ~1e-8, where grad-cam's ``1e-7 + max`` epsilon
    would dominate; these methods ignore the target's scale, so grad-cam's target is multiplied by 1e10."""
    model = yaml_model("yolo11n.yaml")
    cam = ours(model, image, method, [16], conf=1e-4, max_det=6)
    assert len(cam) == 6
    targets = [lambda out, c=int(c), a=int(a): out[c, a] * 1e10 for c, a in zip(cam.cls, cam.index)]
    ref = reference(model.model, DetectScores, [16], to_tensor(image), targets, method)
    np.testing.assert_allclose(cam.maps_input.numpy(), ref, atol=2e-3)


@pytest.mark.parametrize("method", [*DETECT_METHODS, "SegEigenCAM", "ShapleyCAM", "FEM", "KPCA_CAM"])
def test_classify_maps_match_grad_cam(method, image):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = yaml_model("yolo11n-cls.yaml")
    cam = ours(model, image, method, [8])
    assert len(cam) == 5
    targets = [ClassifierOutputTarget(int(c)) for c in cam.cls]
    ref = reference(model.model, ClassifyLogits, [8], to_tensor(image), targets, method)
    np.testing.assert_allclose(cam.maps_input.numpy(), rescaled(ref), atol=2e-3)


@pytest.mark.parametrize("method", ["EigenCAM", "EigenGradCAM"])
def test_eigen_maps_match_grad_cam_up_to_sign(method, image):
    """grad-cam's SVD sign is arbitrary; ours is fixed (|max| >= |min|), so compare the projections' correlation."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from ultralytics_cam.methods.projection import project

    x = torch.randn(3, 64, 20, 20)
    x[:, :, 5:9, 5:9] += 3  # a blob, as a real activation has
    ref, got = get_2d_projection(x.numpy()), project(x).numpy()
    for r, g in zip(ref, got):
        assert abs(np.corrcoef(r.ravel(), g.ravel())[0, 1]) > 0.9999
        assert abs(g.max()) >= abs(g.min())  # our sign rule
    model = yaml_model("yolo11n-cls.yaml")
    cam = ours(model, image, method, [8])
    targets = [ClassifierOutputTarget(int(c)) for c in cam.cls]
    ref = reference(model.model, ClassifyLogits, [8], to_tensor(image), targets, method)
    for r, g in zip(ref, cam.maps_input.numpy()):
        if r.std() > 0 and g.std() > 0:  # a sign flip then ReLU can leave one side's map with the other half
            assert abs(np.corrcoef(r.ravel(), g.ravel())[0, 1]) > 0.3 or np.allclose(r, g, atol=2e-3)


def test_finer_cam_matches_grad_cam(image):
    import pytorch_grad_cam

    model = yaml_model("yolo11n-cls.yaml")
    cam = ours(model, image, "FinerCAM", [8])
    net = copy.deepcopy(model.model).eval()
    ref_cam = pytorch_grad_cam.FinerCAM(ClassifyLogits(net), [net.model[8]])
    try:
        ref = np.concatenate([ref_cam(to_tensor(image), target_idx=int(c)) for c in cam.cls])
    finally:
        ref_cam.base_cam.activations_and_grads.release()
    np.testing.assert_allclose(cam.maps_input.numpy(), rescaled(ref), atol=2e-3)


def test_score_cam_matches_grad_cam(image):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = yaml_model("yolo11n-cls.yaml")
    cam = ours(model, image, "ScoreCAM", [8])
    targets = [ClassifierOutputTarget(int(c)) for c in cam.cls[:2]]
    ref = reference(model.model, ClassifyLogits, [8], to_tensor(image), targets, "ScoreCAM")
    np.testing.assert_allclose(cam.maps_input.numpy()[:2], rescaled(ref), atol=2e-3)


def test_refine_cam_matches_grad_cam(shapes_image):
    """RefineCAM multiplies the per-layer maps; layers 13 and 16 feed every prediction of the trained detector."""
    model = trained("detect")
    cam = ours(model, shapes_image, "RefineCAM", [13, 16])
    targets = [lambda out, c=int(c), a=int(a): out[c, a] for c, a in zip(cam.cls, cam.index)]
    ref = reference(model.model, DetectScores, [13, 16], to_tensor(shapes_image), targets, "RefineCAM")
    np.testing.assert_allclose(cam.maps_input.numpy(), ref, atol=2e-3)


def test_refine_cam_leaves_out_layers_a_prediction_does_not_reach(shapes_image):
    """grad-cam's product is zero when one layer's map is empty (P3 predictions never reach the P4/P5 head inputs);
    we leave such layers out of that prediction's product instead (documented deviation)."""
    model = trained("detect")
    cam = ours(model, shapes_image, "RefineCAM", [16, 19, 22])
    single = [ours(model, shapes_image, "GradCAMPlusPlus", [i]).maps_input for i in (16, 19, 22)]
    alive = [[i for i, m in enumerate(single) if float(m[p].max()) > 0] for p in range(len(cam))]
    assert any(len(a) < 3 for a in alive)  # the image has predictions that do not reach every level
    for p, layers in enumerate(alive):
        product = torch.stack([single[i][p] for i in layers]).prod(0)
        expected = product / product.max()
        np.testing.assert_allclose(cam.maps_input[p].numpy(), expected.numpy(), atol=2e-3)
