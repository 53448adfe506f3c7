"""A subject's anatomy and its MR images: a random deformation of the reference brain, tissue
contrasts, and the rendering of an image (partial-volume tissue mixing, a lesion's paint if any,
texture, bias field, Rician noise).

A subject is represented on its brain voxels only ("support", 1.6-2.2 M of the 5.9 M grid voxels):
everything outside the brain mask is exactly 0 in the written images, so nothing is computed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from brainuad.data.synth.fields import smooth_noise
from brainuad.data.synth.template import GRID_SHAPE, ReferenceAnatomy

PullBack = Callable[[np.ndarray], np.ndarray]
"""A displacement composed after the subject's warp: (3, N) reference coordinates -> (3, N)."""


@dataclass(frozen=True)
class Warp:
    """A subject's deformation, as the pull-back from its grid to the reference:
    y = matrix @ (x - centre) + centre + translation + displacement[:, x].

    Attributes:
        matrix: (3, 3) rotation times scaling (a few degrees, +-5 %).
        translation: (3,) mm.
        centre: (3,) reference coordinates the affine part turns about (the brain's centroid).
        displacement: (3, I, J, K) float32 smooth displacement in mm.
    """

    matrix: np.ndarray
    translation: np.ndarray
    centre: np.ndarray
    displacement: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, centre: np.ndarray, *, max_rotation_deg: float = 4.0,
             max_scaling: float = 0.05, max_translation_mm: float = 2.0, displacement_mm: float = 1.5,
             displacement_scale_mm: float = 24.0) -> "Warp":
        """A random warp: rotations up to ``max_rotation_deg`` about each axis, an isotropic scaling
        within +-``max_scaling`` with a further +-2 % per axis, a translation within
        +-``max_translation_mm`` and a smooth displacement of standard deviation ``displacement_mm``
        per axis (clipped at 3 standard deviations) correlated over ``displacement_scale_mm``."""
        angles = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, size=3))
        scaling = rng.uniform(1.0 - max_scaling, 1.0 + max_scaling) * rng.uniform(0.98, 1.02, size=3)
        matrix = Rotation.from_euler("xyz", angles).as_matrix() @ np.diag(scaling)
        translation = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
        displacement = np.stack([
            np.clip(smooth_noise(rng, GRID_SHAPE, displacement_scale_mm), -3.0, 3.0) * displacement_mm
            for _ in range(3)])
        return cls(matrix, translation, np.asarray(centre, dtype=np.float64), displacement)

    def pull_back(self) -> np.ndarray:
        """(3, I, J, K) float32 reference coordinates of every grid voxel."""
        axes = [np.arange(size, dtype=np.float32) - np.float32(c) for size, c in zip(GRID_SHAPE, self.centre)]
        coords = np.empty((3,) + GRID_SHAPE, dtype=np.float32)
        for row in range(3):
            out = coords[row]
            out[...] = self.displacement[row] + np.float32(self.centre[row] + self.translation[row])
            out += np.float32(self.matrix[row, 0]) * axes[0][:, None, None]
            out += np.float32(self.matrix[row, 1]) * axes[1][None, :, None]
            out += np.float32(self.matrix[row, 2]) * axes[2][None, None, :]
        return coords


