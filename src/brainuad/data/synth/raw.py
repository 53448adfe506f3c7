"""Raw synthetic scans (``brainuad synth --raw``): the cohort's subjects as they arrive from a scanner or
a download, in each data set's download layout, so that ``brainuad prepare`` can be tested end to end.

Each subject is the one :func:`brainuad.data.synth.cohort.cohort_subject` makes (same seed, same
brain, same lesion), then, per data set (:data:`PROFILES`):

* a head around the brain where the real download has one: a CSF rim, a dark skull and a bright
  scalp, as shells at fixed distances outside the brain (BraTS arrives skull-stripped);
* a pose: a random rigid motion of the head for native-space sets (IXI, MSLUB, WMH); a fixed
  similarity into an SRI24-like world for BraTS (another world frame and scale, 240 x 240 x 155 at
  1 mm); MNI space as it is for ATLAS v2 (197 x 233 x 189 at 1 mm);
* a raw voxel grid: anisotropic spacing (e.g. 1 x 1 x 5 mm axial for MSLUB, sagittal 1.2 mm slices
  for IXI T1), oblique axes and flipped or permuted array axes, so the affine is not diagonal;
* a multiplicative bias field and Rician noise, intensities rounded to whole numbers (int16 on disk).

IXI's T2 has its own grid and a slightly different pose than its T1 (the subject moved between the
two sequences). WMH has a FLAIR on the T1's grid, rendered from the same anatomy; BraTS21 and
MSLUB a T1 on the T2's grid (co-registered, as both downloads give it). Segmentations are
carried onto the raw grid of the scan they belong to (linear interpolation, thresholded at 0.5); the
BraTS label map has labels 1 (core), 4 (enhancing rim) and 2 (oedema) and WMH label 2 marks "other
pathology", as in the real downloads.

The download layouts written (names follow each set's real naming)::

    OUT/IXI/IXI-T1/IXI001-Synth-0001-T1.nii.gz, OUT/IXI/IXI-T2/IXI001-Synth-0001-T2.nii.gz, OUT/IXI/IXI.csv
    OUT/BraTS21/BraTS2021_00000/BraTS2021_00000_{t2,t1,seg}.nii.gz
    OUT/MSLUB/patient01/{T2W,T1W,consensus_gt}.nii.gz
    OUT/ATLAS_2/Training/R999/sub-r999s001/ses-1/anat/sub-r999s001_ses-1_space-MNI152NLin2009aSym_{T1w,label-L_desc-T1lesion_mask}.nii.gz
    OUT/WMH/training/Synth/0/{pre/T1,pre/FLAIR,wmh}.nii.gz
    OUT/synthetic-raw.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from brainuad.atomic import write_text
from brainuad.checks import check_optional_int
from brainuad.data.io import write_image
from brainuad.data.layout import DATASETS
from brainuad.data.synth.cohort import (
    SIZES,
    SizeName,
    check_generation_arguments,
    clear_generated,
    cohort_subject,
)
from brainuad.data.synth.fields import smooth_noise
from brainuad.data.synth.parallel import map_subjects
from brainuad.data.synth.subjects import SyntheticSubject
from brainuad.data.synth.template import reference_anatomy
from brainuad.lock import FolderLock
from brainuad.version import __version__

MARKER = "synthetic-raw.json"
_SHELL_GRID_MM = 2  # the distance to the brain is computed on a 2 mm grid
_SHELL_PAD_MM = 30  # ... reaching this far beyond the cohort grid
_BIAS_GRID_MM = 4.0
_BIAS_SCALE_MM = 60.0


@dataclass(frozen=True)
class Shell:
    """Intensities of the tissue layers around the brain, as fractions of the image's brightest tissue
    mean, and their outer radii in mm from the brain's surface (CSF rim, skull, scalp)."""

    csf: float
    bone: float
    scalp: float
    radii_mm: tuple[float, float, float] = (2.5, 7.5, 13.0)

    def profile(self, distance: np.ndarray, brightest: float) -> np.ndarray:
        """Intensity at ``distance`` mm outside the brain (soft 1 mm transitions; 0 in the air beyond)."""
        rim, skull, scalp = self.radii_mm
        knots = [0.0, rim - 0.5, rim + 0.5, skull - 0.5, skull + 0.5, scalp - 0.5, scalp + 0.5]
        levels = [self.csf, self.csf, self.bone, self.bone, self.scalp, self.scalp, 0.0]
        return np.interp(distance, knots, np.asarray(levels) * brightest).astype(np.float32)


