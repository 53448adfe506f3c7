"""Calibrated healthy thresholds: split-conformal bounds on false positives of healthy scans.

The healthy volumes a threshold is calibrated on (the IXI validation volumes of a run's fold in an
evaluation, or a user's own healthy scans with ``brainuad calibrate``) and a new healthy scan are
taken as *exchangeable*: any order of them is equally likely. Volumes, not voxels, are the units:
voxels of one scan are correlated, so a quantile of pooled voxels promises nothing.

- :func:`conformal_fpr_threshold` (``conformal-fpr-A%``): conformal risk control (Angelopoulos et
  al., "Conformal Risk Control", ICLR 2024) of the voxel false-positive rate. With ``n``
  calibration volumes, ``FPR_i(t)`` the fraction of volume ``i``'s brain voxels scoring above
  ``t`` and ``R(t)`` their mean over the volumes, the threshold is the smallest ``t`` with
  ``(n R(t) + 1) / (n + 1) <= alpha``. Then the expected FPR of a new healthy scan is at most
  ``alpha`` (over the draw of calibration set and scan). It exists only when
  ``n >= 1 / alpha - 1`` (19 volumes for 5 %).
- :func:`conformal_volume_threshold` (``conformal-volume-A%-Vml``): split conformal prediction of
  the false-lesion volume. Volume ``i``'s statistic ``s_i`` is the smallest threshold leaving at
  most ``k = floor(V / voxel volume)`` of its brain voxels above it; the threshold is the
  ``ceil((n + 1)(1 - alpha))``-th smallest ``s_i``. Then a new healthy scan has more than ``V`` ml
  above the threshold with probability at most ``alpha``. It exists only when
  ``n >= 1 / alpha - 1`` as well.

Both count the voxels of the post-processed map above the threshold *before* small connected
components are removed; the removal only takes voxels away, so the bounds hold for the final
masks too. Where the bound cannot be met with ``n`` volumes, the threshold is the largest
calibration score (nothing of the calibration volumes is flagged) and :attr:`ConformalChoice.feasible`
is False: the caller reports it. Scores are the post-processed residuals inside the brain, >= 0.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brainuad.checks import check_fraction, check_number
from brainuad.evaluate.lesions import MODEL_GRID_VOXEL_ML
from brainuad.evaluate.metrics import check_scores, tie_run_ends
from brainuad.evaluate.thresholds import SortedVoxels, Threshold, ThresholdStrategy, VoxelPool

__all__ = [
    "ConformalChoice",
    "ConformalFPR",
    "ConformalVolume",
    "conformal_fpr_threshold",
    "conformal_volume_threshold",
    "minimum_volumes",
]


@dataclass(frozen=True)
class ConformalChoice:
    """A conformal threshold: binarise with ``score > value``.

    Attributes:
        value: the threshold (score units, >= 0).
        feasible: False when ``n`` volumes cannot guarantee the bound: ``value`` then flags no
            calibration voxel at all.
        n_volumes: calibration volumes.
        alpha: the bound asked for.
    """

    value: float
    feasible: bool
    n_volumes: int
    alpha: float


def minimum_volumes(alpha: float) -> int:
    """The fewest calibration volumes for which either bound can be met at ``alpha``: the smallest
    ``n`` with ``1 / (n + 1) <= alpha``."""
    check_fraction("alpha", alpha, open_low=True, open_high=True)
    return max(1, math.ceil(1.0 / alpha - 1.0 - 1e-9))


def _checked_volumes(volumes: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(volumes, np.ndarray) or not len(volumes):
        raise ValueError("give the brain scores of at least one healthy volume, as a list of arrays")
    checked = []
    for index, scores in enumerate(volumes):
        array = np.asarray(scores)
        check_scores(f"volume {index} scores", array.astype(np.float64, copy=False) if array.dtype.kind in "iu"
                     else array, nonnegative=True)
        checked.append(array.ravel())
    return checked


def conformal_fpr_threshold(volumes: Sequence[np.ndarray], alpha: float) -> ConformalChoice:
    """The conformal-risk-control threshold bounding the expected voxel false-positive rate.

    Args:
        volumes: one (B_i,) array per healthy calibration volume: its post-processed scores inside
            the brain (zeros included: they count in the rate's denominator).
        alpha: the bound on the expected false-positive rate, in (0, 1).

    Returns:
        the smallest pooled score ``t`` (or just below the smallest, flagging everything) with
        ``(n R(t) + 1) / (n + 1) <= alpha`` (module docstring).
    """
    check_fraction("alpha", alpha, open_low=True, open_high=True)
    arrays = _checked_volumes(volumes)
    n = len(arrays)
    scores = np.concatenate(arrays).astype(np.float64)
    weights = np.concatenate([np.full(array.size, 1.0 / (n * array.size)) for array in arrays])
    order = np.argsort(scores)
    ordered, ordered_weights = scores[order], weights[order]
    ends = tie_run_ends(ordered)
    # risk above each distinct value: the weight of the scores strictly greater than it
    cumulative = np.cumsum(ordered_weights)
    risk_above = cumulative[-1] - cumulative[ends]
    values = ordered[ends]
    candidates = np.concatenate([[np.nextafter(values[0], -np.inf)], values])
    risks = np.concatenate([[1.0], risk_above])
    bound = (n * risks + 1.0) / (n + 1.0)
    allowed = np.flatnonzero(bound <= alpha + 1e-12)
    if allowed.size == 0:
        return ConformalChoice(float(values[-1]), False, n, alpha)
    return ConformalChoice(max(0.0, float(candidates[allowed[0]])), True, n, alpha)


def conformal_volume_threshold(volumes: Sequence[np.ndarray], alpha: float, max_false_ml: float, *,
                               voxel_volume_ml: float = MODEL_GRID_VOXEL_ML) -> ConformalChoice:
    """The split-conformal threshold bounding the probability of more than ``max_false_ml`` ml of
    false positives in a new healthy scan by ``alpha``.

    Args:
        volumes: one (B_i,) array of post-processed brain scores per healthy calibration volume.
        alpha: the bound on the probability, in (0, 1).
        max_false_ml: the false-lesion volume tolerated, in ml (>= 0).
        voxel_volume_ml: one voxel's volume in ml (model grid: 0.008).
    """
    check_fraction("alpha", alpha, open_low=True, open_high=True)
    check_number("max_false_ml", max_false_ml, 0.0)
    check_number("voxel_volume_ml", voxel_volume_ml, 0.0, open_low=True)
    arrays = _checked_volumes(volumes)
    n = len(arrays)
    allowed_voxels = math.floor(max_false_ml / voxel_volume_ml + 1e-9)
    # each volume's (k + 1)-th largest score: above it lie at most k voxels (0: fewer voxels than k + 1)
    ranks = [array.size - allowed_voxels - 1 for array in arrays]
    statistics = np.array([0.0 if rank < 0 else float(np.partition(array, rank)[rank])
                           for array, rank in zip(arrays, ranks)])
    rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    if rank > n:
        return ConformalChoice(float(max(array.max() for array in arrays)), False, n, alpha)
    return ConformalChoice(float(np.sort(statistics)[rank - 1]), True, n, alpha)


class _ConformalStrategy(ThresholdStrategy):
    """A strategy chosen on the pool's volumes, not its pooled voxels (see :meth:`VoxelPool.volumes`)."""

    alpha: float

    def select(self, pool: VoxelPool) -> Threshold:
        choice = self.choose(pool.volumes())
        return Threshold(self.label, choice.value, pool.sorted().counts_above(choice.value),
                         "" if choice.feasible else self.infeasible_note(choice.n_volumes))

    def infeasible_note(self, n_volumes: int) -> str:
        return (f"{self.label}: {n_volumes} healthy volumes cannot bound the rate at {self.alpha:g} (at least "
                f"{minimum_volumes(self.alpha)} are needed): the threshold flags nothing of them")

    @abstractmethod
    def choose(self, volumes: Sequence[np.ndarray]) -> ConformalChoice:
        """The threshold from the healthy volumes' brain scores."""

    def _value(self, voxels: SortedVoxels) -> float:
        raise TypeError(f"{self.label} is chosen on volumes, not on pooled voxels: call select(pool)")


class ConformalFPR(_ConformalStrategy):
    """Bounds the expected voxel false-positive rate of a healthy scan by ``alpha``
    (:func:`conformal_fpr_threshold`); pool healthy brain voxels volume by volume."""

    def __init__(self, alpha: float) -> None:
        self.alpha = check_fraction("ConformalFPR alpha", alpha, open_low=True, open_high=True)
        self.label = f"conformal-fpr-{alpha * 100:g}%"

    def choose(self, volumes: Sequence[np.ndarray]) -> ConformalChoice:
        return conformal_fpr_threshold(volumes, self.alpha)


class ConformalVolume(_ConformalStrategy):
    """Bounds the probability of more than ``max_false_ml`` ml flagged in a healthy scan by
    ``alpha`` (:func:`conformal_volume_threshold`, model-grid voxels)."""

    def __init__(self, alpha: float, max_false_ml: float) -> None:
        self.alpha = check_fraction("ConformalVolume alpha", alpha, open_low=True, open_high=True)
        self.max_false_ml = check_number("ConformalVolume max_false_ml", max_false_ml, 0.0)
        self.label = f"conformal-volume-{alpha * 100:g}%-{max_false_ml:g}ml"

    def choose(self, volumes: Sequence[np.ndarray]) -> ConformalChoice:
        return conformal_volume_threshold(volumes, self.alpha, self.max_false_ml)
