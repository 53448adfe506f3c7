"""The synthetic cohort (``brainuad synth``): healthy IXI-like subjects and four lesion sets, generated
from nilearn's bundled MNI152 templates and written in the data layout, so that everything runs
without data and the tests have a fixture.

Modules: :mod:`.template` (the reference brain on the 192 x 192 x 160 grid), :mod:`.fields` (smooth
random fields), :mod:`.anatomy` (healthy subjects and image rendering), :mod:`.shapes` (irregular
lesion shapes), :mod:`.lesions` (the four lesion kinds), :mod:`.subjects` (one subject in memory),
:mod:`.cohort` (sizes, seeds, splits, files) and :mod:`.preview` (the PNG montage).
"""

from brainuad.data.synth.cohort import (
    SIZES,
    CohortSize,
    CohortSummary,
    cohort_subject,
    fold_indices,
    subject_generator,
    subject_name,
    synthesize_cohort,
)
from brainuad.data.synth.preview import write_preview
from brainuad.data.synth.subjects import SyntheticSubject, synthesize_subject
from brainuad.data.synth.template import GRID_SHAPE, MODEL_SLAB

__all__ = [
    "GRID_SHAPE",
    "MODEL_SLAB",
    "SIZES",
    "CohortSize",
    "CohortSummary",
    "SyntheticSubject",
    "cohort_subject",
    "fold_indices",
    "subject_generator",
    "subject_name",
    "synthesize_cohort",
    "synthesize_subject",
    "write_preview",
]
