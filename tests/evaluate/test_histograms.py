import numpy as np
import pytest
from scipy.stats import entropy

from brainuad.evaluate.histograms import compare_intensity_histograms, intensity_density


def _volumes(seed=0):
    rng = np.random.default_rng(seed)
    brain = rng.random((12, 12, 8)) < 0.7
    reference = np.where(brain, rng.beta(2, 5, brain.shape), 0.0)
    reconstruction = np.where(brain, np.clip(reference ** 1.3 + rng.normal(0, 0.02, brain.shape), 0, 1), 0.0)
    return reference, reconstruction, brain


def test_density_is_count_over_total_over_width():
    reference, _, brain = _volumes()
    density = intensity_density(reference, brain, bins=500)
    counts, _ = np.histogram(reference[brain], bins=500, range=(0, 1))
    np.testing.assert_allclose(density, counts / counts.sum() / (1 / 500))
    assert density.sum() * (1 / 500) == pytest.approx(1.0)


def test_out_of_range_values_are_clipped_into_end_bins():
    volume = np.array([-0.2, 0.5, 1.3])
    density = intensity_density(volume, np.ones(3, bool), bins=10)
    assert density[0] == density[5] == density[-1] == pytest.approx(1 / 3 / 0.1)


def test_kld_is_the_kl_divergence_and_entropy_difference_the_printed_formula():
    reference, reconstruction, brain = _volumes()
    result = compare_intensity_histograms(reference, reconstruction, brain, epsilon=1e-10)
    width = 1 / 500
    p = result.input_density * width + 1e-10
    q = result.reconstruction_density * width + 1e-10
    assert result.kld == pytest.approx(entropy(p, q), rel=1e-9)  # scipy normalises and sums p log(p / q)
    assert result.kld > 0
    def plogp(d):
        return np.sum(d[d > 0] * np.log(d[d > 0]))
    expected = -plogp(result.input_density) - (-plogp(result.reconstruction_density))
    assert result.entropy_difference == pytest.approx(expected)
    assert result.edges.shape == (501,) and result.input_density.shape == (500,)


def test_identical_inputs_have_zero_distances():
    reference, _, brain = _volumes()
    result = compare_intensity_histograms(reference, reference, brain)
    assert result.kld == pytest.approx(0.0, abs=1e-12) and result.entropy_difference == 0.0


def test_invalid_inputs():
    reference, reconstruction, brain = _volumes()
    with pytest.raises(ValueError, match="shape mismatch"):
        compare_intensity_histograms(reference, reconstruction[:-1], brain)
    with pytest.raises(ValueError, match="boolean"):
        intensity_density(reference, brain.astype(float))
    with pytest.raises(ValueError, match="NaN"):
        intensity_density(reference * np.nan, brain)
    with pytest.raises(ValueError, match="selects no voxel"):
        intensity_density(reference, np.zeros_like(brain))
    with pytest.raises(ValueError, match="bins"):
        intensity_density(reference, brain, bins=0)
    with pytest.raises(ValueError, match="value_range"):
        intensity_density(reference, brain, value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="epsilon"):
        compare_intensity_histograms(reference, reconstruction, brain, epsilon=0)
