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
