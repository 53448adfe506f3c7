"""Tables, figures and CSV rows of the domain-shift study (:mod:`~brainuad.evaluate.domain_shift`).

Runs with one ``group`` are folds of one model: a cell is the mean ± sample std over its folds of
the per-run means (the mean alone for one fold), as in the paper's other tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from brainuad.evaluate.domain_shift import DomainShiftRun, ShiftPoint
from brainuad.evaluate.report import plot_over_folds
from brainuad.evaluate.statistics import MeanStd, mean_std
from brainuad.evaluate.tables import Cell, Column, Row, Table, dataset_title

__all__ = ["SHIFT_CSV_COLUMNS", "domain_shift_tables", "histogram_figure", "metrics_figure", "reconstructions_figure",
           "shift_groups", "shift_rows"]

SHIFT_CSV_COLUMNS = ("group", "run", "fold", "contrast", "t_test", "width", "set", "n", "l1", "ssim", "psnr", "kld",
                     "entropy_difference", "dice")


def shift_groups(runs: Sequence[DomainShiftRun]) -> list[tuple[str, list[DomainShiftRun]]]:
    """Runs grouped into models by ``group``, in the order first given, folds sorted."""
    grouped: dict[str, list[DomainShiftRun]] = {}
    for run in runs:
        grouped.setdefault(run.group, []).append(run)
    return [(label, sorted(members, key=lambda run: (run.modality, run.fold))) for label, members in grouped.items()]


def _over_folds(values: Sequence[float | None]) -> MeanStd | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return mean_std(finite, ddof=1) if finite else None


def _conditions(runs: Sequence[DomainShiftRun]) -> list[tuple[float, int, float]]:
    return list(dict.fromkeys((p.contrast, p.t_test, p.width) for run in runs for p in run.points))


def _sets(runs: Sequence[DomainShiftRun]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((result.dataset, result.modality) for run in runs for point in run.points
                              for result in point.sets))


def _folds(members: Sequence[DomainShiftRun]) -> str:
    return str(len({run.fold for run in members}))


def domain_shift_tables(runs: Sequence[DomainShiftRun]) -> tuple[Table, ...]:
    """The per-condition table and the histogram (Fig. 3) table."""
    if not runs:
        raise ValueError("runs must hold at least one DomainShiftRun")
    sets = _sets(runs)
    modalities = list(dict.fromkeys(run.modality for run in runs))
    healthy = [("l1", "l1-error (e-3) ↓", 1e3, 2, "lower"), ("ssim", "SSIM [%] ↑", 100.0, 2, "higher"),
               ("kld", "KLD ↓", 1.0, 3, "lower"), ("entropy_difference", "entropy difference", 1.0, 3, None)]
    columns = [Column(dataset_title("ixi", "/".join(modalities)), title, scale, decimals, better)  # type: ignore[arg-type]
               for _, title, scale, decimals, better in healthy]
    columns += [Column(dataset_title(dataset, modality), "Dice [%] ↑", 100.0, 2, "higher")
                for dataset, modality in sets]
    rows = []
    for label, members in shift_groups(runs):
        for contrast, t_test, width in _conditions(members):
            points = [point for run in members if (point := run.point(contrast, t_test, width)) is not None]
            cells = [Cell(_over_folds([getattr(point.healthy, attribute).mean for point in points]))
                     for attribute, *_ in healthy]
            cells += [Cell(_over_folds([point.dice(dataset) for point in points])) for dataset, _ in sets]
            rows.append(Row((label, _folds(members), f"{contrast:g}", str(t_test), f"{width:.0%}"), tuple(cells)))
    notes = ("Contrast: every input changed to x^cl (intensities in [0, 1]); t_test: the single test noise level; "
             "conditioning: the fraction of the input's width the cDDPM's encoder sees (the rest set to 0).",
             "IXI: the healthy test split, against the shifted input; KLD: true KL of the 500-bin brain-intensity "
             "histograms of input and reconstruction; entropy difference: the paper's printed 'KLD' formula.",
             "Dice: test split, val-dice threshold chosen again on the shifted validation split, full "
             "post-processing.",
             "± is the sample standard deviation over folds (one fold: the mean alone).")
    conditions = Table("domain-shift", "Domain shift: reconstruction and Dice against the input contrast",
                       ("Model", "Folds", "Contrast", "t_test", "Conditioning"), tuple(columns), tuple(rows), notes)
    datasets = list(dict.fromkeys((item.dataset, run.modality) for run in runs for item in run.histograms))
    histogram_columns = []
    for dataset, modality in datasets:
        group = dataset_title(dataset, modality) + (" (brain)" if dataset == "ixi" else " (healthy brain)")
        histogram_columns += [Column(group, "KLD ↓", 1.0, 3, "lower"), Column(group, "entropy difference", 1.0, 3)]
    histogram_rows = []
    for label, members in shift_groups(runs):
        for contrast in dict.fromkeys(item.contrast for run in members for item in run.histograms):
            cells = []
            for dataset, _ in datasets:
                items = [item for run in members if (item := run.histogram(contrast, dataset)) is not None]
                cells += [Cell(_over_folds([item.kld.mean for item in items])),
                          Cell(_over_folds([item.entropy_difference.mean for item in items]))]
            histogram_rows.append(Row((label, _folds(members), f"{contrast:g}"), tuple(cells)))
    histogram_notes = ("Fig. 3: each model with its own test noise levels and the whole input as conditioning; "
                       "lesion sets: the brain outside the annotated lesions only.",
                       "± is the sample standard deviation over folds (one fold: the mean alone).")
    histograms = Table("domain-shift-histograms", "Domain shift: intensity histograms of input and reconstruction "
                       "(Fig. 3)", ("Model", "Folds", "Contrast"), tuple(histogram_columns), tuple(histogram_rows),
                       histogram_notes)
    return conditions, histograms


def shift_rows(runs: Sequence[DomainShiftRun]) -> Iterator[dict[str, Any]]:
    """One CSV row per (run, condition, set) with the :data:`SHIFT_CSV_COLUMNS`; ``set`` ``ixi`` holds
    the reconstruction figures, a lesion set its Dice."""
    for run in runs:
        for point in run.points:
            shared = {"group": run.group, "run": run.name, "fold": run.fold, "contrast": point.contrast,
                      "t_test": point.t_test, "width": point.width}
            healthy = point.healthy
            yield {**shared, "set": "ixi", "n": healthy.n, "l1": healthy.l1.mean, "ssim": healthy.ssim.mean,
                   "psnr": healthy.psnr.mean, "kld": healthy.kld.mean,
                   "entropy_difference": healthy.entropy_difference.mean}
            for result in point.sets:
                yield {**shared, "set": result.dataset, "n": result.n_test, "dice": result.thresholded[0].dice.mean}


def _points_at(members: Sequence[DomainShiftRun], t_test: int, width: float) -> list[list[ShiftPoint]]:
    """Per contrast (sorted), the points of every fold at one (t_test, width)."""
    contrasts = sorted({p.contrast for run in members for p in run.points})
    return [[point for run in members if (point := run.point(contrast, t_test, width)) is not None]
            for contrast in contrasts]


def metrics_figure(runs: Sequence[DomainShiftRun], t_test: int, width: float = 1.0) -> Figure:
    """l1, SSIM, KLD and each set's Dice against the contrast level, one line per model (mean ±
    std over folds) at one noise level and conditioning width."""
    panels: list[tuple[str, Any]] = [("IXI l1-error", lambda p: p.healthy.l1.mean),
                                     ("IXI SSIM", lambda p: p.healthy.ssim.mean),
                                     ("IXI KLD", lambda p: p.healthy.kld.mean)]
    panels += [(f"{dataset_title(dataset, modality)} Dice", lambda p, d=dataset: p.dice(d))
               for dataset, modality in _sets(runs)]
    figure = Figure(figsize=(3.6 * len(panels), 3.0))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, read) in zip(axes, panels):
        for label, members in shift_groups(runs):
            plot_over_folds(axis, [(points[0].contrast, [read(point) for point in points])
                                   for points in _points_at(members, t_test, width) if points], label)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("contrast level cl (x^cl)")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(f"Domain shift at t_test = {t_test}, conditioning width {width:.0%}", fontsize=11)
    figure.tight_layout()
    return figure


def histogram_figure(runs: Sequence[DomainShiftRun]) -> Figure | None:
    """Fig. 3: rows the histogram contrast levels, columns the data sets; the input's density and
    each model's reconstruction density (first fold of each model)."""
    firsts = [members[0] for _, members in shift_groups(runs)]
    contrasts = list(dict.fromkeys(item.contrast for run in firsts for item in run.histograms))
    datasets = list(dict.fromkeys(item.dataset for run in firsts for item in run.histograms))
    if not contrasts:
        return None
    figure = Figure(figsize=(3.8 * len(datasets), 2.6 * len(contrasts)))
    axes = figure.subplots(len(contrasts), len(datasets), squeeze=False)
    for i, contrast in enumerate(contrasts):
        for j, dataset in enumerate(datasets):
            axis = axes[i][j]
            drawn_input = False
            for run in firsts:
                item = run.histogram(contrast, dataset)
                if item is None:
                    continue
                centres = (item.densities.edges[:-1] + item.densities.edges[1:]) / 2
                if not drawn_input:
                    axis.plot(centres, item.densities.input, color="black", linewidth=1.0, label="input")
                    drawn_input = True
                axis.plot(centres, item.densities.reconstruction, linewidth=1.0,
                          label=f"{run.group} (KLD {item.kld.mean:.3f})")
            axis.set_title(f"{dataset_title(dataset, firsts[0].modality)}, x^{contrast:g}", fontsize=9)
            axis.set_xlabel("intensity")
            axis.set_ylabel("density")
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=6)
    figure.suptitle("Brain-intensity histograms of input and reconstruction (Fig. 3)", fontsize=11)
    figure.tight_layout()
    return figure


