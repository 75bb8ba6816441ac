"""Local head replay: the exact gradient of every prediction from its small window of the head's input.

On YOLO anchor heads (Detect, Segment, Pose, OBB, their YOLO26 and one-to-one variants) the raw output at anchor
(level l, row y, column x) is computed by a short stack of stride-1 convolutions on level l's head input, so it
depends only on the (2R + 1) x (2R + 1) window of that input around (y, x), R being the stack's receptive-field
radius (2 for two 3 x 3 convolutions). The gradient of a prediction's target with respect to the head input is
therefore zero outside that window, and the window's gradient is obtained exactly by running the branch on the stacked
windows of all predictions at once, as one tiny batch, and back-propagating through it: the forward pass itself needs
no autograd graph.

Padding must behave as it does on the full map: the window is cut from the zero-padded head input, and after every
stage of the branch the positions that lie outside the feature map are zeroed again, because the real network
zero-pads each intermediate map while a convolution's bias and activation would make those positions non-zero.
Each convolution runs unpadded ("valid"), so the window shrinks by the stage's radius on each side and the last stage
leaves exactly the anchor's position: only the values the centre depends on are computed (a fifth of the work of
running the branch's own padded convolutions on the window).

The branch structure is read from the head at run time: which modules compute each raw output (the head's own
``one2many`` / ``one2one`` component tables), and each module's kernel, stride, dilation and padding. A branch with
anything that is not provably local (a strided or unpadded convolution, a training-mode batch norm, a module whose
forward we do not know) is refused, and the engine takes the dense path instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from typing import TypeGuard

    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.modules.head import Detect

__all__ = ["Branch", "BranchError", "analyse_branch", "cut_windows", "head_blocks"]

#: Modules that act on each position alone (channel-wise): they never widen the receptive field.
POINTWISE = (
    nn.Identity,
    nn.SiLU,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.GELU,
    nn.Mish,
)


class BranchError(Exception):
    """A head branch that cannot be proven local (the message says why): the engine takes the dense path."""


@dataclass(frozen=True)
class Branch:
    """The modules that compute one raw head output at one pyramid level.

    Attributes:
        stages: leaf modules run in order; the feature map's outside is zeroed after each one.
        radius: the receptive-field radius R of the whole stack: the output at (y, x) reads the input's
            (2R + 1) x (2R + 1) window around it.
        transform: the element-wise function the head applies to the stack's output (``OBB`` maps its angle logits
            to radians), or None.
    """

    stages: tuple[nn.Module, ...]
    radius: int
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    radii: tuple[int, ...] = ()

    def __call__(self, windows: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Return the (N, channels) output at the centre of each of the (N, C, k, k) ``windows``, k = 2R + 1.

        ``inside`` is (N, 1, k, k): 1 where a window position lies on the feature map, 0 where it lies outside.
        """
        x = windows * inside  # zero already; multiplied so that no gradient flows to positions off the map
        for stage, r in zip(self.stages, self.radii):
            x = _valid(stage, x)
            if r:
                inside = inside[..., r:-r, r:-r]
            x = x * inside  # the real map is zero-padded there, whatever the bias and activation made of it
        out = x[:, :, 0, 0]
        return self.transform(out) if self.transform is not None else out


