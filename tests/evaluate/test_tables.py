"""Tables from hand-made results (no data, no model): layout, aggregation, marks and formats.

``make_run`` / ``make_summary`` are shared with test_report.py.
"""

import csv
import io

import numpy as np
import pytest
from scipy import stats

from brainuad.evaluate.bootstrap import bootstrap_interval
from brainuad.evaluate.lesions import FROC_FACTORS
from brainuad.evaluate.metrics import ConfusionCounts
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import LesionL1
from brainuad.evaluate.results import (
    ExampleSlice,
    FrocPoint,
    HealthyResult,
    HealthyVolume,
    IntensityDensities,
    LesionCounts,
    LesionVolume,
    RunResult,
    Segmentation,
    SetResult,
    SizeBinRecall,
    SweepPoint,
    ThresholdedScores,
)
from brainuad.evaluate.runs import summarise
from brainuad.evaluate.statistics import mean_std
from brainuad.evaluate.tables import (
    Cell,
    Column,
    ablation_table,
    build_tables,
    difference_table,
    interval_table,
    reconstruction_table,
    segmentation_table,
    size_table,
    sweep_table,
)
from brainuad.evaluate.thresholds import Threshold

VARIANTS = ("full", "without MF")


FOUND = LesionCounts(lesions=2, detected=1, false_positives=3)
RECALL = mean_std([0.5, 1.0], ddof=0)
FALSE_POSITIVES = mean_std([2.0, 4.0], ddof=0)


def counts_with_dice(dice):
    """Confusion counts of 100 lesion voxels with the given Dice (to 0.01)."""
    tp = int(round(dice * 100))
    return ConfusionCounts(tp=tp, fp=100 - tp, fn=100 - tp, tn=1000)


def make_set(dataset, modality, dice, *, ablation_shift=-0.1, reconstruction=True, examples=False, pooled=0.5):
    """A SetResult whose volume i has Dice ``dice[i]`` (full) and ``dice[i] + ablation_shift`` (without MF)."""
    volumes = []
    for index, value in enumerate(dice):
        segmentations = (Segmentation("full", "val-dice", counts_with_dice(value), FOUND),
                         Segmentation("without MF", "val-dice", counts_with_dice(value + ablation_shift), FOUND))
        volumes.append(LesionVolume(f"{dataset}-{index}", 100, value / 2, 0.9,
                                    LesionL1(0.2, 0.1, 2.0 + value) if reconstruction else None,
                                    0.1 if reconstruction else None, 0.05 if reconstruction else None,
                                    segmentations))
    thresholded = tuple(
        ThresholdedScores(variant, Threshold("val-dice", 0.1, counts_with_dice(0.5)), "lesion-val",
                          mean_std([v.dice("val-dice", variant) for v in volumes], ddof=0), 0.5, RECALL,
                          FALSE_POSITIVES)
        for variant in VARIANTS)
    shape = (8, 8)
    example = ExampleSlice("best/median/worst", volumes[0].name, dice[0], 3, np.full(shape, 0.5, np.float32),
                           np.full(shape, 0.4, np.float32) if reconstruction else None,
                           np.linspace(0, 1, 64, dtype=np.float32).reshape(shape), np.eye(8, dtype=bool),
                           np.eye(8, dtype=bool))
    edges = np.linspace(0, 1, 501)
    density = np.ones(500)
    optional = (lambda value: value) if reconstruction else (lambda value: None)
    return SetResult(
        dataset=dataset, modality=modality, n_val=3, n_test=len(dice), n_empty_target=0, thresholded=thresholded,
        average_precision=mean_std([v.average_precision for v in volumes], ddof=0),
        roc_auc=mean_std([0.9] * len(dice), ddof=0), pooled_average_precision=pooled, pooled_roc_auc=0.9,
        n_clipped=0, l1_lesion=optional(mean_std([0.2] * len(dice), ddof=0)),
        l1_healthy=optional(mean_std([0.1] * len(dice), ddof=0)),
        l1_ratio=optional(mean_std([v.l1.ratio for v in volumes], ddof=0) if reconstruction else None),
        kld=optional(mean_std([0.1] * len(dice), ddof=0)), entropy_difference=optional(mean_std([0.05] * len(dice))),
        froc=tuple(FrocPoint(factor, 0.1 * factor, 4 * len(dice), round(len(dice) * min(4, 3 / factor)),
                             round(len(dice) * 3 / factor), len(dice)) for factor in FROC_FACTORS),
        recall_by_size=(SizeBinRecall(0.0, 0.1, 0, 0), SizeBinRecall(0.1, 1.0, 2 * len(dice), len(dice)),
                        SizeBinRecall(1.0, 10.0, 2 * len(dice), 2 * len(dice)),
                        SizeBinRecall(10.0, float("inf"), 0, 0)),
        volumes=tuple(volumes), densities=IntensityDensities(edges, density, density) if reconstruction else None,
        examples=(example,) if examples else ())


