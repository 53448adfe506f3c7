"""Bootstrap confidence intervals of per-volume figures, over volumes.

- :func:`bootstrap_interval`: the percentile bootstrap interval of the mean of per-volume values
  (e.g. Dice of each test volume): the volumes are resampled with replacement ``n_resamples``
  times (1,000 by default, seeded), the mean is taken of each resample, and the interval is the
  ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means (95 % by default).
- :func:`paired_bootstrap_difference`: the same for the mean *difference* of two methods on the
  same volumes (pairs resampled together), beside the paired permutation test of
  :mod:`~brainuad.evaluate.statistics`: an interval that excludes 0 says the same as a small p,
  and its width says how large the difference may be.

Undefined values (nan: a Dice of an empty volume with an empty prediction, a lesion recall of a
volume without lesion) are left out before resampling, as in the means; pairs with an undefined
value are dropped. No value: every field nan. One value: the interval is that value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainuad.checks import check_fraction, check_int

__all__ = ["CONFIDENCE", "N_RESAMPLES", "Interval", "bootstrap_interval", "paired_bootstrap_difference"]

N_RESAMPLES = 1_000
"""Bootstrap resamples by default."""
CONFIDENCE = 0.95
"""Confidence level of the intervals by default."""
_CHUNK = 4_000_000
"""Resampled values drawn at once (bounds the memory of large splits)."""


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval.

    Attributes:
        mean: the mean of the defined values (nan if none).
        low, high: the interval's bounds.
        n: the defined values (volumes, or pairs for a difference).
        confidence: the interval's level, e.g. 0.95.
        n_resamples: bootstrap resamples drawn.
    """

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    n_resamples: int

    def format(self, decimals: int = 2, scale: float = 1.0, signed: bool = False) -> str:
        """``mean [low, high]`` in display units (``scale``: 100 for %); ``signed`` puts a sign on
        every number (differences)."""
        check_int("decimals", decimals, 0)
        sign = "+" if signed else ""
        numbers = [f"{value * scale + 0.0:{sign}.{decimals}f}" for value in (self.mean, self.low, self.high)]
        return f"{numbers[0]} [{numbers[1]}, {numbers[2]}]"


def _defined(name: str, values: np.ndarray | list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values")
    return array


def _interval(kept: np.ndarray, n_resamples: int, confidence: float, seed: int) -> Interval:
    check_int("n_resamples", n_resamples, 1)
    check_fraction("confidence", confidence, open_low=True, open_high=True)
    if kept.size == 0:
        return Interval(np.nan, np.nan, np.nan, 0, confidence, n_resamples)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    per_chunk = max(1, _CHUNK // kept.size)
    for start in range(0, n_resamples, per_chunk):
        stop = min(n_resamples, start + per_chunk)
        means[start:stop] = kept[rng.integers(0, kept.size, (stop - start, kept.size))].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return Interval(float(kept.mean()), float(low), float(high), int(kept.size), confidence, n_resamples)


def bootstrap_interval(values: np.ndarray | list[float], *, n_resamples: int = N_RESAMPLES,
                       confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """The percentile bootstrap interval of the mean of ``values`` ((N,), nan = undefined, left out)."""
    array = _defined("values", values)
    return _interval(array[~np.isnan(array)], n_resamples, confidence, seed)


def paired_bootstrap_difference(first: np.ndarray | list[float], second: np.ndarray | list[float], *,
                                n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                                seed: int = 0) -> Interval:
    """The percentile bootstrap interval of ``mean(first - second)`` over pairs ((N,) each, the same
    volumes in the same order; pairs with a nan dropped)."""
    a, b = _defined("first", first), _defined("second", second)
    if a.size != b.size:
        raise ValueError(f"paired values need one length, got {a.size} and {b.size}")
    differences = a - b
    return _interval(differences[~np.isnan(differences)], n_resamples, confidence, seed)
