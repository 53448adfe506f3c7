"""Axis codes and exact reorientation of voxel arrays: the training data's axis order
(:data:`TRAINING_ORIENTATION`), validation of axis codes (:func:`check_orientation`) and the flip or
permutation of array axes that takes a scan's voxel order to a target order and back
(:class:`Reorientation`; read from the affine, no interpolation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

__all__ = ["TRAINING_ORIENTATION", "Reorientation", "check_orientation"]

TRAINING_ORIENTATION = "RAS"
"""Axis order of the training data: that of the data pipeline's template spaces and of the
synthetic cohort (first axis to the Right, second Anterior, third Superior)."""


@dataclass(frozen=True)
class Reorientation:
    """An exact flip/permutation of array axes from a scan's voxel order to a target axis order.

    Attributes:
        input_shape: (I, J, K) of the scan.
        input_affine: (4, 4) affine of the scan.
        input_axes: (3, 2) nibabel orientation (world axis, direction) of the scan's array axes.
        target_axes: (3, 2) nibabel orientation of the target's array axes.
    """

    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    input_axes: np.ndarray
    target_axes: np.ndarray

    @classmethod
    def to_axes(cls, shape: tuple[int, ...], affine: np.ndarray,
                axcodes: str = TRAINING_ORIENTATION) -> "Reorientation":
        """The reorientation of a scan of ``shape`` and ``affine`` to ``axcodes`` (e.g. "RAS": the
        first array axis runs to the Right, the second Anterior, the third Superior). Oblique
        affines go to the nearest axis order."""
        codes = check_orientation(axcodes)
        if len(shape) != 3:
            raise ValueError(f"shape must have 3 axes, got {shape!r}")
        affine = np.asarray(affine, dtype=np.float64)
        i, j, k = (int(size) for size in shape)
        return cls((i, j, k), affine, io_orientation(affine), axcodes2ornt(codes))

    @property
    def _forward(self) -> np.ndarray:
        return ornt_transform(self.input_axes, self.target_axes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The array shape in the target axis order."""
        i, j, k = (self.input_shape[int(axis)] for axis in np.argsort(self._forward[:, 0]))
        return i, j, k

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) affine of the reoriented array (each voxel keeps its world position)."""
        return self.input_affine @ inv_ornt_aff(self._forward, self.input_shape)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """(I, J, K) array in the scan's voxel order -> the target order (a contiguous copy)."""
        if array.shape != self.input_shape:
            raise ValueError(f"array shape {array.shape} differs from the scan's shape {self.input_shape}")
        return np.ascontiguousarray(apply_orientation(array, self._forward))

    def revert(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`apply`: an array in the target order -> the scan's voxel order."""
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} differs from the reoriented shape {self.shape}")
        return np.ascontiguousarray(apply_orientation(array, ornt_transform(self.target_axes, self.input_axes)))


def check_orientation(axcodes: str) -> tuple[str, str, str]:
    """``axcodes`` as three upper-case letters, one of each pair L/R, A/P, S/I.

    Raises:
        ValueError: naming the value otherwise.
    """
    pairs = ("LR", "AP", "SI")
    codes = tuple(axcodes.upper()) if isinstance(axcodes, str) else ()
    if len(codes) != 3 or sorted(next((i for i, pair in enumerate(pairs) if code in pair), -1)
                                 for code in codes) != [0, 1, 2]:
        raise ValueError(f"orientation must be three letters, one of each pair L/R, A/P, S/I (e.g. 'RAS'), "
                         f"got {axcodes!r}")
    return codes

