"""The reference brain every synthetic subject is deformed from: nilearn's MNI152 templates on the
cohort's 192 x 192 x 160 grid.

nilearn ships the MNI152 (ICBM 2009a) T1 template, grey- and white-matter probability maps and a
brain mask at 1 mm; they are read offline. The brain is centred in the grid with an integer shift,
so the grid keeps 1 mm voxels and the affine stays in MNI millimetres (RAS+). The CSF probability is
what the brain mask leaves after grey and white matter, raised where the T1 template is dark
(ventricles, large sulci; up to 1 at CSF intensity); grey and white matter are rescaled so the three
sum to 1 in the brain.

Arrays are indexed (i, j, k) = (left->right, posterior->anterior, inferior->superior); axial slices
lie along the last axis. Coordinates called "reference coordinates" below are (fractional) voxel
indices of this grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainuad.data.grid import CROP_SHAPE

GRID_SHAPE: tuple[int, int, int] = (192, 192, 160)
"""(I, J, K) voxels of every synthetic volume (1 mm, the preprocessed archive's size)."""

MODEL_SLAB: tuple[int, int] = ((GRID_SHAPE[2] - CROP_SHAPE[2]) // 2, (GRID_SHAPE[2] + CROP_SHAPE[2]) // 2)
"""Axial slices [start, stop) the loader keeps (the centred 100 of 160: slices 30..129)."""

_SITE_MARGIN = 8  # mm: lesion sites keep this far inside the model slab, so a deformed centre stays in it
_DEPTH_STEP = 2  # mm: distance maps are computed on a 2 mm grid (ample for choosing lesion sites)


@dataclass(frozen=True)
class LesionSites:
    """Candidate lesion centres in reference coordinates, each an (n, 3) float32 array.

    Attributes:
        deep_white_matter: white matter (p > 0.9) at least 12 mm below the brain surface.
        periventricular: white matter (p > 0.6) within 2-8 mm of a lateral ventricle.
        cortex: supratentorial grey matter (p > 0.5) within 4 mm of the brain surface.
        tumour: supratentorial grey/white matter at least 18 mm deep and 5 mm from the ventricles.
        horn_tips: the frontal and occipital tips of both lateral ventricles, (4, 3).
    """

    deep_white_matter: np.ndarray
    periventricular: np.ndarray
    cortex: np.ndarray
    tumour: np.ndarray
    horn_tips: np.ndarray


class ReferenceAnatomy:
    """Tissue maps and landmarks of the MNI152 template on the cohort grid; built once per process
    (see :func:`reference_anatomy`).

    Attributes:
        affine: (4, 4) RAS+ voxel-to-world affine in MNI mm, shared by every synthetic volume.
        grey, white: (I, J, K) float32 tissue probabilities; CSF is 1 - grey - white in the brain.
        mask: (I, J, K) float32 brain mask (0 or 1), for linear interpolation.
        zone: (I * J * K,) uint8, flat in C order: 2 for voxels at least two voxels deep in the
            brain (the interpolated mask is 1 around them), 0 for voxels at least one voxel outside
            it (the interpolated mask is 0 around them), 1 in between.
        centre: (3,) reference coordinates of the brain's centroid.
        depth: (I, J, K) float32 distance in mm from each brain voxel to the outside of the brain
            (0 outside; computed on a 2 mm grid).
        ventricles: (I, J, K) bool lateral ventricles (the two largest bodies of deep CSF off the midline).
        ventricle_distance: (I, J, K) float32 distance in mm to the nearest ventricle voxel.
        sites: candidate lesion centres, all inside the model slab.
    """

    def __init__(self, t1: np.ndarray, grey: np.ndarray, white: np.ndarray, mask: np.ndarray,
                 affine: np.ndarray) -> None:
        """Place the templates on the grid.

        Args:
            t1, grey, white, mask: (X, Y, Z) template arrays sharing one 1 mm voxel grid.
            affine: (4, 4) RAS+ affine of the template arrays.
        """
        shapes = {array.shape for array in (t1, grey, white, mask)}
        if len(shapes) != 1 or len(t1.shape) != 3:
            raise ValueError(f"ReferenceAnatomy: templates must be 3-D arrays of one shape, got {sorted(shapes)}")
        inside = np.asarray(mask) > 0.5
        extent = [np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
        centre = np.array([(filled[0] + filled[-1]) / 2.0 for filled in extent])  # of the bounding box
        shift = np.round(centre - (np.asarray(GRID_SHAPE) - 1) / 2.0).astype(int)  # template index - grid index
        place = functools.partial(_shift_into_grid, shift=shift)
        self.affine = np.asarray(affine, dtype=np.float64) @ _translation(shift)
        brain = place(inside.astype(np.float32))
        grey = place(np.clip(grey, 0.0, 1.0).astype(np.float32)) * brain
        white = place(np.clip(white, 0.0, 1.0).astype(np.float32)) * brain
        csf = np.clip(brain - grey - white, 0.0, 1.0)
        t1 = place(np.asarray(t1, dtype=np.float32))
        csf_level = float(np.percentile(t1[brain > 0], 5))
        grey_level = float(np.median(t1[grey > 0.7]))
        darkness = np.clip((grey_level - t1) / (grey_level - csf_level), 0.0, 1.0) ** 2 * brain
        csf = np.maximum(csf, darkness)
        matter = grey + white
        rescale = np.divide(brain - csf, matter, out=np.zeros_like(matter), where=matter > 1e-6)
        self.grey = (grey * rescale).astype(np.float32)
        self.white = (white * rescale).astype(np.float32)
        self.mask = brain
        cube = np.ones((3, 3, 3), bool)
        reach = ndimage.binary_dilation(brain > 0.5, structure=cube)
        interior = ndimage.binary_erosion(brain > 0.5, structure=cube, iterations=2)
        self.zone = (reach.astype(np.uint8) + interior).ravel()
        self.centre = np.asarray(ndimage.center_of_mass(brain))
        self.depth = _coarse_distance(brain > 0.5)
        self.ventricles = self._lateral_ventricles()
        self.ventricle_distance = _coarse_distance(~self.ventricles)
        self.sites = self._lesion_sites()

    @property
    def csf(self) -> np.ndarray:
        """(I, J, K) float32 CSF probability (0 outside the brain)."""
        return np.clip(self.mask - self.grey - self.white, 0.0, 1.0)

    def _lateral_ventricles(self) -> np.ndarray:
        """(I, J, K) bool: the two largest bodies of deep CSF off the midline."""
        off_midline = np.abs(np.arange(GRID_SHAPE[0]) - self.centre[0])[:, None, None] >= 3.0
        deep_csf = (self.csf > 0.6) & (self.depth > 12.0) & off_midline
        labels, count = ndimage.label(deep_csf, structure=np.ones((3, 3, 3), bool))
        sizes = np.bincount(labels.ravel(), minlength=3)[1:]
        largest = np.argsort(sizes)[::-1][:2] + 1
        if count < 2 or sizes[largest - 1].min() < 2000:
            raise ValueError("ReferenceAnatomy: the lateral ventricles were not found in the template")
        return np.isin(labels, largest)

    def _lesion_sites(self) -> LesionSites:
        """Candidate lesion centres (see :class:`LesionSites`), all inside the model slab."""
        index = np.indices(GRID_SHAPE, sparse=True)
        start, stop = MODEL_SLAB
        in_slab = (index[2] >= start + _SITE_MARGIN) & (index[2] < stop - _SITE_MARGIN)
        world_y = self.affine[1, 1] * index[1] + self.affine[1, 3]
        world_z = self.affine[2, 2] * index[2] + self.affine[2, 3]
        supratentorial = ~((world_y < -30.0) & (world_z < -5.0))  # excludes the posterior fossa
        csf = self.csf
        depth, distance = self.depth, self.ventricle_distance
        return LesionSites(
            deep_white_matter=_points(in_slab & (self.white > 0.9) & (depth >= 12.0)),
            periventricular=_points(in_slab & (self.white > 0.6) & (distance > 2.0) & (distance <= 8.0)),
            cortex=_points(in_slab & supratentorial & (self.grey > 0.5) & (depth <= 4.0) & (depth > 0.0)),
            tumour=_points(in_slab & supratentorial & (csf < 0.2) & (depth >= 18.0) & (distance > 5.0)),
            horn_tips=self._horn_tips(),
        )

    def _horn_tips(self) -> np.ndarray:
        """(4, 3): the most anterior and most posterior ventricle voxel of each hemisphere in the slab."""
        start, stop = MODEL_SLAB
        points = np.argwhere(self.ventricles).astype(np.float32)
        points = points[(points[:, 2] >= start + _SITE_MARGIN) & (points[:, 2] < stop - _SITE_MARGIN)]
        tips = []
        for hemisphere in (points[:, 0] < self.centre[0], points[:, 0] >= self.centre[0]):
            side = points[hemisphere]
            if len(side) == 0:
                raise ValueError("ReferenceAnatomy: a lateral ventricle is missing in the model slab")
            tips += [side[np.argmax(side[:, 1])], side[np.argmin(side[:, 1])]]
        return np.stack(tips)


@functools.lru_cache(maxsize=1)
def reference_anatomy() -> ReferenceAnatomy:
    """The MNI152 reference on the cohort grid, loaded from nilearn's bundled files once per process."""
    from nilearn import datasets

    images = [datasets.load_mni152_template(resolution=1), datasets.load_mni152_gm_template(resolution=1),
              datasets.load_mni152_wm_template(resolution=1), datasets.load_mni152_brain_mask(resolution=1)]
    t1, grey, white, mask = (np.asarray(image.dataobj, dtype=np.float32) for image in images)
    return ReferenceAnatomy(t1, grey, white, mask, images[0].affine)


def _shift_into_grid(array: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Copy ``array`` into a zero GRID_SHAPE array so that grid index g holds array[g + shift]."""
    out = np.zeros(GRID_SHAPE, dtype=array.dtype)
    source, target = [], []
    for size, grid_size, offset in zip(array.shape, GRID_SHAPE, shift):
        first = max(0, -offset)
        last = min(grid_size, size - offset)
        target.append(slice(first, last))
        source.append(slice(first + offset, last + offset))
    out[tuple(target)] = array[tuple(source)]
    return out


def _translation(shift: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = shift
    return matrix


def _coarse_distance(region: np.ndarray) -> np.ndarray:
    """Distance in mm from each voxel of ``region`` to the nearest voxel outside it, on a 2 mm grid."""
    step = _DEPTH_STEP
    coarse = ndimage.distance_transform_edt(region[::step, ::step, ::step], sampling=float(step))
    full = np.repeat(np.repeat(np.repeat(coarse, step, 0), step, 1), step, 2)
    return np.ascontiguousarray(full[: GRID_SHAPE[0], : GRID_SHAPE[1], : GRID_SHAPE[2]], dtype=np.float32) * region


def _points(region: np.ndarray) -> np.ndarray:
    """(n, 3) float32 voxel coordinates of a boolean region; raises when it is empty."""
    points = np.argwhere(region).astype(np.float32)
    if len(points) == 0:
        raise ValueError("ReferenceAnatomy: a lesion-site region of the template is empty")
    return points