def make_healthy(ssim, lpips=None):
    volumes = tuple(HealthyVolume(f"ixi-{i}", value, 30.0 + i, 0.01, lpips, 0.2, 0.1) for i, value in enumerate(ssim))
    edges = np.linspace(0, 1, 501)
    return HealthyResult("t2", len(volumes), mean_std(ssim, ddof=0), mean_std([v.psnr for v in volumes], ddof=0),
                         mean_std([0.01] * len(volumes), ddof=0),
                         None if lpips is None else mean_std([lpips] * len(volumes), ddof=0),
                         mean_std([0.2] * len(volumes), ddof=0), mean_std([0.1] * len(volumes), ddof=0), (),
                         volumes, IntensityDensities(edges, np.ones(500), np.ones(500)))


def make_run(group, fold, dice, *, reconstruction=True, examples=False, sweep=False, pooled=0.5, ssim=None):
    sets = (make_set("brats21", "t2", dice, reconstruction=reconstruction, examples=examples, pooled=pooled),
            make_set("mslub", "t2", [value / 2 for value in dice], reconstruction=reconstruction, examples=examples,
                     pooled=pooled))
    healthy = make_healthy(ssim or [0.9, 0.92, 0.94]) if reconstruction else None
    points = ()
    if sweep:
        points = tuple(SweepPoint(level, make_set(name, "t2", [value * level / 500 for value in dice]))
                       for level in (250, 500) for name in ("brats21", "mslub"))
    return RunResult(name=f"{group}-f{fold}", group=group, method=group, modality="t2", fold=fold,
                     test_levels=(500,) if reconstruction else None, thresholds=("val-dice",),
                     postprocessing=PostProcessing(), variants=VARIANTS, sets=sets, healthy=healthy, sweep=points,
                     notes=("LPIPS skipped: no --lpips-weights given",) if reconstruction else ())


def make_summary(examples=False, sweep=False):
    """Model A (2 folds, Dice about 0.55) clearly above model B (1 fold, about 0.3) on 12 volumes."""
    rng = np.random.default_rng(0)
    a0 = list(np.round(0.6 + 0.05 * rng.standard_normal(12), 2))
    a1 = list(np.round(0.5 + 0.05 * rng.standard_normal(12), 2))
    b0 = list(np.round(0.3 + 0.03 * rng.standard_normal(12), 2))
    return summarise([make_run("A", 0, a0, examples=examples, sweep=sweep),
                      make_run("B", 0, b0, reconstruction=False, examples=examples),
                      make_run("A", 1, a1, examples=examples, sweep=sweep)])


@pytest.fixture(scope="module")
def summary():
    return make_summary()


