"""The streaming engine of one run's splits: validation pools, thresholds, the test split, examples.

Volumes are read, scored, post-processed and reduced a batch at a time (see
:mod:`brainuad.evaluate.protocol` for the protocol this implements), so memory does not grow with
the number of test volumes; each test volume's measures are computed apart
(:mod:`~brainuad.evaluate.volume_measures`, in CPU workers with ``workers`` > 0) and added to the
split's totals in split order.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch

from brainuad.data.cache import GridCache
from brainuad.data.grid import MODEL_GRID_SHAPE, GridVolume
from brainuad.data.layout import Subject, split_subjects
from brainuad.errors import BrainUADError, InputError
from brainuad.evaluate.conformal import ConformalVolume
from brainuad.evaluate.histograms import HistogramComparison, compare_intensity_histograms
from brainuad.evaluate.lesions import (
    FROC_FACTORS,
    LESION_SIZE_BINS_ML,
    MODEL_GRID_VOXEL_ML,
    LesionMap,
)
from brainuad.evaluate.metrics import ConfusionCounts, ScoreHistogram, confusion_counts
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import (
    MedicalLpips,
    l1_error,
    peak_signal_noise_ratio,
    structural_similarity,
)
from brainuad.evaluate.results import (
    FULL,
    ExampleSlice,
    FrocPoint,
    HealthyResult,
    HealthyThresholdCheck,
    HealthyVolume,
    IntensityDensities,
    LesionCounts,
    LesionVolume,
    Segmentation,
    SetResult,
    SizeBinRecall,
    ThresholdedScores,
)
from brainuad.evaluate.rules import Binarisation, PostProcessingVariant, ThresholdRule, variants_needing
from brainuad.evaluate.scoring import ScoredVolume, VolumeScorer
from brainuad.evaluate.statistics import MeanStd, mean_std
from brainuad.evaluate.stream import Shard, scored_volumes
from brainuad.evaluate.thresholds import Threshold, VoxelPool
from brainuad.evaluate.volume_measures import (
    HISTOGRAM_BINS,
    MeasurePlan,
    VolumeMeasures,
    example_slice,
    measure_volume,
)
from brainuad.evaluate.worker_pool import OrderedPool

_EXAMPLE_ROLES = ("best", "median", "worst")

_Item = TypeVar("_Item")


def track(items: Iterable[_Item], description: str, enabled: bool,
          total: int | None = None) -> Generator[_Item, None, None]:
    """Iterate ``items`` (``total`` of them, default ``len(items)``) with a rich progress bar on
    stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, total=total, transient=True, console=Console(stderr=True))


def _target(volume: GridVolume, subject: Subject) -> np.ndarray:
    if volume.seg is None:
        raise InputError(subject.image, f"subject {subject.name} of a lesion set has no segmentation",
                         "its split CSV needs a seg_path")
    return volume.seg


