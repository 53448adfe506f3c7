"""Irregular lesion shapes grown to an exact volume, and the skewed size distributions they are drawn from.

A lesion is an ellipsoid in reference coordinates whose outline is perturbed by smooth noise. Its
extent is set by one scale s (mm): a brain voxel belongs to the lesion when its "activation"
a = rho / (1 - roughness * noise) is at most s, rho being the voxel's ellipsoidal radius. Since the
voxel count grows monotonically with s, the s giving exactly the wanted number of voxels is the
k-th smallest activation: no iteration is needed. Voxels a little beyond s get a falling weight,
the soft edge of the lesion in the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainuad.data.synth.anatomy import SubjectAnatomy
from brainuad.data.synth.fields import smooth_noise
from brainuad.data.synth.template import GRID_SHAPE, MODEL_SLAB

VOXELS_PER_CM3 = 1000  # 1 mm voxels


@dataclass(frozen=True)
class ShapeNoise:
    """Two unit-variance smooth fields on a subject's brain voxels (fine: 2.5 mm, coarse: 7 mm) whose
    two mixtures ``outline`` and ``inner`` are uncorrelated, for the outlines and insides of lesions."""

    fine: np.ndarray
    coarse: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, anatomy: SubjectAnatomy) -> "ShapeNoise":
        """Both fields at the brain voxels of ``anatomy``."""
        fine = smooth_noise(rng, GRID_SHAPE, 2.5).ravel()[anatomy.support]
        coarse = smooth_noise(rng, GRID_SHAPE, 7.0).ravel()[anatomy.support]
        return cls(fine, coarse)

    def outline(self, which: np.ndarray) -> np.ndarray:
        """(n,) float32 unit-variance noise (mostly coarse) at brain voxels ``which``."""
        return (self.coarse[which] + 0.5 * self.fine[which]) / np.float32(np.sqrt(1.25))

    def inner(self, which: np.ndarray) -> np.ndarray:
        """(n,) float32 unit-variance noise (mostly fine), uncorrelated with :meth:`outline`."""
        return (0.5 * self.coarse[which] - self.fine[which]) / np.float32(np.sqrt(1.25))


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid in reference coordinates.

    Attributes:
        centre: (3,) reference coordinates.
        axes: (3, 3) orthonormal rows: the directions of the principal axes.
        ratios: (3,) relative half-lengths along ``axes``, geometric mean 1 (so the scale s of a
            lesion is the radius in mm of a sphere of the same volume, before perturbation).
    """

    centre: np.ndarray
    axes: np.ndarray
    ratios: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, centre: np.ndarray, elongation: tuple[float, float],
             long_axis: np.ndarray | None = None) -> "Ellipsoid":
        """A randomly oriented ellipsoid whose longest axis is ``elongation`` (drawn uniformly) times
        the two others (which differ by up to 20 %); ``long_axis`` fixes the longest direction."""
        q, r = np.linalg.qr(rng.standard_normal((3, 3)))
        axes = q * np.sign(np.diag(r))[None, :]  # a uniformly random orthonormal frame
        if long_axis is not None:
            axes = _frame_along(np.asarray(long_axis, dtype=np.float64), axes)
        ratios = np.array([rng.uniform(*elongation), rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)])
        ratios /= np.prod(ratios) ** (1.0 / 3.0)
        return cls(np.asarray(centre, dtype=np.float64), axes, ratios)

    @property
    def reach(self) -> float:
        """The longest half-length per unit of scale."""
        return float(self.ratios.max())

    def radius(self, coords: np.ndarray) -> np.ndarray:
        """(n,) float32 ellipsoidal radius rho of points ``coords`` (3, n) in reference coordinates."""
        local = self.axes.astype(np.float32) @ (coords - self.centre.astype(np.float32)[:, None])
        return np.sqrt(((local / self.ratios.astype(np.float32)[:, None]) ** 2).sum(axis=0))


@dataclass(frozen=True)
class Grown:
    """A lesion grown among candidate brain voxels.

    Attributes:
        which: (n,) indices into the brain voxels of the candidates.
        seg: (n,) bool, the lesion.
        weight: (n,) float32 soft membership: 1 well inside, 0.5 on the outline, 0 beyond the edge.
    """

    which: np.ndarray
    seg: np.ndarray
    weight: np.ndarray

    @property
    def voxels(self) -> int:
        return int(self.seg.sum())

    def restricted(self, keep: np.ndarray) -> "Grown":
        """The same lesion with ``seg`` reduced to ``keep`` (n,) bool; weights outside it capped below 0.5."""
        weight = np.where(self.seg & ~keep, np.minimum(self.weight, 0.49), self.weight).astype(np.float32)
        return Grown(self.which, self.seg & keep, weight)