def test_segmentation_table_has_a_row_per_model_and_columns_per_set(summary):
    table = segmentation_table(summary, "val-dice")
    assert [row.labels for row in table.rows] == [("A", "2"), ("B", "1")]
    per_set = ("Dice [%] ↑", "AUPRC [%] ↑", "AUPRC pooled [%] ↑", "Lesion recall [%] ↑", "FP components ↓")
    assert [column.name for column in table.columns] == [f"{group} {title}" for group in ("BraTS21 (T2)", "MSLUB (T2)")
                                                          for title in per_set]
    markdown = table.to_markdown().splitlines()
    assert markdown[0] == "### Table 3: Segmentation (threshold: val-dice)"
    assert sum(line.startswith("| A |") for line in markdown) == 1
    assert sum(line.startswith("| B |") for line in markdown) == 1
    assert len(markdown[2].split("|")) == len(markdown[4].split("|")) == 2 + 2 + 10
    recall, false_positives = table.rows[0].cells[3:5]  # each fold's set: recall 0.75, 3 FP components
    assert recall.text(table.columns[3]) == "75.00 ± 0.00" and false_positives.value.mean == 3.0


def test_folds_are_aggregated_as_mean_and_sample_std(summary):
    table = segmentation_table(summary, "val-dice")
    cell = table.rows[0].cells[0]
    folds = [run.set_result("brats21").scores("val-dice").dice.mean for run in summary.groups[0].runs]
    assert cell.value.n == 2
    assert cell.value.mean == pytest.approx(np.mean(folds))
    assert cell.value.std == pytest.approx(np.std(folds, ddof=1))
    assert cell.text(table.columns[0]) == f"{np.mean(folds) * 100:.2f} ± {np.std(folds, ddof=1) * 100:.2f}"
    single = table.rows[1].cells[0]
    assert single.value.n == 1 and "±" not in single.text(table.columns[0])


def test_best_model_is_bold_and_starred_when_significant(summary):
    table = segmentation_table(summary, "val-dice")
    dice_a, dice_b = table.rows[0].cells[0], table.rows[1].cells[0]
    assert dice_a.best and dice_a.significant and not dice_b.best
    comparison = next(c for c in table.comparisons if c.column == "BraTS21 (T2) Dice [%] ↑")
    assert comparison.best == "A" and comparison.significant and comparison.untested == ()
    # The paired test is over volumes, A's value per volume averaged over its two folds: check it
    # against scipy directly.
    runs_a = summary.groups[0].runs
    a = [np.mean([run.set_result("brats21").volumes[i].dice("val-dice") for run in runs_a]) for i in range(12)]
    b = [v.dice("val-dice") for v in summary.groups[1].runs[0].set_result("brats21").volumes]
    reference = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                       permutation_type="samples", n_resamples=10_000, vectorized=True,
                                       rng=np.random.default_rng(0))
    assert comparison.tests[0].test.p_value == pytest.approx(reference.pvalue)
    assert comparison.tests[0].test.paired and comparison.tests[0].other == "B"
    assert "**" in table.to_markdown() and "\\*" in table.to_markdown()


def test_pooled_metric_without_enough_folds_is_untested(summary):
    table = segmentation_table(summary, "val-dice")
    index = [column.title for column in table.columns].index("AUPRC pooled [%] ↑")
    comparison = next(c for c in table.comparisons if c.column == table.columns[index].name)
    assert comparison.untested == ("B",) and not comparison.significant  # B has one fold: no unpaired test
    assert table.rows[0].cells[index].best is not table.rows[1].cells[index].best


def test_close_models_get_no_star():
    dice = [0.5, 0.52, 0.48, 0.51]
    close = summarise([make_run("A", 0, dice), make_run("B", 0, [value + 0.005 for value in dice])])
    cell = segmentation_table(close, "val-dice").rows[1].cells[0]
    assert cell.best and not cell.significant


