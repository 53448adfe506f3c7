import numpy as np
import pytest

from brainuad.evaluate.metrics import confusion_counts
from brainuad.evaluate.thresholds import (
    HealthyFPR,
    Oracle,
    ValDice,
    ValDiceBisection,
    VoxelPool,
    bisection_dice_threshold,
    exact_dice_threshold,
    false_positive_rate_threshold,
)


def _pool(scores, labels=None, mask=None, dtype=np.float32):
    pool = VoxelPool(int(np.size(scores)), dtype)
    pool.add(scores, labels, mask)
    return pool


def _brute_force(scores, labels):
    """Dice of ``scores > t`` at every unique value and just below the minimum."""
    candidates = np.concatenate([[np.nextafter(scores.min(), -np.inf)], np.unique(scores)])
    dice = np.array([confusion_counts(scores > t, labels).dice for t in candidates])
    return candidates, dice


@pytest.mark.parametrize("zero_fraction", [0.0, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_exact_threshold_equals_brute_force_with_ties_and_zeros(seed, zero_fraction):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.gamma(2.0, 0.1, 400), 2).astype(np.float32) + np.float32(0.01)
    scores[rng.random(400) < zero_fraction] = 0  # masked-out background
    labels = (scores + rng.normal(0, 0.1, 400) > 0.35) & (rng.random(400) < 0.8)
    labels[:3] = True
    candidates, dice = _brute_force(scores, labels)
    value = exact_dice_threshold(_pool(scores, labels).sorted())
    assert confusion_counts(scores > value, labels).dice == dice.max()
    assert value == candidates[np.argmax(dice)]  # the smallest maximiser


def test_everything_positive_can_be_optimal():
    scores = np.array([0.0, 0.0, 0.2, 0.3], np.float32)
    labels = np.array([True, True, True, False])
    value = exact_dice_threshold(_pool(scores, labels).sorted())
    assert value < 0 and confusion_counts(scores > value, labels).dice == pytest.approx(6 / 7)


def test_threshold_record_reports_dice_and_counts_on_the_pool():
    rng = np.random.default_rng(3)
    scores = rng.random((10, 10, 5)).astype(np.float32)
    labels = scores + rng.normal(0, 0.2, scores.shape) > 0.8
    result = ValDice().select(_pool(scores, labels))
    assert result.strategy == "val-dice"
    assert result.dice == confusion_counts(scores > result.value, labels).dice
    assert result.counts.tp + result.counts.fp == np.count_nonzero(scores > result.value)
    assert Oracle().select(_pool(scores, labels)).strategy == "oracle"


def test_bisection_follows_the_documented_steps():
    # positives at 0.9, negatives at 0.1: Dice is 1 for every threshold in [0.1, 0.9)
    scores = np.array([0.9] * 5 + [0.1] * 20 + [1.0], np.float32)
    labels = np.array([True] * 5 + [False] * 20 + [True])
    voxels = _pool(scores, labels).sorted()
    # range [0, 1]: q1 = 0.25 (tie with q3 -> lower half), [0, .5]: 0.125, [0, .25]: q1 = 0.0625 is
    # worse than q3 = 0.1875 -> upper half [0.125, 0.25], then ties keep the lower quarter 0.15625
    expected = {1: 0.25, 2: 0.125, 3: 0.1875, 4: 0.15625}
    for steps, value in expected.items():
        assert bisection_dice_threshold(voxels, steps) == pytest.approx(value)
    result = ValDiceBisection().select(_pool(scores, labels))
    assert result.strategy == "val-dice-bisection" and result.dice == 1.0 and 0.125 < result.value < 0.15625


def test_bisection_never_beats_the_exact_search_and_can_miss_it():
    # Dice(> 0.75) > Dice(> 0.25) sends the search to [0.5, 1], away from the optimum near 0.15
    scores = np.concatenate([np.full(200, 0.1), np.full(100, 0.2), np.full(5, 0.5), np.full(10, 0.9), [1.0]])
    labels = np.concatenate([np.zeros(200, bool), np.ones(100, bool), np.zeros(5, bool), np.ones(10, bool), [False]])
    pool = _pool(scores.astype(np.float32), labels)
    exact, legacy = ValDice().select(pool), ValDiceBisection().select(pool)
    assert exact.value == pytest.approx(0.1) and exact.dice == pytest.approx(220 / 226)
    assert legacy.value > 0.5 and legacy.dice < 0.2
    rng = np.random.default_rng(0)
    for _ in range(5):
        s = rng.random(300).astype(np.float32)
        y = s + rng.normal(0, 0.3, 300) > 0.9
        y[0] = True
        p = _pool(s, y)
        assert ValDice().select(p).dice >= ValDiceBisection().select(p).dice


def test_bisection_degenerate_range_widens_to_one():
    scores = np.zeros(10, np.float32)
    labels = np.zeros(10, bool)
    labels[0] = True
    # [0, 0] becomes [0, 1]; Dice is 0 at both quarter points and ">=" keeps the lower one
    assert bisection_dice_threshold(_pool(scores, labels).sorted(), steps=1) == 0.25


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.10])
def test_healthy_fpr_is_the_order_statistic(rate):
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, 0.02, (20, 20, 10)).astype(np.float32)
    brain = rng.random(scores.shape) < 0.8
    scores[~brain] = 0
    scores[brain & (rng.random(scores.shape) < 0.05)] = 0  # eroded-away ring inside the brain
    result = HealthyFPR(rate).select(_pool(scores, mask=brain))
    inside = scores[brain]
    above = np.count_nonzero(inside > result.value)
    assert above <= np.floor(rate * inside.size)
    assert np.count_nonzero(inside >= result.value) > np.floor(rate * inside.size)  # no smaller value qualifies
    assert result.strategy == f"healthy-fpr-{rate * 100:g}%"
    assert result.false_positive_rate == above / inside.size
    assert result.value == pytest.approx(np.quantile(inside, 1 - rate), abs=2e-3)