def _valid(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run one stage with its convolution unpadded (the stage kinds are those :func:`_stages` accepted)."""
    if isinstance(stage, nn.Conv2d):
        return F.conv2d(x, stage.weight, stage.bias, 1, 0, stage.dilation, stage.groups)
    conv = getattr(stage, "conv", None)
    if isinstance(conv, nn.Conv2d):  # Ultralytics' Conv: act(bn(conv(x))), or act(conv(x)) once fused
        y = F.conv2d(x, conv.weight, conv.bias, 1, 0, conv.dilation, conv.groups)
        bn = getattr(stage, "bn", None)
        act = stage.act
        assert isinstance(act, nn.Module)  # Conv always has one (nn.Identity when it has no activation)
        out: torch.Tensor = act(bn(y) if bn is not None else y)
        return out
    plain: torch.Tensor = stage(x)
    return plain


def _conv_radius(conv: nn.Conv2d, where: str) -> int:
    """The radius of a stride-1, "same"-padded convolution; raises BranchError for any other convolution."""
    k, d, s, p = conv.kernel_size, conv.dilation, conv.stride, conv.padding
    if any(v != 1 for v in s):
        raise BranchError(f"{where}: stride {tuple(s)} (only stride 1 keeps the anchor grid)")
    if conv.padding_mode != "zeros":
        raise BranchError(f"{where}: padding mode {conv.padding_mode!r}")
    radii = [dd * (kk - 1) // 2 for kk, dd in zip(k, d)]
    if any(kk % 2 == 0 for kk in k) or (isinstance(p, str) and p != "same"):
        raise BranchError(f"{where}: kernel {tuple(k)} with padding {p!r} is not centred")
    if not isinstance(p, str) and list(p) != radii:
        raise BranchError(f"{where}: padding {tuple(p)} != {tuple(radii)}, so the output is not centred on its anchor")
    if len(set(radii)) != 1:
        raise BranchError(f"{where}: a non-square kernel {tuple(k)}")
    return radii[0]


def _is_ultralytics_conv(m: nn.Module) -> TypeGuard[Conv]:
    """Ultralytics' ``Conv`` / ``DWConv``: act(bn(conv(x))), or act(conv(x)) once fused; no other forward."""
    from ultralytics.nn.modules.conv import Conv

    if not isinstance(m, Conv) or type(m).forward is not Conv.forward:
        return False
    own = m.__dict__.get("forward")  # fusing sets the instance's forward to forward_fuse
    return own is None or getattr(own, "__func__", None) is Conv.forward_fuse


def _stages(m: nn.Module, where: str) -> list[tuple[nn.Module, int]]:
    """Flatten ``m`` into (leaf stage, radius) pairs, or raise BranchError."""
    if isinstance(m, nn.Sequential):
        return [s for i, child in enumerate(m) for s in _stages(child, f"{where}.{i}")]
    if isinstance(m, nn.Conv2d):
        return [(m, _conv_radius(m, where))]
    if _is_ultralytics_conv(m):
        bn = getattr(m, "bn", None)
        if bn is not None and (not isinstance(bn, nn.BatchNorm2d) or bn.training):
            raise BranchError(f"{where}.bn: a training-mode batch norm mixes the batch")
        if not isinstance(m.act, POINTWISE):
            raise BranchError(f"{where}.act: {type(m.act).__name__} is not a known element-wise activation")
        return [(m, _conv_radius(m.conv, f"{where}.conv"))]
    if isinstance(m, nn.BatchNorm2d) and not m.training:
        return [(m, 0)]
    if isinstance(m, POINTWISE):
        return [(m, 0)]
    raise BranchError(f"{where}: {type(m).__name__} is not a module whose receptive field is known")


def analyse_branch(
    modules: list[nn.Module], where: str, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> Branch:
    """Build the :class:`Branch` that runs ``modules`` in order (raises BranchError if it is not provably local)."""
    stages = [s for i, m in enumerate(modules) for s in _stages(m, f"{where}[{i}]")]
    return Branch(tuple(m for m, _ in stages), sum(r for _, r in stages), transform, tuple(r for _, r in stages))


def _obb_angle(z: torch.Tensor) -> torch.Tensor:
    return (z.sigmoid() - 0.25) * math.pi


def head_blocks(head: Detect) -> dict[str, list[Branch]]:
    """Return, per raw output of an anchor head ("scores", "boxes", ...), its :class:`Branch` on every level.

    The component tables come from the head itself (``head.one2one`` when it runs end-to-end, else
    ``head.one2many``); which components make which raw output is what the head's ``forward_head`` does, checked by
    the identity of that function so that a head that computes its outputs differently is never replayed. Outputs
    whose branch is not provably local are left out (their targets take the dense path).

    Raises:
        BranchError: the head is not one whose ``forward_head`` is known.
    """
    from ultralytics.nn.modules.head import OBB, OBB26, Detect, Pose, Pose26, Segment

    known = {Detect.forward_head, Segment.forward_head, Pose.forward_head, Pose26.forward_head}
    known |= {OBB.forward_head, OBB26.forward_head}
    forward_head: Callable[..., Any] = type(head).forward_head  # compared by identity with the known subclasses'
    if forward_head not in known or type(head).forward not in _KNOWN_FORWARDS():
        raise BranchError(f"{type(head).__name__} computes its outputs in its own way")
    parts = head.one2one if getattr(head, "end2end", False) else head.one2many
    recipes: dict[str, tuple[list[str], Callable[[torch.Tensor], torch.Tensor] | None]] = {
        "boxes": (["box_head"], None),
        "scores": (["cls_head"], None),
    }
    if "mask_head" in parts:
        recipes["mask_coefficient"] = (["mask_head"], None)
    if "pose_head" in parts:
        recipes["kpts"] = (["pose_head", "kpts_head"] if "kpts_head" in parts else ["pose_head"], None)
    if "angle_head" in parts:
        recipes["angle"] = (["angle_head"], _obb_angle if forward_head is OBB.forward_head else None)
    blocks: dict[str, list[Branch]] = {}
    for key, (names, transform) in recipes.items():
        lists = [parts.get(n) for n in names]
        if any(lst is None for lst in lists):
            continue
        try:
            blocks[key] = [
                analyse_branch([lst[i] for lst in lists], f"{'+'.join(names)}[{i}]", transform) for i in range(head.nl)
            ]
        except BranchError:
            continue
    return blocks


def _KNOWN_FORWARDS() -> set[Callable[..., Any]]:  # noqa: N802 - a constant computed on first use (imports Ultralytics)
    from ultralytics.nn.modules.head import Detect, Segment, Segment26

    return {Detect.forward, Segment.forward, Segment26.forward}


def cut_windows(
    feature: torch.Tensor, image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut the (2R + 1)^2 windows around (ys, xs) of images ``image`` out of ``feature`` (B, C, h, w).

    Returns the (N, C, k, k) windows (zero outside the map, as the network pads) and the (N, 1, k, k) mask of the
    positions that lie on the map.
    """
    k = 2 * radius + 1
    h, w = feature.shape[-2:]
    padded = torch.nn.functional.pad(feature, (radius, radius, radius, radius))
    offs = torch.arange(k, device=feature.device)
    rows = (ys[:, None] + offs[None]).long()  # (N, k) rows in the padded map
    cols = (xs[:, None] + offs[None]).long()
    windows = padded[image.long()[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, k, k, C)
    windows = windows.permute(0, 3, 1, 2).contiguous()
    on_rows = (rows - radius >= 0) & (rows - radius < h)
    on_cols = (cols - radius >= 0) & (cols - radius < w)
    inside = (on_rows[:, :, None] & on_cols[:, None, :])[:, None].to(feature.dtype)
    return windows, inside
