"""Oracle tests of the local head replay: it gives the dense path's gradients and maps, and grad-cam's own maps.

- the replayed branch outputs and window gradients equal the full head's (every raw output of every anchor head
  family, anchors at the corners and borders of every level included);
- ``model.cam`` maps through the local path equal the dense batched backward's (``head_replay=False``) to 1e-5 (maps
  are in [0, 1]), for every gradient method the local path runs, on v8, 11, 26 (end-to-end and NMS heads) and v10
  detectors, segment with a class target, pose keypoints, obb angle, and on inputs so small that every window
  touches the border;
- grad-cam itself, with the head's inputs as its target layers (the semantics of ``layers="auto"``), gives our maps.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import render, trained, yaml_model

#: Every gradient method that takes the local path (ShapleyCAM needs second derivatives: dense only).
LOCAL_METHODS = [
    "HiResCAM",
    "LayerCAM",
    "GradCAMElementWise",
    "GradCAM",
    "GradCAMPlusPlus",
    "XGradCAM",
    "EigenGradCAM",
    "SegEigenCAM",
    "FinerCAM",
    "RefineCAM",
]
TOLERANCE = 1e-5  # absolute, on maps in [0, 1]


@pytest.mark.parametrize(
    "name",
    ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml", "yolo11n-seg.yaml", "yolo26n-pose.yaml", "yolo11n-obb.yaml"],
)
def test_replayed_branches_reproduce_the_head_outputs_and_gradients(name):
    from ultralytics_cam.replay import cut_windows, head_blocks

    net = copy.deepcopy(yaml_model(name).model).eval().fuse()
    head = net.model[-1]
    blocks = head_blocks(head)
    assert {"scores", "boxes"} <= blocks.keys()
    feats = [
        torch.randn(1, c, h, w)
        for c, (h, w) in zip([m.in_channels for m in _first_convs(head)], [(9, 11), (5, 6), (3, 3)])
    ]
    leaves = [f.clone().requires_grad_(True) for f in feats]
    raw = head(leaves)[1]
    raw = raw["one2one" if head.end2end else "one2many"] if "one2one" in raw else raw
    start = 0
    for level, f in enumerate(feats):
        h, w = f.shape[-2:]
        for y, x in [(0, 0), (h - 1, w - 1), (0, w - 1), (h // 2, w // 2)]:
            anchor = start + y * w + x
            for key, branches in blocks.items():
                branch = branches[level]
                want = raw[key][0, :, anchor]
                (dense,) = torch.autograd.grad(want.sum(), leaves[level], retain_graph=True)
                win, inside = cut_windows(f, torch.tensor([0]), torch.tensor([y]), torch.tensor([x]), branch.radius)
                win.requires_grad_(True)
                got = branch(win, inside)[0]
                (g,) = torch.autograd.grad(got.sum(), win)
                r = branch.radius
                padded = torch.nn.functional.pad(dense[0], (r, r, r, r))
                expect = padded[:, y : y + 2 * r + 1, x : x + 2 * r + 1]
                want = want.detach()  # float() of a tensor that requires grad warns (an error under pytest)
                torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))
                torch.testing.assert_close(g[0], expect, rtol=1e-5, atol=1e-5 * float(expect.abs().max()) + 1e-12)
                outside = padded.clone()
                outside[:, y : y + 2 * r + 1, x : x + 2 * r + 1] = 0
                assert float(outside.abs().max()) == 0  # the dense gradient is zero outside the window
        start += h * w


def _first_convs(head):
    """The first convolution of each level's class branch (its input channels are the level's)."""
    branches = head.one2one["cls_head"] if head.end2end else head.cv3
    out = []
    for b in branches:
        m = b
        while not isinstance(m, torch.nn.Conv2d):
            m = next(iter(m.children())) if not hasattr(m, "conv") else m.conv
        out.append(m)
    return out


def _end2end(name: str):
    model = yaml_model(name)
    model.model.model[-1].end2end = True  # a YAML-built YOLO26 runs its NMS head unless told otherwise
    return model


#: (id, model factory, image, target, cam kwargs)
CASES = {
    "detect-trained": (lambda: trained("detect"), "shapes", "class", {}),
    "v8": (lambda: yaml_model("yolov8n.yaml"), "bus", "class", {}),
    "11-box": (lambda: yaml_model("yolo11n.yaml"), "bus", "all", {}),
    "26-nms": (lambda: yaml_model("yolo26n.yaml"), "bus", "class", {}),
    "26-end2end": (lambda: _end2end("yolo26n.yaml"), "bus", "box", {}),
    "v10": (lambda: yaml_model("yolov10n.yaml"), "bus", "class", {}),
    "segment-class": (lambda: trained("segment"), "shapes-segment", "class", {}),
    "pose-keypoints": (lambda: trained("pose"), "shapes-pose", "keypoints", {}),
    "obb-angle": (lambda: trained("obb"), "shapes-obb", "angle", {}),
    "border": (lambda: yaml_model("yolo11n.yaml"), "bus", "class", {"imgsz": 96, "max_det": 12}),
}


def _image(kind: str, assets):
    import cv2

    if kind == "bus":
        return cv2.imread(str(assets / "bus.jpg"))
    task = kind.split("-")[1] if "-" in kind else "detect"
    return render(task, seed=3)[0]


@pytest.fixture(scope="module")
def models():
    return {}


@pytest.mark.parametrize(
    ("case", "method"),
    [(c, m) for c in CASES for m in LOCAL_METHODS if m != "FinerCAM" or CASES[c][2] == "class"],  # FinerCAM: class only
)
def test_local_path_equals_the_dense_path(case, method, models, assets):
    make, image_kind, target, extra = CASES[case]
    model = models.setdefault(case, make())
    image = _image(image_kind, assets)
    kw = {"conf": 1e-4, "imgsz": 160, "max_det": 6, "target": target, "method": method, **extra}
    (local,) = model.cam(image, **kw)
    (dense,) = model.cam(image, head_replay=False, **kw)
    assert local.cam.path == "local" and dense.cam.path == "dense"
    assert len(local.cam) == len(dense.cam) > 0
    a, b = local.cam.maps_input, dense.cam.maps_input
    assert float(b.max()) > 0
    torch.testing.assert_close(a, b, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(local.cam.heatmap, dense.cam.heatmap, rtol=0, atol=TOLERANCE)


def test_the_border_case_has_windows_off_the_map(assets):
    """At imgsz 96 the P5 map is 3 x 3: every window of radius 2 reaches off the map (what the border case checks)."""
    model = yaml_model("yolo11n.yaml")
    (r,) = model.cam(_image("bus", assets), conf=1e-4, imgsz=96, max_det=12)
    net = model.model
    head = net.model[-1]
    shapes = [(12, 12), (6, 6), (3, 3)]
    from ultralytics_cam.heads import AnchorHeadAdapter

    level, ys, xs = AnchorHeadAdapter(net, "detect").anchor_cells(r.cam.index, shapes)
    hs = torch.tensor([h for h, _ in shapes])[level]
    touching = (ys < 2) | (xs < 2) | (ys >= hs - 2) | (xs >= hs - 2)
    assert head.nl == 3 and bool(touching.all())


@pytest.mark.parametrize("method", ["HiResCAM", "GradCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM"])
def test_auto_maps_equal_grad_cam_on_the_head_inputs(method, assets):
    """grad-cam with taps on the head's inputs (gradients with respect to the head's arguments, as layers='auto'
    reads them) gives the maps of the local path."""
    import pytorch_grad_cam

    from conftest import render as draw

    model = trained("detect")
    image = draw("detect", seed=11)[0]
    (r,) = model.cam(image, method=method, imgsz=160)
    assert r.cam.path == "local" and len(r.cam) >= 2
    net = copy.deepcopy(model.model).eval()
    for p in net.parameters():
        p.requires_grad_(True)
    head = net.model[-1]
    taps = torch.nn.ModuleList(torch.nn.Identity() for _ in range(head.nl))

    def feed_taps(module, args):
        return ([tap(x.detach().requires_grad_(True)) for tap, x in zip(taps, args[0])],)

    handle = head.register_forward_pre_hook(feed_taps)

    class Scores(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.taps = net, taps

        def forward(self, x):
            return self.net(x)[1]["scores"]

    x = torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    targets = [lambda out, c=int(c), a=int(a): out[c, a] for c, a in zip(r.cam.cls, r.cam.index)]
    cam = getattr(pytorch_grad_cam, method)(Scores(), list(taps))
    try:
        ref = cam(x.repeat(len(targets), 1, 1, 1), targets)
    finally:
        cam.activations_and_grads.release()
        handle.remove()
    np.testing.assert_allclose(r.cam.maps_input.numpy(), ref, atol=2e-3)


@pytest.mark.parametrize("method", ["EigenCAM", "FEM", "KPCA_CAM", "ConfidenceMap", "HiResCAM"])
def test_no_method_on_the_default_path_records_an_autograd_graph(method, assets, monkeypatch):
    """Methods without gradients and the local path run a plain forward: no tensor of it requires grad, and the only
    backward a local run makes is the replay's, on the windows."""
    from ultralytics_cam.engine import CamEngine

    seen = []
    original = CamEngine.forward

    def spy(self, im, graph=None):
        fwd = original(self, im, graph)
        seen.append(fwd)
        return fwd

    monkeypatch.setattr(CamEngine, "forward", spy)
    (r,) = yaml_model("yolo11n.yaml").cam(str(assets / "bus.jpg"), method=method, conf=1e-4, imgsz=128, max_det=3)
    assert r.cam.path == ("local" if method == "HiResCAM" else "forward")
    assert seen and not any(f.graph for f in seen)
    assert not any(a.requires_grad for f in seen for a in f.acts)


