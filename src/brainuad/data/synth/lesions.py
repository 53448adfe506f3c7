"""The four lesion kinds of the synthetic test sets, each in the modality its real set is evaluated on.

=========  ========  ==========================================================================
set        modality  lesion
=========  ========  ==========================================================================
brats21    T2        one tumour, 5-250 cm3: oedema (from just above grey matter to a third of the
                     way to CSF, spreading along white matter) around a heterogeneous core (solid
                     parts near grey matter, bright necrosis), with mass effect pushing the
                     surrounding brain outward
mslub      T2        3-30 ovoid periventricular / deep white-matter lesions of 0.02-2 cm3 each,
                     long axis radial (like Dawson's fingers), between white matter and CSF
atlas      T1        one or two chronic strokes of 1-150 cm3 together, from the cortex inward,
                     between CSF and grey matter
wmh        T1        caps at the frontal (and often occipital) horns of the lateral ventricles and
                     deep white-matter patches, 1-60 cm3 together, between grey and white matter
=========  ========  ==========================================================================

Sizes come from truncated log-normal distributions. Every lesion is drawn in two steps, as
torchio separates sampling from applying: a :class:`LesionModel` samples a :class:`LesionPlan`
(placement in reference coordinates, sizes, relative intensities), and the plan paints itself on a
subject's anatomy with that subject's tissue means. Lesions are grown among the subject's brain
voxels only, and their centres lie inside the axial slab the model grid keeps. A plan whose
lesion cannot be grown as drawn (too little room for it) paints None, and the caller draws again.

Intensities are calibrated against a real-data figure: thresholding the raw intensity (Thresh,
Meissen et al. 2022) reaches a Dice of about 20 % on real BraTS21 T2 (the paper's Table 3). With
oedema halfway between grey matter and CSF, Thresh reached 41 % on the synthetic set: the tumour was
far easier to separate by intensity alone than a real one. Oedema from 5 % to 35 % of the way from
grey matter to CSF brings it to 29 % (small cohort; ``TumourModel.oedema_level``), still above
white matter, so a method that knows healthy anatomy sees it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from brainuad.data.synth.anatomy import (
    LesionPaint,
    PullBack,
    SubjectAnatomy,
    TissueMeans,
    nearest_voxel,
)
from brainuad.data.synth.shapes import (
    VOXELS_PER_CM3,
    Ellipsoid,
    Grown,
    ShapeNoise,
    activation,
    centred_in_slab,
    grow,
    largest_component,
    search_radius,
    skewed,
)
from brainuad.data.synth.template import GRID_SHAPE, ReferenceAnatomy

_EDGE_MM = 1.5  # soft edge of every lesion


class LesionPlan(ABC):
    """One subject's lesion(s), drawn but not yet painted."""

    def displacement(self) -> PullBack | None:
        """The displacement the lesion imposes on the surrounding brain (None: none)."""
        return None

    @abstractmethod
    def paint(self, anatomy: SubjectAnatomy, means: TissueMeans, noise: ShapeNoise) -> LesionPaint | None:
        """The lesion on ``anatomy`` with intensities from ``means``; None when it does not fit as drawn."""


class LesionModel(ABC):
    """How one lesion set's lesions are drawn.

    Attributes:
        modality: the image the lesions are painted in (the set's evaluation modality).
    """

    modality: str

    @abstractmethod
    def plan(self, rng: np.random.Generator, reference: ReferenceAnatomy) -> LesionPlan:
        """Draw one subject's lesion(s)."""


def _pick(rng: np.random.Generator, sites: np.ndarray, jitter_mm: float = 1.0) -> np.ndarray:
    """(3,) one random site, moved by up to ``jitter_mm`` along each axis."""
    return sites[rng.integers(len(sites))].astype(np.float64) + rng.uniform(-jitter_mm, jitter_mm, size=3)


def _voxels(volume_cm3: tuple[float, float]) -> tuple[int, int]:
    """A (low, high) volume range in cm3 as voxel counts."""
    return int(volume_cm3[0] * VOXELS_PER_CM3), int(volume_cm3[1] * VOXELS_PER_CM3)


def _between(low: float, high: float, fraction: np.ndarray | float) -> np.ndarray:
    """low + fraction * (high - low), as float32."""
    return np.float32(low) + np.float32(high - low) * np.asarray(fraction, dtype=np.float32)


