"""The paper's tables from evaluation results, as Markdown, CSV, LaTeX and HTML (paper §5).

- **Table 2**, reconstruction quality: on the healthy IXI test split of each modality SSIM [%],
  PSNR [dB], LPIPS (e-3, only when computed), l1 error (e-3) and the histogram ``kld``; the
  l1-ratio on every lesion set. Reconstruction methods only.
- **Table 3**, one per threshold label: Dice [%], the authors' per-volume AUPRC [%] and the pooled
  AUPRC [%] on every lesion set. The oracle's table says it is an upper bound.
- **Table 4**, post-processing ablation: Dice [%] of the full post-processing and without
  connected components (CC), median filter (MF) or brain erosion (BE), with the difference to
  the full row in brackets (headline threshold).
- **t_test sweep**: Dice [%] at each single test noise level (headline threshold, full
  post-processing).

Rows are models (groups of folds). A cell is the mean ± sample std over the folds (the mean
alone for one fold), in the column's display unit. In Tables 2 and 3 the best model of each
column is bold, and it gets a * when it is better than every other model with p < 0.05 in a
two-sided permutation test of the difference of means (10,000 permutations, seed 0; see
:mod:`~brainuad.evaluate.statistics`): paired over the test volumes for per-volume metrics (each
volume's value averaged over a model's folds, volumes matched by name, pairs with an undefined
value dropped), unpaired over the fold values for pooled metrics (at least 2 folds each;
and at least 2 common volumes for a paired test; otherwise the pair is listed as untested and
there is no *). Every test is kept in the table's
``comparisons`` (and summary.json).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from brainuad.evaluate.bootstrap import CONFIDENCE, N_RESAMPLES, bootstrap_interval, paired_bootstrap_difference
from brainuad.evaluate.results import (
    EvaluationSummary,
    GroupResult,
    HealthyThresholdCheck,
    LesionVolume,
    RunResult,
    SetResult,
)
from brainuad.evaluate.statistics import (
    MeanStd,
    mean_std,
    paired_permutation_test,
    unpaired_permutation_test,
)
from brainuad.evaluate.table_format import Better, Cell, Column, Comparison, PairTest, Row, Table

__all__ = ["ALPHA", "CONVENTIONS", "DATASET_NAMES", "Cell", "Column", "Comparison", "PairTest", "Row", "Table",
           "build_tables", "dataset_title"]

ALPHA = 0.05
N_PERMUTATIONS = 10_000
DATASET_NAMES = {"ixi": "IXI", "brats21": "BraTS21", "mslub": "MSLUB", "atlas": "ATLAS", "wmh": "WMH"}
"""The paper's name of each data set (the tables' column groups)."""
_FULL = "full"

DICE_CONVENTION = (
    "Dice per test volume, averaged over volumes: a volume whose ground truth and prediction are both empty is "
    "undefined and left out (n_excluded); an empty ground truth with any predicted voxel counts as 0.")
AUPRC_CONVENTION = (
    "AUPRC (average precision) per volume: over all voxels of the 96 x 96 x 50 grid, background included, "
    "averaged over volumes (the authors' way); pooled: over the brain voxels of the whole test split.")
LESION_CONVENTION = (
    "Lesion recall: per test volume, the ground truth's 26-connected components touched by the binarised map "
    "(full post-processing), averaged over volumes with a lesion; FP components: predicted components touching no "
    "lesion, per volume.")
CONVENTIONS = (
    DICE_CONVENTION,
    AUPRC_CONVENTION,
    LESION_CONVENTION,
    "Per-volume means carry the population std over volumes (ddof 0); tables show mean ± sample std over folds "
    "(ddof 1), or the mean alone for a single fold.",
    "l1-ratio: per volume l1 error inside the lesions / l1 error in the brain outside them, averaged over volumes.",
    "kld: true KL(p_input || p_reconstruction) of 500-bin brain-intensity histograms; entropy_difference: the "
    "paper's printed 'KLD' formula (a difference of entropies).",
    "SSIM (3-D, 7-voxel windows) and PSNR over the whole grid, l1 error inside the brain mask, on the healthy IXI "
    "test split.",
)
"""How the numbers are defined; written into summary.json, the tables' notes and the report."""


