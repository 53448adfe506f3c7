"""One synthetic subject, healthy or with lesions, assembled in memory from the reference brain."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from brainuad.data.layout import DATASETS
from brainuad.data.synth.anatomy import (
    CONTRASTS,
    SubjectAnatomy,
    Warp,
    deform_reference,
    render,
)
from brainuad.data.synth.fields import smooth_noise
from brainuad.data.synth.lesions import LESION_MODELS
from brainuad.data.synth.shapes import ShapeNoise
from brainuad.data.synth.template import GRID_SHAPE, ReferenceAnatomy, reference_anatomy

_LESION_ATTEMPTS = 25  # redraws of a lesion that does not fit before giving up (it practically never needs 3)
_TEXTURE_SCALE_MM = 2.0


@dataclass(frozen=True)
class AgeModel:
    """A normal age distribution (years) truncated to [low, high] by redrawing."""

    mean: float
    sd: float
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        while True:
            age = rng.normal(self.mean, self.sd)
            if self.low <= age <= self.high:
                return round(float(age), 1)


AGES: dict[str, AgeModel] = {
    "ixi": AgeModel(49.0, 16.0, 20.0, 86.0),
    "brats21": AgeModel(60.0, 13.0, 18.0, 90.0),
    "mslub": AgeModel(38.0, 10.0, 18.0, 70.0),
    "atlas": AgeModel(62.0, 13.0, 25.0, 90.0),
    "wmh": AgeModel(70.0, 9.0, 45.0, 95.0),
}
"""Plausible ages of each set's subjects."""


@dataclass(frozen=True)
class SyntheticSubject:
    """A synthetic subject on the cohort grid.

    Attributes:
        name: subject identifier (the file-name stem before ``_<modality>``).
        dataset_id: its data set (``ixi``, ``brats21``, ``mslub``, ``atlas``, ``wmh``).
        age: years.
        images: modality -> (192, 192, 160) float32 image, 0 outside the brain.
        mask: (192, 192, 160) uint8 brain mask (0/1).
        seg: (192, 192, 160) uint8 lesion ground truth (0/1); None for a healthy subject.
        anatomy: the tissue probabilities of its brain voxels (for inspection and tests).
        affine: (4, 4) RAS+ voxel-to-world affine (MNI mm), shared by all its volumes.
    """

    name: str
    dataset_id: str
    age: float
    images: dict[str, np.ndarray]
    mask: np.ndarray
    seg: np.ndarray | None
    anatomy: SubjectAnatomy
    affine: np.ndarray

    @property
    def lesion_cm3(self) -> float:
        """Lesion volume in cm3 (0 for a healthy subject)."""
        return 0.0 if self.seg is None else float(self.seg.sum()) / 1000.0


def synthesize_subject(dataset_id: str, name: str, rng: np.random.Generator,
                       reference: ReferenceAnatomy | None = None) -> SyntheticSubject:
    """Draw one subject of ``dataset_id``: a healthy subject with all its modalities, or a lesion
    subject in its set's evaluation modality (and T1 for BraTS21 and MSLUB, the lesion painted in
    it too). Deterministic for the state of ``rng``.

    Args:
        dataset_id: a key of :data:`brainuad.data.layout.DATASETS`.
        name: the subject's identifier.
        rng: the subject's own generator (see :func:`brainuad.data.synth.cohort.subject_generator`).
        reference: the reference brain (default: the MNI152 reference, loaded once per process).

    Raises:
        ValueError: unknown ``dataset_id``.
        RuntimeError: a lesion could not be placed in this subject after many draws.
    """
    if dataset_id not in DATASETS:
        raise ValueError(f"dataset_id must be one of {', '.join(DATASETS)}, got {dataset_id!r}")
    reference = reference_anatomy() if reference is None else reference
    # The smooth fields are matrix products: their last bits depend on how many threads BLAS
    # splits them over, so one thread, always, keeps a subject identical wherever it is made.
    with threadpool_limits(limits=1, user_api="blas"):
        return _synthesize(dataset_id, name, rng, reference)


def _synthesize(dataset_id: str, name: str, rng: np.random.Generator, reference: ReferenceAnatomy) -> SyntheticSubject:
    age = AGES[dataset_id].draw(rng)
    warp = Warp.draw(rng, reference.centre)
    spec = DATASETS[dataset_id]
    anatomy: SubjectAnatomy | None
    if spec.healthy:
        anatomy = deform_reference(reference, warp)
        texture = smooth_noise(rng, GRID_SHAPE, _TEXTURE_SCALE_MM).ravel()[anatomy.support]
        images = {modality: render(anatomy, CONTRASTS[modality].draw(rng), texture, rng)
                  for modality in spec.modalities}
        return SyntheticSubject(name, dataset_id, age, images, anatomy.mask(), None, anatomy, reference.affine)

    model = LESION_MODELS[dataset_id]
    means = CONTRASTS[model.modality].draw(rng)
    anatomy = None
    for _ in range(_LESION_ATTEMPTS):
        plan = model.plan(rng, reference)
        displacement = plan.displacement()
        if anatomy is None or displacement is not None:
            anatomy = deform_reference(reference, warp, displacement)
        noise = ShapeNoise.draw(rng, anatomy)
        paint = plan.paint(anatomy, means, noise)
        if paint is not None:
            break
    else:
        raise RuntimeError(f"synthesize_subject: no {dataset_id} lesion fitted subject {name} "
                           f"in {_LESION_ATTEMPTS} draws")
    texture = smooth_noise(rng, GRID_SHAPE, _TEXTURE_SCALE_MM).ravel()[anatomy.support]
    images = {model.modality: render(anatomy, means, texture, rng, paint)}
    for modality in _other_contrasts(dataset_id):  # drawn last: the evaluation image is the same with or without
        other_means = CONTRASTS[modality].draw(rng)
        other_paint = plan.paint(anatomy, other_means, noise)
        if other_paint is None:  # not reached: whether a lesion fits does not depend on the intensities
            raise RuntimeError(f"synthesize_subject: the {dataset_id} lesion of {name} did not fit in {modality}")
        images[modality] = render(anatomy, other_means, texture, rng, other_paint)
    return SyntheticSubject(name, dataset_id, age, images, anatomy.mask(),
                            anatomy.dense(paint.seg, np.uint8), anatomy, reference.affine)


def _other_contrasts(dataset_id: str) -> tuple[str, ...]:
    """The other modalities a lesion subject of ``dataset_id`` is rendered in (its set's optional
    modalities that the contrast models cover: T1 for BraTS21 and MSLUB), the lesion painted in
    each with that contrast's tissue means (a tumour or MS lesion, bright in T2, is dark in T1)."""
    return tuple(modality for modality in DATASETS[dataset_id].extra_modalities if modality in CONTRASTS)
