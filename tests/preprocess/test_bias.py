"""N4 bias-field correction recovers a known multiplicative field."""

import numpy as np
import pytest

from brainuad.preprocess.bias import N4Correction
from brainuad.preprocess.resample import Grid


def _phantom():
    """Two tissues in a sphere (values 100 and 160) times a smooth field; (image, mask, field, tissue)."""
    shape = (48, 48, 40)
    index = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape, dtype=np.float32) - 1)[:, None, None, None] / 2
    radius = np.sqrt(((index - centre) ** 2).sum(axis=0))
    mask = radius < 18
    tissue = np.where(radius < 9, 160.0, 100.0).astype(np.float32)
    field = np.exp(0.25 * (index[0] - centre[0]) / 18 - 0.15 * (index[2] - centre[2]) / 18).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 1.0, shape).astype(np.float32)
    image = np.where(mask, tissue * field + noise, 0.0).astype(np.float32)
    return image, mask, field, tissue


def test_n4_removes_a_known_bias_field():
    image, mask, field, tissue = _phantom()
    grid = Grid(image.shape, np.diag([2.0, 2.0, 2.0, 1.0]))
    corrected, estimate = N4Correction(levels=3, iterations=50, shrink=2).correct(image, mask, grid)
    outer = mask & (tissue == 100.0)
    spread_before = image[outer].std() / image[outer].mean()
    spread_after = corrected[outer].std() / corrected[outer].mean()
    assert spread_after < 0.5 * spread_before
    log_truth, log_estimate = np.log(field[mask]), np.log(estimate[mask])
    assert np.corrcoef(log_truth, log_estimate)[0, 1] > 0.95
    assert np.all(corrected[~mask] == 0)
    np.testing.assert_allclose(corrected[mask], image[mask] / estimate[mask], rtol=1e-5)


@pytest.mark.parametrize("arguments", [dict(levels=0), dict(iterations=-1), dict(shrink=0), dict(tolerance=0.0),
                                       dict(control_points=3), dict(levels=True)])
def test_rejects_bad_settings(arguments):
    with pytest.raises(ValueError, match="N4Correction"):
        N4Correction(**arguments)


def test_rejects_a_tiny_mask_and_mismatched_shapes():
    grid = Grid((8, 8, 8), np.eye(4))
    image = np.ones((8, 8, 8), np.float32)
    mask = np.zeros((8, 8, 8), bool)
    mask[:2, :2, :2] = True
    with pytest.raises(ValueError, match="64"):
        N4Correction().correct(image, mask, grid)
    with pytest.raises(ValueError, match="agree"):
        N4Correction().correct(image, np.ones((8, 8, 7), bool), grid)