SHELLS: dict[str, Shell] = {
    "t1": Shell(csf=0.25, bone=0.06, scalp=1.05),  # T1: fat of the scalp bright, CSF and bone dark
    "t2": Shell(csf=1.0, bone=0.04, scalp=0.45),  # T2: CSF brightest
    "flair": Shell(csf=0.12, bone=0.04, scalp=0.7),  # FLAIR: CSF suppressed
}


@dataclass(frozen=True)
class Acquisition:
    """The raw voxel grid of one scan, relative to the head.

    Attributes:
        spacing: (3,) mm along the array axes.
        axes: (3, 3) signed permutation matrix (as rows); its column a is the world direction (RAS)
            of array axis a.
        fov_mm: (3,) extent covered along the array axes.
        max_tilt_deg: the grid is turned by half to all of this about a random axis (oblique slices).
    """

    spacing: tuple[float, float, float]
    axes: tuple[tuple[int, int, int], ...]
    fov_mm: tuple[float, float, float]
    max_tilt_deg: float = 8.0

    def coarsened(self, factor: float) -> "Acquisition":
        """The same field of view with voxels at least ``factor`` times the finest spacing on every axis."""
        finest = min(self.spacing) * factor
        x, y, z = (max(s, finest) for s in self.spacing)
        return replace(self, spacing=(x, y, z))

    def grid(self, rng: np.random.Generator, centre: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
        """(shape, affine) of a grid centred on ``centre`` (world mm), tilted at random."""
        i, j, k = (max(1, int(round(f / s))) for f, s in zip(self.fov_mm, self.spacing))
        shape = (i, j, k)
        tilt = Rotation.from_rotvec(_unit(rng) * np.deg2rad(rng.uniform(0.5, 1.0) * self.max_tilt_deg)).as_matrix()
        affine = np.eye(4)
        affine[:3, :3] = tilt @ np.asarray(self.axes, dtype=np.float64) @ np.diag(self.spacing)
        affine[:3, 3] = centre - affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
        return shape, affine


_AXIAL = ((-1, 0, 0), (0, 1, 0), (0, 0, 1))  # columns L, A, S: axial slices along the last axis
_SAGITTAL = ((0, 0, 1), (1, 0, 0), (0, -1, 0))  # columns A, I, R: sagittal slices along the last axis


@dataclass(frozen=True)
class RawProfile:
    """How one data set's raw scans look.

    Attributes:
        modalities: the scans written (the first carries the segmentation).
        acquisitions: modality -> its raw grid (a modality without one shares the first modality's
            grid, as WMH's co-registered FLAIR does); None: the set's fixed template grid (``space``).
        space: ``native`` (random rigid pose), ``sri24`` (BraTS's 240 x 240 x 155 world, a fixed
            similarity of MNI) or ``mni`` (ATLAS v2: the MNI152 template's own grid).
        skull: whether a head is drawn around the brain.
        bias: standard deviation of the log bias field.
        max_rotation_deg, max_translation_mm: range of the random pose (``native`` only).
    """

    modalities: tuple[str, ...]
    acquisitions: dict[str, Acquisition] | None
    space: str
    skull: bool
    bias: float
    max_rotation_deg: float = 12.0
    max_translation_mm: float = 10.0


PROFILES: dict[str, RawProfile] = {
    "ixi": RawProfile(("t1", "t2"), {"t1": Acquisition((0.94, 0.94, 1.2), _SAGITTAL, (240.0, 240.0, 180.0)),
                                     "t2": Acquisition((0.94, 0.94, 1.2), _AXIAL, (240.0, 240.0, 156.0))},
                      "native", skull=True, bias=0.2),
    "brats21": RawProfile(("t2", "t1"), None, "sri24", skull=False, bias=0.05),
    "mslub": RawProfile(("t2", "t1"), {"t2": Acquisition((1.0, 1.0, 5.0), _AXIAL, (230.0, 230.0, 170.0))},
                        "native", skull=True, bias=0.25),
    "atlas": RawProfile(("t1",), None, "mni", skull=True, bias=0.1),
    "wmh": RawProfile(("t1", "flair"), {"t1": Acquisition((0.96, 0.96, 3.0), _AXIAL, (230.0, 230.0, 170.0))},
                      "native", skull=True, bias=0.05),
}
"""The raw look of each data set."""

_BRATS_SHAPE = (240, 240, 155)
_BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])
_BRATS_SCALE = 0.95  # the SRI24-like world holds a slightly smaller brain than MNI
_IXI_T2_MOTION = (2.0, 2.0)  # degrees, mm: how much the subject moves between T1 and T2