def test_reconstruction_table_only_lists_reconstruction_methods(summary):
    table = reconstruction_table(summary)
    assert [row.labels[0] for row in table.rows] == ["A"]
    titles = [column.name for column in table.columns]
    assert titles == ["IXI (T2) SSIM [%] ↑", "IXI (T2) PSNR [dB] ↑", "IXI (T2) l1-error (e-3) ↓", "IXI (T2) KLD ↓",
                      "BraTS21 (T2) l1-ratio ↑", "MSLUB (T2) l1-ratio ↑"]
    assert "LPIPS skipped: no --lpips-weights given" in table.notes
    assert table.rows[0].cells[0].text(table.columns[0]) == "92.00 ± 0.00"
    with_lpips = summarise([make_run("A", 0, [0.5, 0.6]), make_run("B", 0, [0.5, 0.6])])
    runs = [RunResult(**{**run.__dict__, "healthy": make_healthy([0.9, 0.8], lpips=2e-4)})
            for run in with_lpips.runs]
    table = reconstruction_table(summarise(runs))
    assert "IXI (T2) LPIPS (e-3) ↓" in [column.name for column in table.columns]


def test_ablation_table_shows_differences_to_the_full_post_processing(summary):
    table = ablation_table(summary)
    assert [row.labels for row in table.rows] == [("A", "2", "full"), ("A", "2", "without MF"),
                                                  ("B", "1", "full"), ("B", "1", "without MF")]
    full, without = table.rows[2].cells[0], table.rows[3].cells[0]
    assert full.difference is None
    assert without.difference == pytest.approx(-0.1)
    assert without.text(table.columns[0]).endswith("(-10.00)")
    rows = list(csv.reader(io.StringIO(table.to_csv())))
    assert rows[0][:7] == ["Model", "Folds", "Post-processing", "BraTS21 (T2) Dice [%] ↑ mean",
                           "BraTS21 (T2) Dice [%] ↑ std", "BraTS21 (T2) Dice [%] ↑ n",
                           "BraTS21 (T2) Dice [%] ↑ difference"]
    assert float(rows[4][6]) == pytest.approx(-10.0)
    assert float(rows[3][3]) == pytest.approx(full.value.mean * 100, rel=1e-10)


def test_sweep_table_and_no_sweep():
    summary = make_summary(sweep=True)
    table = sweep_table(summary)
    assert [row.labels for row in table.rows] == [("A", "2", "250"), ("A", "2", "500")]
    low, high = table.rows[0].cells[0].value.mean, table.rows[1].cells[0].value.mean
    assert low == pytest.approx(high / 2, abs=0.01)
    assert sweep_table(make_summary()) is None


def test_latex_is_escaped_and_uses_booktabs(summary):
    latex = segmentation_table(summary, "val-dice").to_latex()
    assert latex.startswith("\\begin{table}") and "\\toprule" in latex and "\\bottomrule" in latex
    assert "\\multicolumn{5}{c}{BraTS21 (T2)}" in latex and "\\cmidrule(lr){3-7}" in latex
    assert "Dice [\\%] $\\uparrow$" in latex and "$\\pm$" in latex and "\\textbf{" in latex and "$^{*}$" in latex
    assert " % " not in latex and "±" not in latex


def test_html_table_marks_best_and_significance(summary):
    html = segmentation_table(summary, "val-dice").to_html()
    assert html.startswith("<table><caption>Table 3: Segmentation (threshold: val-dice)</caption>")
    assert '<th colspan="5">BraTS21 (T2)</th>' in html and "<strong>" in html and "<sup>*</sup>" in html