def _compose(anatomy: SubjectAnatomy, parts: list[tuple[Grown, np.ndarray]]) -> LesionPaint:
    """One paint from several grown lesions and their (n,) intensities; where soft edges overlap the
    stronger weight wins."""
    count = len(anatomy.support)
    seg = np.zeros(count, dtype=bool)
    weight = np.zeros(count, dtype=np.float32)
    value = np.zeros(count, dtype=np.float32)
    for grown, intensity in parts:
        stronger = grown.weight > weight[grown.which]
        weight[grown.which[stronger]] = grown.weight[stronger]
        value[grown.which[stronger]] = intensity[stronger]
        seg[grown.which[grown.seg]] = True
    return LesionPaint(seg, weight, value)


class _Occupancy:
    """Brain voxels already taken by a lesion or touching one, so separate lesions never merge."""

    # asarray: numpy's stubs type ravel_multi_index of a (3, N) array as a scalar
    _OFFSETS = np.asarray(np.ravel_multi_index(np.indices((3, 3, 3)).reshape(3, -1), GRID_SHAPE)) - \
        np.ravel_multi_index((1, 1, 1), GRID_SHAPE)

    def __init__(self, anatomy: SubjectAnatomy) -> None:
        self.anatomy = anatomy
        self.taken = np.zeros(len(anatomy.support), dtype=bool)

    def add(self, lesion: Grown) -> None:
        support = self.anatomy.support
        around = (support[lesion.which[lesion.seg]][:, None] + self._OFFSETS[None, :]).ravel()
        position = np.clip(np.searchsorted(support, around), 0, len(support) - 1)
        self.taken[position[support[position] == around]] = True


@dataclass(frozen=True)
class FocalLesion:
    """One lesion of a multi-lesion plan: its ellipsoid, size in voxels and intensity level (a
    fraction of the way between two tissue means, which the plan names)."""

    shape: Ellipsoid
    voxels: int
    level: float


def _grow_focal(anatomy: SubjectAnatomy, lesion: FocalLesion, noise: ShapeNoise, roughness: float,
                excluded: Callable[[np.ndarray], np.ndarray], occupancy: _Occupancy | None = None) -> Grown | None:
    """Grow one focal lesion as a single connected piece centred in the model slab.

    Args:
        excluded: (n,) indices into the brain voxels -> (n,) bool, where the lesion may not go.
        occupancy: voxels other lesions took (the lesion keeps off them), updated with this one.

    Returns:
        The lesion, or None when it does not fit or its centroid falls outside the slab.
    """
    which = anatomy.near(lesion.shape.centre, search_radius(lesion.voxels, lesion.shape, roughness))
    spread = activation(lesion.shape.radius(anatomy.coords[:, which]), noise.outline(which), roughness)
    forbidden = excluded(which) if occupancy is None else excluded(which) | occupancy.taken[which]
    spread[forbidden] = np.inf
    grown = grow(spread, which, lesion.voxels, _EDGE_MM)
    if grown is None:
        return None
    grown = largest_component(anatomy, grown)
    if grown.voxels == 0 or not centred_in_slab(anatomy, grown):
        return None
    if occupancy is not None:
        occupancy.add(grown)
    return grown


