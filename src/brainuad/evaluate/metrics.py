"""Segmentation metrics of anomaly maps: confusion counts, Dice, AUPRC and AUROC (paper §4.5.3).

Conventions (method.md §4, step 5):

- A prediction is the binarised map ``R > threshold`` after post-processing; the target is the
  ground-truth lesion mask. Both are boolean arrays of one shape, e.g. (X, Y, Z) = (96, 96, 50).
- **Dice** ``2 |A n B| / (|A| + |B|)``. Empty target *and* empty prediction: 0 / 0, returned as
  ``nan`` and excluded from the mean over volumes (``statistics.mean_std`` skips nan values and
  reports how many it skipped). An empty target with a non-empty prediction scores 0, a
  non-empty target with an empty prediction scores 0; both are counted.
- **AUPRC** is average precision, the step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` over the
  distinct score values taken as thresholds in decreasing order (``R_0 = 0``), as scikit-learn's
  ``average_precision_score``; it is *not* the trapezoidal area under the PR curve. Tied scores
  form one threshold. No positive voxel: ``nan``; no negative voxel: 1.
- **AUROC** is the area under the ROC curve with trapezoids between distinct thresholds, which
  equals the probability that a random positive scores above a random negative, ties counting
  one half (as scikit-learn's ``roc_auc_score``). Only one class present: ``nan``.

Two ways to report AUPRC / AUROC, labelled by the caller:

- per volume over all voxels of the grid, background included (the authors' way), exact:
  :func:`ranking_scores` (one sort of the volume), then the mean over volumes;
- pooled over the brain voxels of a whole split (the fair way): :class:`ScoreHistogram`
  accumulates fixed-bin counts of positive and negative scores volume by volume, so memory
  stays flat in the number of volumes. Voxels within one bin are treated as tied, which biases
  AUPRC slightly down; the error shrinks about in proportion to the bin width and does not grow
  with the number of volumes. Measured against the exact values on the post-processed synthetic
  maps of ``benchmarks/evaluate.py`` (scores in [0, 0.14], 5 M brain voxels): with 2**16 bins
  over [0, 1] AUPRC is off by 8.8e-5 and AUROC by 1e-7; with the default 2**20 bins by 5.6e-6
  and 1e-8. The tests require below 1e-4.

The argument checks shared by the ``evaluate`` modules (:func:`check_mask`,
:func:`check_scores`, :func:`check_same_shape`) live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "ConfusionCounts",
    "RankingScores",
    "ScoreHistogram",
    "VolumeScores",
    "check_mask",
    "check_same_shape",
    "check_scores",
    "confusion_counts",
    "ranking_scores",
    "score_volume",
    "tie_run_ends",
]


def check_mask(name: str, mask: np.ndarray) -> None:
    """Raise ValueError unless ``mask`` is a non-empty boolean numpy array."""
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        kind = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{name} must be a boolean numpy array, got {kind}")
    if mask.size == 0:
        raise ValueError(f"{name} is empty (shape {mask.shape})")


def check_scores(name: str, scores: np.ndarray, *, nonnegative: bool = False) -> None:
    """Raise ValueError unless ``scores`` is a non-empty finite floating numpy array
    (and, with ``nonnegative``, without negative values)."""
    if not isinstance(scores, np.ndarray) or not np.issubdtype(scores.dtype, np.floating):
        kind = scores.dtype if isinstance(scores, np.ndarray) else type(scores).__name__
        raise ValueError(f"{name} must be a floating-point numpy array, got {kind}")
    if scores.size == 0:
        raise ValueError(f"{name} is empty (shape {scores.shape})")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name} contains {int(np.count_nonzero(~np.isfinite(scores)))} NaN or infinite values")
    if nonnegative and scores.min() < 0:
        raise ValueError(f"{name} must be >= 0, got a minimum of {float(scores.min())!r}")


def check_same_shape(**arrays: np.ndarray) -> None:
    """Raise ValueError unless all named arrays have one shape."""
    shapes = {name: np.shape(array) for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shape mismatch: {listed}")


def checked_voxels(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray | None, *,
                   nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` and boolean ``labels`` of one shape, checked, restricted to ``mask`` (boolean, the
    same shape; None keeps every voxel): flat arrays inside the mask, else the arrays as given."""
    check_scores("scores", scores, nonnegative=nonnegative)
    check_mask("labels", labels)
    check_same_shape(scores=scores, labels=labels)
    if mask is None:
        return scores, labels
    check_mask("mask", mask)
    check_same_shape(scores=scores, mask=mask)
    return scores[mask], labels[mask]


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a binary prediction against a target (always by name, never by position).

    Attributes:
        tp: predicted and in the target.
        fp: predicted, not in the target.
        fn: in the target, not predicted.
        tn: neither.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def dice(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; ``nan`` when target and prediction are both empty."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2.0 * self.tp / denominator if denominator else float("nan")

    @property
    def false_positive_rate(self) -> float:
        """``fp / (fp + tn)``: the fraction of negative voxels predicted; ``nan`` without negatives."""
        negatives = self.fp + self.tn
        return self.fp / negatives if negatives else float("nan")


def confusion_counts(prediction: np.ndarray, target: np.ndarray) -> ConfusionCounts:
    """Confusion counts of a binary prediction.

    Args:
        prediction: boolean array, any shape, e.g. (X, Y, Z).
        target: boolean array of the same shape (ground-truth lesions).
    """
    check_mask("prediction", prediction)
    check_mask("target", target)
    check_same_shape(prediction=prediction, target=target)
    predicted = int(np.count_nonzero(prediction))
    positives = int(np.count_nonzero(target))
    tp = int(np.count_nonzero(prediction & target))
    return ConfusionCounts(tp=tp, fp=predicted - tp, fn=positives - tp,
                           tn=prediction.size - predicted - positives + tp)


def tie_run_ends(ordered: np.ndarray) -> np.ndarray:
    """Index of the last element of every run of equal values in a sorted array.

    Args:
        ordered: (M,) sorted values (M may be 0).
    Returns:
        (G,) int64 increasing indices, one per distinct value.
    """
    if ordered.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.append(np.flatnonzero(ordered[1:] != ordered[:-1]), ordered.size - 1)


class RankingScores(NamedTuple):
    """Threshold-free scores of an anomaly map (see the module docstring for the definitions)."""

    average_precision: float
    roc_auc: float


def _ranking_from_groups(positives: np.ndarray, negatives: np.ndarray) -> RankingScores:
    """AUPRC and AUROC from the counts of positives and negatives per group of tied scores.

    Args:
        positives: (G,) int counts of positive voxels per group, groups in increasing score order.
        negatives: (G,) int counts of negative voxels per group, same order.
    """
    n_pos = int(positives.sum())
    n_neg = int(negatives.sum())
    if n_pos == 0:
        return RankingScores(float("nan"), float("nan"))
    # Thresholds in decreasing score order: a group is predicted with every group above it.
    tp = np.cumsum(positives[::-1])
    fp = np.cumsum(negatives[::-1])
    steps = positives[::-1] > 0
    precision = tp[steps] / (tp[steps] + fp[steps])
    average_precision = float(np.sum(positives[::-1][steps] / n_pos * precision))
    if n_neg == 0:
        return RankingScores(average_precision, float("nan"))
    below = np.cumsum(negatives) - negatives
    pairs = np.sum(positives * (2 * below + negatives))  # twice the concordant pairs, ties counting one
    return RankingScores(average_precision, float(pairs / (2.0 * n_pos * n_neg)))


def ranking_scores(scores: np.ndarray, labels: np.ndarray) -> RankingScores:
    """Exact AUPRC (average precision) and AUROC of scores against binary labels, from one sort.

    Matches scikit-learn's ``average_precision_score`` / ``roc_auc_score`` to 1e-9, ties included.
    Per volume the authors use every voxel of the grid (background included).

    Args:
        scores: float array, any shape, e.g. (X, Y, Z) residuals; finite.
        labels: boolean array of the same shape (True = lesion).
    """
    check_scores("scores", scores)
    check_mask("labels", labels)
    check_same_shape(scores=scores, labels=labels)
    flat = scores.ravel()
    ordered = np.sort(flat)
    run_ends = tie_run_ends(ordered)
    values = ordered[run_ends]
    sizes = np.diff(run_ends, prepend=-1)
    groups_of_positives = np.searchsorted(values, flat[labels.ravel()])
    positives = np.bincount(groups_of_positives, minlength=values.size)
    return _ranking_from_groups(positives, sizes - positives)


class ScoreHistogram:
    """Streaming AUPRC / AUROC over many volumes from fixed-bin score histograms.

    Keeps two (bins,) int64 arrays (positives, negatives; 16 MiB with the default 2**20 bins), so
    memory does not grow with the number of volumes. Bin ``b`` holds scores in
    ``[low + b w, low + (b + 1) w)``, ``w = (high - low) / bins``; the last bin also takes
    ``high``. Scores outside ``[low, high]`` are put in the first or last bin and counted in
    :attr:`n_clipped` (they are then tied with that bin).

    Scores within one bin count as tied, which is the only approximation: with 2**20 bins over
    [0, 1] the AUPRC error on realistic residual maps is about 6e-6 (see the module docstring).

    Args:
        low: lower end of the score range.
        high: upper end of the score range (> low).
        bins: number of bins (>= 2**16; the default 2**20 keeps the error well below 1e-4).
    """

    def __init__(self, low: float = 0.0, high: float = 1.0, bins: int = 2**20) -> None:
        if not (np.isfinite(low) and np.isfinite(high) and high > low):
            raise ValueError(f"ScoreHistogram needs finite low < high, got low={low!r}, high={high!r}")
        if not isinstance(bins, int) or bins < 2**16:
            raise ValueError(f"ScoreHistogram bins must be an int >= 65536, got {bins!r}")
        self.low = float(low)
        self.high = float(high)
        self.bins = bins
        self.positives = np.zeros(bins, dtype=np.int64)
        self.negatives = np.zeros(bins, dtype=np.int64)
        self.n_clipped = 0

    def add(self, scores: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Count the voxels of one volume.

        Args:
            scores: float array, e.g. (X, Y, Z) post-processed residuals; finite.
            labels: boolean array of the same shape (True = lesion).
            mask: boolean array of the same shape selecting the voxels to count (e.g. the brain
                mask); None counts every voxel.
        """
        scores, labels = checked_voxels(scores, labels, mask)
        position = (scores.ravel().astype(np.float64) - self.low) * (self.bins / (self.high - self.low))
        self.n_clipped += int(np.count_nonzero((position < 0) | (position > self.bins)))
        index = np.clip(position, 0, self.bins - 1).astype(np.int64)
        flat_labels = labels.ravel()
        self.positives += np.bincount(index[flat_labels], minlength=self.bins)
        self.negatives += np.bincount(index[~flat_labels], minlength=self.bins)

    def ranking_scores(self) -> RankingScores:
        """AUPRC and AUROC of every voxel added so far (``nan`` as :func:`ranking_scores`)."""
        return _ranking_from_groups(self.positives, self.negatives)


class VolumeScores(NamedTuple):
    """Segmentation scores of one volume (the authors' per-volume protocol, all voxels)."""

    dice: float
    counts: ConfusionCounts
    average_precision: float
    roc_auc: float


def score_volume(prediction: np.ndarray, target: np.ndarray, scores: np.ndarray) -> VolumeScores:
    """Dice, confusion counts and exact AUPRC / AUROC of one volume over all its voxels.

    Args:
        prediction: (X, Y, Z) boolean, the binarised post-processed map.
        target: (X, Y, Z) boolean ground truth.
        scores: (X, Y, Z) float, the post-processed residual before binarisation.
    """
    counts = confusion_counts(prediction, target)
    ranking = ranking_scores(scores, target)
    return VolumeScores(counts.dice, counts, ranking.average_precision, ranking.roc_auc)
