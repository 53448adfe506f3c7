"""Summary statistics and significance tests of per-volume or per-fold scores (paper §4.5.4).

- :func:`mean_std`: nan-safe mean and standard deviation, the *sample* standard deviation
  (``ddof=1``) by default, e.g. over the 5 folds; nan values (volumes whose Dice is undefined,
  see metrics.py) are left out and counted. :meth:`MeanStd.format` prints "53.37 ± 1.49".
- :func:`paired_permutation_test` / :func:`unpaired_permutation_test`: permutation tests of the
  difference of means ``mean(first) - mean(second)`` with ``scipy.stats.permutation_test``,
  10,000 permutations by default (the paper uses MLXtend's test with 10,000 rounds). Paired:
  the two scores of each case are swapped at random (sign flips of the differences);
  unpaired: the pooled observations are reassigned to the two groups. When all distinct
  permutations number at most ``n_permutations`` they are enumerated (an exact test); else
  ``n_permutations`` random ones are drawn from a seedable generator and the observed
  statistic counts as one of them (p = (k + 1) / (n_permutations + 1)). Two-sided p-values are
  twice the smaller one-sided p-value (at most 1), as scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from scipy import stats

__all__ = [
    "Alternative",
    "MeanStd",
    "PermutationTestResult",
    "mean_std",
    "paired_permutation_test",
    "unpaired_permutation_test",
]

Alternative: TypeAlias = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class MeanStd:
    """Mean and standard deviation of the non-nan values.

    Attributes:
        mean: mean of the included values (nan if none).
        std: standard deviation with ``ddof`` (nan if fewer than ``ddof + 1`` values).
        n: number of values included.
        n_excluded: number of nan values left out.
        ddof: delta degrees of freedom of ``std`` (1: sample standard deviation).
    """

    mean: float
    std: float
    n: int
    n_excluded: int
    ddof: int

    def format(self, decimals: int = 2, scale: float = 1.0) -> str:
        """"mean ± std" with ``decimals`` decimals after multiplying by ``scale`` (100 for %)."""
        if not isinstance(decimals, int) or decimals < 0:
            raise ValueError(f"decimals must be an int >= 0, got {decimals!r}")
        return f"{self.mean * scale:.{decimals}f} ± {self.std * scale:.{decimals}f}"


def mean_std(values: np.ndarray | list[float], ddof: int = 1) -> MeanStd:
    """Nan-safe mean and standard deviation.

    Args:
        values: (N,) scores, e.g. Dice per volume or a metric per fold; nan marks undefined ones.
        ddof: delta degrees of freedom (1: sample std over folds; 0: the population std
            ``numpy.nanstd`` gives, as the authors' per-volume figures).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {array.shape}")
    if not isinstance(ddof, int) or ddof < 0:
        raise ValueError(f"ddof must be an int >= 0, got {ddof!r}")
    if np.isinf(array).any():
        raise ValueError("values contain infinite entries")
    kept = array[~np.isnan(array)]
    mean = float(kept.mean()) if kept.size else float("nan")
    std = float(kept.std(ddof=ddof)) if kept.size > ddof else float("nan")
    return MeanStd(mean, std, int(kept.size), int(array.size - kept.size), ddof)


@dataclass(frozen=True)
class PermutationTestResult:
    """Outcome of a permutation test of ``mean(first) - mean(second)``.

    Attributes:
        difference: the observed difference of means.
        p_value: probability under the null of a difference at least as extreme.
        n_first: observations in the first sample.
        n_second: observations in the second sample (equal to ``n_first`` when paired).
        alternative: "two-sided", "greater" (first > second) or "less".
        paired: whether pairs were kept together.
        exact: whether every distinct permutation was enumerated.
        n_permutations: the number of random permutations asked for.
    """

    difference: float
    p_value: float
    n_first: int
    n_second: int
    alternative: Alternative
    paired: bool
    exact: bool
    n_permutations: int


def _sample(name: str, values: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty one-dimensional array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _permutation_test(first: np.ndarray, second: np.ndarray, *, paired: bool, n_permutations: int,
                      alternative: Alternative, seed: int | None) -> PermutationTestResult:
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations must be an int >= 1, got {n_permutations!r}")
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")

    def difference_of_means(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    result = stats.permutation_test((first, second), difference_of_means, vectorized=True,
                                    permutation_type="samples" if paired else "independent",
                                    n_resamples=n_permutations, alternative=alternative,
                                    rng=np.random.default_rng(seed))
    distinct = 2**first.size if paired else math.comb(first.size + second.size, first.size)
    return PermutationTestResult(float(result.statistic), float(result.pvalue), first.size, second.size,
                                 alternative, paired, distinct <= n_permutations, n_permutations)


def paired_permutation_test(first: np.ndarray | list[float], second: np.ndarray | list[float], *,
                            n_permutations: int = 10_000, alternative: Alternative = "two-sided",
                            seed: int | None = None) -> PermutationTestResult:
    """Paired permutation test of the mean difference (e.g. two models on the same volumes).

    Args:
        first: (N,) scores of the first model.
        second: (N,) scores of the second model on the same cases, same order.
        n_permutations: random permutations when enumeration would need more (10,000).
        alternative: "two-sided", "greater" (first > second) or "less".
        seed: seed of the generator drawing the permutations.
    """
    a, b = _sample("first", first), _sample("second", second)
    if a.size != b.size:
        raise ValueError(f"a paired test needs samples of one length, got {a.size} and {b.size}")
    return _permutation_test(a, b, paired=True, n_permutations=n_permutations, alternative=alternative, seed=seed)


def unpaired_permutation_test(first: np.ndarray | list[float], second: np.ndarray | list[float], *,
                              n_permutations: int = 10_000, alternative: Alternative = "two-sided",
                              seed: int | None = None) -> PermutationTestResult:
    """Unpaired (two-sample) permutation test of the difference of means.

    Args:
        first: (N1,) scores of the first group.
        second: (N2,) scores of the second group.
        n_permutations: random permutations when enumeration would need more (10,000).
        alternative: "two-sided", "greater" (first > second) or "less".
        seed: seed of the generator drawing the permutations.
    """
    a, b = _sample("first", first), _sample("second", second)
    return _permutation_test(a, b, paired=False, n_permutations=n_permutations, alternative=alternative, seed=seed)