@dataclass(frozen=True)
class SplitContext:
    """What every split of one run is evaluated with.

    Attributes:
        shift: a change applied to every volume as it is read (the domain-shift study's contrast
            levels), or None; every number is then measured against the changed image.
        workers: DataLoader workers reading volumes ahead of the model, and as many processes
            measuring the scored test volumes (0: both between batches, in this process).
        shard: this process's share of an evaluation sharded across processes, or None.
        contrasts: other contrasts of each subject read with its image (a multi-contrast method's,
            :func:`~brainuad.evaluate.scoring.read_contrasts`).
    """

    data_root: Path
    modality: str
    fold: int
    limit: int | None
    cache: GridCache
    progress: bool
    run: str
    shift: Callable[[GridVolume], GridVolume] | None = None
    workers: int = 0
    shard: Shard | None = None
    contrasts: tuple[str, ...] = ()

    def bar(self, dataset: str, split: str, suffix: str = "") -> str:
        return f"{self.run}: {dataset} {split}{suffix}"

    def subjects(self, dataset: str, split: Literal["val", "test"]) -> list[Subject]:
        """The subjects of one split (the IXI validation split of the run's fold), first ``limit`` only."""
        fold = self.fold if dataset == "ixi" and split == "val" else None
        subjects = split_subjects(self.data_root, dataset, split, fold, self.modality, self.contrasts)
        if not subjects:
            raise InputError(self.data_root / "splits", f"the {dataset} {split} split lists no subject")
        return subjects[:self.limit] if self.limit is not None else subjects

    def load(self, subject: Subject) -> GridVolume:
        """The subject's model-grid volume (through the cache), shifted when the context says so."""
        volume = self.cache.load(subject)
        return volume if self.shift is None else self.shift(volume)

    @contextlib.contextmanager
    def scored(self, scorer: VolumeScorer, subjects: Sequence[Subject], description: str,
               postprocessings: Iterable[PostProcessing] = ()) -> Iterator[Iterator[tuple[Subject, GridVolume,
                                                                                         ScoredVolume]]]:
        """The subjects with their volumes and scored volumes, in order, with a progress bar
        (:func:`~brainuad.evaluate.stream.scored_volumes`), each scored volume with its map after
        each of ``postprocessings``; on leaving, even by an error, the progress bar and the loader
        workers stop at once."""
        stream = track(scored_volumes(scorer, subjects, self.load, workers=self.workers, shard=self.shard,
                                      postprocessings=tuple(dict.fromkeys(postprocessings))),
                       description, self.progress, total=len(subjects))
        try:
            yield stream
        finally:
            stream.close()


def _pool_healthy(scorer: VolumeScorer, variants: list[PostProcessingVariant], context: SplitContext,
                  suffix: str) -> dict[PostProcessingVariant, VoxelPool]:
    """Brain voxels of the post-processed maps of the IXI validation volumes of the run's fold."""
    subjects = context.subjects("ixi", "val")
    pools = {variant: VoxelPool.for_volumes(len(subjects), MODEL_GRID_SHAPE) for variant in variants}
    with context.scored(scorer, subjects, context.bar("ixi", f"val fold {context.fold}", suffix),
                        (variant.postprocessing for variant in variants)) as stream:
        for _, volume, scored in stream:
            for variant, pool in pools.items():
                pool.add(scored.postprocessed[variant.postprocessing], mask=volume.mask)
    return pools


def _pool_lesion_val(scorer: VolumeScorer, dataset: str, variants: list[PostProcessingVariant],
                     context: SplitContext, suffix: str) -> tuple[dict[PostProcessingVariant, VoxelPool], int]:
    """All voxels of the post-processed maps of a lesion set's validation split, per variant, and
    the number of volumes pooled (0 when no variant needs them)."""
    if not variants:
        return {}, 0
    subjects = context.subjects(dataset, "val")
    pools = {variant: VoxelPool.for_volumes(len(subjects), MODEL_GRID_SHAPE) for variant in variants}
    with context.scored(scorer, subjects, context.bar(dataset, "val", suffix),
                        (variant.postprocessing for variant in variants)) as stream:
        for subject, volume, scored in stream:
            target = _target(volume, subject)
            for variant, pool in pools.items():
                pool.add(scored.postprocessed[variant.postprocessing], target)
    return pools, len(subjects)


def _select(rule: ThresholdRule, pool: VoxelPool, where: str) -> Threshold:
    try:
        return rule.strategy.select(pool)
    except ValueError as error:
        raise BrainUADError(f"cannot choose the {rule.label} threshold on {where}: {error}") from None