def dataset_title(dataset: str, modality: str) -> str:
    """The paper's name of a data set with its modality, e.g. ``BraTS21 (T2)``."""
    return f"{DATASET_NAMES.get(dataset, dataset)} ({modality.upper()})"


# --------------------------------------------------------------------------------------------
# Reading metrics from results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Metric:
    """A column and how to read it: one value per run, and (for paired tests) per volume."""

    column: Column
    per_run: Callable[[RunResult], float | None]
    per_volume: Callable[[RunResult], dict[str, float | None]] | None


def _fold_values(metric: _Metric, group: GroupResult) -> list[float]:
    """The finite values of the group's folds."""
    values = [metric.per_run(run) for run in group.runs]
    return [value for value in values if value is not None and math.isfinite(value)]


def _aggregate(metric: _Metric, group: GroupResult) -> MeanStd | None:
    """Mean and sample std over the folds (None when no fold measured it)."""
    values = _fold_values(metric, group)
    return mean_std(values, ddof=1) if values else None


def _volume_means(metric: _Metric, group: GroupResult) -> dict[str, float]:
    """Each volume's value averaged over the group's folds (finite values only)."""
    if metric.per_volume is None:
        raise ValueError(f"the {metric.column.name} column has no per-volume values")
    collected: dict[str, list[float]] = {}
    for run in group.runs:
        for name, value in metric.per_volume(run).items():
            if value is not None and math.isfinite(value):
                collected.setdefault(name, []).append(value)
    return {name: float(np.mean(values)) for name, values in collected.items()}


def _test(metric: _Metric, first: GroupResult, second: GroupResult) -> PairTest | None:
    """Two-sided permutation test of ``first`` against ``second`` (see the module docstring), with the
    paired bootstrap interval of the difference for per-volume metrics."""
    if metric.per_volume is not None:
        a, b = _volume_means(metric, first), _volume_means(metric, second)
        common = [name for name in a if name in b]
        if len(common) < 2:
            return None
        pairs = [a[name] for name in common], [b[name] for name in common]
        return PairTest(second.label, paired_permutation_test(*pairs, n_permutations=N_PERMUTATIONS, seed=0),
                        paired_bootstrap_difference(*pairs))
    folds_a, folds_b = _fold_values(metric, first), _fold_values(metric, second)
    if len(folds_a) < 2 or len(folds_b) < 2:
        return None
    return PairTest(second.label, unpaired_permutation_test(folds_a, folds_b, n_permutations=N_PERMUTATIONS, seed=0))


def _compared_row_cells(metrics: Sequence[_Metric], groups: Sequence[GroupResult]
                        ) -> tuple[list[list[Cell]], list[Comparison]]:
    """Cells of one row per group with best and significance marks, and the comparisons."""
    values = [[_aggregate(metric, group) for metric in metrics] for group in groups]
    marks = [[(False, False)] * len(metrics) for _ in groups]
    comparisons = []
    for j, metric in enumerate(metrics):
        measured = {i: value for i, value in enumerate(row[j] for row in values) if value is not None and value.n > 0}
        candidates = list(measured)
        if metric.column.better is None or len(candidates) < 2:
            continue
        sign = 1.0 if metric.column.better == "higher" else -1.0
        best = max(candidates, key=lambda i: sign * measured[i].mean)
        tests, untested = [], []
        for other in candidates:
            if other == best:
                continue
            test = _test(metric, groups[best], groups[other])
            if test is None:
                untested.append(groups[other].label)
            else:
                tests.append(test)
        significant = not untested and all(pair.test.p_value < ALPHA for pair in tests)
        marks[best][j] = (True, significant)
        comparisons.append(Comparison(metric.column.name, groups[best].label, tuple(tests), tuple(untested),
                                      significant))
    cells = [[Cell(values[i][j], best=marks[i][j][0], significant=marks[i][j][1]) for j in range(len(metrics))]
             for i in range(len(groups))]
    return cells, comparisons


def _set_metric(dataset: str, modality: str, title: str, scale: float, better: Better,
                per_set: Callable[[SetResult], float | None],
                per_volume: Callable[[LesionVolume], float | None] | None) -> _Metric:
    """A metric of one lesion set, read from each run's :class:`SetResult` (and its volumes)."""

    def run_value(run: RunResult) -> float | None:
        result = run.set_result(dataset)
        return None if result is None else per_set(result)

    def volume_values(run: RunResult) -> dict[str, float | None]:
        result = run.set_result(dataset)
        if result is None or per_volume is None:  # per_volume None: the metric has no volume_values
            return {}
        return {volume.name: per_volume(volume) for volume in result.volumes}

    return _Metric(Column(dataset_title(dataset, modality), title, scale, 2, better), run_value,
                   volume_values if per_volume is not None else None)


