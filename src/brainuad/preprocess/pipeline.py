"""The preprocessing pipeline for one subject (method.md §2, steps 1-5; paper §4.2).

Steps, each a strategy object that can be switched off (``None``):

1. ``resampling`` (:class:`IsotropicResampling`): 1 mm cubic voxels; cubic B-spline for images,
   nearest neighbour for segmentations, linear then > 0.5 for brain masks.
2. ``skull_strip`` (:mod:`.skullstrip`; ``NoStrip`` for stripped data) on the 1 mm image in the
   scan's own orientation, unless a brain mask file is given, which is then used instead.
3. ``registration`` (:class:`AtlasRegistration`): affine registration of the reference scan's brain
   to the atlas; the output lies on the atlas's field of view at the resampling spacing. The paper
   registers before it strips; stripping first lets the brain alone be registered, which is far
   more reliable on raw clinical scans (the result is the same mask, in the same space). Only the
   atlas-mask fallback registers the whole head first, then carries the atlas brain back onto it.
   Other modalities of the subject are aligned rigidly to the reference scan when they are
   separate acquisitions (:class:`OtherScan` ``coregistered=False``; IXI's T2 to its T1) with
   ``alignment`` (:class:`RigidAlignment`), or taken in the reference's world as they are (BraTS, WMH).
4. ``crop`` (:class:`BrainCrop`): the brain's bounding box; ``bias`` (:class:`N4Correction`): N4 of
   every image in that box with the brain mask; images are 0 outside the brain.
5. ``shape`` (the padding): a box of 192 x 192 x 160 voxels centred on the brain.

The spatial steps compose into one affine map per image, so each array is interpolated once,
from its raw grid straight onto the output grid. The result, :class:`PreprocessedScan`, carries a
:class:`PreparationRecord` with each image's :class:`TransformRecord`: ``to_raw`` carries any
prepared-space array back onto the raw scan's grid.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from brainuad.data.io import read_image
from brainuad.errors import InputError
from brainuad.preprocess.bias import N4Correction
from brainuad.preprocess.crop import PREPARED_SHAPE, BrainCrop, Window, centred_window
from brainuad.preprocess.record import PreparationRecord, TransformRecord
from brainuad.preprocess.register import Atlas, AtlasRegistration, RigidAlignment
from brainuad.preprocess.resample import (
    Grid,
    Interpolation,
    IsotropicResampling,
    resample,
)
from brainuad.preprocess.skullstrip import DeepBet, SkullStripper


@dataclass(frozen=True)
class OtherScan:
    """Another modality of the subject, carried along with the reference scan.

    Attributes:
        modality: its name in the outputs (``t2``, ``flair``, ...).
        path: its raw file.
        coregistered: True when it already lies in the reference scan's world coordinates
            (co-registered downloads: BraTS, WMH); False when the pipeline's ``alignment`` must
            align it rigidly to the reference first (separate acquisitions: IXI's T2).
    """

    modality: str
    path: Path
    coregistered: bool = False


@dataclass(frozen=True)
class ScanInputs:
    """The raw files of one subject.

    Attributes:
        name: the subject's name.
        modality: the reference scan's modality (the one registered and skull-stripped).
        image: the reference scan's file.
        mask: a brain mask file in the reference's world (used instead of skull stripping), or None.
        seg: a lesion label map in the reference's world, or None.
        lesion_labels: the values of ``seg`` that are lesion (BraTS: 1, 2, 4; WMH: 1); None: any
            value > 0.
        others: other modalities to carry along.
    """

    name: str
    modality: str
    image: Path
    mask: Path | None = None
    seg: Path | None = None
    lesion_labels: tuple[int, ...] | None = None
    others: tuple[OtherScan, ...] = ()

    def __post_init__(self) -> None:
        names = [self.modality] + [other.modality for other in self.others]
        if len(set(names)) != len(names):
            raise ValueError(f"ScanInputs {self.name!r}: modalities must differ, got {names}")


@dataclass(eq=False)
class PreprocessedScan:
    """One subject after preprocessing.

    Attributes:
        images: modality -> (I, J, K) float32 image (192 x 192 x 160 by default), 0 outside the brain;
            the reference modality first.
        mask: (I, J, K) bool brain mask.
        seg: (I, J, K) bool lesion segmentation, or None.
        grid: the prepared grid (atlas space after registration).
        record: what was done, with each image's transform back to its raw scan.
    """

    images: dict[str, np.ndarray]
    mask: np.ndarray
    seg: np.ndarray | None
    grid: Grid
    record: PreparationRecord

    @property
    def image(self) -> np.ndarray:
        """The reference modality's image."""
        return self.images[self.record.reference]

    def to_raw(self, array: np.ndarray, modality: str | None = None,
               interpolation: Interpolation = "linear") -> np.ndarray:
        """Carry a prepared-space ``array`` (``grid.shape``) onto the raw grid of ``modality``'s scan
        (default: the reference scan); see :meth:`TransformRecord.to_raw`."""
        name = modality or self.record.reference
        if name not in self.record.records:
            raise ValueError(f"to_raw: no modality {name!r}; this scan has {', '.join(self.record.records)}")
        return self.record.records[name].to_raw(array, interpolation)


@dataclass
class _Clock:
    seconds: dict[str, float] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)

    @contextmanager
    def step(self, name: str | None) -> Iterator[None]:
        """Time the block as step ``name`` (None: not a step of its own; untimed)."""
        started = time.perf_counter()
        yield
        if name is None:
            return
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        if name not in self.steps:
            self.steps.append(name)