class _OracleArchive:
    """The test split's post-processed maps as their non-zero voxels, for the oracle.

    The maps' non-zero scores go into a :class:`VoxelPool` (the oracle's search pool, in the
    order added); their flat positions and each volume's lesion positions are kept alongside, so
    every map can be rebuilt exactly and re-scored at the oracle threshold.
    """

    def __init__(self, n_volumes: int) -> None:
        self.pool = VoxelPool.for_volumes(n_volumes, MODEL_GRID_SHAPE)
        self._positions = np.empty(self.pool.capacity, dtype=np.int32)
        self._volumes: list[tuple[int, int, np.ndarray]] = []

    def add(self, postprocessed: np.ndarray, target: np.ndarray) -> None:
        """Keep one (X, Y, Z) map and its (X, Y, Z) boolean target."""
        start = self.pool.scores.size
        self.pool.add(postprocessed, target)
        stop = self.pool.scores.size
        self._positions[start:stop] = np.flatnonzero(postprocessed)
        self._volumes.append((start, stop, np.flatnonzero(target).astype(np.int32)))

    def rescore(self, threshold: float, postprocessing: PostProcessing) -> Iterator[tuple[ConfusionCounts,
                                                                                            LesionCounts]]:
        """Voxel and lesion counts of every kept volume binarised at ``threshold``, in the order added."""
        scores = self.pool.scores
        for start, stop, lesion in self._volumes:
            volume = np.zeros(math.prod(MODEL_GRID_SHAPE), dtype=scores.dtype)
            volume[self._positions[start:stop]] = scores[start:stop]
            target = np.zeros(volume.size, dtype=bool)
            target[lesion] = True
            prediction = postprocessing.apply_to_binary((volume > threshold).reshape(MODEL_GRID_SHAPE))
            truth = target.reshape(MODEL_GRID_SHAPE)
            yield confusion_counts(prediction, truth), LesionMap(truth).detect(prediction).counts