def test_pool_accumulates_volumes_and_compresses_zeros():
    rng = np.random.default_rng(0)
    volumes = [np.where(rng.random((6, 6, 4)) < 0.5, rng.random((6, 6, 4)), 0).astype(np.float32) for _ in range(3)]
    labels = [v > 0.7 for v in volumes]
    pool = VoxelPool.for_volumes(3, (6, 6, 4))
    for v, y in zip(volumes, labels):
        pool.add(v, y)
    assert pool.capacity == 3 * 6 * 6 * 4
    flat = np.concatenate([v.ravel() for v in volumes])
    assert np.array_equal(np.sort(pool.scores), np.sort(flat[flat != 0]))
    assert pool.zero_negatives == np.count_nonzero(flat == 0)
    first = pool.sorted()
    assert pool.sorted() is first  # cached
    pool2 = VoxelPool(1000)
    pool2.add(volumes[0], labels[0])
    before = pool2.sorted()
    pool2.add(volumes[1], labels[1])
    assert pool2.sorted().n_voxels == before.n_voxels + volumes[1].size


def test_pool_float64_storage():
    pool = _pool(np.array([0.1, 0.2, 0.0]), np.array([False, True, False]), dtype=np.float64)
    assert pool.scores.dtype == np.float64
    assert ValDice().select(pool).value == 0.1


def test_invalid_inputs():
    with pytest.raises(ValueError, match="capacity"):
        VoxelPool(0)
    with pytest.raises(ValueError, match="dtype"):
        VoxelPool(10, np.int32)
    with pytest.raises(ValueError, match="n_volumes"):
        VoxelPool.for_volumes(0, (2, 2))
    with pytest.raises(ValueError, match="volume_shape"):
        VoxelPool.for_volumes(1, (2, 0))
    pool = VoxelPool(4)
    with pytest.raises(ValueError, match="capacity 4 exceeded"):
        pool.add(np.ones(5, np.float32))
    with pytest.raises(ValueError, match=">= 0"):
        pool.add(-np.ones(2, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        pool.add(np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="shape mismatch"):
        pool.add(np.ones(2, np.float32), np.ones(3, bool))
    with pytest.raises(ValueError, match="boolean"):
        pool.add(np.ones(2, np.float32), np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        pool.add(np.ones(0, np.float32))
    with pytest.raises(ValueError, match="is empty"):
        ValDice().select(VoxelPool(4))
    with pytest.raises(ValueError, match="no positive"):
        ValDice().select(_pool(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="healthy pool"):
        HealthyFPR(0.01).select(_pool(np.ones(3, np.float32), np.ones(3, bool)))
    with pytest.raises(ValueError, match="rate"):
        HealthyFPR(1.0)
    with pytest.raises(ValueError, match="steps"):
        ValDiceBisection(0)
    voxels = _pool(np.ones(3, np.float32), np.ones(3, bool)).sorted()
    with pytest.raises(ValueError, match="steps"):
        bisection_dice_threshold(voxels, steps=0)
    with pytest.raises(ValueError, match="rate"):
        false_positive_rate_threshold(voxels, 0.0)