def grow(activation: np.ndarray, which: np.ndarray, voxels: int, edge_mm: float) -> Grown | None:
    """Grow a lesion to exactly ``voxels`` voxels (fewer only where activations tie).

    Args:
        activation: (n,) float32 activation of each candidate (inf where the lesion may not go).
        which: (n,) indices into the brain voxels of the candidates.
        voxels: wanted size.
        edge_mm: width of the soft edge, in units of the activation (about mm).

    Returns:
        The lesion, or None when fewer than ``voxels`` candidates may hold it.
    """
    if voxels < 1 or np.count_nonzero(np.isfinite(activation)) < voxels:
        return None
    scale = np.partition(activation, voxels - 1)[voxels - 1]
    weight = np.clip(0.5 + (scale - activation) / np.float32(edge_mm), 0.0, 1.0).astype(np.float32)
    return Grown(which, activation <= scale, weight)


def activation(radius: np.ndarray, noise: np.ndarray, roughness: float) -> np.ndarray:
    """(n,) float32 a = rho / (1 - roughness * noise); inf where the denominator falls below 0.2."""
    denominator = np.float32(1.0) - np.float32(roughness) * noise
    result = radius / np.maximum(denominator, np.float32(0.2))
    result[denominator <= 0.2] = np.inf
    return result


def search_radius(voxels: float, ellipsoid: Ellipsoid, roughness: float, margin_mm: float = 4.0) -> float:
    """A radius in mm around an ellipsoid's centre that holds a lesion of ``voxels`` voxels grown
    from it, even where the noise stretches the outline by 3 standard deviations."""
    equivalent = (3.0 * voxels / (4.0 * np.pi)) ** (1.0 / 3.0)
    return equivalent * ellipsoid.reach / max(1.0 - 3.0 * roughness, 0.2) + margin_mm


def largest_component(anatomy: SubjectAnatomy, lesion: Grown) -> Grown:
    """``lesion`` reduced to its largest 26-connected component (computed in its bounding box)."""
    members = lesion.which[lesion.seg]
    if len(members) == 0:
        return lesion
    points = np.stack(np.unravel_index(anatomy.support[members], GRID_SHAPE), axis=1)
    low = points.min(axis=0)
    box = np.zeros(tuple(points.max(axis=0) - low + 1), dtype=bool)
    box[tuple((points - low).T)] = True
    labels, count = ndimage.label(box, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return lesion
    member_labels = labels[tuple((points - low).T)]
    keep_label = np.argmax(np.bincount(member_labels)[1:]) + 1
    keep = np.zeros(len(lesion.seg), dtype=bool)
    keep[np.flatnonzero(lesion.seg)[member_labels == keep_label]] = True
    return lesion.restricted(keep)


def centred_in_slab(anatomy: SubjectAnatomy, lesion: Grown) -> bool:
    """True when the lesion's centroid lies within the axial slices the model grid keeps."""
    start, stop = MODEL_SLAB
    centroid = anatomy.slices(lesion.which[lesion.seg]).mean()
    return bool(start <= centroid <= stop - 1)


def skewed(rng: np.random.Generator, median: float, spread: float, low: float, high: float) -> float:
    """A log-normal draw (``median``, log standard deviation ``spread``) redrawn until it lies in [low, high]."""
    if not 0 < low <= median <= high:
        raise ValueError(f"skewed: need 0 < low <= median <= high, got {low!r}, {median!r}, {high!r}")
    while True:
        value = float(median * np.exp(spread * rng.standard_normal()))
        if low <= value <= high:
            return value


def _frame_along(direction: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Orthonormal rows whose first row is ``direction`` (normalised), completed from ``fallback``'s rows."""
    first = direction / np.linalg.norm(direction)
    helper = fallback[1] if abs(float(fallback[1] @ first)) < 0.9 else fallback[2]
    second = helper - (helper @ first) * first
    second /= np.linalg.norm(second)
    return np.stack([first, second, np.cross(first, second)])
