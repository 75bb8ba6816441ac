"""What the integrations share (ultralytics_cam.integrations.base): kinds, removal, the guard."""

from __future__ import annotations

import logging

import pytest

from ultralytics_cam import (
    add_cam_callbacks,
    add_train_cam_callback,
    add_val_failure_hook,
    remove_cam_callbacks,
    remove_train_cam_callback,
    remove_val_failure_hook,
)
from ultralytics_cam._logging import LOGGER
from ultralytics_cam.integrations.base import Guard

from conftest import yaml_model


def _ours(model) -> list[str]:
    return sorted(f.__name__ for fns in model.callbacks.values() for f in fns if getattr(f, "_ultralytics_cam", False))


def test_each_integration_removes_only_its_own_callbacks():
    model = yaml_model("yolo11n.yaml")
    before = {event: list(fns) for event, fns in model.callbacks.items()}
    add_cam_callbacks(model, method="GradCAM")
    add_val_failure_hook(model)
    add_train_cam_callback(model)
    predict = ["on_predict_batch_end", "on_predict_end", "on_predict_start"]
    val = ["on_fit_epoch_end", "on_val_end", "on_val_start"]  # on_fit_epoch_end: its images to the trackers
    train = ["on_fit_epoch_end", "on_pretrain_routine_end", "on_pretrain_routine_start", "on_train_end"]
    train += ["on_train_epoch_end", "teardown"]
    assert _ours(model) == sorted([*predict, *val, *train])

    remove_cam_callbacks(model)
    assert _ours(model) == sorted([*val, *train])  # the val hook and the training callback stay
    remove_train_cam_callback(model)
    assert _ours(model) == val
    add_cam_callbacks(model, method="GradCAM")
    remove_val_failure_hook(model)
    assert _ours(model) == predict  # and the predict callbacks stay
    remove_cam_callbacks(model)
    assert {event: list(fns) for event, fns in model.callbacks.items()} == before  # nobody else's was touched


def test_the_guard_logs_the_image_names_and_goes_on_or_raises_when_strict(caplog):
    guard = Guard("CAM", "The predictions are unaffected", "remove_cam_callbacks(model) turns CAM off.")

    def boom() -> int:
        raise RuntimeError("boom")

    LOGGER.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER.name):
            assert guard(lambda: 7) == 7  # a success returns the value and logs nothing
            assert guard(boom, ["/data/a.jpg", "b.png"], "could not set up") is None
    finally:
        LOGGER.removeHandler(caplog.handler)
    assert set(caplog.messages) == {  # a set: the record may reach caplog's handler twice (ours and the root's)
        "ultralytics-cam: CAM could not set up for a.jpg, b.png: RuntimeError: boom. The predictions are unaffected; "
        "remove_cam_callbacks(model) turns CAM off."
    }
    strict = Guard("failure analysis", "Validation metrics are unaffected", "...", strict=True)
    with pytest.raises(RuntimeError, match="boom"):
        strict(boom, ["a.jpg"])
