"""An example ultralytics-cam plugin: one CAM method, one target and one output writer.

- ``AbsGradCAM`` (method): GradCAM with channel weights from the mean *absolute* gradient, so a channel counts by how
  strongly it moves the score, whichever the direction.
- ``margin`` (target): the predicted class's logit minus the best other class's logit: "why this class rather than
  the runner-up?".
- ``peaks`` (writer): ``peaks.csv`` in each image's folder, one row per prediction with its map's peak.
"""

from __future__ import annotations

import csv
import io

import torch

from ultralytics_cam import CamMethod, MethodSpec, TargetSpec, hookimpl
from ultralytics_cam.writers import WriterSpec, atomic_write_bytes


class AbsGradCAM(CamMethod):
    """Channel weight = spatial mean of |gradient|; map = weighted sum of the activations."""

    name = "AbsGradCAM"
    summary = "GradCAM with sign-agnostic channel weights: mean |gradient| (example plugin)"

    def layer_map(self, acts, grads, ctx):
        weights = grads.abs().mean((2, 3))  # (n, C)
        return torch.einsum("nc,chw->nhw", weights, acts[0])


def margin(ctx):
    """Predicted class logit minus the highest logit of any other class."""
    out = []
    all_logits = ctx.adapter.class_logits(ctx.head_out, ctx.selections, ctx.imgsz, ctx.rematch)
    for logits, sel in zip(all_logits, ctx.selections):
        own = logits.gather(1, sel.cls[:, None])[:, 0]
        others = logits.scatter(1, sel.cls[:, None], float("-inf")).amax(1)
        out.append(own - others)
    return out


def write_peaks(cam, folder, config):
    """peaks.csv: index, class, confidence, peak x, peak y, energy in box."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["index", "class", "confidence", "peak_x", "peak_y", "energy_in_box"])
    for i, s in enumerate(cam.stats()):
        out.writerow([i, s["name"], s["confidence"], *s["peak"], s["energy_in_box"]])
    return [atomic_write_bytes(folder / "peaks.csv", buf.getvalue().encode())]


@hookimpl
def ultralytics_cam_register_methods():
    return [MethodSpec.of(AbsGradCAM, source="ucam-example-plugin")]


@hookimpl
def ultralytics_cam_register_targets():
    return [
        TargetSpec(
            "margin",
            margin,
            tasks=("detect", "segment", "pose", "obb"),
            summary="predicted class logit minus the runner-up's: why this class and not the next (example plugin)",
        )
    ]


@hookimpl
def ultralytics_cam_register_writers():
    return [WriterSpec("peaks", write_image=write_peaks, summary="peaks.csv: each map's peak (example plugin)")]
