"""What an evaluation produces: per-volume scores, per-set and per-run results, and the summary of
all runs (:class:`EvaluationSummary`), as frozen dataclasses.

:mod:`~brainuad.evaluate.protocol` fills them, :mod:`~brainuad.evaluate.tables` and
:mod:`~brainuad.evaluate.report` read them. Fields marked with :func:`not_serialised` (arrays,
per-volume rows) are kept for the report and left out of ``summary.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np

from brainuad.data.layout import LESION_SETS
from brainuad.evaluate.metrics import ConfusionCounts
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import LesionL1
from brainuad.evaluate.statistics import MeanStd
from brainuad.evaluate.thresholds import Threshold

__all__ = [
    "EvaluationSummary",
    "ExampleSlice",
    "FULL",
    "FrocPoint",
    "GroupResult",
    "HealthyResult",
    "HealthyThresholdCheck",
    "HealthyVolume",
    "IntensityDensities",
    "LesionVolume",
    "PoolSource",
    "RunResult",
    "Segmentation",
    "SetResult",
    "SizeBinRecall",
    "SweepPoint",
    "ThresholdedScores",
    "not_serialised",
    "to_jsonable",
]

FULL = "full"
"""The label of the full post-processing (every step the run's post-processing uses)."""

PoolSource: TypeAlias = Literal["lesion-val", "healthy-val", "test"]
"""What a threshold is chosen on: a lesion set's validation split, the healthy validation volumes,
or the test split itself (the oracle)."""


def not_serialised() -> Any:
    """A dataclass field kept for the report but left out of summary.json (arrays, per-volume rows)."""
    return field(metadata={"json": False})


def to_jsonable(value: Any) -> Any:
    """Dataclasses (without their ``json: False`` fields), tuples, paths and numbers as JSON
    values; nan and infinities become null."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in fields(value)
                if item.metadata.get("json", True)}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} to JSON")


@dataclass(frozen=True)
class LesionCounts:
    """Lesion-level detection of one binarised test volume (:mod:`~brainuad.evaluate.lesions`).

    Attributes:
        lesions: 26-connected ground-truth components; detected: those the prediction touches;
        false_positives: predicted components touching no lesion.
    """

    lesions: int
    detected: int
    false_positives: int

    @property
    def recall(self) -> float:
        """Detected / lesions; nan without a lesion."""
        return self.detected / self.lesions if self.lesions else math.nan

    @property
    def f1(self) -> float:
        """Lesion-wise F1, 2 TP / (2 TP + FP + FN) with TP the detected lesions, FN the missed ones
        and FP the false-positive components; nan when there is neither a lesion nor a predicted
        component."""
        denominator = self.detected + self.lesions + self.false_positives
        return 2 * self.detected / denominator if denominator else math.nan


@dataclass(frozen=True)
class Segmentation:
    """The binarised map of one test volume under one (post-processing, threshold) pair."""

    postprocessing: str
    threshold: str
    counts: ConfusionCounts
    lesion_counts: LesionCounts

    @property
    def dice(self) -> float:
        """Dice; nan when ground truth and prediction are both empty."""
        return self.counts.dice


@dataclass(frozen=True)
class LesionVolume:
    """Per-volume numbers of one test volume of a lesion set.

    Attributes:
        name: subject name.
        lesion_voxels: ground-truth lesion voxels on the model grid.
        average_precision: AUPRC over all voxels of the grid (the authors' way); nan without lesion.
        roc_auc: AUROC over all voxels; nan without lesion.
        l1: l1 inside / outside the lesions and their ratio (reconstruction methods), else None.
        kld: KL(input || reconstruction) of the brain-intensity histograms, else None.
        entropy_difference: the paper's printed "KLD" formula, else None.
        segmentations: one per (post-processing, threshold) pair.
    """

    name: str
    lesion_voxels: int
    average_precision: float
    roc_auc: float
    l1: LesionL1 | None
    kld: float | None
    entropy_difference: float | None
    segmentations: tuple[Segmentation, ...]

    def segmentation(self, threshold: str, postprocessing: str = FULL) -> Segmentation:
        """The segmentation under one threshold label and post-processing variant."""
        for segmentation in self.segmentations:
            if segmentation.threshold == threshold and segmentation.postprocessing == postprocessing:
                return segmentation
        raise KeyError(f"{self.name}: no segmentation for threshold {threshold!r} and post-processing "
                       f"{postprocessing!r}")

    def dice(self, threshold: str, postprocessing: str = FULL) -> float:
        """Dice under one threshold label and post-processing variant."""
        return self.segmentation(threshold, postprocessing).dice


@dataclass(frozen=True)
class ThresholdedScores:
    """Dice of a set's test split under one (post-processing, threshold) pair.

    Attributes:
        postprocessing: the variant's label.
        threshold: the chosen threshold (label, value, counts on its selection pool).
        source: what it was chosen on: "lesion-val", "healthy-val" or "test" (the oracle).
        dice: mean and population std of the per-volume Dice (nan volumes excluded and counted).
        pooled_dice: Dice of all test voxels together (counts summed over volumes).
        lesion_recall: mean and population std of the per-volume lesion recall (volumes without a
            lesion excluded and counted).
        false_positive_components: mean and population std of the predicted components per volume
            that touch no lesion.
    """

    postprocessing: str
    threshold: Threshold
    source: PoolSource
    dice: MeanStd
    pooled_dice: float
    lesion_recall: MeanStd
    false_positive_components: MeanStd


@dataclass(frozen=True)
class FrocPoint:
    """Lesion detection over a test split at one multiple of the headline threshold (an FROC point).

    Attributes:
        factor: the multiple of the headline threshold.
        threshold: the threshold (``factor`` times the headline value).
        lesions: ground-truth lesions of the split; detected: those found.
        false_positives: predicted components touching no lesion, over the split.
        volumes: test volumes.
    """

    factor: float
    threshold: float
    lesions: int
    detected: int
    false_positives: int
    volumes: int

    @property
    def recall(self) -> float:
        """Detected / lesions over the split (pooled); nan without a lesion."""
        return self.detected / self.lesions if self.lesions else math.nan

    @property
    def false_positives_per_volume(self) -> float:
        return self.false_positives / self.volumes if self.volumes else math.nan


@dataclass(frozen=True)
class SizeBinRecall:
    """Lesion recall over a test split for lesions of one size bin ``[low_ml, high_ml)`` (headline threshold)."""

    low_ml: float
    high_ml: float
    lesions: int
    detected: int

    @property
    def recall(self) -> float:
        """Detected / lesions of the bin (pooled over volumes); nan without a lesion of that size."""
        return self.detected / self.lesions if self.lesions else math.nan

    @property
    def label(self) -> str:
        """E.g. ``< 0.1 ml``, ``0.1-1 ml``, ``>= 10 ml``."""
        if self.low_ml == 0:
            return f"< {self.high_ml:g} ml"
        if math.isinf(self.high_ml):
            return f">= {self.low_ml:g} ml"
        return f"{self.low_ml:g}-{self.high_ml:g} ml"


@dataclass(frozen=True)
class IntensityDensities:
    """Mean brain-intensity histograms (densities) of inputs and reconstructions over a split.

    Attributes:
        edges: (bins + 1,) bin edges in [0, 1].
        input: (bins,) mean input density.
        reconstruction: (bins,) mean reconstruction density.
    """

    edges: np.ndarray
    input: np.ndarray
    reconstruction: np.ndarray


@dataclass(frozen=True)
class ExampleSlice:
    """The axial slice with the most lesion of one test volume, for the report.

    Attributes:
        role: "best", "median" or "worst" (by headline Dice), joined with "/" when one volume
            plays several roles (splits of fewer than 3 volumes).
        volume: subject name.
        dice: its headline Dice.
        slice_index: the axial index (last axis).
        image, anomaly_map: (X, Y) float32; reconstruction: (X, Y) or None.
        prediction, target: (X, Y) boolean (thresholded post-processed map, ground truth).
    """

    role: str
    volume: str
    dice: float
    slice_index: int
    image: np.ndarray = not_serialised()
    reconstruction: np.ndarray | None = not_serialised()
    anomaly_map: np.ndarray = not_serialised()
    prediction: np.ndarray = not_serialised()
    target: np.ndarray = not_serialised()


@dataclass(frozen=True)
class SetResult:
    """Everything measured on one lesion set for one run.

    Attributes:
        dataset: the set's id (``brats21``, ...).
        modality: the modality it was evaluated on.
        n_val, n_test: volumes of the validation and test split used.
        n_empty_target: test volumes without lesion voxels on the model grid.
        thresholded: Dice per (post-processing, threshold) pair.
        average_precision, roc_auc: per volume over all voxels (authors' way), mean and population std.
        pooled_average_precision, pooled_roc_auc: over the brain voxels of the whole test split.
        n_clipped: brain voxels whose score fell outside the pooled histogram's [0, 1] range.
        l1_lesion, l1_healthy, l1_ratio: l1 error inside / outside lesions and their ratio (per
            volume, averaged); None without reconstructions.
        kld, entropy_difference: input vs reconstruction histograms, per volume, averaged; or None.
        froc: lesion recall and false-positive components per volume at multiples of the headline
            threshold (full post-processing), pooled over the split.
        recall_by_size: lesion recall per lesion-size bin at the headline threshold, pooled.
        volumes: the per-volume numbers (written to per_volume.csv).
        densities: mean intensity histograms for the report, or None.
        examples: best / median / worst slices for the report (empty in sweeps).
    """

    dataset: str
    modality: str
    n_val: int
    n_test: int
    n_empty_target: int
    thresholded: tuple[ThresholdedScores, ...]
    average_precision: MeanStd
    roc_auc: MeanStd
    pooled_average_precision: float
    pooled_roc_auc: float
    n_clipped: int
    l1_lesion: MeanStd | None
    l1_healthy: MeanStd | None
    l1_ratio: MeanStd | None
    kld: MeanStd | None
    entropy_difference: MeanStd | None
    froc: tuple[FrocPoint, ...]
    recall_by_size: tuple[SizeBinRecall, ...]
    volumes: tuple[LesionVolume, ...] = not_serialised()
    densities: IntensityDensities | None = not_serialised()
    examples: tuple[ExampleSlice, ...] = ()

    def scores(self, threshold: str, postprocessing: str = FULL) -> ThresholdedScores:
        """The Dice results of one threshold label and post-processing variant."""
        for scores in self.thresholded:
            if scores.threshold.strategy == threshold and scores.postprocessing == postprocessing:
                return scores
        raise KeyError(f"{self.dataset}: no result for threshold {threshold!r} and post-processing {postprocessing!r}")


@dataclass(frozen=True)
class HealthyVolume:
    """Reconstruction quality of one healthy IXI test volume (LPIPS None when skipped)."""

    name: str
    ssim: float
    psnr: float
    l1: float
    lpips: float | None
    kld: float
    entropy_difference: float


@dataclass(frozen=True)
class HealthyThresholdCheck:
    """A threshold chosen on healthy validation volumes, applied to the healthy IXI test split.

    Attributes:
        label: the threshold's label (``healthy-fpr-5%``, ``conformal-fpr-5%``, ...).
        value: the threshold.
        false_positive_rate: per test volume, the fraction of its brain voxels above the threshold
            (full post-processing, before small components are removed); mean and population std.
        flagged_ml: per test volume, the ml above the threshold (same voxels); mean and population std.
        exceeding: the fraction of test volumes with more flagged ml than the threshold tolerates
            (``conformal-volume``'s bound), or None for the other thresholds.
    """

    label: str
    value: float
    false_positive_rate: MeanStd
    flagged_ml: MeanStd
    exceeding: float | None


@dataclass(frozen=True)
class HealthyResult:
    """Reconstruction quality on the healthy IXI test split (paper Table 2), per-volume means.

    Attributes:
        modality: the run's modality.
        n: volumes.
        ssim: 3-D SSIM over the whole grid; psnr: dB over the whole grid; l1: inside the brain.
        lpips: Med3D LPIPS, or None when skipped (see ``RunResult.notes``).
        kld, entropy_difference: input vs reconstruction brain-intensity histograms.
        threshold_checks: the thresholds chosen on healthy validation volumes, measured here.
    """

    modality: str
    n: int
    ssim: MeanStd
    psnr: MeanStd
    l1: MeanStd
    lpips: MeanStd | None
    kld: MeanStd
    entropy_difference: MeanStd
    threshold_checks: tuple[HealthyThresholdCheck, ...]
    volumes: tuple[HealthyVolume, ...] = not_serialised()
    densities: IntensityDensities | None = not_serialised()


@dataclass(frozen=True)
class SweepPoint:
    """A lesion set evaluated with one single test noise level (full post-processing, headline)."""

    t_test: int
    result: SetResult


@dataclass(frozen=True)
class RunResult:
    """One evaluated run (one model, one fold).

    Attributes:
        name: the run's name (its directory name).
        group: the model it is a fold of (runs with equal ``group`` are aggregated).
        method: the method's name (``cddpm``, ...).
        modality: t1 or t2.
        fold: the IXI fold it was trained on.
        test_levels: the diffusion noise levels of its reconstructions, or None.
        thresholds: the threshold labels, headline first.
        postprocessing: the full post-processing.
        variants: the post-processing variants' labels, ``full`` first.
        sets: one result per lesion set.
        healthy: IXI test reconstruction quality, or None for methods without reconstructions.
        sweep: the t_test sweep, or empty.
        notes: what was skipped and why.
    """

    name: str
    group: str
    method: str
    modality: str
    fold: int
    test_levels: tuple[int, ...] | None
    thresholds: tuple[str, ...]
    postprocessing: PostProcessing
    variants: tuple[str, ...]
    sets: tuple[SetResult, ...]
    healthy: HealthyResult | None
    sweep: tuple[SweepPoint, ...]
    notes: tuple[str, ...]

    def set_result(self, dataset: str) -> SetResult | None:
        """The result of one lesion set, or None when the run was not evaluated on it."""
        return next((result for result in self.sets if result.dataset == dataset), None)

    def sweep_result(self, t_test: int, dataset: str) -> SetResult | None:
        """The sweep's result at one noise level on one set, or None."""
        return next((point.result for point in self.sweep
                     if point.t_test == t_test and point.result.dataset == dataset), None)


@dataclass(frozen=True)
class GroupResult:
    """The folds of one model (runs with one ``group``), sorted by modality and fold.

    A model may hold runs of both modalities (trained on T1 and on T2 with one configuration):
    each lesion set then reads the runs of its own modality.
    """

    label: str
    method: str
    modalities: tuple[str, ...]
    runs: tuple[RunResult, ...]

    @property
    def folds(self) -> tuple[int, ...]:
        """The distinct folds of the model's runs, sorted."""
        return tuple(sorted({run.fold for run in self.runs}))


@dataclass(frozen=True)
class EvaluationSummary:
    """All groups of an evaluation and how it was done.

    Attributes:
        groups: the compared models, in the order first given.
        thresholds: threshold labels, headline first.
        headline: the headline threshold label.
        postprocessing: the full post-processing's settings.
        variants: post-processing variant labels (``full`` first).
        conventions: how the numbers are defined (Dice of empty volumes, stds, AUPRC kinds).
        notes: what was skipped and why, over all runs.
    """

    groups: tuple[GroupResult, ...]
    thresholds: tuple[str, ...]
    headline: str
    postprocessing: PostProcessing
    variants: tuple[str, ...]
    conventions: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def runs(self) -> tuple[RunResult, ...]:
        return tuple(run for group in self.groups for run in group.runs)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Lesion sets evaluated by any run, in the protocol's order."""
        present = {result.dataset for run in self.runs for result in run.sets}
        return tuple(name for name in LESION_SETS if name in present)

    def set_modality(self, dataset: str) -> str:
        """The modality a lesion set was evaluated on (one per set: t2 brats21, mslub; t1 atlas, wmh)."""
        return next(result.modality for run in self.runs for result in run.sets if result.dataset == dataset)

    @property
    def sweep_levels(self) -> tuple[int, ...]:
        return tuple(sorted({point.t_test for run in self.runs for point in run.sweep}))
