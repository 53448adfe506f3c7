"""Post-processing of residual maps (paper §4.3, method.md §4 steps 1, 2 and 4).

Residual maps ``R = |x0 - x_rec|`` live on the model grid, shape (X, Y, Z) = (96, 96, 50), axial
slices along the last axis. Before binarisation:

1. **Median filter** of ``median_size``**3 voxels (5 x 5 x 5). Borders follow
   ``scipy.ndimage.median_filter``'s default ``mode="reflect"`` (the edge voxel is repeated:
   ``d c b a | a b c d``), as the authors' code.
2. **Brain-mask erosion**: the brain mask is eroded ``erosion_iterations`` times (3) in every
   axial slice with the 2-D cross (4-neighbourhood), voxels beyond the grid counting as outside
   the brain; ``R`` is multiplied by the eroded mask. (The authors' code derives the iterations
   from the grid, ``96 // 25 = 3``.)

``order="paper"`` does 1 then 2 (the median sees the raw residual around the brain edge, the
product keeps only the eroded brain); ``order="authors_code"`` masks first and filters the
masked map, so the filtered map can reach up to ``median_size // 2`` voxels beyond the eroded
mask. With ``erosion=False`` the brain mask is applied without eroding it (the authors' code
then applies no mask at all; here the map stays restricted to the brain).

After binarisation (``R > threshold``, thresholds.py):

3. **Connected components** (26-connected) with fewer than ``min_component_size`` voxels (7) are
   removed (``component_rule="smaller_than"``, the paper); ``"at_most"`` removes components of
   up to and including 7 voxels, as the authors' code (which counts the filled area of a
   component; the two counts only differ for a hollow shell, impossible at this size but for a
   6-voxel shell around one voxel, which both rules remove).

Every step can be switched off (paper Table 4: "without CC / MF / BE").

Speed: the median is computed only where its value is kept -- the eroded mask (paper order) or
the voxels within ``median_size // 2`` of it (authors' order; farther voxels only see zeros) --
by gathering each voxel's window and taking the middle order statistic. The result is
identical to ``scipy.ndimage.median_filter`` on the full grid followed by the mask. A batched
torch path (:meth:`PostProcessing.apply_to_residual_batch`) does the same on any device;
:func:`postprocess_maps` takes it on a GPU, the masked numpy median on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage
from torch import Tensor

from brainuad.evaluate.metrics import check_mask, check_same_shape, check_scores
from brainuad.padding import symmetric_pad

__all__ = ["ComponentRule", "PostProcessing", "PostProcessingOrder", "postprocess_maps"]

PostProcessingOrder: TypeAlias = Literal["paper", "authors_code"]
ComponentRule: TypeAlias = Literal["smaller_than", "at_most"]

_GATHER_CHUNK = 32768  # voxels per gathered block of windows in the numpy median
_TORCH_CHUNK_BYTES = 2**28  # bound on the unfolded windows of the torch median


def _axial_cross() -> np.ndarray:
    """(3, 3, 3) structuring element: the 2-D 4-neighbourhood cross in the x-y plane only."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    return structure


def _median_at(volume: np.ndarray, where: np.ndarray, size: int) -> np.ndarray:
    """Median of the ``size``**3 window around each voxel of ``where`` (scipy "reflect" borders).

    Args:
        volume: (X, Y, Z) float.
        where: (X, Y, Z) boolean, the voxels to filter.
    Returns:
        (count(where),) medians in the order of ``np.nonzero(where)``.
    """
    radius = size // 2
    windows = sliding_window_view(np.pad(volume, radius, mode="symmetric"), (size, size, size))
    indices = np.nonzero(where)
    middle = size**3 // 2
    out = np.empty(indices[0].size, dtype=volume.dtype)
    for start in range(0, out.size, _GATHER_CHUNK):
        block = tuple(axis[start:start + _GATHER_CHUNK] for axis in indices)
        gathered = windows[block].reshape(-1, size**3)
        out[start:start + _GATHER_CHUNK] = np.partition(gathered, middle, axis=1)[:, middle]
    return out


