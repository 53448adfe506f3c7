"""Voxel grids and resampling between them (method.md §2, step 1).

A :class:`Grid` is a voxel lattice in world space: an (I, J, K) shape and a 4x4 RAS+ voxel-to-world
affine in mm (the convention of :mod:`brainuad.data.io`). Every spatial step of the preprocessing
(resampling to 1 mm, registration to an atlas, cropping, padding) is an affine map between grids, so
an array is carried from one grid to another by :func:`resample` with one 4x4 matrix and a single
interpolation, whatever the number of steps in between.

The interpolation itself is SimpleITK's, run in voxel-index space (identity geometry on both
sides, the whole voxel-to-voxel map in one affine transform): headers with sheared or
non-orthonormal axes (gantry tilt) are therefore handled exactly, which SimpleITK's own image
geometry could not represent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Interpolation = Literal["cubic", "linear", "nearest"]
INTERPOLATIONS: tuple[str, ...] = ("cubic", "linear", "nearest")


@dataclass(frozen=True, eq=False)
class Grid:
    """A voxel lattice in world space.

    Attributes:
        shape: (I, J, K) voxels.
        affine: (4, 4) RAS+ voxel-to-world affine in mm.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    def __post_init__(self) -> None:
        shape = tuple(int(size) for size in self.shape)
        affine = np.asarray(self.affine, dtype=np.float64)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Grid: shape must be three positive sizes, got {self.shape!r}")
        if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError(f"Grid: affine must be a finite, invertible 4x4 matrix, got {affine!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "affine", affine)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        x, y, z = (float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))
        return x, y, z

    @property
    def centre(self) -> np.ndarray:
        """(3,) world coordinates (mm) of the grid's centre."""
        return (self.affine @ np.append((np.asarray(self.shape) - 1) / 2.0, 1.0))[:3]

    def world_points(self, indices: np.ndarray) -> np.ndarray:
        """World coordinates (mm) of voxel ``indices`` (N, 3) -> (N, 3)."""
        indices = np.asarray(indices, dtype=np.float64)
        return indices @ self.affine[:3, :3].T + self.affine[:3, 3]

    def voxel_points(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices of world ``points`` (N, 3) -> (N, 3)."""
        inverse = np.linalg.inv(self.affine)
        return np.asarray(points, dtype=np.float64) @ inverse[:3, :3].T + inverse[:3, 3]

    def window(self, start: tuple[int, int, int], shape: tuple[int, int, int]) -> "Grid":
        """The sub-grid of ``shape`` voxels whose first voxel is index ``start`` of this grid (``start``
        may be negative and the window may reach beyond the grid: padding)."""
        shift = np.eye(4)
        shift[:3, 3] = np.asarray(start, dtype=np.float64)
        return Grid(shape, self.affine @ shift)

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"shape": [I, J, K], "affine": 4x4 nested list}``."""
        return {"shape": list(self.shape), "affine": self.affine.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Grid":
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["shape"]), np.asarray(data["affine"], dtype=np.float64))


def orthonormal_axes(affine: np.ndarray) -> np.ndarray:
    """(3, 3) rotation (columns: unit axis directions in world space) nearest to the direction part of
    ``affine``: the polar factor of its 3x3 block, so a sheared header gets the closest orthonormal axes
    while a flip (determinant < 0) is kept."""
    u, _, vt = np.linalg.svd(np.asarray(affine, dtype=np.float64)[:3, :3])
    return u @ vt


def isotropic_grid(grid: Grid, spacing_mm: float) -> Grid:
    """A grid of ``spacing_mm`` cubic voxels covering the same field of view as ``grid``.

    Its axes are ``grid``'s axes made orthonormal (:func:`orthonormal_axes`), in the same order and
    sense; each axis spans the extent of the original (``shape * spacing``, rounded to whole voxels),
    and both grids share their centre.

    Args:
        grid: the source grid (e.g. a raw 0.9 x 0.9 x 5.5 mm scan).
        spacing_mm: voxel size of the new grid (> 0), e.g. 1.0.
    """
    if not spacing_mm > 0:
        raise ValueError(f"isotropic_grid: spacing_mm must be > 0, got {spacing_mm!r}")
    extent = np.asarray(grid.shape) * np.asarray(grid.spacing)
    i, j, k = (max(1, int(round(length / spacing_mm))) for length in extent)
    shape = (i, j, k)
    affine = np.eye(4)
    affine[:3, :3] = orthonormal_axes(grid.affine) * spacing_mm
    affine[:3, 3] = grid.centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return Grid(shape, affine)


def voxel_map(source: Grid, target: Grid, world: np.ndarray | None = None) -> np.ndarray:
    """(4, 4) map from ``target`` voxel indices to ``source`` voxel indices.

    Args:
        source: the grid the array lives on.
        target: the grid to fill.
        world: (4, 4) map from target-world to source-world coordinates (mm); None for the identity
            (both grids in one world space).
    """
    world = np.eye(4) if world is None else np.asarray(world, dtype=np.float64)
    if world.shape != (4, 4):
        raise ValueError(f"voxel_map: world must be a 4x4 matrix, got shape {world.shape}")
    return np.linalg.inv(source.affine) @ world @ target.affine


def resample(array: np.ndarray, source: Grid, target: Grid, *, world: np.ndarray | None = None,
             interpolation: Interpolation = "cubic") -> np.ndarray:
    """Carry ``array`` from ``source`` onto ``target`` with one interpolation.

    Cubic is a cubic B-spline (images); its result is clipped to the input's range, so the
    overshoot of the spline at sharp edges never makes a negative intensity. Linear suits masks
    to be thresholded; nearest keeps label values (segmentations). Voxels of ``target`` that map
    outside ``source`` are 0.

    Args:
        array: (I, J, K) values on ``source``.
        source: the grid of ``array``.
        target: the grid to fill.
        world: (4, 4) map from target-world to source-world mm (e.g. a registration); None for
            the identity.
        interpolation: ``cubic``, ``linear`` or ``nearest``.

    Returns:
        ``target.shape`` array: float32 for cubic and linear, ``array``'s dtype for nearest.
    """
    import SimpleITK as sitk

    array = np.asarray(array)
    if array.shape != source.shape:
        raise ValueError(f"resample: array shape {array.shape} differs from the source grid's {source.shape}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"resample: interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    nearest = interpolation == "nearest"
    values = array.astype(np.uint8) if array.dtype == bool else array
    values = values if nearest else values.astype(np.float32, copy=False)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))  # index (x, y, z) = (i, j, k)
    matrix = voxel_map(source, target, world)
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in matrix[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in matrix[:3, 3]))
    interpolator = {"cubic": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}
    result = sitk.Resample(image, [int(s) for s in target.shape], transform, interpolator[interpolation],
                           (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), 0.0, image.GetPixelID())
    out = sitk.GetArrayFromImage(result).transpose(2, 1, 0)
    if interpolation == "cubic" and values.size:
        out = np.clip(out, min(float(values.min()), 0.0), float(values.max()))
    if nearest:
        return np.ascontiguousarray(out.astype(array.dtype, copy=False))
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True)
class IsotropicResampling:
    """The resampling step: cubic voxels of ``spacing_mm`` (1 mm in the paper).

    Without registration the scan keeps its own orientation and field of view
    (:func:`isotropic_grid`); with registration the atlas's field of view is sampled at this spacing.
    """

    spacing_mm: float = 1.0

    def __post_init__(self) -> None:
        if not self.spacing_mm > 0:
            raise ValueError(f"IsotropicResampling: spacing_mm must be > 0, got {self.spacing_mm!r}")

    def grid(self, source: Grid) -> Grid:
        """The isotropic grid covering ``source``."""
        return isotropic_grid(source, self.spacing_mm)
