"""The evaluation protocol runner: trained runs in, typed results, tables and a report out.

For every lesion set of a run (method.md §4, paper §4.3-§4.5, issue items 5-6):

1. **Validation split.** Each volume is scored once: a reconstruction method reconstructs it and
   its anomaly map is the residual ``R = |x - x_rec|``; any other method gives its own
   ``anomaly_map``. The map is post-processed (median filter, eroded brain mask) once per
   post-processing variant -- the full protocol and, for the ablation (paper Table 4), "without
   CC", "without MF", "without BE" -- all from the *same* map, and every variant's voxels go into
   its own :class:`~brainuad.evaluate.thresholds.VoxelPool`, preallocated for the split.
2. **Thresholds**, each labelled in every output: ``val-dice`` (exact Dice optimum over the pooled
   validation voxels; the default), ``val-dice-bisection`` (the authors' search), ``healthy-fpr``
   (1, 5 and 10 % false-positive rate on the brain voxels of the healthy IXI validation volumes
   of the run's fold, pooled once per run) and ``oracle`` (the Dice optimum on the test split
   itself: an upper bound, never the headline). The first threshold asked for that is not the
   oracle is the *headline*; the ablation variants are thresholded with it only.
3. **Test split.** Each volume is scored once; for every (variant, threshold) the map is
   binarised (``R > threshold``), small connected components are removed, and Dice is computed.
   Per volume the authors' AUPRC / AUROC over all voxels of the grid, pooled AUPRC / AUROC over
   the brain voxels of the split (:class:`~brainuad.evaluate.metrics.ScoreHistogram`), the l1
   error inside and outside the lesions, and the intensity-histogram ``kld`` /
   ``entropy_difference`` of input and reconstruction. Only per-volume numbers and fixed-size
   accumulators are kept, so memory does not grow with the number of test volumes -- except with
   the ``oracle``, whose exact search pools the test split's non-zero voxels (with their
   positions, to re-score every volume at the oracle threshold afterwards).
4. **Figures.** The best, median and worst test volumes (headline Dice) are scored again at the
   end and only their axial slice with the most lesion is kept.

Healthy IXI test split of the run's modality (reconstruction methods only): SSIM and PSNR over the
whole 96 x 96 x 50 grid, l1 error inside the brain mask, LPIPS (with Med3D weights), ``kld`` and
``entropy_difference``. Optionally a sweep of single test noise levels ``t_test`` for diffusion
methods (val-dice search and test Dice at each level, full post-processing, headline threshold).

Conventions (also written into every output):

- Dice of a test volume whose ground truth *and* prediction are empty is undefined (nan) and left
  out of the mean (counted as ``n_excluded``); an empty ground truth with any predicted voxel
  counts as Dice 0. ``n_empty_target`` counts the test volumes without lesion voxels.
- Per-volume means carry the population standard deviation over volumes (``ddof=0``, as the
  authors); the tables report the mean and sample standard deviation over folds (``ddof=1``).
- The l1-ratio of a set is the mean over its volumes of ``l1(lesion) / l1(brain outside lesion)``.

Several runs: runs whose configs differ only in ``data.fold`` (and in where they ran: data
directory, workers, accelerator; see :data:`EXECUTION_KEYS`) are folds of one model and are
aggregated; different models are compared side by side (see :mod:`~brainuad.evaluate.tables`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from brainuad.atomic import write_text
from brainuad.config import DIFFUSION_RUN_CONFIGS
from brainuad.data.cache import GridCache
from brainuad.data.grid import MODEL_GRID_SHAPE, GridVolume, NormaliseOn
from brainuad.data.layout import (
    DATASETS,
    LESION_SETS,
    Subject,
    resolve_data_root,
    sets_for_modality,
    split_subjects,
)
from brainuad.errors import BrainUADError, InputError
from brainuad.evaluate.histograms import compare_intensity_histograms
from brainuad.evaluate.metrics import (
    ConfusionCounts,
    ScoreHistogram,
    confusion_counts,
    ranking_scores,
)
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import (
    MedicalLpips,
    l1_error,
    lesion_l1,
    peak_signal_noise_ratio,
    structural_similarity,
)
from brainuad.evaluate.report import render_report
from brainuad.evaluate.results import (
    FULL,
    EvaluationSummary,
    ExampleSlice,
    GroupResult,
    HealthyResult,
    HealthyVolume,
    IntensityDensities,
    LesionVolume,
    PoolSource,
    RunResult,
    Segmentation,
    SetResult,
    SweepPoint,
    ThresholdedScores,
)
from brainuad.evaluate.scoring import (
    AnomalyScorer,
    NoiseLevelReconstructor,
    ResidualScorer,
    ScoredVolume,
    VolumeScorer,
    volume_scorer,
)
from brainuad.evaluate.statistics import MeanStd, mean_std
from brainuad.evaluate.tables import CONVENTIONS, Table, build_tables
from brainuad.evaluate.thresholds import (
    HealthyFPR,
    Oracle,
    Threshold,
    ThresholdStrategy,
    ValDice,
    ValDiceBisection,
    VoxelPool,
)
from brainuad.lock import FolderLock

__all__ = [
    "EXECUTION_KEYS",
    "EvaluationFiles",
    "PostProcessingVariant",
    "RUN_THRESHOLDS_FILE",
    "RunThreshold",
    "THRESHOLD_NAMES",
    "ThresholdRule",
    "evaluate_method",
    "evaluate_runs",
    "postprocessing_variants",
    "read_run_thresholds",
    "run_thresholds",
    "summarise",
    "summary_thresholds",
    "threshold_rules",
    "write_evaluation",
    "write_run_thresholds",
]

THRESHOLD_NAMES = ("val-dice", "val-dice-bisection", "healthy-fpr", "oracle")
HEALTHY_FPR_RATES = (0.01, 0.05, 0.10)
EXECUTION_KEYS = frozenset({"data.root", "data.num_workers", "data.cache_dir", "train.accelerator", "train.devices",
                            "train.strategy", "train.log_every_n_steps", "train.channels_last",
                            "diffusion.inference_batch_size", "model.inference_batch_size",
                            "dae.inference_batch_size"})
"""Config values that say where and how a run was executed, not which model it is; ignored (with
``data.fold``) when runs are grouped into folds of one model."""
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
PER_VOLUME_FILE = "per_volume.csv"
RUN_THRESHOLDS_FILE = "thresholds.json"
LPIPS_SKIPPED = "LPIPS skipped: no --lpips-weights given"
_HISTOGRAM_BINS = 500
_EXAMPLE_ROLES = ("best", "median", "worst")

_Item = TypeVar("_Item")


# --------------------------------------------------------------------------------------------
# Thresholds and post-processing variants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdRule:
    """A threshold strategy and the voxels it is chosen on.

    Attributes:
        strategy: the strategy (its ``label`` names the results).
        source: "lesion-val" (the set's validation split), "healthy-val" (IXI validation volumes of
            the run's fold) or "test" (the oracle).
    """

    strategy: ThresholdStrategy
    source: PoolSource

    @property
    def label(self) -> str:
        return self.strategy.label


def threshold_rules(names: Sequence[str]) -> tuple[ThresholdRule, ...]:
    """The rules named by ``names`` (from :data:`THRESHOLD_NAMES`), in order, without repeats;
    ``healthy-fpr`` gives three rules (1, 5, 10 %). The first rule that is not the oracle is the
    headline.

    Raises:
        ValueError: an unknown name, an empty list, or only the oracle.
    """
    if isinstance(names, str) or not names:
        raise ValueError(f"thresholds must be a non-empty list of names from {THRESHOLD_NAMES}, got {names!r}")
    rules: list[ThresholdRule] = []
    for name in dict.fromkeys(names):
        if name == "val-dice":
            rules.append(ThresholdRule(ValDice(), "lesion-val"))
        elif name == "val-dice-bisection":
            rules.append(ThresholdRule(ValDiceBisection(), "lesion-val"))
        elif name == "healthy-fpr":
            rules.extend(ThresholdRule(HealthyFPR(rate), "healthy-val") for rate in HEALTHY_FPR_RATES)
        elif name == "oracle":
            rules.append(ThresholdRule(Oracle(), "test"))
        else:
            raise ValueError(f"unknown threshold {name!r}; choose from {', '.join(THRESHOLD_NAMES)}")
    if all(rule.source == "test" for rule in rules):
        raise ValueError("thresholds: 'oracle' is an upper bound on the test split and cannot be the only "
                         "threshold; add a real one, e.g. 'val-dice'")
    headline = next(rule for rule in rules if rule.source != "test")
    return (headline, *(rule for rule in rules if rule is not headline))


@dataclass(frozen=True)
class PostProcessingVariant:
    """A labelled post-processing: ``full`` or an ablation ("without CC", "without MF", "without BE")."""

    label: str
    postprocessing: PostProcessing


def postprocessing_variants(base: PostProcessing, ablation: bool) -> tuple[PostProcessingVariant, ...]:
    """``full`` (``base``) and, with ``ablation``, ``base`` without each step it uses (paper Table 4:
    connected components, median filter, brain erosion)."""
    variants = [PostProcessingVariant(FULL, base)]
    if ablation:
        for label, step in (("without CC", "components"), ("without MF", "median"), ("without BE", "erosion")):
            if getattr(base, step):
                variants.append(PostProcessingVariant(label, replace(base, **{step: False})))
    return tuple(variants)


@dataclass(frozen=True)
class _Pair:
    """One binarisation of the test maps: a post-processing variant and a threshold rule."""

    variant: PostProcessingVariant
    rule: ThresholdRule


def _pairs(rules: tuple[ThresholdRule, ...], variants: tuple[PostProcessingVariant, ...]) -> tuple[_Pair, ...]:
    """Every rule on the full post-processing, the headline rule on each ablation variant."""
    return (*(_Pair(variants[0], rule) for rule in rules), *(_Pair(variant, rules[0]) for variant in variants[1:]))


def _variants_needing(pairs: Sequence[_Pair], source: PoolSource) -> list[PostProcessingVariant]:
    return list(dict.fromkeys(pair.variant for pair in pairs if pair.rule.source == source))


# --------------------------------------------------------------------------------------------
# Streaming the splits
# --------------------------------------------------------------------------------------------


def _track(items: Sequence[_Item], description: str, enabled: bool) -> Iterator[_Item]:
    """Iterate ``items`` with a rich progress bar on stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    yield from track(items, description=description, transient=True, console=Console(stderr=True))


def _target(volume: GridVolume, subject: Subject) -> np.ndarray:
    if volume.seg is None:
        raise InputError(subject.image, f"subject {subject.name} of a lesion set has no segmentation",
                         "its split CSV needs a seg_path")
    return volume.seg


def _subjects(data_root: Path, dataset: str, split: Literal["val", "test"], modality: str, fold: int | None,
              limit: int | None) -> list[Subject]:
    subjects = split_subjects(data_root, dataset, split, fold, modality)
    if not subjects:
        raise InputError(data_root / "splits", f"the {dataset} {split} split lists no subject")
    return subjects[:limit] if limit is not None else subjects


@dataclass(frozen=True)
class _Context:
    """What every split of one run is evaluated with."""

    data_root: Path
    modality: str
    fold: int
    limit: int | None
    cache: GridCache
    progress: bool
    run: str

    def bar(self, dataset: str, split: str, suffix: str = "") -> str:
        return f"{self.run}: {dataset} {split}{suffix}"


def _pool_healthy(scorer: VolumeScorer, variants: list[PostProcessingVariant], context: _Context,
                  suffix: str) -> dict[PostProcessingVariant, VoxelPool]:
    """Brain voxels of the post-processed maps of the IXI validation volumes of the run's fold."""
    subjects = _subjects(context.data_root, "ixi", "val", context.modality, context.fold, context.limit)
    pools = {variant: VoxelPool.for_volumes(len(subjects), MODEL_GRID_SHAPE) for variant in variants}
    for subject in _track(subjects, context.bar("ixi", f"val fold {context.fold}", suffix), context.progress):
        volume = context.cache.load(subject)
        scored = scorer.score(volume)
        for variant, pool in pools.items():
            pool.add(variant.postprocessing.apply_to_residual(scored.anomaly_map, volume.mask), mask=volume.mask)
    return pools


def _pool_lesion_val(scorer: VolumeScorer, dataset: str, variants: list[PostProcessingVariant],
                     context: _Context, suffix: str) -> tuple[dict[PostProcessingVariant, VoxelPool], int]:
    """All voxels of the post-processed maps of a lesion set's validation split, per variant, and
    the number of volumes pooled (0 when no variant needs them)."""
    if not variants:
        return {}, 0
    subjects = _subjects(context.data_root, dataset, "val", context.modality, None, context.limit)
    pools = {variant: VoxelPool.for_volumes(len(subjects), MODEL_GRID_SHAPE) for variant in variants}
    for subject in _track(subjects, context.bar(dataset, "val", suffix), context.progress):
        volume = context.cache.load(subject)
        target = _target(volume, subject)
        scored = scorer.score(volume)
        for variant, pool in pools.items():
            pool.add(variant.postprocessing.apply_to_residual(scored.anomaly_map, volume.mask), target)
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

    def rescore(self, threshold: float, postprocessing: PostProcessing) -> Iterator[ConfusionCounts]:
        """Confusion counts of every kept volume binarised at ``threshold``, in the order added."""
        scores = self.pool.scores
        for start, stop, lesion in self._volumes:
            volume = np.zeros(math.prod(MODEL_GRID_SHAPE), dtype=scores.dtype)
            volume[self._positions[start:stop]] = scores[start:stop]
            target = np.zeros(volume.size, dtype=bool)
            target[lesion] = True
            prediction = postprocessing.apply_to_binary((volume > threshold).reshape(MODEL_GRID_SHAPE))
            yield confusion_counts(prediction, target.reshape(MODEL_GRID_SHAPE))


class _Densities:
    """Running sums of brain-intensity densities of inputs and reconstructions."""

    def __init__(self) -> None:
        self.input = np.zeros(_HISTOGRAM_BINS)
        self.reconstruction = np.zeros(_HISTOGRAM_BINS)
        self.edges = np.linspace(0.0, 1.0, _HISTOGRAM_BINS + 1)
        self.count = 0

    def add(self, image: np.ndarray, reconstruction: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
        """Add one pair of (X, Y, Z) volumes; returns its (kld, entropy_difference)."""
        comparison = compare_intensity_histograms(image, reconstruction, brain, bins=_HISTOGRAM_BINS)
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
    return mean_std(values, ddof=0)


class _TestSplit:
    """Scores the test volumes of one lesion set one at a time (see the module docstring)."""

    def __init__(self, pairs: tuple[_Pair, ...], thresholds: dict[_Pair, Threshold], n_volumes: int) -> None:
        self.pairs = pairs
        self.thresholds = thresholds
        self.full = pairs[0].variant
        self.histogram = ScoreHistogram()
        self.densities = _Densities()
        self.oracle_pairs = [pair for pair in pairs if pair.rule.source == "test"]
        self.archive = _OracleArchive(n_volumes) if self.oracle_pairs else None
        self.volumes: list[LesionVolume] = []

    def add(self, volume: GridVolume, target: np.ndarray, scored: ScoredVolume) -> None:
        maps = {variant: variant.postprocessing.apply_to_residual(scored.anomaly_map, volume.mask)
                for variant in dict.fromkeys(pair.variant for pair in self.pairs)}
        full = maps[self.full]
        segmentations = []
        for pair, threshold in self.thresholds.items():
            prediction = pair.variant.postprocessing.apply_to_binary(maps[pair.variant] > threshold.value)
            segmentations.append(Segmentation(pair.variant.label, pair.rule.label,
                                              confusion_counts(prediction, target)))
        ranking = ranking_scores(full, target)
        self.histogram.add(full, target, mask=volume.mask)
        if self.archive is not None:
            self.archive.add(full, target)
        l1 = kld = entropy_difference = None
        if scored.reconstruction is not None:
            l1 = lesion_l1(volume.image, scored.reconstruction, target, volume.mask)
            kld, entropy_difference = self.densities.add(volume.image, scored.reconstruction, volume.mask)
        self.volumes.append(LesionVolume(volume.name, int(np.count_nonzero(target)), ranking.average_precision,
                                         ranking.roc_auc, l1, kld, entropy_difference, tuple(segmentations)))

    def finish_oracle(self, where: str) -> dict[_Pair, Threshold]:
        """Choose the oracle thresholds on the archived test maps and add their segmentations."""
        chosen = {}
        for pair in self.oracle_pairs:
            threshold = _select(pair.rule, self.archive.pool, where)
            rescored = self.archive.rescore(threshold.value, pair.variant.postprocessing)
            self.volumes = [replace(record, segmentations=record.segmentations + (
                Segmentation(pair.variant.label, pair.rule.label, counts),))
                for record, counts in zip(self.volumes, rescored, strict=True)]
            chosen[pair] = threshold
        return chosen

    def result(self, dataset: str, modality: str, n_val: int, thresholds: dict[_Pair, Threshold],
               examples: tuple[ExampleSlice, ...]) -> SetResult:
        volumes = tuple(self.volumes)
        thresholded = []
        for pair in self.pairs:
            counts = [next(s.counts for s in record.segmentations
                           if s.threshold == pair.rule.label and s.postprocessing == pair.variant.label)
                      for record in volumes]
            total = ConfusionCounts(*(sum(getattr(c, name) for c in counts) for name in ("tp", "fp", "fn", "tn")))
            thresholded.append(ThresholdedScores(pair.variant.label, thresholds[pair], pair.rule.source,
                                                 mean_std([c.dice for c in counts], ddof=0), total.dice))
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
            volumes=volumes, densities=self.densities.mean(), examples=examples)


def _example_slices(scorer: VolumeScorer, subjects: list[Subject], volumes: Sequence[LesionVolume],
                    pair: _Pair, threshold: Threshold, context: _Context) -> tuple[ExampleSlice, ...]:
    """Score the best, median and worst volumes (headline Dice) again and keep one slice of each."""
    ranked = sorted((record for record in volumes if not math.isnan(record.dice(pair.rule.label))),
                    key=lambda record: record.dice(pair.rule.label), reverse=True)
    if not ranked:
        return ()
    roles: dict[int, list[str]] = {}
    for role, rank in zip(_EXAMPLE_ROLES, (0, len(ranked) // 2, len(ranked) - 1)):
        roles.setdefault(rank, []).append(role)
    by_name = {subject.name: subject for subject in subjects}
    examples = []
    for rank, names in roles.items():
        record, role = ranked[rank], "/".join(names)
        subject = by_name[record.name]
        volume = context.cache.load(subject)
        target = _target(volume, subject)
        scored = scorer.score(volume)
        postprocessing = pair.variant.postprocessing
        prediction = postprocessing.apply_to_binary(
            postprocessing.apply_to_residual(scored.anomaly_map, volume.mask) > threshold.value)
        weight = target if target.any() else volume.mask
        axial = int(np.argmax(weight.sum(axis=(0, 1))))
        reconstruction = None if scored.reconstruction is None else scored.reconstruction[..., axial]
        examples.append(ExampleSlice(role, record.name, record.dice(pair.rule.label), axial, volume.image[..., axial],
                                     reconstruction, scored.anomaly_map[..., axial], prediction[..., axial],
                                     target[..., axial]))
    return tuple(examples)


def _evaluate_set(scorer: VolumeScorer, dataset: str, pairs: tuple[_Pair, ...],
                  healthy_thresholds: dict[_Pair, Threshold], context: _Context, *, figures: bool,
                  suffix: str = "") -> SetResult:
    """Validation pools, thresholds, the streamed test split and (with ``figures``) the example slices."""
    pools, n_val = _pool_lesion_val(scorer, dataset, _variants_needing(pairs, "lesion-val"), context, suffix)
    thresholds = dict(healthy_thresholds)
    for pair in pairs:
        if pair.rule.source == "lesion-val":
            thresholds[pair] = _select(pair.rule, pools[pair.variant], f"the {dataset} validation split")
    del pools
    subjects = _subjects(context.data_root, dataset, "test", context.modality, None, context.limit)
    split = _TestSplit(pairs, {pair: thresholds[pair] for pair in pairs if pair in thresholds}, len(subjects))
    for subject in _track(subjects, context.bar(dataset, "test", suffix), context.progress):
        volume = context.cache.load(subject)
        split.add(volume, _target(volume, subject), scorer.score(volume))
    thresholds.update(split.finish_oracle(f"the {dataset} test split"))
    examples = _example_slices(scorer, subjects, split.volumes, pairs[0], thresholds[pairs[0]],
                               context) if figures else ()
    return split.result(dataset, context.modality, n_val, thresholds, examples)


def _healthy_thresholds(scorer: VolumeScorer, pairs: tuple[_Pair, ...], context: _Context,
                        suffix: str = "") -> dict[_Pair, Threshold]:
    variants = _variants_needing(pairs, "healthy-val")
    if not variants:
        return {}
    pools = _pool_healthy(scorer, variants, context, suffix)
    where = f"the ixi validation split of fold {context.fold}"
    return {pair: _select(pair.rule, pools[pair.variant], where) for pair in pairs if pair.rule.source == "healthy-val"}


def _evaluate_healthy(scorer: VolumeScorer, lpips: MedicalLpips | None, context: _Context) -> HealthyResult:
    """Reconstruction quality on the healthy IXI test split (one volume at a time)."""
    subjects = _subjects(context.data_root, "ixi", "test", context.modality, None, context.limit)
    densities = _Densities()
    volumes = []
    for subject in _track(subjects, context.bar("ixi", "test"), context.progress):
        volume = context.cache.load(subject)
        reconstruction = scorer.score(volume).reconstruction
        distance = None
        if lpips is not None:
            pair = [torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
                    for array in (volume.image, reconstruction)]
            distance = float(lpips.distance(*pair)[0])
        kld, entropy_difference = densities.add(volume.image, reconstruction, volume.mask)
        volumes.append(HealthyVolume(
            volume.name, structural_similarity(volume.image, reconstruction),
            peak_signal_noise_ratio(volume.image, reconstruction), l1_error(volume.image, reconstruction, volume.mask),
            distance, kld, entropy_difference))
    return HealthyResult(
        modality=context.modality, n=len(volumes), ssim=mean_std([v.ssim for v in volumes], ddof=0),
        psnr=mean_std([v.psnr for v in volumes], ddof=0), l1=mean_std([v.l1 for v in volumes], ddof=0),
        lpips=_optional_mean([v.lpips for v in volumes]), kld=mean_std([v.kld for v in volumes], ddof=0),
        entropy_difference=mean_std([v.entropy_difference for v in volumes], ddof=0), volumes=tuple(volumes),
        densities=densities.mean())


def _check_sets(sets: Sequence[str] | None, modality: str, run: str) -> tuple[str, ...]:
    if sets is None:
        return sets_for_modality(modality)
    if isinstance(sets, str) or not sets:
        raise ValueError(f"sets must be a non-empty list of lesion sets or None, got {sets!r}")
    for name in sets:
        if name not in DATASETS or DATASETS[name].healthy:
            raise ValueError(f"unknown lesion set {name!r}; choose from {', '.join(LESION_SETS)} (the healthy IXI "
                             "test split is always evaluated for reconstruction methods)")
        if DATASETS[name].eval_modality != modality:
            raise ValueError(f"set {name!r} is evaluated on {DATASETS[name].eval_modality}, but run {run!r} was "
                             f"trained on {modality}")
    return tuple(dict.fromkeys(sets))


def _check_levels(t_sweep: Sequence[int] | None) -> tuple[int, ...]:
    if t_sweep is None:
        return ()
    if isinstance(t_sweep, (str, int)) or not t_sweep or not all(
            isinstance(level, int) and not isinstance(level, bool) and level >= 1 for level in t_sweep):
        raise ValueError(f"t_sweep must be a non-empty list of ints >= 1 or None, got {t_sweep!r}")
    return tuple(sorted(set(t_sweep)))


def evaluate_method(method: AnomalyScorer, data_root: str | Path, *, name: str, modality: str, fold: int = 0,
                    group: str | None = None, method_name: str | None = None, sets: Sequence[str] | None = None,
                    thresholds: Sequence[str] = ("val-dice",), postprocessing: PostProcessing = PostProcessing(),
                    lpips: MedicalLpips | None = None, t_sweep: Sequence[int] | None = None, ablation: bool = True,
                    limit: int | None = None, cache_dir: str | Path | None = None,
                    normalise_on: NormaliseOn = "model_grid", progress: bool = True) -> RunResult:
    """Evaluate one built method with the full protocol (see the module docstring).

    Args:
        method: offers ``anomaly_map(volume) -> (96, 96, 50)`` scores >= 0; with
            ``reconstruct(volume) -> (96, 96, 50)`` it is a reconstruction method (anomaly map
            ``|x - x_rec|`` from one reconstruction, reconstruction quality on IXI); with
            ``reconstruct(volume, t_test=...)`` and ``levels()`` a diffusion method (t_test sweeps).
        data_root: the data directory (or its parent).
        name: the run's name in every output.
        modality: "t1" or "t2", the modality it was trained on.
        fold: the IXI fold it was trained on (0-4): its validation split gives healthy-fpr thresholds.
        group: the model it is a fold of (default ``name``); runs with one group are aggregated.
        method_name: the method's name (default the class name, lower case).
        sets: lesion sets (default those of ``modality``: t2 brats21, mslub; t1 atlas, wmh).
        thresholds: names from :data:`THRESHOLD_NAMES`, the headline first (oracle never headline).
        postprocessing: the full post-processing (paper order by default).
        lpips: the Med3D LPIPS, or None (LPIPS skipped, with a note).
        t_sweep: single noise levels to evaluate a diffusion method at, or None.
        ablation: also evaluate "without CC / MF / BE" (paper Table 4) from the same maps.
        limit: use only the first ``limit`` volumes of every split (quick looks), or None.
        cache_dir: on-disk cache of model-grid volumes, or None.
        normalise_on: where intensities are normalised, as the method was trained
            (:func:`~brainuad.data.grid.to_model_grid`).
        progress: show progress bars on stderr.

    Raises:
        ValueError: a bad argument. InputError / BrainUADError: missing or unusable data.
    """
    if not isinstance(method, AnomalyScorer):
        raise ValueError(f"method must offer anomaly_map(volume), got {type(method).__name__}")
    if modality not in ("t1", "t2"):
        raise ValueError(f"modality must be 't1' or 't2', got {modality!r}")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold <= 4:
        raise ValueError(f"fold must be an int in 0..4, got {fold!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1 or None, got {limit!r}")
    if not isinstance(postprocessing, PostProcessing):
        raise ValueError(f"postprocessing must be a PostProcessing, got {type(postprocessing).__name__}")
    chosen_sets = _check_sets(sets, modality, name)
    levels = _check_levels(t_sweep)
    if isinstance(method, NoiseLevelReconstructor):
        for level in levels:
            method.levels(t_test=level)
    rules = threshold_rules(thresholds)
    variants = postprocessing_variants(postprocessing, ablation)
    pairs = _pairs(rules, variants)
    # volumes are read once per split: the cache keeps no copies in memory, so memory stays flat
    cache = GridCache(cache_dir, normalise_on=normalise_on, in_memory=False)
    context = _Context(resolve_data_root(data_root), modality, fold, limit, cache, progress, name)
    scorer = volume_scorer(method)
    notes = []
    healthy_thresholds = _healthy_thresholds(scorer, pairs, context)
    results = tuple(_evaluate_set(scorer, dataset, pairs, healthy_thresholds, context, figures=True)
                    for dataset in chosen_sets)
    healthy = None
    if isinstance(scorer, ResidualScorer):
        healthy = _evaluate_healthy(scorer, lpips, context)
        if lpips is None:
            notes.append(LPIPS_SKIPPED)
    else:
        notes.append(f"{name}: no reconstruct(): reconstruction quality (Table 2), l1 and histograms skipped")
    sweep, default_levels = _sweep(method, name, levels, rules[0], variants[0], results, context, notes)
    return RunResult(name=name, group=group or name, method=method_name or type(method).__name__.lower(),
                     modality=modality, fold=fold, test_levels=default_levels,
                     thresholds=tuple(rule.label for rule in rules), postprocessing=postprocessing,
                     variants=tuple(v.label for v in variants),
                     sets=results, healthy=healthy, sweep=sweep, notes=tuple(notes))


def _sweep(method: AnomalyScorer, name: str, levels: tuple[int, ...], headline: ThresholdRule,
           full: PostProcessingVariant, results: tuple[SetResult, ...], context: _Context,
           notes: list[str]) -> tuple[tuple[SweepPoint, ...], tuple[int, ...] | None]:
    """The t_test sweep (reusing the main results at the method's own single level) and the
    method's default test levels."""
    if not isinstance(method, NoiseLevelReconstructor):
        if levels:
            notes.append(f"{name}: not a diffusion method: t_test sweep skipped")
        return (), None
    default = tuple(method.levels())
    pairs = (_Pair(full, headline),)
    points = []
    for level in levels:
        if default == (level,):
            points.extend(SweepPoint(level, result) for result in results)
            continue
        scorer = ResidualScorer(method, t_test=level)
        suffix = f" (t_test={level})"
        healthy_thresholds = _healthy_thresholds(scorer, pairs, context, suffix)
        points.extend(SweepPoint(level, _evaluate_set(scorer, result.dataset, pairs, healthy_thresholds, context,
                                                      figures=False, suffix=suffix)) for result in results)
    return tuple(points), default


# --------------------------------------------------------------------------------------------
# Several runs: grouping into folds of one model
# --------------------------------------------------------------------------------------------


def summarise(runs: Sequence[RunResult], notes: Sequence[str] = ()) -> EvaluationSummary:
    """Group runs into models (equal ``group``), in the order first given, folds sorted.

    Args:
        runs: evaluated runs, all with the same thresholds and post-processing.
        notes: extra notes for the outputs.

    Raises:
        ValueError: no runs, runs evaluated differently, or two runs of one group with one fold.
    """
    if not runs:
        raise ValueError("runs must hold at least one RunResult")
    first = runs[0]
    for run in runs[1:]:
        if (run.thresholds, run.postprocessing, run.variants) != (first.thresholds, first.postprocessing,
                                                                   first.variants):
            raise ValueError(f"runs {first.name!r} and {run.name!r} were evaluated with different thresholds or "
                             f"post-processing variants")
    grouped: dict[str, list[RunResult]] = {}
    for run in runs:
        members = grouped.setdefault(run.group, [])
        twin = next((member for member in members if member.fold == run.fold), None)
        if twin is not None:
            raise ValueError(f"runs {twin.name!r} and {run.name!r} are the same model and fold {run.fold}")
        members.append(run)
    groups = tuple(GroupResult(label, members[0].method, members[0].modality,
                               tuple(sorted(members, key=lambda run: run.fold))) for label, members in grouped.items())
    all_notes = [*notes, *(note for run in runs for note in run.notes)]
    return EvaluationSummary(groups=groups, thresholds=first.thresholds, headline=first.thresholds[0],
                             postprocessing=first.postprocessing, variants=first.variants, conventions=CONVENTIONS,
                             notes=tuple(dict.fromkeys(all_notes)))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _model_settings(config) -> dict[str, Any]:
    """The config values that identify a model: all but ``data.fold`` and :data:`EXECUTION_KEYS`."""
    flat = _flatten(config.model_dump(mode="json"))
    return {key: value for key, value in flat.items() if key != "data.fold" and key not in EXECUTION_KEYS}


def _group_labels(configs: Sequence[Any]) -> list[str]:
    """A label per run: the method, with the settings telling apart models of one method and
    modality, and the modality when several are compared."""
    settings = [_model_settings(config) for config in configs]
    modalities = {config.data.modality for config in configs}
    labels = []
    for config, setting in zip(configs, settings):
        rivals = [other for other, cfg in zip(settings, configs)
                  if cfg.method == config.method and cfg.data.modality == config.data.modality]
        differing = sorted(key for key in setting
                           if any(json.dumps(other.get(key)) != json.dumps(setting[key]) for other in rivals))
        label = config.method
        if differing:
            label += " [" + ", ".join(f"{key}={json.dumps(setting[key])}" for key in differing) + "]"
        if len(modalities) > 1:
            label += f" ({config.data.modality.upper()})"
        labels.append(label)
    return labels


def _run_config(run_dir: Path):
    """The run's config, checked before any evaluation starts (the weights are read later)."""
    from brainuad.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from brainuad.config import load_config

    if not run_dir.is_dir():
        raise InputError(run_dir, "run directory not found")
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(run_dir, f"no {CONFIG_FILE} in the run directory", "is this a brainuad training run?")
    if not (run_dir / WEIGHTS_FILE).is_file():
        raise InputError(run_dir, f"no {WEIGHTS_FILE} in the run directory", "has its training finished?")
    config = load_config(run_dir / CONFIG_FILE)
    if config.method == "spark":
        raise InputError(run_dir, "is a SparK pre-training run, not an anomaly detector")
    return config


def _run_names(run_dirs: Sequence[Path]) -> list[str]:
    names = [run_dir.name for run_dir in run_dirs]
    return [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, run_dirs)]


def evaluate_runs(run_dirs: Sequence[str | Path], data_root: str | Path, out_dir: str | Path, *,
                  sets: Sequence[str] | None = None, thresholds: Sequence[str] = ("val-dice",),
                  postprocessing: PostProcessing = PostProcessing(), lpips_weights: str | Path | None = None,
                  t_sweep: Sequence[int] | None = None, ablation: bool = True, limit: int | None = None,
                  device: str = "cpu", cache_dir: str | Path | None = None,
                  progress: bool = True) -> EvaluationSummary:
    """Evaluate trained run directories and write every output into ``out_dir``.

    Every run's config is read first (a bad run directory fails before any work); then the runs
    are loaded and evaluated one at a time (:func:`evaluate_method`), grouped into folds of one
    model (configs equal but for ``data.fold`` and :data:`EXECUTION_KEYS`) and written with
    :func:`write_evaluation`. Each run directory then gets its headline thresholds in
    ``RUN/thresholds.json`` (:func:`write_run_thresholds`), for ``brainuad predict``.

    Args:
        run_dirs: training run directories (config.yaml + model.safetensors).
        data_root: the data directory (or its parent).
        out_dir: where summary.json, per_volume.csv, tables/ and report.html go (created).
        sets: lesion sets (default: those of each run's modality).
        thresholds, postprocessing, t_sweep, ablation, limit, cache_dir, progress: as
            :func:`evaluate_method`.
        lpips_weights: a Med3D weights file for LPIPS, or None (skipped, with a note).
        device: where the models (and LPIPS) run.

    Raises:
        ValueError: a bad argument. InputError / BrainUADError: a bad run directory, missing data, or
            another process writing into ``out_dir`` or a run directory (:class:`~brainuad.lock.FolderLock`).
    """
    if isinstance(run_dirs, (str, Path)) or not run_dirs:
        raise ValueError(f"run_dirs must be a non-empty list of run directories, got {run_dirs!r}")
    paths = [Path(run_dir) for run_dir in run_dirs]
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise ValueError(f"run_dirs names a run directory twice: {[str(p) for p in paths]}")
    threshold_rules(thresholds)
    _check_levels(t_sweep)
    configs = [_run_config(path) for path in paths]
    names = _run_names(paths)
    for path, name, config in zip(paths, names, configs):
        try:
            _check_sets(sets, config.data.modality, name)
        except ValueError as error:
            raise InputError(path, str(error)) from None
        timesteps = config.diffusion.timesteps if isinstance(config, DIFFUSION_RUN_CONFIGS) else None
        for level in _check_levels(t_sweep) if timesteps is not None else ():  # others: skipped, with a note
            if not 1 <= level <= timesteps:
                raise InputError(path, f"t_test {level} lies outside the 1..{timesteps} levels of "
                                       "its diffusion schedule")
    root = resolve_data_root(data_root)
    labels = _group_labels(configs)
    with contextlib.ExitStack() as locks:  # one writer per folder: the output and each run's thresholds.json
        locks.enter_context(FolderLock(out_dir, "writing an evaluation"))
        for path in paths:
            locks.enter_context(FolderLock(path, "being evaluated"))
        return _evaluate_locked(paths, names, labels, configs, root, Path(out_dir), sets=sets, thresholds=thresholds,
                                postprocessing=postprocessing, lpips_weights=lpips_weights, t_sweep=t_sweep,
                                ablation=ablation, limit=limit, device=device, cache_dir=cache_dir, progress=progress)


def _evaluate_locked(paths: list[Path], names: list[str], labels: list[str], configs: list, root: Path, out_dir: Path,
                     *, sets: Sequence[str] | None, thresholds: Sequence[str], postprocessing: PostProcessing,
                     lpips_weights: str | Path | None, t_sweep: Sequence[int] | None, ablation: bool,
                     limit: int | None, device: str, cache_dir: str | Path | None,
                     progress: bool) -> EvaluationSummary:
    """:func:`evaluate_runs` once its arguments are checked and its folders locked."""
    from brainuad.checkpoint import load_run

    lpips = MedicalLpips(lpips_weights, device=device) if lpips_weights is not None else None
    results = []
    for path, name, label, config in zip(paths, names, labels, configs):
        _, method = load_run(path, device)
        results.append(evaluate_method(
            method, root, name=name, modality=config.data.modality, fold=config.data.fold, group=label,
            method_name=config.method, sets=sets, thresholds=thresholds, postprocessing=postprocessing, lpips=lpips,
            t_sweep=t_sweep, ablation=ablation, limit=limit, cache_dir=cache_dir,
            normalise_on=config.data.normalise_on, progress=progress))
        del method
    summary = summarise(results)
    files = write_evaluation(summary, out_dir)
    for path, result in zip(paths, results):
        write_run_thresholds(path, run_thresholds(result, files.summary.resolve()))
    return summary


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationFiles:
    """The files :func:`write_evaluation` wrote."""

    summary: Path
    per_volume: Path
    tables: tuple[Path, ...]
    report: Path



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


PER_VOLUME_COLUMNS = ("group", "run", "fold", "set", "split", "t_test", "volume", "lesion_voxels", "postprocessing",
                      "threshold", "threshold_value", "dice", "tp", "fp", "fn", "auprc_volume", "auroc_volume",
                      "l1_lesion", "l1_healthy", "l1_ratio", "kld", "entropy_difference", "ssim", "psnr", "l1",
                      "lpips")


def _lesion_rows(run: RunResult, result: SetResult, t_test: int | None) -> Iterator[dict[str, Any]]:
    values = {scores.threshold.strategy + "/" + scores.postprocessing: scores.threshold.value
              for scores in result.thresholded}
    for volume in result.volumes:
        shared = {"group": run.group, "run": run.name, "fold": run.fold, "set": result.dataset, "split": "test",
                  "t_test": t_test, "volume": volume.name, "lesion_voxels": volume.lesion_voxels,
                  "auprc_volume": volume.average_precision, "auroc_volume": volume.roc_auc,
                  "kld": volume.kld, "entropy_difference": volume.entropy_difference}
        if volume.l1 is not None:
            shared.update(l1_lesion=volume.l1.unhealthy, l1_healthy=volume.l1.healthy, l1_ratio=volume.l1.ratio)
        for segmentation in volume.segmentations:
            counts = segmentation.counts
            yield {**shared, "postprocessing": segmentation.postprocessing, "threshold": segmentation.threshold,
                   "threshold_value": values[segmentation.threshold + "/" + segmentation.postprocessing],
                   "dice": segmentation.dice, "tp": counts.tp, "fp": counts.fp, "fn": counts.fn}


def per_volume_rows(summary: EvaluationSummary) -> Iterator[dict[str, Any]]:
    """The rows of per_volume.csv: one per (run, set, volume, post-processing, threshold) of the
    lesion sets (``t_test`` empty for the method's own levels, else the sweep level) and one per
    healthy IXI test volume."""
    for run in summary.runs:
        for result in run.sets:
            yield from _lesion_rows(run, result, None)
        for point in run.sweep:
            yield from _lesion_rows(run, point.result, point.t_test)
        if run.healthy is not None:
            for volume in run.healthy.volumes:
                yield {"group": run.group, "run": run.name, "fold": run.fold, "set": "ixi", "split": "test",
                       "volume": volume.name, "ssim": volume.ssim, "psnr": volume.psnr, "l1": volume.l1,
                       "lpips": volume.lpips, "kld": volume.kld, "entropy_difference": volume.entropy_difference}


def _csv_text(rows: Iterable[dict[str, Any]]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, PER_VOLUME_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return stream.getvalue()


def _table_file_name(table: Table) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "-" for char in table.key).strip("-")


def write_evaluation(summary: EvaluationSummary, out_dir: str | Path) -> EvaluationFiles:
    """Write ``summary.json``, ``per_volume.csv``, ``tables/<table>.{md,csv,tex}``, ``tables.md`` (all
    tables) and the self-contained ``report.html`` into ``out_dir``, each atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not an output folder")
    tables = build_tables(summary)
    written = []
    for table in tables:
        stem = out / "tables" / _table_file_name(table)
        written += [write_text(stem.with_suffix(".md"), table.to_markdown()),
                    write_text(stem.with_suffix(".csv"), table.to_csv()),
                    write_text(stem.with_suffix(".tex"), table.to_latex())]
    written.append(write_text(out / "tables.md", "\n\n".join(table.to_markdown() for table in tables) + "\n"))
    payload = {"summary": to_jsonable(summary), "tables": to_jsonable(tables)}
    summary_path = write_text(out / SUMMARY_FILE, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    per_volume = write_text(out / PER_VOLUME_FILE, _csv_text(per_volume_rows(summary)))
    report = write_text(out / REPORT_FILE, render_report(summary, tables))
    return EvaluationFiles(summary_path, per_volume, tuple(written), report)


# --------------------------------------------------------------------------------------------
# Thresholds kept for prediction
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunThreshold:
    """The headline threshold an evaluation chose for one lesion set of a run.

    ``brainuad predict`` binarises a scan's residual with it, after the same post-processing.

    Attributes:
        dataset: the lesion set (``brats21``, ...).
        strategy: the threshold's label (``val-dice``, ``healthy-fpr-5%``, ...); never the oracle.
        source: what it was chosen on: "lesion-val" (the set's validation split) or "healthy-val".
        value: binarise the post-processed residual with ``R > value`` (residual units, [0, 1]).
        postprocessing: the post-processing the residuals had before thresholding.
        n_val: volumes of the set's validation split pooled (0 for a healthy-val threshold).
        evaluation: the ``summary.json`` of the evaluation it comes from.
    """

    dataset: str
    strategy: str
    source: PoolSource
    value: float
    postprocessing: PostProcessing
    n_val: int
    evaluation: Path


def run_thresholds(run: RunResult, evaluation: Path) -> tuple[RunThreshold, ...]:
    """The headline threshold (full post-processing) of every lesion set of an evaluated run.

    Args:
        run: the evaluated run.
        evaluation: the ``summary.json`` the run was written to.
    """
    records = []
    for result in run.sets:
        scores = result.scores(run.thresholds[0], FULL)
        records.append(RunThreshold(result.dataset, scores.threshold.strategy, scores.source,
                                    float(scores.threshold.value), run.postprocessing, result.n_val,
                                    Path(evaluation)))
    return tuple(records)


def _ordered_by_set(records: Iterable[RunThreshold]) -> tuple[RunThreshold, ...]:
    by_set = {record.dataset: record for record in records}
    return tuple(by_set[name] for name in LESION_SETS if name in by_set)


def write_run_thresholds(run_dir: str | Path, records: Sequence[RunThreshold]) -> Path:
    """Store ``records`` in ``RUN/thresholds.json``, atomically.

    Sets already stored and not in ``records`` are kept (an evaluation of some sets only does not
    drop the others); the file lists the sets in the protocol's order (:data:`LESION_SETS`), so the
    first one is the run's first set. A stored file that cannot be read is replaced.
    """
    run_dir = Path(run_dir)
    try:
        kept = read_run_thresholds(run_dir)
    except InputError:
        kept = ()
    merged = _ordered_by_set([*kept, *records])
    payload = {"written_by": "brainuad evaluate", "thresholds": to_jsonable(merged)}
    return write_text(run_dir / RUN_THRESHOLDS_FILE, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _threshold_record(entry: Any) -> RunThreshold:
    postprocessing = PostProcessing(**entry["postprocessing"])
    value = float(entry["value"])
    if not math.isfinite(value) or entry["source"] not in ("lesion-val", "healthy-val"):
        raise ValueError(f"value {entry['value']!r} or source {entry['source']!r} is not a validation threshold")
    return RunThreshold(str(entry["dataset"]), str(entry["strategy"]), entry["source"], value, postprocessing,
                        int(entry["n_val"]), Path(entry["evaluation"]))


def read_run_thresholds(run_dir: str | Path) -> tuple[RunThreshold, ...]:
    """The thresholds stored in ``RUN/thresholds.json`` in the protocol's set order; empty when
    the run was never evaluated.

    Raises:
        InputError: the file exists but is not a thresholds file brainuad wrote.
    """
    path = Path(run_dir) / RUN_THRESHOLDS_FILE
    if not path.is_file():
        return ()
    try:
        return _ordered_by_set(_threshold_record(entry) for entry in json.loads(path.read_text())["thresholds"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InputError(path, f"is not a readable thresholds file ({type(error).__name__}: {error})",
                         "run brainuad evaluate on the run again to rewrite it") from None


def summary_thresholds(summary_path: str | Path, run_dir: str | Path) -> tuple[RunThreshold, ...]:
    """The headline thresholds of one run in an evaluation's ``summary.json``.

    The run is found by its name in the summary: its directory name (or its full path, where two
    evaluated runs shared a directory name).

    Raises:
        InputError: the file is not an evaluation summary, or it holds no run of that name.
    """
    summary_path, run_dir = Path(summary_path), Path(run_dir)
    if not summary_path.is_file():
        raise InputError(summary_path, "evaluation summary not found", "give the summary.json brainuad evaluate wrote")
    try:
        runs = [run for group in json.loads(summary_path.read_text())["summary"]["groups"] for run in group["runs"]]
        names = [run["name"] for run in runs]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InputError(summary_path, f"is not a brainuad evaluation summary ({type(error).__name__}: {error})") \
            from None
    matches = [run for run in runs if run["name"] == run_dir.name
               or (os.sep in run["name"] and Path(run["name"]).resolve() == run_dir.resolve())]
    if not matches:
        raise InputError(summary_path, f"holds no run named {run_dir.name!r} (runs: {', '.join(names)})",
                         "a threshold belongs to the model it was chosen for")
    run = matches[0]
    try:
        headline = run["thresholds"][0]
        records = []
        for result in run["sets"]:
            scores = next(entry for entry in result["thresholded"]
                          if entry["postprocessing"] == FULL and entry["threshold"]["strategy"] == headline)
            records.append(_threshold_record({
                "dataset": result["dataset"], "strategy": headline, "source": scores["source"],
                "value": scores["threshold"]["value"], "postprocessing": run["postprocessing"],
                "n_val": result["n_val"], "evaluation": str(summary_path.resolve())}))
    except (ValueError, TypeError, KeyError, StopIteration) as error:
        raise InputError(summary_path, f"run {run['name']!r}: no readable headline threshold "
                                       f"({type(error).__name__}: {error})") from None
    return _ordered_by_set(records)
