"""Intensity histograms of input and reconstruction and their distance (paper §4.5.2, Fig. 3).

The paper partitions the brain intensities into 500 bins and divides the raw counts by the
total count and the bin width (densities). The distance it calls "KLD" is printed as

    KLD = -[sum_i p_input log p_input] - [-sum_i p_reconstruction log p_reconstruction],

a difference of the two histograms' entropies, not a Kullback-Leibler divergence (method.md
§4). Both are reported, labelled:

- ``kld``: the true ``KL(p_input || p_reconstruction) = sum_i p_i log(p_i / q_i)`` of the
  bin probabilities (counts / total; the same value as the integral over the densities), with
  ``epsilon`` added to every bin of both histograms before renormalising, so empty bins of the
  reconstruction stay finite;
- ``entropy_difference``: the printed formula evaluated on the densities as printed, with
  ``0 log 0 = 0``.

Values outside ``value_range`` are clipped into the first or last bin, so every brain voxel is
counted (reconstructions may leave [0, 1] slightly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainuad.evaluate.metrics import check_mask, check_same_shape, check_scores

__all__ = ["HistogramComparison", "compare_intensity_histograms", "intensity_density"]


def _check_binning(bins: int, value_range: tuple[float, float]) -> None:
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    low, high = value_range
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"value_range must be finite (low, high) with low < high, got {value_range!r}")


def intensity_density(volume: np.ndarray, brain_mask: np.ndarray, bins: int = 500,
                      value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Histogram density of the intensities inside the brain: count / total / bin width.

    Args:
        volume: (X, Y, Z) float intensities.
        brain_mask: (X, Y, Z) boolean, not empty.
        bins: number of equal bins over ``value_range`` (500).
        value_range: (low, high) of the bins; values beyond are clipped into the end bins.
    Returns:
        (bins,) float64 densities integrating to 1 over ``value_range``.
    """
    check_scores("volume", volume)
    check_mask("brain_mask", brain_mask)
    check_same_shape(volume=volume, brain_mask=brain_mask)
    _check_binning(bins, value_range)
    if not brain_mask.any():
        raise ValueError("brain_mask selects no voxel")
    low, high = value_range
    counts, _ = np.histogram(np.clip(volume[brain_mask], low, high), bins=bins, range=(low, high))
    return counts / counts.sum() / ((high - low) / bins)


@dataclass(frozen=True)
class HistogramComparison:
    """Histograms of an input and its reconstruction and their two labelled distances.

    Attributes:
        edges: (bins + 1,) bin edges.
        input_density: (bins,) density of the input intensities in the brain.
        reconstruction_density: (bins,) density of the reconstruction.
        kld: true KL(p_input || p_reconstruction) of the bin probabilities, with epsilon.
        entropy_difference: the paper's printed "KLD" formula (entropy of input minus entropy of
            reconstruction, on densities).
    """

    edges: np.ndarray
    input_density: np.ndarray
    reconstruction_density: np.ndarray
    kld: float
    entropy_difference: float


def compare_intensity_histograms(reference: np.ndarray, reconstruction: np.ndarray, brain_mask: np.ndarray,
                                 bins: int = 500, value_range: tuple[float, float] = (0.0, 1.0),
                                 epsilon: float = 1e-10) -> HistogramComparison:
    """Brain-intensity histograms of an input and its reconstruction, ``kld`` and
    ``entropy_difference`` (see the module docstring).

    Args:
        reference: (X, Y, Z) float input.
        reconstruction: (X, Y, Z) float reconstruction.
        brain_mask: (X, Y, Z) boolean.
        bins: number of bins (500).
        value_range: (low, high) of the bins.
        epsilon: added to every bin probability before the KL divergence (> 0).
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    check_same_shape(reference=reference, reconstruction=reconstruction)
    p_density = intensity_density(reference, brain_mask, bins, value_range)
    q_density = intensity_density(reconstruction, brain_mask, bins, value_range)
    width = (value_range[1] - value_range[0]) / bins
    p = p_density * width + epsilon
    q = q_density * width + epsilon
    p, q = p / p.sum(), q / q.sum()
    kld = float(np.sum(p * np.log(p / q)))

    def plogp(density: np.ndarray) -> float:
        nonzero = density[density > 0]
        return float(np.sum(nonzero * np.log(nonzero)))

    entropy_difference = -plogp(p_density) + plogp(q_density)
    edges = np.linspace(value_range[0], value_range[1], bins + 1)
    return HistogramComparison(edges, p_density, q_density, kld, entropy_difference)
