"""Affine registration to an atlas and rigid alignment of a subject's modalities (method.md §2, step 2).

An :class:`Atlas` is a template image with its brain mask: by default nilearn's bundled MNI152
(ICBM 2009a symmetric) T1 template at 1 mm, or any template given by path (the SRI24 atlas the
paper used, say). Registration is SimpleITK's: Mattes mutual information (so T2 or FLAIR scans
register to a T1 template), a start that superimposes centres of mass, then rigid, similarity and
affine stages, each multi-resolution. A skull-stripped brain registers to the (brain) template far
more reliably than a whole head; the metric then samples the atlas brain and a margin around it.
A whole head (for the atlas-mask skull stripping) is registered with the atlas brain alone sampled,
so the skull and scalp do not pull the brain towards the template's outline.

Both images are registered on isotropic working grids (``RegistrationSettings.working_spacing_mm``)
whose axes are orthonormal, which SimpleITK's geometry needs. The result is a (4, 4) matrix in
RAS+ world millimetres mapping a point of the fixed image (the atlas) to the corresponding point of
the moving image (the scan): the "pull-back" that :func:`brainuad.preprocess.resample.resample`
takes as ``world``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from brainuad.checks import check_fraction
from brainuad.data.io import read_image
from brainuad.preprocess.resample import (
    Grid,
    isotropic_grid,
    orthonormal_axes,
    resample,
)

TransformModel = Literal["rigid", "similarity", "affine"]
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS (its own inverse)
MNI152_NAME = "MNI152 ICBM 2009a symmetric T1, 1 mm (nilearn)"
MNI152_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


@dataclass(frozen=True)
class AtlasImages:
    """An atlas in memory.

    Attributes:
        image: (I, J, K) float32 template intensities.
        mask: (I, J, K) bool brain mask.
        grid: the template's voxel grid.
    """

    image: np.ndarray
    mask: np.ndarray
    grid: Grid


@dataclass(frozen=True)
class Atlas:
    """A registration target: a template image and its brain mask, loaded on first use.

    Attributes:
        name: a readable name recorded in outputs.
        image_path: the template file; None for nilearn's bundled MNI152 T1 template.
        mask_path: the brain mask file; None for the MNI152 mask (bundled template) or, for a template
            given by path, the template's non-zero voxels (a skull-stripped template) with holes filled.
    """

    name: str
    image_path: Path | None = None
    mask_path: Path | None = None

    @classmethod
    def mni152(cls) -> "Atlas":
        """nilearn's MNI152 (ICBM 2009a symmetric) T1 brain template and brain mask, 1 mm, offline."""
        return cls(MNI152_NAME)

    @classmethod
    def from_path(cls, image_path: str | Path, mask_path: str | Path | None = None) -> "Atlas":
        """A template given by path (e.g. the SRI24 T1 brain) and, optionally, its brain mask."""
        image_path = Path(image_path)
        return cls(image_path.name, image_path, None if mask_path is None else Path(mask_path))

    def load(self) -> AtlasImages:
        """The template and its mask (cached per process).

        Raises:
            InputError: a file is missing or unreadable, the mask's grid differs from the template's,
                or the mask is empty.
        """
        return _load_atlas(self.image_path, self.mask_path)

    def grid_at(self, spacing_mm: float | None) -> Grid:
        """The atlas's field of view on a grid of ``spacing_mm`` cubic voxels (the template's own grid
        when ``spacing_mm`` is None or equals its voxel size)."""
        grid = self.load().grid
        if spacing_mm is None or np.allclose(grid.spacing, spacing_mm, atol=1e-6):
            return grid
        return isotropic_grid(grid, spacing_mm)

    def fingerprint(self) -> dict:
        """What identifies this space in a data directory's ``space.json``: the name and the SHA-256
        of the template and mask files (``bundled`` for nilearn's files)."""
        return {"name": self.name,
                "image_sha256": "bundled" if self.image_path is None else _sha256(self.image_path),
                "mask_sha256": "bundled" if self.mask_path is None else _sha256(self.mask_path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mni152_template_path() -> Path:
    """The MNI152 (ICBM 2009a symmetric) T1 template file shipped inside nilearn, found without importing
    nilearn (whose import takes seconds, once per worker process)."""
    from brainuad.errors import InputError

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(Path(MNI152_FILE), "nilearn is not installed, so the default MNI152 atlas is missing",
                         "install nilearn, or give an atlas by path")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / MNI152_FILE
    if not path.is_file():
        raise InputError(path, "nilearn's bundled MNI152 template is missing", "reinstall nilearn")
    return path


@functools.lru_cache(maxsize=4)
def _load_atlas(image_path: Path | None, mask_path: Path | None) -> AtlasImages:
    from brainuad.errors import InputError

    if image_path is None:
        image, affine = read_image(mni152_template_path())
        image = image / image.max()  # as nilearn's load_mni152_template and load_mni152_brain_mask do
        mask = image > 0.2
    else:
        image, affine = read_image(image_path)
        if mask_path is None:
            mask = ndimage.binary_fill_holes(image > 0)
        else:
            mask_array, mask_affine = read_image(mask_path)
            if mask_array.shape != image.shape or not np.allclose(mask_affine, affine, atol=1e-3):
                raise InputError(mask_path, f"atlas mask grid differs from the atlas image {image_path}",
                                 "give the brain mask that belongs to the template")
            mask = mask_array > 0.5
    if not mask.any():
        raise InputError(mask_path or image_path or Path(MNI152_NAME), "atlas brain mask is empty")
    return AtlasImages(image, mask, Grid(image.shape, affine))


@dataclass(frozen=True)
class Stage:
    """One stage of a registration: a transform model optimised over a few resolution levels.

    Attributes:
        transform: ``rigid`` (6 parameters), ``similarity`` (rigid + one scale, 7) or ``affine`` (12).
        shrink_factors: levels, coarse to fine: the working grid shrunk by each factor.
        smoothing_mm: Gaussian smoothing (mm) at each level, one per shrink factor.
        step_mm: the optimiser's first step (regular-step gradient descent, parameters scaled so a
            unit step moves the image by about 1 mm); it halves whenever the direction reverses.
    """

    transform: TransformModel
    shrink_factors: tuple[int, ...]
    smoothing_mm: tuple[float, ...]
    step_mm: float

    def __post_init__(self) -> None:
        if self.transform not in ("rigid", "similarity", "affine"):
            raise ValueError(f"Stage: transform must be rigid, similarity or affine, got {self.transform!r}")
        if not self.shrink_factors or any(int(f) < 1 for f in self.shrink_factors):
            raise ValueError(f"Stage: shrink_factors must be integers >= 1, got {self.shrink_factors!r}")
        if len(self.smoothing_mm) != len(self.shrink_factors) or any(s < 0 for s in self.smoothing_mm):
            raise ValueError(f"Stage: smoothing_mm needs one value >= 0 per shrink factor, "
                             f"got {self.smoothing_mm!r} for {self.shrink_factors!r}")
        if not self.step_mm > 0:
            raise ValueError(f"Stage: step_mm must be > 0, got {self.step_mm!r}")


ATLAS_STAGES: tuple[Stage, ...] = (
    Stage("rigid", (4, 2), (4.0, 2.0), 2.0),
    Stage("similarity", (2, 1), (2.0, 0.0), 1.0),
    Stage("affine", (2, 1), (2.0, 0.0), 0.5),
)
"""Scan to atlas: rigid, then similarity, then affine (the similarity stage is what makes it
robust; a rigid fit alone is often stuck several mm away when the head's size differs)."""

RIGID_STAGES: tuple[Stage, ...] = (Stage("rigid", (4, 2, 1), (4.0, 2.0, 0.0), 2.0),)
"""One modality of a subject to another: rigid only."""


@dataclass(frozen=True)
class RegistrationSettings:
    """Parameters of a registration.

    Attributes:
        stages: the stages, run in order, each starting where the previous one ended (the first
            from the two images' centres of mass, see :func:`register`).
        working_spacing_mm: voxel size of the isotropic grids both images are registered on (2 mm
            is as accurate as 1 mm here, about 2 mm, at a tenth of the time).
        iterations: optimiser iterations per level at most.
        sampling: fraction of the fixed image's (masked) voxels the metric samples, in (0, 1].
        bins: histogram bins of the Mattes mutual information.
        mask_margin_mm: when a skull-stripped brain is registered to an atlas, the metric samples the
            atlas brain mask dilated by this much, so the brain's outline guides the fit (a whole
            head is registered with the atlas brain alone sampled: a skull next to it would mislead).
        seed: seed (>= 1) of the metric's random sampling, so registrations repeat.
    """

    stages: tuple[Stage, ...] = ATLAS_STAGES
    working_spacing_mm: float = 2.0
    iterations: int = 100
    sampling: float = 0.1
    bins: int = 32
    mask_margin_mm: float = 10.0
    seed: int = 1

    def __post_init__(self) -> None:
        if not self.stages or not all(isinstance(stage, Stage) for stage in self.stages):
            raise ValueError(f"RegistrationSettings: stages must be a non-empty tuple of Stage, got {self.stages!r}")
        if not self.working_spacing_mm > 0:
            raise ValueError(f"RegistrationSettings: working_spacing_mm must be > 0, got {self.working_spacing_mm!r}")
        if isinstance(self.iterations, bool) or self.iterations < 1:
            raise ValueError(f"RegistrationSettings: iterations must be >= 1, got {self.iterations!r}")
        check_fraction("RegistrationSettings: sampling", self.sampling, open_low=True)
        if self.bins < 4:
            raise ValueError(f"RegistrationSettings: bins must be >= 4, got {self.bins!r}")
        if self.mask_margin_mm < 0:
            raise ValueError(f"RegistrationSettings: mask_margin_mm must be >= 0, got {self.mask_margin_mm!r}")
        if isinstance(self.seed, bool) or self.seed < 1:
            raise ValueError(f"RegistrationSettings: seed must be an integer >= 1 (0 would mean 'the clock' "
                             f"to SimpleITK), got {self.seed!r}")


@dataclass(frozen=True)
class AtlasRegistration:
    """The registration step of the pipeline: an affine map from the atlas to a scan.

    Attributes:
        atlas: the target space.
        settings: registration parameters.
    """

    atlas: Atlas
    settings: RegistrationSettings = RegistrationSettings()

    def estimate(self, image: np.ndarray, grid: Grid, brain: np.ndarray | None = None) -> np.ndarray:
        """(4, 4) RAS+ map from atlas-world to scan-world mm.

        Args:
            image: (I, J, K) the scan (any modality).
            grid: its grid.
            brain: (I, J, K) bool brain mask of the scan, or None. With it, the brain alone is
                registered (far more reliable: a brain mask Dice of 0.96 against 0.83 for the whole
                head on a real 5.5 mm clinical scan) and the metric also samples ``mask_margin_mm``
                around the atlas brain; without it, the whole head is registered.
        """
        if brain is not None:
            if brain.shape != image.shape:
                raise ValueError(f"AtlasRegistration: brain shape {brain.shape} differs from the image's {image.shape}")
            if not brain.any():
                raise ValueError("AtlasRegistration: the brain mask is empty")
            image = np.where(brain, image, 0.0)
        atlas = self.atlas.load()
        spacing = self.settings.working_spacing_mm
        fixed_grid = isotropic_grid(atlas.grid, spacing)
        fixed = resample(atlas.image, atlas.grid, fixed_grid, interpolation="linear")
        region = resample(atlas.mask.astype(np.float32), atlas.grid, fixed_grid, interpolation="linear") > 0.5
        if brain is not None and self.settings.mask_margin_mm > 0:
            region = ndimage.distance_transform_edt(~region, sampling=spacing) <= self.settings.mask_margin_mm
        moving_grid = isotropic_grid(grid, spacing)
        moving = resample(image, grid, moving_grid, interpolation="linear")
        return register(fixed, fixed_grid, moving, moving_grid, settings=self.settings, fixed_mask=region)


@dataclass(frozen=True)
class RigidAlignment:
    """Rigid alignment of another modality of a subject to its reference scan (IXI's T2 to its T1).

    Attributes:
        settings: registration parameters (the whole head is sampled; no mask).
    """

    settings: RegistrationSettings = RegistrationSettings(stages=RIGID_STAGES)

    def estimate(self, reference: np.ndarray, reference_grid: Grid, other: np.ndarray, other_grid: Grid) -> np.ndarray:
        """(4, 4) RAS+ map from the reference scan's world to the other scan's world (mm).

        Args:
            reference, other: (I, J, K) images of the same head.
            reference_grid, other_grid: their grids.
        """
        spacing = self.settings.working_spacing_mm
        fixed_grid = isotropic_grid(reference_grid, spacing)
        moving_grid = isotropic_grid(other_grid, spacing)
        fixed = resample(reference, reference_grid, fixed_grid, interpolation="linear")
        moving = resample(other, other_grid, moving_grid, interpolation="linear")
        return register(fixed, fixed_grid, moving, moving_grid, settings=self.settings)


def head_region(image: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """(I, J, K) bool: voxels above ``fraction`` of the image's 99th percentile (of its positive voxels),
    holes filled: the head of a raw scan, the brain of a stripped one, without the background noise."""
    positive = image[image > 0]
    if positive.size == 0:
        return np.zeros(image.shape, dtype=bool)
    return ndimage.binary_fill_holes(image > fraction * float(np.percentile(positive, 99)))


def register(fixed: np.ndarray, fixed_grid: Grid, moving: np.ndarray, moving_grid: Grid, *,
             settings: RegistrationSettings, fixed_mask: np.ndarray | None = None) -> np.ndarray:
    """Register ``moving`` to ``fixed`` by Mattes mutual information, stage after stage.

    The first stage starts from the translation that superimposes the centres of mass of the fixed
    region (``fixed_mask``, else :func:`head_region` of ``fixed``) and of :func:`head_region` of ``moving``.

    Args:
        fixed, moving: (I, J, K) images on grids with orthogonal axes (see
            :func:`brainuad.preprocess.resample.isotropic_grid`).
        fixed_grid, moving_grid: their grids.
        settings: the stages and their parameters.
        fixed_mask: (I, J, K) bool region of ``fixed`` the metric samples, or None (everywhere).

    Returns:
        (4, 4) RAS+ map from fixed-world to moving-world mm.
    """
    import SimpleITK as sitk

    for label, array, grid in (("fixed", fixed, fixed_grid), ("moving", moving, moving_grid)):
        if np.asarray(array).shape != grid.shape:
            raise ValueError(f"register: {label} shape {np.asarray(array).shape} differs from its grid {grid.shape}")
        if not np.any(np.asarray(array) > 0):
            raise ValueError(f"register: the {label} image has no voxel above 0")
    if fixed_mask is not None and fixed_mask.shape != fixed_grid.shape:
        raise ValueError(f"register: fixed_mask shape {fixed_mask.shape} differs from {fixed_grid.shape}")
    fixed_region = head_region(fixed) if fixed_mask is None else np.asarray(fixed_mask, dtype=bool)
    if not fixed_region.any():
        raise ValueError("register: the fixed mask is empty")
    fixed_centre = fixed_grid.world_points(np.array([ndimage.center_of_mass(fixed_region)]))[0]
    moving_centre = moving_grid.world_points(np.array([ndimage.center_of_mass(head_region(moving))]))[0]
    transform = sitk.Euler3DTransform()
    transform.SetCenter(tuple(float(v) for v in _LPS[:3, :3] @ fixed_centre))
    transform.SetTranslation(tuple(float(v) for v in _LPS[:3, :3] @ (moving_centre - fixed_centre)))
    fixed_image = _sitk_image(fixed, fixed_grid)
    moving_image = _sitk_image(moving, moving_grid)
    mask_image = None if fixed_mask is None else _sitk_image(fixed_region.astype(np.uint8), fixed_grid)
    for stage in settings.stages:
        transform = _as_model(transform, stage.transform)
        _optimise(fixed_image, moving_image, mask_image, transform, stage, settings)
    return _ras_matrix(transform)


def _as_model(transform, model: TransformModel):
    """``transform`` continued as a ``model`` transform (same centre, matrix and translation)."""
    import SimpleITK as sitk

    kind: dict[str, type[sitk.Euler3DTransform] | type[sitk.Similarity3DTransform] | type[sitk.AffineTransform]] = {
        "rigid": sitk.Euler3DTransform, "similarity": sitk.Similarity3DTransform, "affine": sitk.AffineTransform}
    if isinstance(transform, kind[model]):
        return transform
    out = sitk.AffineTransform(3) if model == "affine" else kind[model]()
    out.SetCenter(transform.GetCenter())
    out.SetMatrix(transform.GetMatrix())
    out.SetTranslation(transform.GetTranslation())
    return out


def _optimise(fixed, moving, mask, transform, stage: Stage, settings: RegistrationSettings) -> None:
    """Run one multi-resolution stage, updating ``transform`` in place."""
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(settings.bins))
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(float(settings.sampling), int(settings.seed))
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=float(stage.step_mm), minStep=1e-3,
                                                    numberOfIterations=int(settings.iterations),
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([int(f) for f in stage.shrink_factors])
    method.SetSmoothingSigmasPerLevel([float(s) for s in stage.smoothing_mm])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)


def _sitk_image(array: np.ndarray, grid: Grid):
    """A SimpleITK image of ``array`` with ``grid``'s geometry (LPS; the grid's axes must be orthogonal)."""
    import SimpleITK as sitk

    axes = orthonormal_axes(grid.affine)
    spacing = np.asarray(grid.spacing)
    if not np.allclose(grid.affine[:3, :3], axes * spacing, atol=1e-4 * spacing.max()):
        raise ValueError("register: the grid's axes are not orthogonal; resample it with isotropic_grid first")
    values = np.asarray(array)
    values = values if values.dtype == np.uint8 else values.astype(np.float32, copy=False)
    image = sitk.GetImageFromArray(np.ascontiguousarray(values.transpose(2, 1, 0)))
    lps = _LPS @ grid.affine
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return image


def _ras_matrix(transform) -> np.ndarray:
    """(4, 4) RAS+ matrix of a SimpleITK rigid/similarity/affine transform (fixed LPS point -> moving LPS point)."""
    matrix = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.asarray(transform.GetCenter(), dtype=np.float64)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = centre + translation - matrix @ centre
    return _LPS @ lps @ _LPS