class DensitySums:
    """Running sums of brain-intensity densities of inputs and reconstructions."""

    def __init__(self) -> None:
        self.input = np.zeros(HISTOGRAM_BINS)
        self.reconstruction = np.zeros(HISTOGRAM_BINS)
        self.edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        self.count = 0

    def add(self, image: np.ndarray, reconstruction: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
        """Add one pair of (X, Y, Z) volumes; returns its (kld, entropy_difference)."""
        return self.add_comparison(compare_intensity_histograms(image, reconstruction, brain, bins=HISTOGRAM_BINS))

    def add_comparison(self, comparison: HistogramComparison) -> tuple[float, float]:
        """Add one volume's histogram comparison (:data:`HISTOGRAM_BINS` bins); returns its (kld,
        entropy_difference)."""
        self.input += comparison.input_density
        self.reconstruction += comparison.reconstruction_density
        self.count += 1
        return comparison.kld, comparison.entropy_difference

    def mean(self) -> IntensityDensities | None:
        if not self.count:
            return None
        return IntensityDensities(self.edges, self.input / self.count, self.reconstruction / self.count)


def _optional_mean(values: list[float | None]) -> MeanStd | None:
    """Mean and population std of per-volume values, or None when they were not measured."""
    if not values or values[0] is None:
        return None
    return mean_std([np.nan if value is None else value for value in values], ddof=0)  # nan: not measured


class _TestSplit:
    """The running totals of one lesion set's test split, each volume's measures added in split
    order (see the module docstring)."""

    def __init__(self, pairs: tuple[Binarisation, ...], thresholds: dict[Binarisation, Threshold],
                 n_volumes: int) -> None:
        self.pairs = pairs
        self.plan = MeasurePlan(pairs, thresholds)
        self.full = pairs[0].variant
        self.histogram = ScoreHistogram()
        self.densities = DensitySums()
        self.oracle_pairs = [pair for pair in pairs if pair.rule.source == "test"]
        self.archive = _OracleArchive(n_volumes) if self.oracle_pairs else None
        self.volumes: list[LesionVolume] = []
        self.headline = pairs[0]
        self.froc_counts = np.zeros((len(FROC_FACTORS), 3), dtype=np.int64)  # lesions, detected, FP components
        self.size_counts = np.zeros((len(LESION_SIZE_BINS_ML) - 1, 2), dtype=np.int64)  # detected, lesions
        self.best: ExampleSlice | None = None  # the first volume of the highest headline Dice
        self.worst: ExampleSlice | None = None  # the last volume of the lowest

    @property
    def postprocessings(self) -> tuple[PostProcessing, ...]:
        """The post-processings the test volumes' maps are needed after."""
        return tuple(dict.fromkeys(pair.variant.postprocessing for pair in self.pairs))

    def add(self, volume: GridVolume, target: np.ndarray, scored: ScoredVolume, measures: VolumeMeasures) -> None:
        """Add the next volume (with its measures, :func:`~brainuad.evaluate.volume_measures.measure_volume`)."""
        full = scored.postprocessed[self.full.postprocessing]
        self.histogram.add(full, target, mask=volume.mask)
        if self.archive is not None:
            self.archive.add(full, target)
        self.volumes.append(measures.record)
        self.froc_counts += measures.froc_counts
        self.size_counts += measures.size_counts
        if measures.densities is not None:
            self.densities.add_comparison(measures.densities)
        example = measures.example
        if example is not None:
            if self.best is None or example.dice > self.best.dice:
                self.best = replace(example, role="best")
            if self.worst is None or example.dice <= self.worst.dice:
                self.worst = replace(example, role="worst")

    def finish_oracle(self, where: str) -> dict[Binarisation, Threshold]:
        """Choose the oracle thresholds on the archived test maps and add their segmentations."""
        chosen: dict[Binarisation, Threshold] = {}
        if self.archive is None:  # no oracle rule: nothing was archived
            return chosen
        for pair in self.oracle_pairs:
            threshold = _select(pair.rule, self.archive.pool, where)
            rescored = self.archive.rescore(threshold.value, pair.variant.postprocessing)
            self.volumes = [replace(record, segmentations=record.segmentations + (
                Segmentation(pair.variant.label, pair.rule.label, counts, lesion_counts),))
                for record, (counts, lesion_counts) in zip(self.volumes, rescored, strict=True)]
            chosen[pair] = threshold
        return chosen

    def result(self, dataset: str, modality: str, n_val: int, thresholds: dict[Binarisation, Threshold],
               examples: tuple[ExampleSlice, ...]) -> SetResult:
        volumes = tuple(self.volumes)
        thresholded = []
        for pair in self.pairs:
            chosen = [next(s for s in record.segmentations
                           if s.threshold == pair.rule.label and s.postprocessing == pair.variant.label)
                      for record in volumes]
            counts = [segmentation.counts for segmentation in chosen]
            found = [segmentation.lesion_counts for segmentation in chosen]
            total = ConfusionCounts(*(sum(getattr(c, name) for c in counts) for name in ("tp", "fp", "fn", "tn")))
            thresholded.append(ThresholdedScores(
                pair.variant.label, thresholds[pair], pair.rule.source, mean_std([c.dice for c in counts], ddof=0),
                total.dice, mean_std([c.recall for c in found], ddof=0),
                mean_std([float(c.false_positives) for c in found], ddof=0)))
        pooled = self.histogram.ranking_scores()
        l1s = [record.l1 for record in volumes]
        return SetResult(
            dataset=dataset, modality=modality, n_val=n_val, n_test=len(volumes),
            n_empty_target=sum(record.lesion_voxels == 0 for record in volumes), thresholded=tuple(thresholded),
            average_precision=mean_std([record.average_precision for record in volumes], ddof=0),
            roc_auc=mean_std([record.roc_auc for record in volumes], ddof=0),
            pooled_average_precision=pooled.average_precision, pooled_roc_auc=pooled.roc_auc,
            n_clipped=self.histogram.n_clipped,
            l1_lesion=_optional_mean([None if l1 is None else l1.unhealthy for l1 in l1s]),
            l1_healthy=_optional_mean([None if l1 is None else l1.healthy for l1 in l1s]),
            l1_ratio=_optional_mean([None if l1 is None else l1.ratio for l1 in l1s]),
            kld=_optional_mean([record.kld for record in volumes]),
            entropy_difference=_optional_mean([record.entropy_difference for record in volumes]),
            froc=self._froc(thresholds), recall_by_size=tuple(
                SizeBinRecall(low, high, int(lesions), int(detected)) for low, high, (detected, lesions)
                in zip(LESION_SIZE_BINS_ML[:-1], LESION_SIZE_BINS_ML[1:], self.size_counts)),
            volumes=volumes, densities=self.densities.mean(), examples=examples)

    def _froc(self, thresholds: dict[Binarisation, Threshold]) -> tuple[FrocPoint, ...]:
        value = thresholds[self.headline].value
        return tuple(FrocPoint(factor, value * factor, int(lesions), int(detected), int(false), len(self.volumes))
                     for factor, (lesions, detected, false) in zip(FROC_FACTORS, self.froc_counts))


def _example_slices(scorer: VolumeScorer, subjects: list[Subject], split: _TestSplit, pair: Binarisation,
                    threshold: Threshold, context: SplitContext) -> tuple[ExampleSlice, ...]:
    """The best, median and worst volumes (headline Dice): the best and worst kept while the split
    was scored, the median scored again."""
    ranked = sorted((record for record in split.volumes if not math.isnan(record.dice(pair.rule.label))),
                    key=lambda record: record.dice(pair.rule.label), reverse=True)
    if not ranked:
        return ()
    roles: dict[int, list[str]] = {}
    for role, rank in zip(_EXAMPLE_ROLES, (0, len(ranked) // 2, len(ranked) - 1)):
        roles.setdefault(rank, []).append(role)
    kept = {0: split.best, len(ranked) - 1: split.worst}
    by_name = {subject.name: subject for subject in subjects}
    examples = []
    for rank, names in roles.items():
        record, role = ranked[rank], "/".join(names)
        example = kept.get(rank)
        if example is None or example.volume != record.name:
            subject = by_name[record.name]
            volume = context.load(subject)
            target = _target(volume, subject)
            scored = scorer.score(volume)
            postprocessing = pair.variant.postprocessing
            prediction = postprocessing.apply_to_binary(
                postprocessing.apply_to_residual(scored.anomaly_map, volume.mask) > threshold.value)
            example = example_slice(role, volume, target, scored, prediction, record.dice(pair.rule.label))
        examples.append(replace(example, role=role))
    return tuple(examples)


def evaluate_set(scorer: VolumeScorer, dataset: str, pairs: tuple[Binarisation, ...],
                  healthy_thresholds: dict[Binarisation, Threshold], context: SplitContext, *, figures: bool,
                  suffix: str = "") -> SetResult:
    """Validation pools, thresholds, the streamed test split and (with ``figures``) the example slices."""
    pools, n_val = _pool_lesion_val(scorer, dataset, variants_needing(pairs, "lesion-val"), context, suffix)
    thresholds = dict(healthy_thresholds)
    for pair in pairs:
        if pair.rule.source == "lesion-val":
            thresholds[pair] = _select(pair.rule, pools[pair.variant], f"the {dataset} validation split")
    del pools
    subjects = context.subjects(dataset, "test")
    split = _TestSplit(pairs, {pair: thresholds[pair] for pair in pairs if pair in thresholds}, len(subjects))
    with context.scored(scorer, subjects, context.bar(dataset, "test", suffix), split.postprocessings) as stream, \
            OrderedPool(measure_volume, context.workers) as measuring:
        calls = (((volume, target, scored), (split.plan, volume, target, scored))
                 for subject, volume, scored in stream for target in (_target(volume, subject),))
        for (volume, target, scored), measures in measuring.map(calls):
            split.add(volume, target, scored, measures)
    thresholds.update(split.finish_oracle(f"the {dataset} test split"))
    examples = _example_slices(scorer, subjects, split, pairs[0], thresholds[pairs[0]], context) if figures else ()
    return split.result(dataset, context.modality, n_val, thresholds, examples)


def choose_healthy_thresholds(scorer: VolumeScorer, pairs: tuple[Binarisation, ...], context: SplitContext,
                        suffix: str = "") -> dict[Binarisation, Threshold]:
    variants = variants_needing(pairs, "healthy-val")
    if not variants:
        return {}
    pools = _pool_healthy(scorer, variants, context, suffix)
    where = f"the ixi validation split of fold {context.fold}"
    return {pair: _select(pair.rule, pools[pair.variant], where) for pair in pairs if pair.rule.source == "healthy-val"}


class _HealthyThresholdTally:
    """Realised false positives of the healthy-val thresholds on healthy test volumes, one at a time."""

    def __init__(self, thresholds: dict[Binarisation, Threshold]) -> None:
        self.thresholds = {pair: threshold for pair, threshold in thresholds.items()
                           if pair.rule.source == "healthy-val" and pair.variant.label == FULL}
        self.flagged: dict[Binarisation, list[int]] = {pair: [] for pair in self.thresholds}
        self.brain_voxels: list[int] = []

    @property
    def postprocessings(self) -> tuple[PostProcessing, ...]:
        return tuple(dict.fromkeys(pair.variant.postprocessing for pair in self.thresholds))

    def add(self, scored: ScoredVolume, brain: np.ndarray) -> None:
        """Count the brain voxels of one volume's post-processed maps above each threshold (before
        component removal)."""
        self.brain_voxels.append(int(np.count_nonzero(brain)))
        for pair, threshold in self.thresholds.items():
            scores = scored.postprocessed[pair.variant.postprocessing][brain]
            self.flagged[pair].append(int(np.count_nonzero(scores > threshold.value)))

    def checks(self) -> tuple[HealthyThresholdCheck, ...]:
        checks = []
        for pair, threshold in self.thresholds.items():
            flagged = np.asarray(self.flagged[pair], dtype=np.float64)
            flagged_ml = flagged * MODEL_GRID_VOXEL_ML
            strategy = pair.rule.strategy
            exceeding = (float(np.mean(flagged_ml > strategy.max_false_ml))
                         if isinstance(strategy, ConformalVolume) else None)
            checks.append(HealthyThresholdCheck(threshold.strategy, threshold.value,
                                                mean_std(flagged / np.asarray(self.brain_voxels), ddof=0),
                                                mean_std(flagged_ml, ddof=0), exceeding))
        return tuple(checks)


def _healthy_volume(volume: GridVolume, scored: ScoredVolume, lpips: MedicalLpips | None,
                    tally: _HealthyThresholdTally, densities: DensitySums) -> HealthyVolume:
    """One healthy test volume's reconstruction quality, its false positives added to ``tally``
    and its densities to ``densities``."""
    reconstruction = scored.reconstruction
    if reconstruction is None:
        raise ValueError(f"the healthy evaluation needs reconstructions; the scorer gave none for {volume.name}")
    tally.add(scored, volume.mask)
    distance = None
    if lpips is not None:
        pair = [torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
                for array in (volume.image, reconstruction)]
        distance = float(lpips.distance(*pair)[0])
    kld, entropy_difference = densities.add(volume.image, reconstruction, volume.mask)
    return HealthyVolume(volume.name, structural_similarity(volume.image, reconstruction),
                         peak_signal_noise_ratio(volume.image, reconstruction),
                         l1_error(volume.image, reconstruction, volume.mask), distance, kld, entropy_difference)


def evaluate_healthy(scorer: VolumeScorer, lpips: MedicalLpips | None, context: SplitContext,
                     thresholds: dict[Binarisation, Threshold] | None = None) -> HealthyResult:
    """Reconstruction quality on the healthy IXI test split (one volume at a time), and the realised
    false positives of the thresholds in ``thresholds`` that were chosen on healthy volumes."""
    subjects = context.subjects("ixi", "test")
    densities = DensitySums()
    tally = _HealthyThresholdTally(thresholds or {})
    with context.scored(scorer, subjects, context.bar("ixi", "test"), tally.postprocessings) as stream:
        volumes = [_healthy_volume(volume, scored, lpips, tally, densities) for _, volume, scored in stream]
    return HealthyResult(
        modality=context.modality, n=len(volumes), ssim=mean_std([v.ssim for v in volumes], ddof=0),
        psnr=mean_std([v.psnr for v in volumes], ddof=0), l1=mean_std([v.l1 for v in volumes], ddof=0),
        lpips=_optional_mean([v.lpips for v in volumes]), kld=mean_std([v.kld for v in volumes], ddof=0),
        entropy_difference=mean_std([v.entropy_difference for v in volumes], ddof=0),
        threshold_checks=tally.checks(), volumes=tuple(volumes), densities=densities.mean())