def _healthy_metric(modality: str, attribute: str, title: str, scale: float, decimals: int) -> _Metric:
    """A reconstruction metric on the healthy IXI test split of one modality (lower or higher is
    better by metric: SSIM and PSNR higher, the rest lower)."""

    def run_value(run: RunResult) -> float | None:
        if run.healthy is None or run.modality != modality or getattr(run.healthy, attribute) is None:
            return None
        return getattr(run.healthy, attribute).mean

    def volume_values(run: RunResult) -> dict[str, float | None]:
        if run.healthy is None or run.modality != modality:
            return {}
        return {volume.name: getattr(volume, attribute) for volume in run.healthy.volumes}

    better: Better = "higher" if attribute in ("ssim", "psnr") else "lower"
    return _Metric(Column(dataset_title("ixi", modality), title, scale, decimals, better), run_value, volume_values)


def _group_rows(groups: Sequence[GroupResult], cells: list[list[Cell]]) -> tuple[Row, ...]:
    return tuple(Row((group.label, str(len(group.folds))), tuple(row)) for group, row in zip(groups, cells))


def _common_notes(significance: bool) -> list[str]:
    notes = ["± is the sample standard deviation over folds (Folds = their number; one fold: the mean alone)."]
    if significance:
        notes.append(f"Bold: best per column. *: better than every other model, two-sided permutation test "
                     f"p < {ALPHA} ({N_PERMUTATIONS} permutations; paired over test volumes, unpaired over folds "
                     f"for pooled AUPRC).")
    return notes


# --------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------


def reconstruction_table(summary: EvaluationSummary) -> Table | None:
    """Table 2 (None when no model reconstructs)."""
    groups = [group for group in summary.groups if any(run.healthy is not None for run in group.runs)]
    if not groups:
        return None
    metrics = []
    for modality in dict.fromkeys(modality for group in groups for modality in group.modalities):
        runs = [run for group in groups for run in group.runs if run.modality == modality]
        metrics += [_healthy_metric(modality, "ssim", "SSIM [%] ↑", 100.0, 2),
                    _healthy_metric(modality, "psnr", "PSNR [dB] ↑", 1.0, 2)]
        if any(run.healthy is not None and run.healthy.lpips is not None for run in runs):
            metrics.append(_healthy_metric(modality, "lpips", "LPIPS (e-3) ↓", 1e3, 2))
        metrics += [_healthy_metric(modality, "l1", "l1-error (e-3) ↓", 1e3, 2),
                    _healthy_metric(modality, "kld", "KLD ↓", 1.0, 3)]
    for dataset in summary.datasets:
        metrics.append(_set_metric(dataset, summary.set_modality(dataset), "l1-ratio ↑", 1.0, "higher",
                                   lambda result: None if result.l1_ratio is None else result.l1_ratio.mean,
                                   lambda volume: None if volume.l1 is None else volume.l1.ratio))
    cells, comparisons = _compared_row_cells(metrics, groups)
    notes = _common_notes(True) + [
        "SSIM and PSNR over the whole 96 x 96 x 50 grid; l1-error inside the brain mask; KLD: true KL divergence of "
        "the input and reconstruction brain-intensity histograms (500 bins).",
        "l1-ratio: l1 error inside the lesions / outside them (brain), per test volume, averaged."]
    notes += [note for note in summary.notes if note.startswith("LPIPS")]
    return Table("table2", "Table 2: Reconstruction quality (healthy IXI test split) and l1-ratio on the lesion sets",
                 ("Model", "Folds"), tuple(metric.column for metric in metrics), _group_rows(groups, cells),
                 tuple(notes), tuple(comparisons))


def _dice_metric(dataset: str, modality: str, threshold: str, postprocessing: str) -> _Metric:
    return _set_metric(dataset, modality, "Dice [%] ↑", 100.0, "higher",
                       lambda result: result.scores(threshold, postprocessing).dice.mean,
                       lambda volume: volume.dice(threshold, postprocessing))