@dataclass(frozen=True)
class RawScan:
    """One raw scan.

    Attributes:
        image: (I, J, K) float32 whole-number intensities.
        affine: (4, 4) RAS+ voxel-to-world affine (mm).
        pose: (4, 4) map from the cohort's template world (MNI mm) to this scan's world.
    """

    image: np.ndarray
    affine: np.ndarray
    pose: np.ndarray


@dataclass(frozen=True)
class RawSubject:
    """A cohort subject as raw scans.

    Attributes:
        subject: the same subject on the cohort grid (template space), for comparisons.
        name: its name in the download layout.
        scans: modality -> :class:`RawScan`; the first modality of the profile carries the labels.
        labels: label map on the first scan's grid in the download's coding (BraTS 0/1/2/4, WMH
            0/1/2, others 0/1), uint8; None for a healthy subject.
        brain: (I, J, K) bool brain mask on the first scan's grid (the truth for skull stripping).
    """

    subject: SyntheticSubject
    name: str
    scans: dict[str, RawScan]
    labels: np.ndarray | None
    brain: np.ndarray

    @property
    def lesion(self) -> np.ndarray | None:
        """(I, J, K) bool lesion on the first scan's grid (the labels the recipes count as lesion)."""
        if self.labels is None:
            return None
        return self.labels == 1 if self.subject.dataset_id == "wmh" else self.labels > 0


def raw_name(dataset_id: str, index: int) -> str:
    """The download-layout name of the ``index``-th (0-based) subject of ``dataset_id``."""
    number = index + 1
    return {"ixi": f"IXI{number:03d}-Synth-{number:04d}", "brats21": f"BraTS2021_{index:05d}",
            "mslub": f"patient{number:02d}", "atlas": f"sub-r999s{number:03d}_ses-1",
            "wmh": f"Synth_{index}"}[dataset_id]


def raw_subject(dataset_id: str, index: int, seed: int = 0, *, coarsen: float = 1.0,
                profile: RawProfile | None = None) -> RawSubject:
    """The ``index``-th subject of ``dataset_id`` (cohort of ``seed``) as raw scans.

    Args:
        dataset_id: ``ixi``, ``brats21``, ``mslub``, ``atlas`` or ``wmh``.
        index: 0-based subject index.
        seed: the cohort's seed.
        coarsen: >= 1; the raw grids get voxels at least ``coarsen`` times their finest spacing on
            every axis (the same field of view in fewer voxels: tests use 2-3).
        profile: how the raw scans look (default: the data set's entry of :data:`PROFILES`).
    """
    if dataset_id not in PROFILES:
        raise ValueError(f"dataset_id must be one of {', '.join(PROFILES)}, got {dataset_id!r}")
    if not coarsen >= 1.0:
        raise ValueError(f"coarsen must be >= 1, got {coarsen!r}")
    subject = cohort_subject(dataset_id, index, seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(list(DATASETS).index(dataset_id), index, 1)))
    with threadpool_limits(limits=1, user_api="blas"):
        return _raw(subject, raw_name(dataset_id, index), profile or PROFILES[dataset_id], rng, coarsen)