# ----------------------------------------------------------------------------------------------- tumour
@dataclass(frozen=True)
class TumourPlan(LesionPlan):
    """A tumour: whole-tumour and core ellipsoids, sizes in voxels, mass effect, and T2 intensities
    as fractions of the way from grey matter (0) to CSF (1)."""

    whole: Ellipsoid
    core: Ellipsoid
    whole_voxels: int
    core_voxels: int
    necrosis_voxels: int
    push: float
    push_width_mm: float
    oedema: float
    solid: float
    necrosis: float
    voxel_range: tuple[int, int]
    roughness: float = 0.2

    def displacement(self) -> PullBack:
        centre = self.whole.centre.astype(np.float32)[:, None]
        strength, width = np.float32(self.push), np.float32(self.push_width_mm)

        def push(coords: np.ndarray) -> np.ndarray:
            # Pull-back of an outward push: a point at distance r takes its tissue from distance
            # r (1 - push exp(-r^2 / width^2)), closer to the centre (monotonic in r for push < 1).
            offset = coords - centre
            squared = (offset**2).sum(axis=0)
            near = np.flatnonzero(squared < 9.0 * width**2)
            out = coords.copy()
            shrink = 1.0 - strength * np.exp(-squared[near] / width**2)
            out[:, near] = centre + offset[:, near] * shrink
            return out

        return push

    def paint(self, anatomy: SubjectAnatomy, means: TissueMeans, noise: ShapeNoise) -> LesionPaint | None:
        which = anatomy.near(self.whole.centre, search_radius(self.whole_voxels, self.whole, self.roughness))
        coords = anatomy.coords[:, which]
        outline = noise.outline(which)
        # oedema spreads further along white matter, and does not fill the ventricles
        spread = activation(self.whole.radius(coords), outline, self.roughness) / (0.8 + 0.4 * anatomy.white[which])
        spread[anatomy.csf[which] > 0.5] = np.inf
        whole = grow(spread, which, self.whole_voxels, _EDGE_MM)
        if whole is None:
            return None
        whole = largest_component(anatomy, whole)
        low, high = self.voxel_range
        if not low <= whole.voxels <= high or not centred_in_slab(anatomy, whole):
            return None
        core_activation = activation(self.core.radius(coords), -outline, self.roughness)
        core_activation[~whole.seg] = np.inf
        core = grow(core_activation, which, min(self.core_voxels, whole.voxels), _EDGE_MM)
        necrosis = grow(core_activation, which, min(self.necrosis_voxels, self.core_voxels, whole.voxels), _EDGE_MM)
        if core is None or necrosis is None:
            return None
        texture = noise.inner(which)
        value = _between(means.grey, means.csf, self.oedema + 0.08 * texture)
        value += core.weight * (_between(means.grey, means.csf, self.solid + 0.12 * texture) - value)
        value += necrosis.weight * (_between(means.grey, means.csf, self.necrosis + 0.06 * texture) - value)
        return _compose(anatomy, [(whole, value)])


@dataclass(frozen=True)
class TumourModel(LesionModel):
    """BraTS21-like tumours on T2 (whole tumour = oedema + core; the ground truth marks all of it)."""

    modality: str = "t2"
    volume_cm3: tuple[float, float] = (5.0, 250.0)
    median_cm3: float = 60.0
    oedema_level: tuple[float, float] = (0.05, 0.35)
    """Range of the oedema's T2 level, as a fraction of the way from grey matter (0) to CSF (1)
    (see the module docstring for the calibration)."""

    def plan(self, rng: np.random.Generator, reference: ReferenceAnatomy) -> TumourPlan:
        low, high = self.volume_cm3
        volume = skewed(rng, self.median_cm3, 0.7, low * 1.5, high * 0.9) * VOXELS_PER_CM3
        core = volume * rng.uniform(0.15, 0.5)
        centre = _pick(rng, reference.sites.tumour)
        radius = (3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0)
        whole = Ellipsoid.draw(rng, centre, elongation=(1.0, 1.5))
        core_centre = centre + rng.uniform(-0.2, 0.2, size=3) * radius
        return TumourPlan(
            whole=whole, core=Ellipsoid.draw(rng, core_centre, elongation=(1.0, 1.4)),
            whole_voxels=int(volume), core_voxels=int(core), necrosis_voxels=int(core * rng.uniform(0.2, 0.6)),
            push=float(rng.uniform(0.25, 0.5)), push_width_mm=float(1.5 * radius),
            oedema=float(rng.uniform(*self.oedema_level)), solid=float(rng.uniform(-0.1, 0.25)),
            necrosis=float(rng.uniform(0.7, 0.9)), voxel_range=_voxels(self.volume_cm3))


# ----------------------------------------------------------------------------------------------- MS
@dataclass(frozen=True)
class MultipleSclerosisPlan(LesionPlan):
    """MS lesions on T2, intensity levels from white matter (0) to CSF (1); lesions that do not fit
    are left out, as long as ``least`` remain."""

    lesions: tuple[FocalLesion, ...]
    least: int
    voxel_range: tuple[int, int]
    roughness: float = 0.15

    def paint(self, anatomy: SubjectAnatomy, means: TissueMeans, noise: ShapeNoise) -> LesionPaint | None:
        occupancy = _Occupancy(anatomy)
        low, high = self.voxel_range
        parts = []
        for lesion in self.lesions:
            grown = _grow_focal(anatomy, lesion, noise, self.roughness,
                                lambda which: (anatomy.white[which] < 0.45) | (anatomy.csf[which] > 0.35), occupancy)
            if grown is not None and low <= grown.voxels <= high:
                parts.append((grown, _between(means.white, means.csf, lesion.level + 0.06 * noise.inner(grown.which))))
        return _compose(anatomy, parts) if len(parts) >= self.least else None