def segmentation_table(summary: EvaluationSummary, threshold: str) -> Table:
    """Table 3 for one threshold label (the oracle's without best or significance marks)."""
    oracle = threshold == "oracle"
    metrics = []
    for dataset in summary.datasets:
        modality = summary.set_modality(dataset)
        metrics += [_dice_metric(dataset, modality, threshold, _FULL),
                    _set_metric(dataset, modality, "AUPRC [%] ↑", 100.0, "higher",
                                lambda result: result.average_precision.mean, lambda volume: volume.average_precision),
                    _set_metric(dataset, modality, "AUPRC pooled [%] ↑", 100.0, "higher",
                                lambda result: result.pooled_average_precision, None),
                    _set_metric(dataset, modality, "Lesion recall [%] ↑", 100.0, "higher",
                                lambda result: result.scores(threshold).lesion_recall.mean,
                                lambda volume: volume.segmentation(threshold).lesion_counts.recall),
                    _set_metric(dataset, modality, "FP components ↓", 1.0, "lower",
                                lambda result: result.scores(threshold).false_positive_components.mean,
                                lambda volume: float(volume.segmentation(threshold).lesion_counts.false_positives))]
    groups = summary.groups
    if oracle:
        cells = [[Cell(_aggregate(metric, group)) for metric in metrics] for group in groups]
        comparisons: list[Comparison] = []
        title = ("Table 3: Segmentation (threshold: oracle -- chosen on the test split itself: an upper bound, "
                 "not a result)")
    else:
        cells, comparisons = _compared_row_cells(metrics, groups)
        title = f"Table 3: Segmentation (threshold: {threshold})"
    notes = _common_notes(not oracle) + [DICE_CONVENTION, AUPRC_CONVENTION, LESION_CONVENTION]
    return Table(f"table3-{threshold.replace('%', 'pct')}", title, ("Model", "Folds"),
                 tuple(metric.column for metric in metrics), _group_rows(groups, cells), tuple(notes),
                 tuple(comparisons))


def _per_volume_metrics(dataset: str, modality: str, threshold: str) -> list[_Metric]:
    """The headline figures of a set that have a value per test volume: Dice, AUPRC, lesion recall."""
    return [_dice_metric(dataset, modality, threshold, _FULL),
            _set_metric(dataset, modality, "AUPRC [%] ↑", 100.0, "higher", lambda result: result.average_precision.mean,
                        lambda volume: volume.average_precision),
            _set_metric(dataset, modality, "Lesion recall [%] ↑", 100.0, "higher",
                        lambda result: result.scores(threshold).lesion_recall.mean,
                        lambda volume: volume.segmentation(threshold).lesion_counts.recall)]


def interval_table(summary: EvaluationSummary, threshold: str) -> Table:
    """Dice, AUPRC and lesion recall with bootstrap confidence intervals over the test volumes."""
    metrics = [metric for dataset in summary.datasets
               for metric in _per_volume_metrics(dataset, summary.set_modality(dataset), threshold)]
    rows = []
    for group in summary.groups:
        cells = tuple(Cell(None, interval=bootstrap_interval(list(_volume_means(metric, group).values())))
                      for metric in metrics)
        rows.append(Row((group.label, str(len(group.folds))), cells))
    notes = (f"mean [low, high]: the mean over test volumes and its {CONFIDENCE:.0%} percentile bootstrap interval "
             f"({N_RESAMPLES} resamples of the volumes, seed 0); each volume's value is first averaged over the "
             "model's folds, so the interval is over volumes, not folds.",
             DICE_CONVENTION, AUPRC_CONVENTION, LESION_CONVENTION)
    return Table(f"table3-intervals-{threshold.replace('%', 'pct')}",
                 f"Table 3 with {CONFIDENCE:.0%} bootstrap intervals over test volumes (threshold: {threshold})",
                 ("Model", "Folds"), tuple(metric.column for metric in metrics), tuple(rows), notes)