def _median_torch(x: Tensor, size: int) -> Tensor:
    """``size``**3 median filter of (N, X, Y, Z) with scipy "reflect" borders, in chunks of
    axial slices so the unfolded windows stay below ``_TORCH_CHUNK_BYTES``."""
    radius = size // 2
    padded = symmetric_pad(x, radius, dims=(1, 2, 3))
    n, nx, ny, nz = x.shape
    per_slice = n * nx * ny * size**3 * x.element_size()
    step = max(1, _TORCH_CHUNK_BYTES // per_slice)
    out = torch.empty_like(x)
    for start in range(0, nz, step):
        stop = min(nz, start + step)
        slab = padded[..., start:stop + 2 * radius]
        windows = slab.unfold(1, size, 1).unfold(2, size, 1).unfold(3, size, 1)
        out[..., start:stop] = windows.reshape(n, nx, ny, stop - start, -1).median(dim=-1).values
    return out


def _erode_slices_torch(mask: Tensor, iterations: int) -> Tensor:
    """Erode (N, X, Y, Z) boolean masks ``iterations`` times per axial slice with the 2-D cross,
    outside the grid counting as background."""
    eroded = mask.to(torch.uint8)
    for _ in range(iterations):
        p = F.pad(eroded, (0, 0, 1, 1, 1, 1))
        eroded = (p[:, 1:-1, 1:-1] & p[:, :-2, 1:-1] & p[:, 2:, 1:-1] & p[:, 1:-1, :-2] & p[:, 1:-1, 2:])
    return eroded.bool()


@dataclass(frozen=True)
class PostProcessing:
    """The post-processing of paper §4.3 (see the module docstring for each step).

    Attributes:
        median_size: edge of the cubic median window, odd (5).
        erosion_iterations: erosions of the brain mask per axial slice (3).
        order: "paper" (median, then eroded mask) or "authors_code" (eroded mask, then median).
        min_component_size: size limit of the connected-component removal (7 voxels).
        component_rule: "smaller_than" removes components of fewer than ``min_component_size``
            voxels (paper); "at_most" removes those of up to ``min_component_size`` (authors' code).
        median: apply the median filter.
        erosion: erode the brain mask (else the plain brain mask is applied).
        components: remove small connected components from binary maps.
    """

    median_size: int = 5
    erosion_iterations: int = 3
    order: PostProcessingOrder = "paper"
    min_component_size: int = 7
    component_rule: ComponentRule = "smaller_than"
    median: bool = True
    erosion: bool = True
    components: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.median_size, int) or self.median_size < 1 or self.median_size % 2 == 0:
            raise ValueError(f"PostProcessing median_size must be a positive odd int, got {self.median_size!r}")
        if not isinstance(self.erosion_iterations, int) or self.erosion_iterations < 1:
            raise ValueError(f"PostProcessing erosion_iterations must be an int >= 1, got {self.erosion_iterations!r}")
        if self.order not in ("paper", "authors_code"):
            raise ValueError(f"PostProcessing order must be 'paper' or 'authors_code', got {self.order!r}")
        if not isinstance(self.min_component_size, int) or self.min_component_size < 1:
            raise ValueError(f"PostProcessing min_component_size must be an int >= 1, got {self.min_component_size!r}")
        if self.component_rule not in ("smaller_than", "at_most"):
            raise ValueError(f"PostProcessing component_rule must be 'smaller_than' or 'at_most', "
                             f"got {self.component_rule!r}")

    def region(self, brain_mask: np.ndarray) -> np.ndarray:
        """The mask the residual is multiplied by: the brain mask, eroded per axial slice unless
        ``erosion`` is off.

        Args:
            brain_mask: (X, Y, Z) boolean.
        Returns:
            (X, Y, Z) boolean.
        """
        check_mask("brain_mask", brain_mask)
        if brain_mask.ndim != 3:
            raise ValueError(f"brain_mask must be (X, Y, Z), got shape {brain_mask.shape}")
        if not self.erosion:
            return brain_mask
        return ndimage.binary_erosion(brain_mask, structure=_axial_cross(), iterations=self.erosion_iterations)

    def apply_to_residual(self, residual: np.ndarray, brain_mask: np.ndarray) -> np.ndarray:
        """Median filter and brain-mask erosion of one residual map, in ``order``.

        Args:
            residual: (X, Y, Z) float, finite.
            brain_mask: (X, Y, Z) boolean.
        Returns:
            (X, Y, Z) post-processed residual, same dtype, 0 where the mask removes it.
        """
        check_scores("residual", residual)
        check_same_shape(residual=residual, brain_mask=brain_mask)
        region = self.region(brain_mask)
        out = np.zeros_like(residual)
        if not self.median:
            out[region] = residual[region]
        elif self.order == "paper":
            out[region] = _median_at(residual, region, self.median_size)
        else:
            masked = np.where(region, residual, residual.dtype.type(0))
            support = region
            for axis in range(3):
                support = ndimage.maximum_filter1d(support, self.median_size, axis=axis, mode="constant")
            out[support] = _median_at(masked, support, self.median_size)
        return out

    def apply_to_binary(self, binary: np.ndarray) -> np.ndarray:
        """Remove small 26-connected components from a binarised map (if ``components``).

        Args:
            binary: (X, Y, Z) boolean, ``R > threshold``.
        Returns:
            (X, Y, Z) boolean.
        """
        check_mask("binary", binary)
        if binary.ndim != 3:
            raise ValueError(f"binary must be (X, Y, Z), got shape {binary.shape}")
        if not self.components:
            return binary.copy()
        labelled, _ = ndimage.label(binary, structure=np.ones((3, 3, 3), dtype=bool))
        sizes = np.bincount(labelled.ravel())
        if self.component_rule == "smaller_than":
            keep = sizes >= self.min_component_size
        else:
            keep = sizes > self.min_component_size
        keep[0] = False
        return keep[labelled]

    def apply_to_residual_batch(self, residual: Tensor, brain_mask: Tensor) -> Tensor:
        """Batched torch version of :meth:`apply_to_residual` on any device (equal results).

        Args:
            residual: (N, X, Y, Z) floating tensor, finite.
            brain_mask: (N, X, Y, Z) boolean tensor on the same device.
        Returns:
            (N, X, Y, Z) post-processed residuals, same dtype and device.
        """
        if not isinstance(residual, Tensor) or not residual.is_floating_point() or residual.ndim != 4:
            raise ValueError(f"residual must be a floating (N, X, Y, Z) tensor, got "
                             f"{getattr(residual, 'dtype', type(residual).__name__)} of shape "
                             f"{tuple(getattr(residual, 'shape', ()))}")
        if not isinstance(brain_mask, Tensor) or brain_mask.dtype != torch.bool:
            raise ValueError(f"brain_mask must be a boolean tensor, got "
                             f"{getattr(brain_mask, 'dtype', type(brain_mask).__name__)}")
        if residual.shape != brain_mask.shape or residual.device != brain_mask.device:
            raise ValueError(f"shape/device mismatch: residual {tuple(residual.shape)} on {residual.device}, "
                             f"brain_mask {tuple(brain_mask.shape)} on {brain_mask.device}")
        if residual.numel() == 0:
            raise ValueError(f"residual is empty (shape {tuple(residual.shape)})")
        if not bool(torch.isfinite(residual).all()):
            raise ValueError("residual contains NaN or infinite values")
        if self.median and min(residual.shape[1:]) < self.median_size // 2:
            raise ValueError(f"every spatial axis needs >= median_size // 2 = {self.median_size // 2} voxels, "
                             f"got shape {tuple(residual.shape)}")
        region = _erode_slices_torch(brain_mask, self.erosion_iterations) if self.erosion else brain_mask
        zero = torch.zeros((), dtype=residual.dtype, device=residual.device)
        if not self.median:
            return torch.where(region, residual, zero)
        if self.order == "paper":
            return torch.where(region, _median_torch(residual, self.median_size), zero)
        return _median_torch(torch.where(region, residual, zero), self.median_size)


