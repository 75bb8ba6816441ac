"""The method contract: what a CamMethod overrides takes effect, with no flag to set beside it."""

from __future__ import annotations

import torch

from ultralytics_cam.engine import CamEngine
from ultralytics_cam.methods import FinerCAM, HiResCAM, RefineCAM

from conftest import yaml_model


def test_overriding_fuse_or_transform_targets_is_what_the_engine_reads():
    assert HiResCAM().fuses_by_mean and not HiResCAM().transforms_targets
    assert not RefineCAM().fuses_by_mean  # overrides fuse
    assert FinerCAM().transforms_targets  # overrides transform_targets


def test_a_method_that_overrides_fuse_is_fused_its_way(assets, monkeypatch):
    # Before, the engine used a method's own fuse only when its class also set fuses_by_mean = False, so a plugin
    # that overrode fuse (as docs/plugins.md says to) was silently fused by the mean.
    class ZeroFuse(HiResCAM):
        def fuse(self, layer_maps: list[torch.Tensor]) -> torch.Tensor:
            return torch.zeros_like(layer_maps[0])

    model = yaml_model("yolo11n.yaml")
    (plain,) = model.cam(str(assets / "bus.jpg"), imgsz=96, conf=1e-4, max_det=2)
    assert plain.cam.maps.max() > 0  # the mean fuse gives non-zero maps on this image

    real_init = CamEngine.__init__

    def with_zero_fuse(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.method = ZeroFuse()

    monkeypatch.setattr(CamEngine, "__init__", with_zero_fuse)
    # another option than the first call, so model.cam builds a new predictor (and engine) instead of reusing it
    (r,) = model.cam(str(assets / "bus.jpg"), imgsz=96, conf=1e-4, max_det=2, head_replay=False)
    assert len(r.cam) == 2 and r.cam.maps.max() == 0


def test_local_layer_maps_ask_their_context_for_window_rows_not_image_ids():
    """The windows of one head level can all come from a later image of the batch (here image 2 holds the level's
    only prediction): the context is asked for rows of the window batch (0 .. m-1), never for the image's id. Asking
    with the id failed with an IndexError on the real benchmark model at max_det=5."""
    import torch

    from ultralytics_cam.methods.base import LocalGradients
    from ultralytics_cam.methods.gradcam import GradCAM, HiResCAM

    k, c = 3, 4
    local = LocalGradients(
        acts=torch.rand(3, c, 8, 8),
        image=torch.tensor([2]),
        windows=torch.rand(1, c, k, k),
        grads=torch.rand(1, c, k, k),
        inside=torch.ones(1, 1, k, k),
        ys=torch.tensor([4]),
        xs=torch.tensor([4]),
    )
    asked = []

    class Context:
        eigen_smooth = False

    def context(b, part):
        asked.append((b, part.tolist()))
        assert all(0 <= p < len(local.image) for p in part.tolist()), part
        return Context()

    for method in (HiResCAM(), GradCAM()):
        out = method.local_layer_map(local, context)
        assert out.shape == (1, 8, 8)
    assert asked and all(b == 2 for b, _ in asked)