def test_interval_table_bootstraps_the_fold_averaged_volumes(summary):
    table = interval_table(summary, "val-dice")
    assert table.key == "table3-intervals-val-dice" and "95% bootstrap intervals" in table.title
    assert [column.title for column in table.columns[:3]] == ["Dice [%] ↑", "AUPRC [%] ↑", "Lesion recall [%] ↑"]
    model_a = summary.groups[0]
    dice = {}
    for run in model_a.runs:
        for volume in run.set_result("brats21").volumes:
            dice.setdefault(volume.name, []).append(volume.dice("val-dice"))
    expected = bootstrap_interval([np.mean(values) for values in dice.values()])
    cell = table.rows[0].cells[0]
    assert cell.interval == expected and cell.interval.low < cell.interval.mean < cell.interval.high
    assert cell.text(table.columns[0]) == expected.format(2, 100.0)
    header = table.to_csv().splitlines()[0].split(",")
    assert header[2:6] == ["BraTS21 (T2) Dice [%] ↑ mean", "BraTS21 (T2) Dice [%] ↑ low",
                           "BraTS21 (T2) Dice [%] ↑ high", "BraTS21 (T2) Dice [%] ↑ n"]


def test_difference_table_sits_beside_the_permutation_tests(summary):
    table3 = segmentation_table(summary, "val-dice")
    table = difference_table(table3)
    dice_rows = [row for row in table.rows if row.labels[0] == "BraTS21 (T2) Dice [%] ↑"]
    assert [row.labels[1:3] for row in dice_rows] == [("A", "B")]
    pair = next(comparison for comparison in table3.comparisons if comparison.column == "BraTS21 (T2) Dice [%] ↑")
    test = pair.tests[0]
    assert test.difference.low > 0 and test.test.p_value < 0.05  # A is clearly better: both agree
    assert dice_rows[0].labels[3] == test.difference.format(2, 100.0, signed=True)
    assert dice_rows[0].labels[4] == f"{test.test.p_value:.4f}"
    pooled = [row for row in table.rows if "pooled" in row.labels[0]]
    assert pooled == []  # pooled AUPRC has no per-volume values: no bootstrap difference
    assert "| Column | Best | Other |" in table.to_markdown()


def test_size_table_shows_recall_per_bin_and_nothing_for_empty_bins(summary):
    table = size_table(summary)
    titles = [column.title for column in table.columns[:4]]
    assert titles == ["Recall < 0.1 ml [%] ↑", "Recall 0.1-1 ml [%] ↑", "Recall 1-10 ml [%] ↑",
                      "Recall >= 10 ml [%] ↑"]
    cells = table.rows[0].cells[:4]
    assert [cell.text(column) for cell, column in zip(cells, table.columns)] == ["–", "50.00 ± 0.00",
                                                                              "100.00 ± 0.00", "–"]


def test_oracle_table_is_labelled_and_unmarked():
    runs = []
    for run in make_summary().runs:
        sets = tuple(SetResult(**{**result.__dict__, "thresholded": result.thresholded + (ThresholdedScores(
            "full", Threshold("oracle", 0.2, counts_with_dice(0.7)), "test", mean_std([0.7, 0.8], ddof=0), 0.7, RECALL,
            FALSE_POSITIVES),)})
            for result in run.sets)
        runs.append(RunResult(**{**run.__dict__, "sets": sets, "thresholds": ("val-dice", "oracle")}))
    oracle_summary = summarise(runs)
    keys = [table.key for table in build_tables(oracle_summary)]
    assert keys == ["table2", "table3-val-dice", "table3-oracle", "table3-intervals-val-dice",
                    "table3-differences-val-dice", "table-lesion-size", "table4"]
    table = segmentation_table(oracle_summary, "oracle")
    assert "upper bound" in table.title and table.comparisons == ()
    assert not any(cell.best or cell.significant for row in table.rows for cell in row.cells)


def test_cell_text():
    column = Column("BraTS21 (T2)", "Dice [%] ↑", 100.0, 2, "higher")
    assert Cell(None).text(column) == "–"
    assert Cell(mean_std([0.5], ddof=1)).text(column) == "50.00"
    assert Cell(mean_std([0.5, 0.7], ddof=1)).text(column) == "60.00 ± 14.14"
    assert Cell(mean_std([0.5], ddof=1), difference=-1e-9).text(column) == "50.00 (+0.00)"