def _raw(subject: SyntheticSubject, name: str, profile: RawProfile, rng: np.random.Generator,
         coarsen: float) -> RawSubject:
    reference = reference_anatomy()
    grid_affine = subject.affine
    centre = (grid_affine @ np.append(reference.centre, 1.0))[:3]  # the brain's centre, template world
    images = dict(subject.images)
    if "flair" in profile.modalities:
        images["flair"] = _render_flair(subject, rng)
    distance = _outside_distance(subject.mask) if profile.skull else None
    scans: dict[str, RawScan] = {}
    first = profile.modalities[0]
    pose = _pose(profile, rng, centre)
    for modality in profile.modalities:
        if modality != first and subject.dataset_id == "ixi":
            pose = _motion(rng, centre, *_IXI_T2_MOTION) @ pose
        if modality == first or (profile.acquisitions and modality in profile.acquisitions):
            shape, affine = _raw_grid(profile, modality, rng, pose, centre, coarsen)
        points = _template_points(shape, affine, pose, grid_affine)
        brain = ndimage.map_coordinates(images[modality], points, order=1, mode="constant")
        weight = ndimage.map_coordinates(subject.mask.astype(np.float32), points, order=1, mode="constant")
        brightest = _brightest(subject, images[modality])
        if distance is not None:
            head = brain + (1.0 - weight) * SHELLS[modality].profile(_distance_at(distance, points), brightest)
        else:
            head = np.where(weight >= 0.5, brain, 0.0)
        head = head.reshape(shape) * _bias(rng, shape, affine, profile.bias)
        head = _rician(rng, head, 0.012 * brightest, skull_stripped=not profile.skull)
        scans[modality] = RawScan(head, affine, pose)
        if modality == first:
            brain_mask = weight.reshape(shape) >= 0.5
            labels = None
            if subject.seg is not None:
                lesion = ndimage.map_coordinates(subject.seg.astype(np.float32), points, order=1,
                                                 mode="constant").reshape(shape) >= 0.5
                labels = _labels(subject.dataset_id, lesion, brain_mask, rng)
    return RawSubject(subject, name, scans, labels, brain_mask)


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(3)
    return vector / np.linalg.norm(vector)


def _motion(rng: np.random.Generator, centre: np.ndarray, degrees: float, mm: float) -> np.ndarray:
    """(4, 4) a random rigid motion about ``centre``: rotations up to ``degrees`` per axis, shifts up to ``mm``."""
    rotation = Rotation.from_euler("xyz", rng.uniform(-degrees, degrees, size=3), degrees=True).as_matrix()
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre - rotation @ centre + rng.uniform(-mm, mm, size=3)
    return matrix


