"""Cropping to the brain and padding to the archive's 192 x 192 x 160 box (method.md §2, steps 4-5).

Both are windows of the registered grid: the brain's bounding box for the bias correction, then a
box of the final shape centred on it. A window may reach beyond the grid (that part is padded
with zeros) or be smaller than the brain (the brain is cut; :class:`Window` says by how much).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainuad.checks import check_int

PREPARED_SHAPE: tuple[int, int, int] = (192, 192, 160)
"""(I, J, K) voxels of a prepared volume (the authors' preprocessed archive)."""


@dataclass(frozen=True)
class Window:
    """A box of voxel indices of a grid: ``start`` (may be negative) and ``shape``.

    Attributes:
        start: (3,) index of the box's first voxel in the grid.
        shape: (3,) voxels of the box.
    """

    start: tuple[int, int, int]
    shape: tuple[int, int, int]

    def __post_init__(self) -> None:
        if len(self.start) != 3 or len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"Window: start and shape need three values and shape must be positive, "
                             f"got start {self.start!r}, shape {self.shape!r}")
        object.__setattr__(self, "start", tuple(int(v) for v in self.start))
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))

    def extract(self, array: np.ndarray) -> np.ndarray:
        """The box's voxels of ``array`` (I, J, K); voxels outside ``array`` are 0. Shape: ``self.shape``."""
        out = np.zeros(self.shape, dtype=array.dtype)
        source, target = [], []
        for start, size, length in zip(self.start, self.shape, array.shape):
            first, last = max(start, 0), min(start + size, length)
            if last <= first:
                return out
            source.append(slice(first, last))
            target.append(slice(first - start, last - start))
        out[tuple(target)] = array[tuple(source)]
        return out

    def cut_voxels(self, mask: np.ndarray) -> int:
        """How many voxels of ``mask`` (bool, the grid's shape) fall outside the box."""
        return int(mask.sum() - self.extract(mask).sum())


def bounding_box(mask: np.ndarray, margin: int = 0) -> Window:
    """The smallest box holding every voxel of ``mask`` (I, J, K) bool, grown by ``margin`` voxels per side
    (the grown box may reach beyond the array).

    Raises:
        ValueError: ``mask`` is empty or ``margin`` negative.
    """
    if margin < 0:
        raise ValueError(f"bounding_box: margin must be >= 0, got {margin!r}")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("bounding_box: the mask is empty")
    if mask.ndim != 3:
        raise ValueError(f"bounding_box: the mask must have 3 axes, got shape {mask.shape!r}")
    start, stop = [], []
    for axis in range(mask.ndim):
        filled = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        start.append(int(filled[0]) - margin)
        stop.append(int(filled[-1]) + 1 + margin)
    i, j, k = start
    si, sj, sk = (b - a for a, b in zip(start, stop))
    return Window((i, j, k), (si, sj, sk))


def centred_window(box: Window, shape: tuple[int, int, int]) -> Window:
    """A box of ``shape`` centred on ``box``: ``start = box.start - floor((shape - box.shape) / 2)``, so
    the extra voxel of an odd padding goes to the end and that of an odd cut to the start."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"centred_window: shape must be three positive sizes, got {shape!r}")
    i, j, k = (a - (s - b) // 2 for a, b, s in zip(box.start, box.shape, shape))
    return Window((i, j, k), shape)


@dataclass(frozen=True)
class BrainCrop:
    """The crop step: the brain's bounding box, grown by ``margin`` voxels per side (>= 0)."""

    margin: int = 0

    def __post_init__(self) -> None:
        check_int("BrainCrop: margin", self.margin, 0, allow_numpy=True)

    def window(self, mask: np.ndarray) -> Window:
        """The box around the brain ``mask`` (I, J, K) bool."""
        return bounding_box(mask, int(self.margin))
