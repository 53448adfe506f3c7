"""Bootstrap intervals over volumes: coverage, exactness on small samples, undefined values."""

import itertools
import math

import numpy as np
import pytest

from brainuad.evaluate.bootstrap import Interval, bootstrap_interval, paired_bootstrap_difference


def test_interval_matches_the_exact_bootstrap_distribution_of_a_small_sample() -> None:
    values = np.array([0.02, 0.1, 0.3, 0.45, 0.7, 0.93])
    exact = np.array(list(itertools.product(values, repeat=6))).mean(axis=1)  # all 6^6 equally likely resamples
    interval = bootstrap_interval(values, n_resamples=40_000, seed=3)
    assert interval.mean == pytest.approx(values.mean())
    assert interval.low == pytest.approx(np.quantile(exact, 0.025), abs=0.01)
    assert interval.high == pytest.approx(np.quantile(exact, 0.975), abs=0.01)


def test_95_percent_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    covered = []
    for seed in range(300):
        interval = bootstrap_interval(rng.beta(2, 5, 60), n_resamples=500, seed=seed)
        covered.append(interval.low <= 2 / 7 <= interval.high)
    assert 0.89 <= np.mean(covered) <= 0.99


def test_undefined_values_are_left_out_and_edge_cases() -> None:
    with_nan = bootstrap_interval([0.5, math.nan, 0.7, 0.6], seed=1)
    assert with_nan == bootstrap_interval([0.5, 0.7, 0.6], seed=1)
    assert with_nan.n == 3 and with_nan.low <= with_nan.mean <= with_nan.high
    single = bootstrap_interval([0.25])
    assert (single.mean, single.low, single.high, single.n) == (0.25, 0.25, 0.25, 1)
    empty = bootstrap_interval([math.nan])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.low)
    with pytest.raises(ValueError, match="infinite"):
        bootstrap_interval([1.0, math.inf])
    with pytest.raises(ValueError):
        bootstrap_interval([0.1, 0.2], confidence=1.0)


def test_paired_difference_resamples_pairs_together() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(0.5, 0.2, 80)  # a per-volume difficulty both methods share
    first, second = shared + 0.05 + rng.normal(0, 0.01, 80), shared + rng.normal(0, 0.01, 80)
    difference = paired_bootstrap_difference(first, second, seed=4)
    assert difference == bootstrap_interval(first - second, seed=4)
    assert 0 < difference.low < 0.05 < difference.high < 0.1  # tight: the shared difficulty cancels
    unpaired_width = 2 * 1.96 * math.sqrt(first.var() / 80 + second.var() / 80)
    assert difference.high - difference.low < unpaired_width / 5
    first[3] = math.nan
    assert paired_bootstrap_difference(first, second).n == 79
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_difference([0.1, 0.2], [0.1])


def test_format() -> None:
    interval = Interval(0.5337, 0.512, 0.5541, 20, 0.95, 1000)
    assert interval.format(2, 100) == "53.37 [51.20, 55.41]"
    assert Interval(0.01, -0.002, 0.02, 5, 0.95, 1000).format(1, 100, signed=True) == "+1.0 [-0.2, +2.0]"
