"""Conformal healthy thresholds: the exact rule, and the realised rates on held-out healthy volumes."""

import math

import numpy as np
import pytest

from brainuad.evaluate.conformal import (
    ConformalFPR,
    ConformalVolume,
    conformal_fpr_threshold,
    conformal_volume_threshold,
    minimum_volumes,
)
from brainuad.evaluate.rules import threshold_rules
from brainuad.evaluate.thresholds import VoxelPool


def _healthy_volumes(rng: np.random.Generator, count: int, voxels: int = 400) -> list[np.ndarray]:
    """Exchangeable 'healthy' volumes: each its own scale (site/scan variation), many exact zeros
    (eroded background), the rest half-normal scores."""
    scales = rng.lognormal(0.0, 0.5, (count, 1))
    scores = np.abs(rng.normal(0.0, 1.0, (count, voxels)) * scales).astype(np.float32)
    scores[rng.random((count, voxels)) < 0.3] = 0.0
    return list(scores)


def _fpr_risk(volumes: list[np.ndarray], threshold: float) -> float:
    return float(np.mean([np.mean(volume > threshold) for volume in volumes]))


def test_fpr_threshold_is_the_smallest_candidate_meeting_the_bound() -> None:
    rng = np.random.default_rng(1)
    for alpha in (0.05, 0.1, 0.3):
        volumes = _healthy_volumes(rng, 25, voxels=60)
        choice = conformal_fpr_threshold(volumes, alpha)
        assert choice.feasible and choice.n_volumes == 25
        n = len(volumes)
        assert (n * _fpr_risk(volumes, choice.value) + 1) / (n + 1) <= alpha + 1e-12
        # the next distinct score below the chosen one breaks the bound (the risk only grows below it)
        candidates = np.unique(np.concatenate(volumes))
        lower = candidates[candidates < choice.value]
        assert lower.size and (n * _fpr_risk(volumes, lower[-1]) + 1) / (n + 1) > alpha


def test_fpr_threshold_flags_nothing_when_too_few_volumes() -> None:
    volumes = _healthy_volumes(np.random.default_rng(2), 5)
    assert minimum_volumes(0.05) == 19
    choice = conformal_fpr_threshold(volumes, 0.05)
    assert not choice.feasible
    assert all(not (volume > choice.value).any() for volume in volumes)
    assert conformal_fpr_threshold(_healthy_volumes(np.random.default_rng(2), 19), 0.05).feasible


def test_volume_threshold_is_the_conformal_quantile() -> None:
    rng = np.random.default_rng(3)
    volumes = _healthy_volumes(rng, 30)
    allowed = 5  # 5 voxels of 0.2 ml
    choice = conformal_volume_threshold(volumes, 0.1, 1.0, voxel_volume_ml=0.2)
    statistics = sorted(float(np.sort(volume)[::-1][allowed]) for volume in volumes)
    assert choice.feasible
    assert choice.value == pytest.approx(statistics[math.ceil(31 * 0.9) - 1])
    assert not conformal_volume_threshold(volumes[:8], 0.1, 1.0, voxel_volume_ml=0.2).feasible


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_realised_false_positive_rate_on_held_out_volumes_is_at_most_alpha(alpha: float) -> None:
    """Over repeated draws of calibration and held-out healthy volumes, the mean realised voxel
    false-positive rate stays at most alpha (within 3 standard errors) and is not vacuous."""
    rng = np.random.default_rng(4)
    n, trials = 39, 200
    realised = []
    for _ in range(trials):
        volumes = _healthy_volumes(rng, n + 1)
        choice = conformal_fpr_threshold(volumes[:n], alpha)
        realised.append(float(np.mean(volumes[n] > choice.value)))
    mean, error = np.mean(realised), np.std(realised) / math.sqrt(trials)
    assert mean <= alpha + 3 * error
    assert mean >= alpha - 2 / (n + 1) - 3 * error


def test_realised_false_volume_exceeds_its_bound_with_probability_at_most_alpha() -> None:
    rng = np.random.default_rng(5)
    n, trials, alpha = 29, 400, 0.1
    exceeded = []
    for _ in range(trials):
        volumes = _healthy_volumes(rng, n + 1)
        choice = conformal_volume_threshold(volumes[:n], alpha, 2.0, voxel_volume_ml=0.1)
        exceeded.append(np.count_nonzero(volumes[n] > choice.value) * 0.1 > 2.0)
    rate, error = np.mean(exceeded), math.sqrt(alpha * (1 - alpha) / trials)
    assert rate <= alpha + 3 * error
    assert rate >= alpha - 1 / (n + 1) - 3 * error


def test_strategies_read_the_pool_volume_by_volume() -> None:
    rng = np.random.default_rng(6)
    volumes = [rng.random((4, 4, 3)).astype(np.float32) * (rng.random((4, 4, 3)) > 0.4) for _ in range(25)]
    masks = [rng.random((4, 4, 3)) > 0.2 for _ in volumes]
    pool = VoxelPool.for_volumes(len(volumes), (4, 4, 3))
    for volume, mask in zip(volumes, masks):
        pool.add(volume, mask=mask)
    per_volume = [volume[mask] for volume, mask in zip(volumes, masks)]
    assert [np.sort(a).tolist() for a in pool.volumes()] == [np.sort(a).tolist() for a in per_volume]
    fpr = ConformalFPR(0.1).select(pool)
    assert fpr.strategy == "conformal-fpr-10%" and fpr.note == ""
    assert fpr.value == conformal_fpr_threshold(per_volume, 0.1).value
    volume = ConformalVolume(0.2, 0.016).select(pool)
    assert volume.strategy == "conformal-volume-20%-0.016ml"
    assert volume.value == conformal_volume_threshold(per_volume, 0.2, 0.016).value
    few = VoxelPool.for_volumes(2, (4, 4, 3))
    for item in volumes[:2]:
        few.add(item)
    assert "at least 19 are needed" in ConformalFPR(0.05).select(few).note


def test_threshold_names_parse_their_levels() -> None:
    labels = [rule.label for rule in threshold_rules(["val-dice", "conformal-fpr", "conformal-fpr:0.05",
                                                      "conformal-fpr:0.2", "conformal-volume",
                                                      "conformal-volume:0.05:2.5"])]
    assert labels == ["val-dice", "conformal-fpr-5%", "conformal-fpr-20%", "conformal-volume-10%-1ml",
                      "conformal-volume-5%-2.5ml"]
    assert {rule.source for rule in threshold_rules(["conformal-fpr"])} == {"healthy-val"}
    for bad in ("conformal-fpr:x", "conformal-fpr:0.1:2", "conformal-fpr:1.5", "conformal-volume:0.1:-1"):
        with pytest.raises(ValueError):
            threshold_rules([bad])
