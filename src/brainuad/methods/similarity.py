"""The local structural similarity map (SSIM, Wang et al. 2004), shared by a method's anomaly score
(pDDPM-IQA, :mod:`brainuad.methods.pddpm_iqa`) and the reconstruction-quality metrics.

:func:`ssim_map` is scikit-image's ``structural_similarity(..., full=True)`` map with its
defaults: a uniform window, K1 = 0.01, K2 = 0.03, sample (N - 1) covariances and "reflect" borders,
computed with ``scipy.ndimage.uniform_filter`` in float64. Intensities are in [0, 1]
(``data_range = 1``) unless stated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["K1", "K2", "ssim_map"]

K1, K2 = 0.01, 0.03
"""SSIM's stabilising constants: ``C1 = (K1 * data_range)**2``, ``C2 = (K2 * data_range)**2``."""


def ssim_map(reference: np.ndarray, reconstruction: np.ndarray, window: Sequence[int], *,
             data_range: float = 1.0) -> np.ndarray:
    """SSIM of the window around every voxel.

    Args:
        reference: float array, e.g. an (X, Y, Z) volume.
        reconstruction: same shape.
        window: the window's edge along each axis of the arrays, odd integers >= 1 (1: that axis is
            not filtered), e.g. ``(7, 7, 1)`` for the 2-D SSIM of each axial slice of an (X, Y, Z)
            volume and ``(7, 7, 7)`` for the 3-D SSIM; at least two voxels in all.
        data_range: the intensity range (1 for [0, 1] images), > 0.

    Returns:
        float64 array of the inputs' shape, values in [-1, 1] (1: identical windows).

    Raises:
        ValueError: the shapes differ, or a bad window or data range.
    """
    if np.shape(reference) != np.shape(reconstruction):
        raise ValueError(f"reference {np.shape(reference)} and reconstruction {np.shape(reconstruction)} differ in "
                         f"shape")
    window = tuple(window)
    if len(window) != np.ndim(reference) or not all(isinstance(edge, int) and edge >= 1 and edge % 2 == 1
                                                     for edge in window) or int(np.prod(window)) < 2:
        raise ValueError(f"window must give one odd edge >= 1 per axis of the {np.ndim(reference)}-D arrays, "
                         f"at least two voxels in all, got {window!r}")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(reconstruction, dtype=np.float64)
    mean_x, mean_y = ndimage.uniform_filter(x, window), ndimage.uniform_filter(y, window)
    samples = int(np.prod(window))
    scale = samples / (samples - 1)  # sample covariance
    var_x = scale * (ndimage.uniform_filter(x * x, window) - mean_x * mean_x)
    var_y = scale * (ndimage.uniform_filter(y * y, window) - mean_y * mean_y)
    cov_xy = scale * (ndimage.uniform_filter(x * y, window) - mean_x * mean_y)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    similarity: np.ndarray = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
                              / ((mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)))
    return similarity
