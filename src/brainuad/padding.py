"""Mirror padding of torch tensors as scipy.ndimage's ``mode="reflect"`` pads arrays.

The edge voxel is repeated (``d c b a | a b c d``, numpy's "symmetric"), and a pad wider than the
axis keeps mirroring (``a b c d | d c b a | a b c d ...``), so filters written with torch give the
same borders as their scipy counterparts (the median of the post-processing, the Gaussian blur of
the training augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["symmetric_pad"]


def symmetric_pad(x: Tensor, radius: int, dims: Sequence[int]) -> Tensor:
    """Pad each of ``dims`` of ``x`` by ``radius`` on both sides, mirroring with the edge repeated.

    Args:
        x: any tensor.
        radius: voxels added before and after, >= 0.
        dims: the axes to pad (negative counts from the end).

    Returns:
        ``x`` with each padded axis ``2 * radius`` longer.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius!r}")
    for dim in dims:
        size = x.shape[dim]
        position = torch.arange(-radius, size + radius, device=x.device) % (2 * size)
        x = x.index_select(dim, torch.where(position < size, position, 2 * size - 1 - position))
    return x