def reconstructions_figure(run: DomainShiftRun) -> Figure:
    """Fig. 2 for one run: rows the contrast levels; columns the input and the reconstruction of
    each (t_test, width)."""
    contrasts = list(dict.fromkeys(point.contrast for point in run.points))
    conditions = list(dict.fromkeys((point.t_test, point.width) for point in run.points))
    figure = Figure(figsize=(1.6 * (len(conditions) + 1), 1.7 * len(contrasts)))
    axes = figure.subplots(len(contrasts), len(conditions) + 1, squeeze=False)
    for i, contrast in enumerate(contrasts):
        for j, (t_test, width) in enumerate(conditions):
            point = run.point(contrast, t_test, width)
            if point is None:
                axes[i][j + 1].set_axis_off()
                continue
            if j == 0:
                axes[i][0].imshow(np.rot90(point.example.image), cmap="gray", vmin=0, vmax=1)
                axes[i][0].set_ylabel(f"x^{contrast:g}", fontsize=8)
            axes[i][j + 1].imshow(np.rot90(point.example.reconstruction), cmap="gray", vmin=0, vmax=1)
            if i == 0:
                axes[i][j + 1].set_title(f"t={t_test}, {width:.0%}", fontsize=8)
        if i == 0:
            axes[0][0].set_title("input", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(f"{run.group} ({run.name}): reconstructions per contrast and condition (Fig. 2)", fontsize=10)
    figure.tight_layout()
    return figure