def postprocess_maps(postprocessings: Sequence[PostProcessing], residuals: Sequence[np.ndarray],
                     brain_masks: Sequence[np.ndarray],
                     device: torch.device | str = "cpu") -> list[dict[PostProcessing, np.ndarray]]:
    """Every residual map through every post-processing, where that is fastest: on a GPU all maps
    at once with torch (:meth:`PostProcessing.apply_to_residual_batch`), on the CPU one map at a
    time with the masked numpy median (:meth:`PostProcessing.apply_to_residual`). Both give equal maps.

    Args:
        postprocessings: the post-processings wanted (each once).
        residuals: (X, Y, Z) float maps, finite.
        brain_masks: their (X, Y, Z) boolean brain masks.
        device: the evaluation's device.

    Returns:
        Per map, each post-processing's (X, Y, Z) result, same dtype.
    """
    if len(residuals) != len(brain_masks):
        raise ValueError(f"{len(residuals)} residual maps but {len(brain_masks)} brain masks")
    out: list[dict[PostProcessing, np.ndarray]] = [{} for _ in residuals]
    if not residuals or not postprocessings:
        return out
    device = torch.device(device)
    if device.type == "cpu":
        for maps, residual, brain in zip(out, residuals, brain_masks):
            for postprocessing in postprocessings:
                maps[postprocessing] = postprocessing.apply_to_residual(residual, brain)
        return out
    for residual in residuals:
        check_scores("residual", residual)
    stacked = torch.from_numpy(np.stack(residuals)).to(device)
    masks = torch.from_numpy(np.stack(brain_masks)).to(device)
    for postprocessing in postprocessings:
        processed = postprocessing.apply_to_residual_batch(stacked, masks).cpu().numpy()
        for maps, array in zip(out, processed):
            maps[postprocessing] = array
    return out