@dataclass(frozen=True)
class MultipleSclerosisModel(LesionModel):
    """MSLUB-like MS lesions on T2: ovoid, periventricular or in deep white matter, long axis radial."""

    modality: str = "t2"
    count: tuple[int, int] = (3, 30)
    volume_cm3: tuple[float, float] = (0.02, 2.0)
    periventricular_share: float = 0.65

    def plan(self, rng: np.random.Generator, reference: ReferenceAnatomy) -> MultipleSclerosisPlan:
        low, high = self.volume_cm3
        count = int(round(skewed(rng, 9.0, 0.6, self.count[0], self.count[1])))
        lesions = []
        for _ in range(count):
            periventricular = rng.uniform() < self.periventricular_share
            centre = _pick(rng, reference.sites.periventricular if periventricular
                           else reference.sites.deep_white_matter)
            voxels = skewed(rng, 0.12, 1.0, low * 1.5, high * 0.9) * VOXELS_PER_CM3
            shape = Ellipsoid.draw(rng, centre, elongation=(1.4, 2.2), long_axis=centre - reference.centre)
            lesions.append(FocalLesion(shape, int(voxels), float(rng.uniform(0.3, 0.7))))
        return MultipleSclerosisPlan(tuple(lesions), least=self.count[0], voxel_range=_voxels(self.volume_cm3))


# ----------------------------------------------------------------------------------------------- stroke
@dataclass(frozen=True)
class StrokePlan(LesionPlan):
    """Chronic strokes on T1, intensity levels from CSF (0) to grey matter (1). Each region must
    come within ``cortex_depth_mm`` of the brain surface."""

    regions: tuple[FocalLesion, ...]
    depth: np.ndarray
    voxel_range: tuple[int, int]
    cortex_depth_mm: float = 4.0
    roughness: float = 0.22

    def paint(self, anatomy: SubjectAnatomy, means: TissueMeans, noise: ShapeNoise) -> LesionPaint | None:
        low, high = self.voxel_range
        parts = []
        for region in self.regions:
            grown = _grow_focal(anatomy, region, noise, self.roughness, lambda which: anatomy.csf[which] > 0.6)
            if grown is None or grown.voxels < low:
                return None
            members = grown.which[grown.seg]
            if self.depth[nearest_voxel(anatomy.coords[:, members])].min() > self.cortex_depth_mm:
                return None
            parts.append((grown, _between(means.csf, means.grey, region.level + 0.08 * noise.inner(grown.which))))
        paint = _compose(anatomy, parts)
        return paint if paint.seg.sum() <= high else None


@dataclass(frozen=True)
class StrokeModel(LesionModel):
    """ATLAS-like chronic strokes on T1: from a cortical site, elongated inward."""

    modality: str = "t1"
    volume_cm3: tuple[float, float] = (1.0, 150.0)
    median_cm3: float = 12.0
    second_region: float = 0.3

    def plan(self, rng: np.random.Generator, reference: ReferenceAnatomy) -> StrokePlan:
        low, high = self.volume_cm3
        total = skewed(rng, self.median_cm3, 1.0, low * 1.5, high * 0.9)
        shares = [1.0]
        if rng.uniform() < self.second_region:
            first = rng.uniform(0.3, 0.7)
            if min(first, 1.0 - first) * total >= low * 1.2:
                shares = [first, 1.0 - first]
        regions: list[FocalLesion] = []
        for share in shares:
            site = _pick(rng, reference.sites.cortex)
            while regions and np.linalg.norm(site - regions[0].shape.centre) < 40.0:
                site = _pick(rng, reference.sites.cortex)
            voxels = share * total * VOXELS_PER_CM3
            inward = (reference.centre - site) / np.linalg.norm(reference.centre - site)
            radius = (3.0 * voxels / (4.0 * np.pi)) ** (1.0 / 3.0)
            shape = Ellipsoid.draw(rng, site + 0.45 * radius * inward, elongation=(1.2, 1.8), long_axis=inward)
            regions.append(FocalLesion(shape, int(voxels), float(rng.uniform(0.15, 0.5))))
        return StrokePlan(tuple(regions), reference.depth.ravel(), voxel_range=_voxels(self.volume_cm3))