@dataclass(frozen=True)
class SubjectAnatomy:
    """One subject's brain: where it is on the grid and the tissue mixture of each brain voxel.

    Attributes:
        support: (N,) int64 flat (C-order) indices into GRID_SHAPE of the brain voxels, sorted.
        coords: (3, N) float32 reference coordinates of each brain voxel under the subject's warp,
            before any lesion displacement (lesions are placed in these coordinates).
        grey, white, csf: (N,) float32 tissue probabilities, summing to 1.
    """

    support: np.ndarray
    coords: np.ndarray
    grey: np.ndarray
    white: np.ndarray
    csf: np.ndarray

    def dense(self, values: np.ndarray, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """Scatter (N,) brain-voxel values into an (I, J, K) grid that is 0 outside the brain.

        The grid is Fortran-ordered, the order NIfTI stores voxels in, which makes writing it faster.
        """
        out = np.zeros(GRID_SHAPE, dtype=dtype, order="F")
        out.T.reshape(-1)[self._fortran_support] = values  # out.T is C-contiguous: a view
        return out

    @cached_property
    def _fortran_support(self) -> np.ndarray:
        """(N,) flat Fortran-order indices of the brain voxels."""
        i, j, k = np.unravel_index(self.support, GRID_SHAPE)
        return i + GRID_SHAPE[0] * (j + GRID_SHAPE[1] * k)

    def mask(self) -> np.ndarray:
        """(I, J, K) uint8 brain mask (0/1)."""
        return self.dense(np.ones(len(self.support), dtype=np.uint8), np.uint8)

    def near(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """Indices into the brain voxels whose reference coordinates lie within ``radius`` mm of ``centre``."""
        squared = np.zeros(len(self.support), dtype=np.float32)
        for axis in range(3):
            squared += (self.coords[axis] - np.float32(centre[axis])) ** 2
        return np.flatnonzero(squared <= np.float32(radius) ** 2)

    def slices(self, which: np.ndarray) -> np.ndarray:
        """Axial slice index (last grid axis) of each brain voxel in ``which`` (indices into the support)."""
        return self.support[which] % GRID_SHAPE[2]


def deform_reference(reference: ReferenceAnatomy, warp: Warp, displace: PullBack | None = None) -> SubjectAnatomy:
    """Sample the reference tissue maps through ``warp``, then ``displace`` (e.g. a tumour's mass effect).

    The brain mask is the linearly interpolated reference mask thresholded at 0.5, through ``warp``
    alone: a lesion's displacement moves the tissue inside the brain, not its outline (the skull
    holds it).

    Raises:
        ValueError: the warp moved the whole brain out of the grid.
    """
    coords = warp.pull_back().reshape(3, -1)
    zone = reference.zone[nearest_voxel(coords)]
    candidates = np.flatnonzero(zone)
    inside = zone[candidates] == 2
    outline = np.flatnonzero(~inside)  # only near the outline is the mask interpolated
    inside[outline] = ndimage.map_coordinates(reference.mask, coords[:, candidates[outline]], order=1,
                                              mode="constant", output=np.float32) >= 0.5
    support = candidates[inside]
    if len(support) == 0:
        raise ValueError("deform_reference: the warp left no brain voxel inside the grid")
    at = np.ascontiguousarray(coords[:, support])
    sampled = at if displace is None else displace(at)
    grey = ndimage.map_coordinates(reference.grey, sampled, order=1, mode="constant", output=np.float32)
    white = ndimage.map_coordinates(reference.white, sampled, order=1, mode="constant", output=np.float32)
    csf = np.clip(1.0 - grey - white, 0.0, 1.0)
    return SubjectAnatomy(support, at, grey, white, csf)


@dataclass(frozen=True)
class TissueMeans:
    """Mean intensity of each tissue in one image (arbitrary positive units, like raw MRI)."""

    csf: float
    grey: float
    white: float

    def mix(self, anatomy: SubjectAnatomy) -> np.ndarray:
        """(N,) float32 partial-volume intensity of each brain voxel."""
        return (anatomy.csf * np.float32(self.csf) + anatomy.grey * np.float32(self.grey)
                + anatomy.white * np.float32(self.white))


@dataclass(frozen=True)
class ContrastModel:
    """The tissue contrast of one MR sequence: a brightness scale and each tissue's mean relative to it.

    Attributes:
        scale: range of the scale (units of the image).
        csf, grey, white: ranges of each tissue's mean as a fraction of the scale.
    """

    scale: tuple[float, float]
    csf: tuple[float, float]
    grey: tuple[float, float]
    white: tuple[float, float]

    def draw(self, rng: np.random.Generator) -> TissueMeans:
        """One subject's tissue means, uniform within the ranges."""
        scale = rng.uniform(*self.scale)
        return TissueMeans(csf=scale * rng.uniform(*self.csf), grey=scale * rng.uniform(*self.grey),
                           white=scale * rng.uniform(*self.white))


CONTRASTS: dict[str, ContrastModel] = {
    # T1: white > grey > CSF.   T2: CSF > grey > white.
    "t1": ContrastModel(scale=(650.0, 900.0), csf=(0.20, 0.30), grey=(0.62, 0.72), white=(0.97, 1.03)),
    "t2": ContrastModel(scale=(800.0, 1000.0), csf=(0.97, 1.03), grey=(0.46, 0.55), white=(0.32, 0.40)),
}
"""The contrast model of each modality."""


@dataclass(frozen=True)
class LesionPaint:
    """What a lesion does to an image, on the brain voxels.

    Attributes:
        seg: (N,) bool ground truth.
        weight: (N,) float32 in [0, 1]: how much of each voxel's intensity the lesion replaces
            (1 inside, falling to 0 across a soft edge of a few mm; 0.5 on the outline).
        value: (N,) float32 intensity of the lesion tissue where ``weight`` > 0.
    """

    seg: np.ndarray
    weight: np.ndarray
    value: np.ndarray


def render(anatomy: SubjectAnatomy, means: TissueMeans, texture: np.ndarray, rng: np.random.Generator,
           lesion: LesionPaint | None = None, *, texture_level: float = 0.035,
           bias_range: tuple[float, float] = (0.04, 0.12), bias_scale_mm: float = 45.0,
           noise_range: tuple[float, float] = (0.01, 0.025)) -> np.ndarray:
    """One MR image of the subject.

    Tissue means are mixed by the partial-volume probabilities, the lesion (if any) replaces its
    share of each voxel, then the image is multiplied by (1 + texture_level * texture) and by a
    smooth bias field exp(b * field) with b drawn from ``bias_range``, and Rician noise is added
    with a standard deviation drawn from ``noise_range`` times the brightest tissue mean. Values
    are rounded to whole numbers (as a scanner's integers); the background is exactly 0.

    Args:
        anatomy: the subject.
        means: its tissue means in this image.
        texture: (N,) unit-variance fine texture of the tissue (shared by a subject's images).
        rng: draws the bias field and the noise.
        lesion: the lesion to paint, or None.

    Returns:
        (I, J, K) float32 image.
    """
    image = means.mix(anatomy)
    if lesion is not None:
        image += lesion.weight * (lesion.value - image)
    image *= 1.0 + np.float32(texture_level) * texture
    bias = smooth_noise(rng, GRID_SHAPE, bias_scale_mm).ravel()[anatomy.support]
    image *= np.exp(np.float32(rng.uniform(*bias_range)) * bias)
    sigma = np.float32(rng.uniform(*noise_range) * max(means.csf, means.grey, means.white))
    real = image + sigma * rng.standard_normal(len(image), dtype=np.float32)
    imaginary = sigma * rng.standard_normal(len(image), dtype=np.float32)
    image = np.maximum(np.rint(np.hypot(real, imaginary)), 1.0)
    return anatomy.dense(image)


def nearest_voxel(coords: np.ndarray) -> np.ndarray:
    """(N,) int32 flat (C-order) index of the grid voxel nearest to each of ``coords`` (3, N),
    clipped to the grid."""
    flat = np.zeros(coords.shape[1], dtype=np.int32)
    stride = 1
    for axis in (2, 1, 0):
        index = (coords[axis] + np.float32(0.5)).astype(np.int32)  # rounds (points below the grid: clipped)
        np.clip(index, 0, GRID_SHAPE[axis] - 1, out=index)
        index *= stride
        flat += index
        stride *= GRID_SHAPE[axis]
    return flat
