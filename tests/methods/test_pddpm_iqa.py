"""pDDPM-IQA: the pDDPM's reconstruction scored by fusion quality, w_ssim (1 - SSIM) + w_l1 |x - x_rec|."""

import numpy as np
import pytest
import torch

from brainuad.data.grid import GridVolume
from brainuad.errors import ConfigError
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.pddpm import PDDPM
from brainuad.methods.pddpm_iqa import PDDPMIQA, FusionScore
from brainuad.methods.registry import parse_config
from brainuad.methods.similarity import ssim_map
from brainuad.nn.unet import UNet
from brainuad.noise import GaussianNoise


def direct_score(x, y, window, l1_weight, ssim_weight):
    """The fusion score voxel by voxel: 2-D SSIM on each axial slice from the window's own pixels
    (sample statistics, borders mirrored as scipy's "reflect"), clipped at 0, plus the weighted l1."""
    half = window // 2
    c1, c2 = 0.01**2, 0.03**2
    score = np.zeros(x.shape)
    for k in range(x.shape[2]):
        px = np.pad(x[:, :, k].astype(np.float64), half, mode="symmetric")
        py = np.pad(y[:, :, k].astype(np.float64), half, mode="symmetric")
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                a = px[i:i + window, j:j + window].ravel()
                b = py[i:i + window, j:j + window].ravel()
                cov = np.cov(a, b)  # sample (N - 1) covariances
                ssim = ((2 * a.mean() * b.mean() + c1) * (2 * cov[0, 1] + c2)
                        / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
                score[i, j, k] = ssim_weight * max(0.0, 1 - ssim) + l1_weight * abs(x[i, j, k] - y[i, j, k])
    return score


def test_the_fusion_score_is_the_weighted_sum_computed_directly():
    rng = np.random.default_rng(0)
    x = rng.random((9, 8, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), 0, 1).astype(np.float32)
    y[:, :, 1] = 1 - x[:, :, 1]  # anti-correlated slice: SSIM < 0 somewhere, 1 - SSIM > 1
    score = FusionScore(l1_weight=0.3, ssim_weight=0.7, window=3)(x, y)
    assert score.shape == x.shape and score.dtype == np.float32
    np.testing.assert_allclose(score, direct_score(x, y, 3, 0.3, 0.7), rtol=1e-5, atol=1e-6)
    assert score.max() > 0.7  # some 1 - SSIM above 1 kept (only rounding below 0 is clipped)


def test_the_score_is_non_negative_finite_and_zero_for_a_perfect_reconstruction():
    rng = np.random.default_rng(1)
    x = rng.random((16, 16, 4)).astype(np.float32)
    x[:4] = 0.0  # background
    assert np.array_equal(FusionScore()(x, x), np.zeros_like(x))
    y = rng.random(x.shape).astype(np.float32)
    score = FusionScore()(x, y)
    assert np.isfinite(score).all() and score.min() >= 0
    # each term alone: only l1, only 1 - SSIM
    np.testing.assert_allclose(FusionScore(1.0, 0.0)(x, y), np.abs(x - y), atol=1e-7)
    np.testing.assert_allclose(FusionScore(0.0, 1.0)(x, y),
                               np.clip(1 - ssim_map(x, y, (7, 7, 1)), 0, None).astype(np.float32), atol=1e-7)


def test_the_ssim_map_matches_the_mean_ssim_of_the_evaluation():
    from brainuad.evaluate.reconstruction import structural_similarity

    rng = np.random.default_rng(2)
    x = rng.random((20, 20, 9))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    mask = np.zeros(x.shape, dtype=bool)
    mask[5:15, 5:15] = True
    assert np.isclose(ssim_map(x, y, (7, 7, 1))[mask].mean(), structural_similarity(x, y, slicewise=True, mask=mask))
    assert np.isclose(ssim_map(x, y, (7, 7, 7))[mask].mean(), structural_similarity(x, y, mask=mask))


def test_bad_scores_and_maps_are_refused():
    with pytest.raises(ValueError, match="window"):
        FusionScore(window=4)
    with pytest.raises(ValueError, match="both be 0"):
        FusionScore(0.0, 0.0)
    with pytest.raises(ValueError, match="l1_weight"):
        FusionScore(-0.1, 1.0)
    with pytest.raises(ValueError, match=r"\(X, Y, Z\)"):
        FusionScore()(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="window"):
        ssim_map(np.zeros((8, 8)), np.zeros((8, 8)), (7,))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_map(np.zeros((8, 8)), np.zeros((8, 9)), (3, 3))


def test_config_defaults_and_checks():
    config = parse_config({"method": "pddpm_iqa"})
    assert config.diffusion.t_test == 750 and config.diffusion.ensemble is None and config.patch.size == 48
    assert config.score.fusion() == FusionScore(0.16, 0.84, 7)
    for score, message in (({"ssim_window": 6}, "window"), ({"l1_weight": 0, "ssim_weight": 0}, "both be 0"),
                           ({"alpha": 0.8}, "unknown key 'score.alpha'")):
        with pytest.raises(ConfigError, match=message):
            parse_config({"method": "pddpm_iqa", "score": score})


def tiny_pddpm(cls, **options):
    torch.manual_seed(0)
    unet = UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4)
    with torch.no_grad():
        for parameter in unet.output_conv.parameters():
            parameter.normal_(0, 0.1)  # an untrained UNet outputs exactly 0
    return cls(unet, GaussianNoise(), DiffusionSchedule(1000), patch_size=16, t_test=750, **options)


def test_the_anomaly_map_is_the_fusion_score_of_the_pddpm_reconstruction():
    fusion = FusionScore(0.2, 0.8, 5)
    method = tiny_pddpm(PDDPMIQA, fusion=fusion)
    pddpm = tiny_pddpm(PDDPM)
    assert set(method.state_dict()) == set(pddpm.state_dict())
    volume = np.random.default_rng(3).random((32, 32, 4)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    np.testing.assert_array_equal(reconstruction, pddpm.reconstruct(volume))  # the pDDPM's reconstruction
    np.testing.assert_array_equal(method.anomaly_map(volume), fusion(volume, reconstruction))
    assert not np.allclose(method.anomaly_map(volume), np.abs(volume - reconstruction))


def test_the_evaluation_scores_with_the_fusion(monkeypatch):
    from brainuad.evaluate.scoring import volume_scorer

    rng = np.random.default_rng(4)
    image = rng.random((32, 32, 4)).astype(np.float32)
    # no transform: the scorer never maps the volume back to an input grid
    volume = GridVolume(image, np.ones(image.shape, dtype=bool), None, "synthetic", None)
    reconstruction = rng.random(image.shape).astype(np.float32)
    method = tiny_pddpm(PDDPMIQA)
    monkeypatch.setattr(method, "reconstruct_many", lambda volumes, **options: [reconstruction for _ in volumes])
    scored = volume_scorer(method).score(volume)
    np.testing.assert_array_equal(scored.anomaly_map, method.reconstruction_score(image, reconstruction))