# ----------------------------------------------------------------------------------------------- WMH
@dataclass(frozen=True)
class WhiteMatterHyperintensityPlan(LesionPlan):
    """Periventricular caps and deep patches on T1, intensity levels from grey (0) to white matter (1).
    Every cap must fit; patches that do not are left out."""

    caps: tuple[FocalLesion, ...]
    patches: tuple[FocalLesion, ...]
    voxel_range: tuple[int, int]
    roughness: float = 0.2

    def paint(self, anatomy: SubjectAnatomy, means: TissueMeans, noise: ShapeNoise) -> LesionPaint | None:
        occupancy = _Occupancy(anatomy)
        white, csf = anatomy.white, anatomy.csf
        parts = []
        for cap in self.caps:  # hugs the ventricle its centre lies in
            grown = _grow_focal(anatomy, cap, noise, self.roughness,
                                lambda which: (csf[which] > 0.4) | (white[which] < 0.25), occupancy)
            if grown is None:
                return None
            parts.append((grown, _between(means.grey, means.white, cap.level + 0.06 * noise.inner(grown.which))))
        for patch in self.patches:  # stays in white matter
            grown = _grow_focal(anatomy, patch, noise, self.roughness,
                                lambda which: (csf[which] > 0.3) | (white[which] < 0.5), occupancy)
            if grown is not None:
                parts.append((grown, _between(means.grey, means.white, patch.level + 0.06 * noise.inner(grown.which))))
        paint = _compose(anatomy, parts)
        low, high = self.voxel_range
        return paint if low <= paint.seg.sum() <= high else None


@dataclass(frozen=True)
class WhiteMatterHyperintensityModel(LesionModel):
    """WMH-like lesions on T1 (hypointense there: between grey and white matter)."""

    modality: str = "t1"
    volume_cm3: tuple[float, float] = (1.0, 60.0)
    median_cm3: float = 8.0
    occipital_caps: float = 0.6
    max_patches: int = 6

    def plan(self, rng: np.random.Generator, reference: ReferenceAnatomy) -> WhiteMatterHyperintensityPlan:
        low, high = self.volume_cm3
        total = skewed(rng, self.median_cm3, 0.9, low * 1.5, high * 0.9) * VOXELS_PER_CM3
        tips = reference.sites.horn_tips  # frontal left, occipital left, frontal right, occipital right
        chosen = [0, 2] + ([1, 3] if rng.uniform() < self.occipital_caps else [])
        count = int(rng.integers(0, self.max_patches + 1))
        cap_share = rng.uniform(0.5, 0.85) if count else 1.0
        patch_voxels = (1.0 - cap_share) * total * rng.dirichlet(np.ones(count)) if count else np.zeros(0)
        cap_voxels = cap_share * total * rng.dirichlet(np.full(len(chosen), 4.0))  # unequal, none tiny
        caps = tuple(FocalLesion(Ellipsoid.draw(rng, tips[tip] + rng.uniform(-1.0, 1.0, size=3), elongation=(1.0, 1.4)),
                                 int(voxels), float(rng.uniform(0.2, 0.6)))
                     for tip, voxels in zip(chosen, cap_voxels))
        patches = tuple(FocalLesion(Ellipsoid.draw(rng, _pick(rng, reference.sites.deep_white_matter),
                                                   elongation=(1.0, 1.6)), int(voxels), float(rng.uniform(0.2, 0.6)))
                        for voxels in patch_voxels if voxels >= 30)
        return WhiteMatterHyperintensityPlan(caps, patches, voxel_range=_voxels(self.volume_cm3))


LESION_MODELS: dict[str, LesionModel] = {
    "brats21": TumourModel(),
    "mslub": MultipleSclerosisModel(),
    "atlas": StrokeModel(),
    "wmh": WhiteMatterHyperintensityModel(),
}
"""The lesion model of each lesion set of :data:`brainuad.data.layout.DATASETS`."""