@pytest.mark.parametrize("method", ["HiResCAM", "LayerCAM", "GradCAM", "XGradCAM"])
def test_local_layer_map_asks_the_context_for_row_positions_not_image_indices(method):
    """A level whose only prediction is in image 2 of a batch: ``context(b, rows)`` takes positions in the level's
    rows. The window methods passed the image index instead, which read past the rows (IndexError in ``yolo-cam
    eval`` on a real model, issue 18)."""
    from ultralytics_cam.methods import gradcam
    from ultralytics_cam.methods.base import LayerContext, LocalGradients

    k, c = 5, 4
    gen = torch.Generator().manual_seed(0)
    local = LocalGradients(
        acts=torch.rand(3, c, 8, 8, generator=gen),
        image=torch.tensor([2]),
        windows=torch.rand(1, c, k, k, generator=gen),
        grads=torch.rand(1, c, k, k, generator=gen),
        inside=torch.ones(1, 1, k, k),
        ys=torch.tensor([3]),
        xs=torch.tensor([3]),
    )
    asked = []

    def context(b: int, rows: torch.Tensor) -> LayerContext:
        asked.append((b, rows.tolist()))
        assert all(0 <= r < len(local.image) for r in rows.tolist()), f"rows {rows.tolist()} for {len(local.image)}"
        return LayerContext(image=torch.zeros(1, 3, 32, 32), selection=None, layer=0)  # type: ignore[arg-type]

    maps = getattr(gradcam, method)().local_layer_map(local, context)
    assert asked and all(b == 2 for b, _ in asked)
    assert maps.shape == (1, 8, 8) and float(maps.abs().sum()) > 0