def _pose(profile: RawProfile, rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """(4, 4) map from the template world to the raw scan's world."""
    if profile.space == "native":
        return _motion(rng, centre, profile.max_rotation_deg, profile.max_translation_mm)
    if profile.space == "mni":
        return np.eye(4)
    grid_centre = (_BRATS_AFFINE @ np.append((np.asarray(_BRATS_SHAPE) - 1) / 2.0, 1.0))[:3]
    matrix = np.eye(4)
    matrix[:3, :3] *= _BRATS_SCALE
    matrix[:3, 3] = grid_centre - _BRATS_SCALE * centre
    return matrix


def _raw_grid(profile: RawProfile, modality: str, rng: np.random.Generator, pose: np.ndarray, centre: np.ndarray,
              coarsen: float) -> tuple[tuple[int, int, int], np.ndarray]:
    if profile.space == "sri24":
        return _coarsened_grid(_BRATS_SHAPE, _BRATS_AFFINE, coarsen)
    if profile.space == "mni":
        from nilearn import datasets

        template = datasets.load_mni152_template(resolution=1)
        return _coarsened_grid(tuple(template.shape), np.asarray(template.affine, dtype=np.float64), coarsen)
    if profile.acquisitions is None:
        raise ValueError(f"a raw profile in {profile.space!r} space needs its acquisitions")
    acquisition = profile.acquisitions[modality].coarsened(coarsen)
    head_centre = (pose @ np.append(centre, 1.0))[:3] + rng.uniform(-5.0, 5.0, size=3)
    return acquisition.grid(rng, head_centre)


def _coarsened_grid(shape: tuple[int, int, int], affine: np.ndarray,
                    factor: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A fixed template grid with voxels ``factor`` times larger over the same field of view and centre."""
    i, j, k = shape
    if factor == 1.0:
        return (i, j, k), affine.copy()
    ci, cj, ck = (max(1, int(round(size / factor))) for size in shape)
    coarse = (ci, cj, ck)
    centre = affine @ np.append((np.asarray(shape) - 1) / 2.0, 1.0)
    scaled = affine.copy()
    scaled[:3, :3] *= factor
    scaled[:3, 3] = centre[:3] - scaled[:3, :3] @ ((np.asarray(coarse) - 1) / 2.0)
    return coarse, scaled


def _template_points(shape: tuple[int, int, int], affine: np.ndarray, pose: np.ndarray,
                     grid_affine: np.ndarray) -> np.ndarray:
    """(3, N) cohort-grid coordinates of every raw voxel (C order)."""
    to_grid = np.linalg.inv(grid_affine) @ np.linalg.inv(pose) @ affine
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (to_grid[:3, :3].astype(np.float32) @ index + to_grid[:3, 3:4].astype(np.float32))


def _outside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance (mm) from the brain on a padded 2 mm grid: index p holds the cohort-grid point
    2 p - pad (see :func:`_distance_at`)."""
    step, pad = _SHELL_GRID_MM, _SHELL_PAD_MM // _SHELL_GRID_MM
    coarse = mask[::step, ::step, ::step] > 0
    coarse = np.pad(coarse, pad)
    return ndimage.distance_transform_edt(~coarse, sampling=float(step)).astype(np.float32)


def _distance_at(distance: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance to the brain at cohort-grid ``points`` (3, N); far beyond the padded grid: large."""
    step, pad = _SHELL_GRID_MM, _SHELL_PAD_MM // _SHELL_GRID_MM
    return ndimage.map_coordinates(distance, points / step + pad, order=1, mode="constant", cval=1e3)


def _brightest(subject: SyntheticSubject, image: np.ndarray) -> float:
    """The image's brightest tissue level: the 95th percentile of its brain voxels."""
    return float(np.percentile(image[subject.mask > 0], 95))


def _render_flair(subject: SyntheticSubject, rng: np.random.Generator) -> np.ndarray:
    """(192, 192, 160) FLAIR of the subject: CSF dark, grey above white matter, lesions bright."""
    anatomy = subject.anatomy
    scale = rng.uniform(450.0, 600.0)
    values = scale * (0.12 * anatomy.csf + 0.75 * anatomy.grey + 0.6 * anatomy.white)
    image = anatomy.dense(values.astype(np.float32))
    if subject.seg is not None:
        image = np.where(subject.seg > 0, np.float32(1.15 * scale), image)
    return ndimage.gaussian_filter(image, 0.6)


def _bias(rng: np.random.Generator, shape: tuple[int, int, int], affine: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth multiplicative field exp(amplitude * unit-variance field), varying over ~60 mm."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    extent = np.asarray(shape) * spacing
    ci, cj, ck = (int(np.ceil(e / _BIAS_GRID_MM)) + 1 for e in extent)
    coarse_shape = (ci, cj, ck)
    field = smooth_noise(rng, coarse_shape, _BIAS_SCALE_MM / _BIAS_GRID_MM)
    axes = [np.arange(size) * s / _BIAS_GRID_MM for size, s in zip(shape, spacing)]
    points = np.meshgrid(*axes, indexing="ij")
    return np.exp(amplitude * ndimage.map_coordinates(field, points, order=1, mode="nearest")).astype(np.float32)


def _rician(rng: np.random.Generator, image: np.ndarray, sigma: float, *, skull_stripped: bool) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise, rounded; a skull-stripped image keeps its
    zero background (as BraTS)."""
    real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, image.shape).astype(np.float32)
    noisy = np.rint(np.hypot(real, imaginary)).astype(np.float32)
    return np.where(image > 0, noisy, 0.0).astype(np.float32) if skull_stripped else noisy


def _labels(dataset_id: str, lesion: np.ndarray, brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The download's label coding of a binary lesion."""
    labels = lesion.astype(np.uint8)
    if dataset_id == "brats21" and lesion.any():
        depth = ndimage.distance_transform_edt(lesion)
        deepest = depth.max()
        labels[lesion & (depth > deepest / 3)] = 4
        labels[lesion & (depth > 2 * deepest / 3)] = 1
        labels[lesion & (depth <= deepest / 3)] = 2
    if dataset_id == "wmh":
        candidates = np.argwhere(brain & ~ndimage.binary_dilation(lesion, iterations=4))
        if len(candidates):
            centre = candidates[rng.integers(len(candidates))]
            index: tuple[np.ndarray, ...] = np.indices(lesion.shape, sparse=True)  # numpy's stubs say tuple[()]
            ball = sum((axis - c) ** 2 for axis, c in zip(index, centre)) <= 4
            labels[ball & brain & ~lesion] = 2
    return labels


# ----------------------------------------------------------------------------------------------- layout


def raw_files(dataset_id: str, name: str) -> dict[str, str]:
    """Relative paths of one raw subject's files in its download layout: modality (or ``labels``) -> path."""
    if dataset_id == "ixi":
        return {"t1": f"IXI/IXI-T1/{name}-T1.nii.gz", "t2": f"IXI/IXI-T2/{name}-T2.nii.gz"}
    if dataset_id == "brats21":
        return {"t2": f"BraTS21/{name}/{name}_t2.nii.gz", "t1": f"BraTS21/{name}/{name}_t1.nii.gz",
                "labels": f"BraTS21/{name}/{name}_seg.nii.gz"}
    if dataset_id == "mslub":
        return {"t2": f"MSLUB/{name}/T2W.nii.gz", "t1": f"MSLUB/{name}/T1W.nii.gz",
                "labels": f"MSLUB/{name}/consensus_gt.nii.gz"}
    if dataset_id == "atlas":
        folder = f"ATLAS_2/Training/R999/{name.split('_')[0]}/ses-1/anat"
        return {"t1": f"{folder}/{name}_space-MNI152NLin2009aSym_T1w.nii.gz",
                "labels": f"{folder}/{name}_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz"}
    if dataset_id == "wmh":
        folder = f"WMH/training/Synth/{name.split('_')[1]}"
        return {"t1": f"{folder}/pre/T1.nii.gz", "flair": f"{folder}/pre/FLAIR.nii.gz",
                "labels": f"{folder}/wmh.nii.gz"}
    raise ValueError(f"dataset_id must be one of {', '.join(PROFILES)}, got {dataset_id!r}")


DOWNLOAD_FOLDERS = {"ixi": "IXI", "brats21": "BraTS21", "mslub": "MSLUB", "atlas": "ATLAS_2", "wmh": "WMH"}
"""The folder under ``OUT`` that each data set's raw download is written into (give it to ``prepare``)."""


def write_raw_subject(root: str | Path, raw: RawSubject) -> list[Path]:
    """Write one raw subject's files under ``root`` in its download layout (int16 images, uint8 labels)."""
    root = Path(root)
    files = raw_files(raw.subject.dataset_id, raw.name)
    written = []
    for modality, scan in raw.scans.items():
        image = np.clip(scan.image, -32768, 32767).astype(np.int16)
        written.append(write_image(root / files[modality], image, scan.affine))
    if raw.labels is not None:
        first = raw.scans[next(iter(raw.scans))]
        written.append(write_image(root / files["labels"], raw.labels, first.affine))
    return written


def write_ixi_ages(root: str | Path, ages: dict[int, float]) -> Path:
    """Write ``IXI/IXI.csv`` with the columns of IXI.xls that matter here (IXI_ID, AGE)."""
    path = Path(root) / DOWNLOAD_FOLDERS["ixi"] / "IXI.csv"
    return write_text(path, "IXI_ID,AGE\n" + "".join(f"{number},{age}\n" for number, age in sorted(ages.items())))


@dataclass(frozen=True)
class RawSummary:
    """What :func:`synthesize_raw` wrote: the folder, the subjects per data set and the time taken."""

    root: Path
    subjects: dict[str, int]
    seconds: float

    def describe(self) -> str:
        counts = ", ".join(f"{name} {count} in {self.root / DOWNLOAD_FOLDERS[name]}"
                           for name, count in self.subjects.items())
        return f"raw synthetic scans written in {self.seconds:.1f} s: {counts}"


@dataclass(frozen=True)
class _RawTask:
    root: str
    dataset_id: str
    index: int
    seed: int
    coarsen: float


def _write_task(task: _RawTask) -> tuple[str, int, float]:
    raw = raw_subject(task.dataset_id, task.index, task.seed, coarsen=task.coarsen)
    write_raw_subject(task.root, raw)
    return task.dataset_id, task.index, raw.subject.age


def synthesize_raw(out: str | Path, *, size: SizeName = "small", seed: int = 0, workers: int = 1,
                   datasets: tuple[str, ...] | None = None, limit: int | None = None, coarsen: float = 1.0,
                   progress: bool = True) -> RawSummary:
    """Write the cohort's subjects as raw scans in each data set's download layout under ``out``.

    Args:
        out: a new or empty folder, or one holding earlier raw synthetic scans (replaced).
        size: ``tiny``, ``small`` or ``medium``: the subjects of the synthetic cohort of that size.
        seed: the cohort's seed (>= 0).
        workers: processes generating subjects in parallel (>= 1).
        datasets: the data sets to write (default all five).
        limit: at most this many subjects per data set (the first ones of the cohort; default all).
        coarsen: >= 1, see :func:`raw_subject` (tests use coarser grids).
        progress: show a progress bar on stderr.

    Raises:
        ValueError: a bad argument.
        InputError: ``out`` is a file or a non-empty folder without raw synthetic scans.
    """
    check_generation_arguments(size, seed, workers)
    chosen = tuple(DATASETS) if datasets is None else tuple(datasets)
    unknown = [name for name in chosen if name not in PROFILES]
    if unknown or not chosen:
        raise ValueError(f"datasets must name some of {', '.join(PROFILES)}, got {datasets!r}")
    check_optional_int("limit", limit, allow_numpy=True)
    if not coarsen >= 1.0:
        raise ValueError(f"coarsen must be >= 1, got {coarsen!r}")
    started = time.perf_counter()
    root = Path(out)
    with FolderLock(root, "writing raw synthetic scans"):
        clear_generated(root, MARKER, (*DOWNLOAD_FOLDERS.values(), MARKER), "raw synthetic scans")
        write_text(root / MARKER, json.dumps({"generator": "brainuad synth --raw", "version": __version__,
                                               "size": size, "seed": int(seed), "limit": limit,
                                               "coarsen": float(coarsen)}, indent=2) + "\n")
        counts = {name: min(SIZES[size].subjects(name), limit or SIZES[size].subjects(name)) for name in chosen}
        tasks = [_RawTask(str(root), name, index, int(seed), float(coarsen))
                 for name in chosen for index in range(counts[name])]
        results = map_subjects(_write_task, tasks, int(workers), progress=progress,
                               description="raw synthetic scans")
        if "ixi" in chosen:
            write_ixi_ages(root, {index + 1: age for name, index, age in results if name == "ixi"})
        return RawSummary(root, counts, time.perf_counter() - started)
