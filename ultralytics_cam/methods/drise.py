"""D-RISE (Petsiuk et al., CVPR 2021): a black-box map from randomly masked copies of the image.

Every mask keeps a random subset of coarse cells of the image and blacks out the rest; the masked image runs through
the model, and each explained prediction gives the mask a weight: how well the prediction is still found in the masked
output (the D-RISE similarity, :mod:`ultralytics_cam.similarity`). A prediction's map is the weighted sum of the masks.
Nothing inside the model is read, so the method runs on any backend Ultralytics loads (PyTorch, ONNX, OpenVINO,
TorchScript, TensorRT, ...); :class:`~ultralytics_cam.blackbox.BlackBoxEngine` drives the masked forwards through the
predictor. This module holds what is independent of the model: the masks and the accumulation.

**Masks** (RISE's generator, ``eclique/RISE`` ``explanations.py``): a grid of square cells, each kept with
probability ``keep``; the grid is upsampled bilinearly and shifted by a random offset of up to one cell in each
direction, so the mask edges fall anywhere, not on a fixed lattice. RISE upsamples ``s`` cells onto ``(s + 1) * cell``
pixels before cropping (so its cells are ``(s + 1) / s`` cells wide); here one extra row and column of cells is drawn
instead, so a cell is exactly ``cell`` pixels and the shift covers one whole cell.

**Saliency** (the D-RISE weighted sum, debiased): ``S = sum_i (w_i - mean(w)) M_i``. Subtracting the mean weight is
a control variate: the plain sum ``sum_i w_i M_i`` carries ``mean(w) * sum_i M_i``, which is the random coverage of
the masks (uneven over a finite set of masks) and not information about the prediction. Microsoft's D-RISE
(``vision-explanation-methods``, ``saliency_fusion(normalize=True)``) and XAITK's ``DRISEStack(debiased=True)`` do
the same. As for every method of this package, the map is then ReLU'd (pixels whose presence lowers the score are not
evidence for the prediction) and scaled to [0, 1].

**Defaults** (``drise_masks=2500``, ``drise_cell=32``, ``drise_keep=0.5``; docs/drise.md has the measurements):
cells of 32 model-input pixels are RISE's (224 / 7) and about D-RISE's (608 / 16 = 38); on the synthetic test set
they localise far better than the paper's 16 x 16 grid on a 160 px input (10 px cells). p = 0.5 is both papers'.
The paper uses 5000 masks; on the real benchmark set the correlation of two seeds' maps was 0.53 at 250 masks, 0.83
at 1000 and 0.92 at 2500 (as the Spearman-Brown rule predicts from the first two), above the 0.9 the project asks of
the default.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from .base import CamMethod, minmax

if TYPE_CHECKING:
    from ..heads import Selection

__all__ = ["DRISE", "MaskSet", "SaliencyAccumulator"]


class MaskSet:
    """``n`` RISE masks of one size, drawn once from a seed and built chunk by chunk.

    Every random number (the cells kept and the shifts) is drawn up front on the CPU, so the masks depend only on the
    seed, the count and the size: not on the chunks they are built in (a static batch-1 export and a PyTorch model
    with batches of 16 see the same masks) and not on the device (CUDA's generator draws other numbers than the
    CPU's). Building a chunk is a bilinear upsampling and a crop.

    Args:
        n: number of masks.
        hw: (height, width) of the masked area in pixels.
        cell: the side of a (square) cell in pixels.
        keep: probability that a cell is kept.
        seed: the seed of the masks.
    """

    def __init__(self, n: int, hw: tuple[int, int], cell: int, keep: float, seed: int) -> None:
        h, w = hw
        self.n, self.hw = n, (int(h), int(w))
        self.cell = int(cell)
        gh, gw = math.ceil(h / self.cell), math.ceil(w / self.cell)
        generator = torch.Generator().manual_seed(int(seed))
        self.grid = (torch.rand((n, 1, gh + 1, gw + 1), generator=generator) < keep).float()
        self.shifts = torch.randint(0, self.cell, (n, 2), generator=generator)

    def __len__(self) -> int:
        """Return the number of masks."""
        return self.n

    def masks(self, start: int, stop: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Masks ``start`` to ``stop`` (exclusive): (k, H, W) float32 in [0, 1]; 1 keeps a pixel, 0 blacks it out."""
        h, w = self.hw
        grid, shifts = self.grid[start:stop].to(device), self.shifts[start:stop]
        gh, gw = grid.shape[-2:]
        up = F.interpolate(grid, size=(gh * self.cell, gw * self.cell), mode="bilinear", align_corners=False)
        rows = (shifts[:, :1] + torch.arange(h)).to(device)  # (k, H): each mask's own crop
        cols = (shifts[:, 1:] + torch.arange(w)).to(device)
        index = torch.arange(len(grid), device=device)[:, None, None]
        return up[:, 0][index, rows[:, :, None], cols[:, None, :]]


class SaliencyAccumulator:
    """The debiased D-RISE sum ``sum_i (w_i - mean(w)) M_i`` of ``n`` predictions, accumulated chunk by chunk.

    Three running sums suffice (``sum_i w_i M_i``, ``sum_i w_i`` and ``sum_i M_i``), so masks are never kept: memory
    is ``n x H x W`` whatever the number of masks.
    """

    def __init__(self, n: int, hw: tuple[int, int], device: torch.device | str = "cpu") -> None:
        h, w = hw
        self.hw = hw
        self.weighted = torch.zeros((n, h * w), dtype=torch.float64, device=device)
        self.weights = torch.zeros(n, dtype=torch.float64, device=device)
        self.coverage = torch.zeros(h * w, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, masks: torch.Tensor, weights: torch.Tensor) -> None:
        """Add (k, H, W) masks with their (k, n) weights (one column per prediction)."""
        flat = masks.reshape(len(masks), -1).to(self.weighted)
        w = weights.to(self.weighted)
        self.weighted += w.T @ flat
        self.weights += w.sum(0)
        self.coverage += flat.sum(0)
        self.count += len(masks)

    def maps(self) -> torch.Tensor:
        """(n, H, W) float32 maps in [0, 1]: the debiased sum, ReLU'd and scaled per prediction (zero if flat)."""
        mean = self.weights / max(self.count, 1)
        saliency = (self.weighted - mean[:, None] * self.coverage[None]).float()
        return minmax(saliency.clamp(min=0).view(-1, *self.hw), inplace=True)


class DRISE(CamMethod):
    """D-RISE: each prediction's map is the weighted sum of random masks, weighted by how well it survives each one."""

    name = "DRISE"
    summary = (
        "black box: random masks weighted by how well each prediction survives them (Petsiuk et al. 2021); "
        "runs on any backend, exports included"
    )
    needs_gradients = False
    uses_activations = False
    black_box = True
    #: D-RISE explains a prediction as a whole (box, class and score together): there is no other target.
    targets = ("class",)
    #: Proposals in the masked images are kept down to this confidence (or the run's ``conf`` if lower), so a mask's
    #: weight fades with the score instead of dropping to zero at the run's threshold (``metrics`` does the same).
    proposal_conf: ClassVar[float] = 0.01

    def check(self, task: str, nc: int, target: str) -> None:
        """Refuse the dense tasks: their predictions are pixel regions, with no detection to find again.

        Raises:
            MethodError: the task is semantic or depth, or the target is not ``class``.
        """
        from ..errors import MethodError

        if task in {"semantic", "depth"}:
            raise MethodError(
                f"method '{self.name}' finds each detection (box, mask, keypoints, rotated box) or class again in "
                f"masked images; {task} predictions are pixel regions without one. Use a method that reads the "
                "network (HiResCAM, EigenCAM, ...) with the .pt weights."
            )
        super().check(task, nc, target)

    def input_maps(self, selection: Selection, task: str, imgsz: tuple[int, int]) -> torch.Tensor:
        """Not drawn from a selection: D-RISE maps come from masked forwards.

        Raises:
            NotImplementedError: always; :class:`~ultralytics_cam.blackbox.BlackBoxEngine` computes the maps.
        """
        raise NotImplementedError("DRISE maps are computed by ultralytics_cam.blackbox.BlackBoxEngine")
