"""Head adapters by family: the head-type table, adapter properties, and targets composed of building blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultralytics_cam import TargetSpec, UnsupportedModelError, hookimpl
from ultralytics_cam.heads import (
    HEAD_ADAPTERS,
    SUPPORTED_TASKS,
    AnchorHeadAdapter,
    Block,
    ClassifyHeadAdapter,
    Selection,
    adapter_class,
    adapter_for,
)
from ultralytics_cam.targets import BUILTIN_TARGETS, ComposedTarget, TargetContext

from conftest import yaml_model


@pytest.mark.parametrize(
    ("name", "adapter", "rotated"),
    [
        ("yolo11n.yaml", AnchorHeadAdapter, False),
        ("yolo11n-seg.yaml", AnchorHeadAdapter, False),
        ("yolo11n-obb.yaml", AnchorHeadAdapter, True),
        ("yolo26n-obb.yaml", AnchorHeadAdapter, True),  # OBB26 derives from OBB
        ("yolo11n-cls.yaml", ClassifyHeadAdapter, False),
    ],
)
def test_the_table_picks_the_adapter_of_the_most_specific_head_class(name, adapter, rotated):
    model = yaml_model(name)
    got = adapter_for(model.model, model.task)
    assert type(got) is adapter and got.rotated is rotated and not got.dense


def test_a_more_specific_entry_wins_over_its_base_class(monkeypatch):
    # Segment derives from Detect: with an entry of its own, a segmentation head takes it, a Detect head does not.
    from ultralytics_cam import heads

    class SegmentAdapter(AnchorHeadAdapter):
        pass

    monkeypatch.setitem(heads.HEAD_ADAPTERS, "Segment", SegmentAdapter)
    seg, det = yaml_model("yolo11n-seg.yaml"), yaml_model("yolo11n.yaml")
    assert type(adapter_for(seg.model, "segment")) is SegmentAdapter
    assert type(adapter_for(det.model, "detect")) is AnchorHeadAdapter


def test_a_head_no_family_serves_and_a_task_a_family_does_not_explain_are_refused():
    model = yaml_model("yolo11n.yaml")
    assert adapter_class(torch.nn.Conv2d(1, 1, 1)) is None
    with pytest.raises(UnsupportedModelError, match="cannot explain a Detect head \\(task 'classify'\\)"):
        adapter_for(model.model, "classify")


def test_every_built_in_target_composes_blocks_that_the_heads_of_its_tasks_have():
    """The target list is the one place: each target's tasks are supported, and every family serving one of them
    implements each of the target's blocks (a missing block would fail at run time)."""
    names = [spec.name for spec in BUILTIN_TARGETS]
    assert names == ["class", "box", "all", "mask", "keypoints", "angle", "near", "far", "mean"]
    for spec in BUILTIN_TARGETS:
        assert isinstance(spec.values, ComposedTarget) and set(spec.tasks) <= set(SUPPORTED_TASKS)
        for adapter in set(HEAD_ADAPTERS.values()):
            for task in set(spec.tasks) & set(adapter.tasks):
                missing = [b.value for b in spec.values.blocks if not callable(getattr(adapter, b.value, None))]
                assert not missing, f"{adapter.__name__} ({task}) lacks {missing} for target '{spec.name}'"


def test_all_is_the_sum_of_its_blocks_and_near_is_negated():
    model = yaml_model("yolo11n.yaml")
    net = model.model.eval()
    with torch.no_grad():
        head_out = net(torch.rand(1, 3, 64, 64))
    adapter = adapter_for(net, "detect")
    index = torch.tensor([0, 5, 40])
    sel = Selection(index, torch.tensor([0, 3, 7]), torch.zeros(3), torch.zeros(3, 4))
    ctx = TargetContext(adapter, head_out, [sel], (64, 64), "detect")
    specs = {s.name: s for s in BUILTIN_TARGETS}
    (cls,), (box,), (both,) = (specs[n].values(ctx) for n in ("class", "box", "all"))
    torch.testing.assert_close(both, cls + box)
    torch.testing.assert_close(cls, head_out[1]["scores"][0][sel.cls, index])
    negated = ComposedTarget((Block.CLASS_LOGIT,), sign=-1.0)(ctx)[0]
    torch.testing.assert_close(negated, -cls)


def test_a_plugin_target_composed_of_blocks_takes_the_local_head_replay(assets):
    """A plugin target built from the heads' blocks is replayed like a built-in one: same maps as 'all', local path."""
    from ultralytics_cam.plugins import get_plugin_manager, reset

    class Plugin:
        @hookimpl
        def ultralytics_cam_register_targets(self):
            blocks = (Block.CLASS_LOGIT, Block.BOX_SIZE)
            return [TargetSpec("class_and_box", ComposedTarget(blocks), tasks=("detect",), summary="class + box")]

    reset()
    try:
        get_plugin_manager().register(Plugin(), name="composed-test")
        model = yaml_model("yolo11n.yaml")
        kw = {"conf": 1e-4, "imgsz": 160, "max_det": 3, "verbose": False}
        (mine,) = model.cam(str(assets / "bus.jpg"), target="class_and_box", **kw)
        (ref,) = model.cam(str(assets / "bus.jpg"), target="all", **kw)
    finally:
        reset()
    assert mine.cam.path == ref.cam.path == "local" and len(mine.cam) == len(ref.cam) > 0
    np.testing.assert_allclose(mine.cam.maps, ref.cam.maps, atol=1e-6)
