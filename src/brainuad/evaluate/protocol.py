"""The evaluation protocol of one method: a built detector in, a typed :class:`RunResult` out.

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
4. **Figures.** The axial slice with the most lesion of the best, median and worst test volumes
   (headline Dice): the best and worst are kept while the split is scored, the median volume is
   scored again at the end.

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
directory, workers, accelerator) are folds of one model and are aggregated; different models are
compared side by side (see :mod:`~brainuad.evaluate.runs` and :mod:`~brainuad.evaluate.tables`).

Modules: :mod:`~brainuad.evaluate.rules` (which binarisations), :mod:`~brainuad.evaluate.engine`
(streaming one split), this module (one method, and its t_test sweep), :mod:`~brainuad.evaluate.runs`
(run directories, folds of one model), :mod:`~brainuad.evaluate.outputs` (files) and
:mod:`~brainuad.evaluate.run_thresholds` (the thresholds kept for ``brainuad predict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from brainuad.checks import check_int, check_optional_int
from brainuad.data.cache import GridCache
from brainuad.data.grid import NormaliseOn
from brainuad.data.layout import DATASETS, LESION_SETS, resolve_data_root, sets_for_modality
from brainuad.evaluate.engine import SplitContext, choose_healthy_thresholds, evaluate_healthy, evaluate_set
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import MedicalLpips
from brainuad.evaluate.results import RunResult, SetResult, SweepPoint
from brainuad.evaluate.rules import (
    Binarisation,
    PostProcessingVariant,
    ThresholdRule,
    binarisations,
    postprocessing_variants,
    threshold_rules,
)
from brainuad.evaluate.scoring import (
    AnomalyScorer,
    NoiseLevelReconstructor,
    ResidualScorer,
    read_contrasts,
    volume_scorer,
)
from brainuad.evaluate.stream import Shard

__all__ = ["LPIPS_SKIPPED", "check_levels", "check_sets", "evaluate_method"]

LPIPS_SKIPPED = "LPIPS skipped: no --lpips-weights given"


def check_sets(sets: Sequence[str] | None, modality: str, run: str) -> tuple[str, ...]:
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


def check_levels(t_sweep: Sequence[int] | None) -> tuple[int, ...]:
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
                    normalise_on: NormaliseOn = "model_grid", workers: int = 0, shard: Shard | None = None,
                    progress: bool = True) -> RunResult:
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
        workers: DataLoader workers reading volumes ahead of the model (0: none).
        shard: this process's share of an evaluation run by several processes
            (:mod:`~brainuad.evaluate.process_group`), or None; the result is the same.
        progress: show progress bars on stderr.

    Raises:
        ValueError: a bad argument. InputError / BrainUADError: missing or unusable data.
    """
    if not isinstance(method, AnomalyScorer):
        raise ValueError(f"method must offer anomaly_map(volume), got {type(method).__name__}")
    if modality not in ("t1", "t2"):
        raise ValueError(f"modality must be 't1' or 't2', got {modality!r}")
    check_int("fold", fold, 0, 4)
    check_optional_int("limit", limit)
    if not isinstance(postprocessing, PostProcessing):
        raise ValueError(f"postprocessing must be a PostProcessing, got {type(postprocessing).__name__}")
    chosen_sets = check_sets(sets, modality, name)
    levels = check_levels(t_sweep)
    if isinstance(method, NoiseLevelReconstructor):
        for level in levels:
            method.levels(t_test=level)
    rules = threshold_rules(thresholds)
    variants = postprocessing_variants(postprocessing, ablation)
    pairs = binarisations(rules, variants)
    # volumes are read once per split: the cache keeps no copies in memory, so memory stays flat
    cache = GridCache(cache_dir, normalise_on=normalise_on, in_memory=False)
    context = SplitContext(resolve_data_root(data_root), modality, fold, limit, cache, progress, name,
                           workers=workers, shard=shard, contrasts=read_contrasts(method))
    scorer = volume_scorer(method)
    notes = []
    healthy_thresholds = choose_healthy_thresholds(scorer, pairs, context)
    notes += [f"{name}: {threshold.note}" for threshold in healthy_thresholds.values() if threshold.note]
    results = tuple(evaluate_set(scorer, dataset, pairs, healthy_thresholds, context, figures=True)
                    for dataset in chosen_sets)
    healthy = None
    if isinstance(scorer, ResidualScorer):
        healthy = evaluate_healthy(scorer, lpips, context, healthy_thresholds)
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
           full: PostProcessingVariant, results: tuple[SetResult, ...], context: SplitContext,
           notes: list[str]) -> tuple[tuple[SweepPoint, ...], tuple[int, ...] | None]:
    """The t_test sweep (reusing the main results at the method's own single level) and the
    method's default test levels."""
    if not isinstance(method, NoiseLevelReconstructor):
        if levels:
            notes.append(f"{name}: not a diffusion method: t_test sweep skipped")
        return (), None
    default = tuple(method.levels())
    pairs = (Binarisation(full, headline),)
    points: list[SweepPoint] = []
    for level in levels:
        if default == (level,):
            points.extend(SweepPoint(level, result) for result in results)
            continue
        scorer = ResidualScorer(method, t_test=level)
        suffix = f" (t_test={level})"
        healthy_thresholds = choose_healthy_thresholds(scorer, pairs, context, suffix)
        points.extend(SweepPoint(level, evaluate_set(scorer, result.dataset, pairs, healthy_thresholds, context,
                                                      figures=False, suffix=suffix)) for result in results)
    return tuple(points), default
