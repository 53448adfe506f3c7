"""The two intensity scales of the model grid: images in [0, 1], network inputs in [-1, 1].

Model-grid volumes are normalised per scan to [0, 1] (:mod:`brainuad.data.grid`); the diffusion
models, the DAE and the SparK encoder work on [-1, 1].
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["to_image_range", "to_model_range"]


def to_model_range(images: Tensor) -> Tensor:
    """[0, 1] intensities -> [-1, 1] (the diffusion models' scale); any shape."""
    return images * 2 - 1


def to_image_range(x: Tensor) -> Tensor:
    """[-1, 1] model scale -> [0, 1] intensities, clamped; any shape."""
    return ((x + 1) / 2).clamp(0, 1)