def difference_table(table: Table) -> Table | None:
    """The best model of each per-volume column of a Table 3 against every other: the paired
    bootstrap interval of the difference beside the permutation test's p (None without such tests)."""
    columns = {column.name: column for column in table.columns}
    rows = []
    for comparison in table.comparisons:
        column = columns[comparison.column]
        for pair in comparison.tests:
            if pair.difference is None:
                continue
            rows.append(Row((comparison.column, comparison.best, pair.other,
                             pair.difference.format(column.decimals, column.scale, signed=True),
                             f"{pair.test.p_value:.4f}"), ()))
    if not rows:
        return None
    notes = (f"Difference: mean over the common test volumes of (best - other), in the column's unit, with its "
             f"{CONFIDENCE:.0%} paired bootstrap interval ({N_RESAMPLES} resamples of the volumes, seed 0); p: the "
             f"two-sided paired permutation test ({N_PERMUTATIONS} permutations) behind the table's * marks.",)
    return Table(table.key.replace("table3-", "table3-differences-", 1),
                 f"Differences to the best model, {table.title.split('(', 1)[-1].rstrip(')')}",
                 ("Column", "Best", "Other", f"Difference [{CONFIDENCE:.0%} CI]", "p (permutation)"), (),
                 tuple(rows), notes)


def _bin_recall(index: int) -> Callable[[SetResult], float | None]:
    def recall(result: SetResult) -> float | None:
        return result.recall_by_size[index].recall

    return recall


def calibration_table(summary: EvaluationSummary) -> Table | None:
    """The thresholds chosen on healthy validation volumes (healthy-fpr, conformal-*), measured on the
    healthy IXI test split: realised false-positive rate and flagged volume (None without them)."""
    labels = list(dict.fromkeys(check.label for run in summary.runs if run.healthy is not None
                                for check in run.healthy.threshold_checks))
    if not labels:
        return None
    metrics = []
    for modality in dict.fromkeys(run.modality for run in summary.runs if run.healthy is not None):
        for label in labels:
            group = f"{dataset_title('ixi', modality)} {label}"
            metrics += [_Metric(Column(group, title, scale, decimals, None), _check_value(modality, label, read), None)
                        for title, scale, decimals, read in (
                            ("FPR [%]", 100.0, 3, lambda check: check.false_positive_rate.mean),
                            ("flagged [ml]", 1.0, 2, lambda check: check.flagged_ml.mean),
                            ("P(flagged > bound) [%]", 100.0, 1, lambda check: check.exceeding))]
    cells = [[Cell(_aggregate(metric, group)) for metric in metrics] for group in summary.groups]
    notes = _common_notes(False) + [
        "Each threshold chosen on the healthy IXI validation volumes of the run's fold, applied to the healthy IXI "
        "test split: FPR: the fraction of a volume's brain voxels above it (full post-processing, before small "
        "components are removed), per volume, averaged; flagged: the same voxels in ml; P(flagged > bound): the "
        "fraction of test volumes over a conformal-volume threshold's tolerated ml.",
        "healthy-fpr-A%: A % of the pooled validation voxels above it; conformal-fpr-A%: expected FPR of a new healthy "
        "scan <= A % (conformal risk control, volumes as units); conformal-volume-A%-Vml: P(more than V ml flagged) "
        "<= A % (split conformal). See docs/metrics.md."]
    notes += [note for note in summary.notes if "cannot bound" in note]
    return Table("table-healthy-thresholds", "Thresholds from healthy volumes, measured on the healthy IXI test split",
                 ("Model", "Folds"), tuple(metric.column for metric in metrics), _group_rows(summary.groups, cells),
                 tuple(notes))


def _check_value(modality: str, label: str, read: Callable[[HealthyThresholdCheck], float | None]
                 ) -> Callable[[RunResult], float | None]:
    def run_value(run: RunResult) -> float | None:
        if run.healthy is None or run.modality != modality:
            return None
        check = next((check for check in run.healthy.threshold_checks if check.label == label), None)
        return None if check is None else read(check)

    return run_value


def size_table(summary: EvaluationSummary) -> Table | None:
    """Lesion recall per lesion-size bin at the headline threshold (None without lesions)."""
    metrics = []
    for dataset in summary.datasets:
        modality = summary.set_modality(dataset)
        bins = next(result.recall_by_size for run in summary.runs if (result := run.set_result(dataset)) is not None)
        for index, size_bin in enumerate(bins):
            metrics.append(_set_metric(dataset, modality, f"Recall {size_bin.label} [%] ↑", 100.0, "higher",
                                       _bin_recall(index), None))
    if not metrics:
        return None
    cells = [[Cell(_aggregate(metric, group)) for metric in metrics] for group in summary.groups]
    notes = _common_notes(False) + [
        "Recall of the lesions (26-connected ground-truth components) whose volume lies in the bin [low, high) ml, "
        "pooled over the test volumes of each fold; a lesion counts as found when the binarised map (full "
        "post-processing) touches it; – where a fold has no lesion of that size.", LESION_CONVENTION]
    return Table("table-lesion-size", f"Lesion recall by lesion size (threshold: {summary.headline})",
                 ("Model", "Folds"), tuple(metric.column for metric in metrics), _group_rows(summary.groups, cells),
                 tuple(notes))