@dataclass(frozen=True)
class Pipeline:
    """The preprocessing of one subject; every step is a strategy object, ``None`` switches it off.

    Attributes:
        resampling: isotropic resampling (1 mm).
        registration: affine registration to an atlas (default nilearn's MNI152 T1 template).
        alignment: rigid alignment of other modalities that are not co-registered with the
            reference scan (None: take them in the reference's world coordinates as they are).
        skull_strip: the skull stripper (default deepbet; ``NoStrip()`` for stripped data).
        crop: crop to the brain before the bias correction.
        bias: N4 bias-field correction (4 levels x 200 iterations, tolerance 5e-4).
        shape: the final box centred on the brain (192, 192, 160); None keeps the crop (or grid).
    """

    resampling: IsotropicResampling | None = IsotropicResampling()
    registration: AtlasRegistration | None = AtlasRegistration(Atlas.mni152())
    alignment: RigidAlignment | None = RigidAlignment()
    skull_strip: SkullStripper = DeepBet()
    crop: BrainCrop | None = BrainCrop()
    bias: N4Correction | None = N4Correction()
    shape: tuple[int, int, int] | None = PREPARED_SHAPE

    def __post_init__(self) -> None:
        if self.shape is not None and (len(self.shape) != 3 or min(int(s) for s in self.shape) < 1):
            raise ValueError(f"Pipeline: shape must be three positive sizes or None, got {self.shape!r}")

    def run(self, inputs: ScanInputs) -> PreprocessedScan:
        """Prepare one subject from its raw files.

        Raises:
            InputError: a file is missing, unreadable or truncated, or the segmentation or mask is empty.
            SkullStripError: the skull stripper found no brain.
        """
        clock = _Clock()
        image, raw_affine = read_image(inputs.image)
        raw = Grid(image.shape, raw_affine)
        others = {other.modality: (other, *read_image(other.path)) for other in inputs.others}
        native, brain, world, stripper = self._brain_and_registration(inputs, image, raw, clock)
        target = native if self.registration is None else self.registration.atlas.grid_at(
            None if self.resampling is None else self.resampling.spacing_mm)

        grids = {inputs.modality: raw,
                 **{name: Grid(array.shape, affine) for name, (_, array, affine) in others.items()}}
        worlds = {name: world for name in grids}
        to_align = [name for name, (other, _, _) in others.items() if not other.coregistered]
        if to_align and self.alignment is not None:
            with clock.step("align"):
                for name in to_align:
                    worlds[name] = self.alignment.estimate(image, raw, others[name][1], grids[name]) @ world

        with clock.step("resample" if self.resampling or self.registration else None):
            arrays = {inputs.modality: image, **{name: array for name, (_, array, _) in others.items()}}
            if target is raw:  # neither resampling nor registration: the arrays stay as they are
                images = {name: array.astype(np.float32) for name, array in arrays.items()}
            else:
                images = {name: resample(array, grids[name], target, world=worlds[name])
                          for name, array in arrays.items()}
            seg = None if inputs.seg is None else self._labels(inputs, target, world)
            mask = brain if target is native else \
                resample(brain.astype(np.float32), native, target, world=world, interpolation="linear") > 0.5

        images, final = self._intensities_and_box(images, mask, target, clock)
        prepared = target.window(final.start, final.shape)
        sources = {inputs.modality: inputs.image, **{name: other.path for name, (other, _, _) in others.items()}}
        record = PreparationRecord(
            subject=inputs.name, reference=inputs.modality,
            records={name: TransformRecord(grids[name], prepared, worlds[name], str(sources[name])) for name in images},
            steps=tuple(clock.steps), skull_strip=stripper,
            atlas=None if self.registration is None else self.registration.atlas.name,
            cut_brain_voxels=final.cut_voxels(mask), seconds=clock.seconds)
        return PreprocessedScan(images={name: final.extract(array) for name, array in images.items()},
                            mask=final.extract(mask), seg=None if seg is None else final.extract(seg),
                            grid=prepared, record=record)

    def _brain_and_registration(self, inputs: ScanInputs, image: np.ndarray, raw: Grid,
                                clock: _Clock) -> tuple[Grid, np.ndarray, np.ndarray, str]:
        """Steps 1-3: (native grid, brain mask on it, map from output-world to raw-world, stripper name).

        The native grid is the scan's own at the resampling spacing; the brain is stripped there
        and registered alone, except for a stripper that needs the atlas mask: the whole head is
        registered first and the atlas brain carried back.
        """
        atlas_first = inputs.mask is None and self.skull_strip.needs_atlas_mask
        if atlas_first and self.registration is None:
            raise ValueError(f"Pipeline: the {self.skull_strip.name} skull stripper needs the registration step")
        with clock.step("resample" if self.resampling else None):
            native = raw if self.resampling is None else self.resampling.grid(raw)
            native_image = image if self.resampling is None else resample(image, raw, native)
        world = np.eye(4)
        if atlas_first and self.registration is not None:  # atlas_first without a registration was refused above
            with clock.step("register"):
                world = self.registration.estimate(native_image, native)
        with clock.step("skull_strip"):
            if inputs.mask is not None:
                brain, stripper = self._mask(inputs.mask, native), "given"
            else:
                atlas_mask = self._atlas_mask(native, world) if atlas_first else None
                brain = np.asarray(self.skull_strip.brain_mask(native_image, native, atlas_mask), dtype=bool)
                stripper = self.skull_strip.name
            if not brain.any():
                raise InputError(inputs.image, "the brain mask is empty after skull stripping",
                                 "check the scan, or choose another skull stripper")
        if self.registration is not None and not atlas_first:
            with clock.step("register"):
                world = self.registration.estimate(native_image, native, brain=brain)
        return native, brain, world, stripper

    def _intensities_and_box(self, images: dict[str, np.ndarray], mask: np.ndarray, target: Grid,
                             clock: _Clock) -> tuple[dict[str, np.ndarray], Window]:
        """Steps 4-5: the images after the bias correction (0 outside the brain) and the final box."""
        box = Window((0, 0, 0), target.shape)
        if self.crop is not None:
            with clock.step("crop"):
                box = self.crop.window(mask)
        if self.bias is not None:
            with clock.step("bias"):
                images = {name: self._correct(array, mask, box, target) for name, array in images.items()}
        else:
            images = {name: np.where(mask, array, 0.0).astype(np.float32) for name, array in images.items()}
        if self.shape is None:
            return images, box
        i, j, k = (int(s) for s in self.shape)
        with clock.step("pad"):
            return images, centred_window(box, (i, j, k))

    def _atlas_mask(self, grid: Grid, world: np.ndarray) -> np.ndarray:
        """The atlas brain mask carried back onto ``grid`` (the scan's) through ``world`` (atlas to scan)."""
        if self.registration is None:
            raise ValueError("Pipeline: the atlas brain mask needs the registration step")
        atlas = self.registration.atlas.load()
        return resample(atlas.mask.astype(np.float32), atlas.grid, grid, world=np.linalg.inv(world),
                        interpolation="linear") > 0.5

    @staticmethod
    def _labels(inputs: ScanInputs, target: Grid, world: np.ndarray) -> np.ndarray:
        if inputs.seg is None:
            raise ValueError(f"Pipeline: subject {inputs.name!r} has no segmentation")
        labels, affine = read_image(inputs.seg, dtype=np.float32)
        lesion = labels > 0 if inputs.lesion_labels is None else np.isin(np.rint(labels), inputs.lesion_labels)
        if not lesion.any():
            raise InputError(inputs.seg, "the segmentation holds no lesion voxel"
                             + ("" if inputs.lesion_labels is None else f" (labels {inputs.lesion_labels})"))
        return resample(lesion, Grid(labels.shape, affine), target, world=world, interpolation="nearest")

    @staticmethod
    def _mask(path: Path, grid: Grid) -> np.ndarray:
        """A brain mask file (in the reference scan's world) on ``grid``."""
        values, affine = read_image(path, dtype=np.float32)
        if not np.any(values > 0.5):
            raise InputError(path, "brain mask is empty")
        return resample((values > 0.5).astype(np.float32), Grid(values.shape, affine), grid,
                        interpolation="linear") > 0.5

    def _correct(self, image: np.ndarray, mask: np.ndarray, box: Window, target: Grid) -> np.ndarray:
        """N4 of ``image`` inside ``box``, the result placed back on the full grid (0 outside the brain)."""
        if self.bias is None:
            raise ValueError("Pipeline: the bias correction is switched off")
        inside = box.extract(mask)
        corrected, _ = self.bias.correct(box.extract(image), inside, target.window(box.start, box.shape))
        out = np.zeros(target.shape, dtype=np.float32)
        i, j, k = box.start
        back = Window((-i, -j, -k), target.shape)  # the grid, seen from the box
        out[...] = back.extract(corrected)
        return out
