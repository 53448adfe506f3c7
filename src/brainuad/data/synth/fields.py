"""Smooth random fields on a voxel grid: the source of every smooth variation of the synthetic cohort
(deformations, bias fields, tissue texture, irregular lesion outlines).

A field is a sum of Gaussian bumps centred on a regular lattice of control points with independent
standard-normal weights. The bump kernel is separable, so the field is built with three small matrix
products instead of a 3-D convolution, which keeps a full 192 x 192 x 160 field at a few tens of
milliseconds. The kernel rows are normalised so that the field has unit variance at every voxel.
The products go through BLAS, whose thread count changes the last bits of the result: callers that
need bit-identical fields pin BLAS to one thread (as :func:`.subjects.synthesize_subject` does).
"""

from __future__ import annotations

import math

import numpy as np

_LATTICE_MARGIN = 2  # control points beyond each edge, in lattice steps, so edges are not damped


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], scale: float) -> np.ndarray:
    """A random field with zero mean, unit variance and a Gaussian correlation of width ``scale``.

    The correlation between two voxels a distance r apart is about exp(-r^2 / (4 scale^2)) (the
    autocorrelation of a Gaussian bump of standard deviation ``scale``).

    Args:
        rng: the generator the control-point weights are drawn from.
        shape: (I, J, K) voxels of the field.
        scale: standard deviation of the bumps and spacing of their lattice, in voxels (mm at 1 mm),
            at least 1.

    Returns:
        (I, J, K) float32 field.
    """
    if len(shape) != 3 or any(int(size) < 1 for size in shape):
        raise ValueError(f"smooth_noise: shape must be three positive sizes, got {shape!r}")
    if not scale >= 1.0:
        raise ValueError(f"smooth_noise: scale must be at least 1 voxel, got {scale!r}")
    weights = [_axis_weights(int(size), float(scale)) for size in shape]
    coefficients = rng.standard_normal(tuple(w.shape[1] for w in weights), dtype=np.float32)
    w0, w1, w2 = weights
    field = (w0 @ coefficients.reshape(coefficients.shape[0], -1)).reshape(
        shape[0], coefficients.shape[1], coefficients.shape[2])
    field = np.matmul(w1, field)  # (I, J, n2): w1 (J, n1) applied to each (n1, n2) slab
    return np.ascontiguousarray(field @ w2.T)


def _axis_weights(size: int, scale: float) -> np.ndarray:
    """(size, n_points) Gaussian kernel weights of one axis, rows of unit L2 norm."""
    steps = math.ceil((size - 1) / scale) + 1 + 2 * _LATTICE_MARGIN
    first = (size - 1) / 2.0 - (steps - 1) * scale / 2.0
    points = first + scale * np.arange(steps)
    offsets = (np.arange(size)[:, None] - points[None, :]) / scale
    weights = np.exp(-0.5 * offsets**2)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    return weights.astype(np.float32)