def ablation_table(summary: EvaluationSummary) -> Table | None:
    """Table 4 (None without ablation variants)."""
    if len(summary.variants) < 2:
        return None
    datasets = [(dataset, summary.set_modality(dataset)) for dataset in summary.datasets]
    rows = []
    for group in summary.groups:
        full = [_aggregate(_dice_metric(dataset, modality, summary.headline, _FULL), group)
                for dataset, modality in datasets]
        for variant in summary.variants:
            cells = []
            for (dataset, modality), reference in zip(datasets, full):
                value = _aggregate(_dice_metric(dataset, modality, summary.headline, variant), group)
                difference = None
                if variant != _FULL and value is not None and reference is not None:
                    difference = value.mean - reference.mean
                cells.append(Cell(value, difference))
            rows.append(Row((group.label, str(len(group.folds)), variant), tuple(cells)))
    columns = tuple(_dice_metric(dataset, modality, summary.headline, _FULL).column for dataset, modality in datasets)
    notes = _common_notes(False) + [
        "Each variant has its own threshold, chosen the same way on the same maps; in brackets: the difference to "
        "the full post-processing.", "CC: connected-component removal; MF: median filter; BE: brain-mask erosion."]
    return Table("table4", f"Table 4: Post-processing ablation, Dice (threshold: {summary.headline})",
                 ("Model", "Folds", "Post-processing"), columns, tuple(rows), tuple(notes))


def _sweep_metric(dataset: str, modality: str, threshold: str, level: int) -> _Metric:
    """Dice of one set at one sweep level, read from each run's sweep."""

    def run_value(run: RunResult) -> float | None:
        result = run.sweep_result(level, dataset)
        return None if result is None else result.scores(threshold, _FULL).dice.mean

    return _Metric(Column(dataset_title(dataset, modality), "Dice [%] ↑", 100.0, 2, "higher"), run_value, None)


def sweep_table(summary: EvaluationSummary) -> Table | None:
    """Dice at each single test noise level (None without a sweep)."""
    levels = summary.sweep_levels
    if not levels:
        return None
    datasets = [(dataset, summary.set_modality(dataset)) for dataset in summary.datasets]
    rows = []
    for group in summary.groups:
        if not any(run.sweep for run in group.runs):
            continue
        for level in levels:
            cells = tuple(Cell(_aggregate(_sweep_metric(dataset, modality, summary.headline, level), group))
                          for dataset, modality in datasets)
            rows.append(Row((group.label, str(len(group.folds)), str(level)), cells))
    columns = tuple(_sweep_metric(dataset, modality, summary.headline, levels[0]).column
                    for dataset, modality in datasets)
    notes = _common_notes(False) + ["Each level is one single-step reconstruction from x_t; the threshold is "
                                    "chosen again at each level on the validation split."]
    return Table("table-t-test", f"Dice against the test noise level t_test (threshold: {summary.headline}, full "
                 "post-processing)", ("Model", "Folds", "t_test"), columns, tuple(rows), tuple(notes))


def build_tables(summary: EvaluationSummary) -> tuple[Table, ...]:
    """Table 2 (if any model reconstructs), Table 3 per threshold label (headline first), the
    headline's bootstrap intervals and differences to the best model, lesion recall by size, the
    healthy thresholds' realised false positives (with such thresholds), Table 4 (with the
    ablation) and the t_test sweep table (with a sweep)."""
    segmentation = [segmentation_table(summary, label) for label in summary.thresholds]
    tables = [reconstruction_table(summary), *segmentation, interval_table(summary, summary.headline),
              difference_table(segmentation[0]), size_table(summary), calibration_table(summary),
              ablation_table(summary), sweep_table(summary)]
    return tuple(table for table in tables if table is not None)
