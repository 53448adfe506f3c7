"""The self-contained HTML report of an evaluation: tables and figures in one file.

Figures are drawn with matplotlib's object API (no pyplot state) and embedded as base64 PNG
``<img src="data:image/png;base64,...">``; the page loads nothing else (no scripts, fonts or
network). It holds:

- what was evaluated: runs, folds, thresholds (headline first), post-processing, notes and the
  definitions of the numbers;
- the tables (:mod:`~brainuad.evaluate.tables`);
- per model (its first fold) and lesion set, the best, median and worst test volumes by headline
  Dice: input, reconstruction (when there is one), anomaly map, thresholded post-processed map and
  ground truth on the axial slice with the most lesion;
- histograms of the per-volume Dice of every set (all folds' volumes of a model together);
- mean brain-intensity histograms of inputs and reconstructions with the mean ``kld``;
- Dice against ``t_test`` when a sweep was run.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from brainuad.evaluate.results import (
    EvaluationSummary,
    ExampleSlice,
    GroupResult,
    IntensityDensities,
)
from brainuad.evaluate.tables import Table, dataset_title

__all__ = ["REPORT_STYLE", "figure_data_uri", "figure_html", "plot_over_folds", "render_report"]

_DPI = 90
REPORT_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0 .3em; font-size: .85em; }
caption { text-align: left; font-weight: 600; padding-bottom: .4em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; text-align: center; } td.label { text-align: left; }
ul.notes { font-size: .8em; color: #555; margin-top: 0; }
figure { margin: 1em 0; } figcaption { font-size: .85em; color: #444; }
img { max-width: 100%; height: auto; }
.meta td, .meta th { text-align: left; }
.note { background: #fff6d8; border-left: 4px solid #e0b000; padding: .3em .6em; margin: .3em 0; }
"""


def figure_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_html(figure: Figure, caption: str) -> str:
    return (f'<figure><img src="{figure_data_uri(figure)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _oriented(array: np.ndarray) -> np.ndarray:
    """An (X, Y) axial slice turned for display (anterior up)."""
    return np.rot90(array)


def _examples_figure(examples: Sequence[ExampleSlice], title: str) -> Figure:
    """Rows: the example volumes; columns: input, reconstruction (if any), anomaly map,
    thresholded map, ground truth."""
    with_reconstruction = examples[0].reconstruction is not None
    columns = ["input"] + (["reconstruction"] if with_reconstruction else []) + [
        "anomaly map", "thresholded", "ground truth"]
    figure = Figure(figsize=(2.2 * len(columns), 2.3 * len(examples) + 0.4))
    axes = figure.subplots(len(examples), len(columns), squeeze=False)
    top = max(float(example.anomaly_map.max()) for example in examples) or 1.0
    for row, example in enumerate(examples):
        images = [(example.image, "gray", 0.0, 1.0)]
        if with_reconstruction:
            if example.reconstruction is None:
                raise ValueError(f"example {example.volume!r} has no reconstruction, but the first example has one")
            images.append((example.reconstruction, "gray", 0.0, 1.0))
        images += [(example.anomaly_map, "inferno", 0.0, top), (example.prediction, "gray", 0, 1),
                   (example.target, "gray", 0, 1)]
        for column, (array, colormap, low, high) in enumerate(images):
            axis = axes[row, column]
            axis.imshow(_oriented(np.asarray(array, dtype=np.float32)), cmap=colormap, vmin=low, vmax=high,
                        interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(columns[column], fontsize=10)
        axes[row, 0].set_ylabel(f"{example.role}\n{example.volume}\nDice {example.dice * 100:.1f} %\n"
                                f"slice {example.slice_index}", fontsize=8)
    figure.suptitle(title, fontsize=11)
    return figure


def _dice_histograms(summary: EvaluationSummary) -> Figure:
    """One panel per lesion set: per-volume headline Dice of every model (all its folds)."""
    datasets = summary.datasets
    figure = Figure(figsize=(4.0 * len(datasets), 3.0))
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    bins = np.linspace(0.0, 1.0, 21)
    for axis, dataset in zip(axes, datasets):
        modality = ""
        for group in summary.groups:
            values = [volume.dice(summary.headline) for run in group.runs
                      if (result := run.set_result(dataset)) is not None for volume in result.volumes]
            values = [value for value in values if not math.isnan(value)]
            if values:
                modality = summary.set_modality(dataset)
                axis.hist(values, bins=bins, histtype="step", linewidth=1.5, label=f"{group.label} (n={len(values)})")
        axis.set_title(dataset_title(dataset, modality), fontsize=10)
        axis.set_xlabel("Dice per test volume")
        axis.set_ylabel("volumes")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(f"Per-volume Dice (threshold: {summary.headline}, full post-processing)", fontsize=11)
    figure.tight_layout()
    return figure


def _intensity_histograms(group: GroupResult) -> Figure | None:
    """Mean brain-intensity densities of inputs and reconstructions of a model's first fold."""
    run = group.runs[0]
    panels: list[tuple[str, IntensityDensities, float]] = []
    if run.healthy is not None and run.healthy.densities is not None:
        panels.append((dataset_title("ixi", run.modality) + " test", run.healthy.densities, run.healthy.kld.mean))
    for result in run.sets:
        if result.densities is not None and result.kld is not None:
            panels.append((dataset_title(result.dataset, result.modality) + " test", result.densities,
                           result.kld.mean))
    if not panels:
        return None
    figure = Figure(figsize=(4.0 * len(panels), 3.0))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (title, densities, kld) in zip(axes, panels):
        centres = (densities.edges[:-1] + densities.edges[1:]) / 2
        axis.plot(centres, densities.input, label="input", linewidth=1.2)
        axis.plot(centres, densities.reconstruction, label="reconstruction", linewidth=1.2)
        # The end bins hold every clipped intensity (percentile clipping, reconstructions beyond
        # [0, 1]); their spikes would flatten the rest, so the axis follows the interior bins.
        interior = max(float(densities.input[1:-1].max()), float(densities.reconstruction[1:-1].max()))
        if interior > 0:
            axis.set_ylim(0, 1.15 * interior)
        axis.set_title(f"{title}\nmean KLD {kld:.4f}", fontsize=10)
        axis.set_xlabel("intensity")
        axis.set_ylabel("density")
        axis.legend(fontsize=7)
    figure.suptitle(f"{group.label} ({run.name}): brain-intensity histograms", fontsize=11)
    figure.tight_layout()
    return figure


def plot_over_folds(axis: Axes, series: Sequence[tuple[float, Sequence[float | None]]], label: str,
                    scale: float = 1.0) -> bool:
    """One line of mean ± sample std over folds on a matplotlib ``axis``: per x, the folds' values
    (None and nan left out; an x without any is skipped; one value has no error bar), times
    ``scale``. Returns whether a point was drawn."""
    xs, means, stds = [], [], []
    for x, values in series:
        finite = [value for value in values if value is not None and math.isfinite(value)]
        if finite:
            xs.append(x)
            means.append(float(np.mean(finite)) * scale)
            stds.append(float(np.std(finite, ddof=1)) * scale if len(finite) > 1 else 0.0)
    if xs:
        axis.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
    return bool(xs)


def _sweep_figure(summary: EvaluationSummary) -> Figure:
    """Dice against t_test, one panel per lesion set, one line per model (mean ± std over folds)."""
    datasets = summary.datasets
    levels = summary.sweep_levels
    figure = Figure(figsize=(4.0 * len(datasets), 3.0))
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for axis, dataset in zip(axes, datasets):
        modality = ""
        for group in summary.groups:
            series = [(level, [result.scores(summary.headline).dice.mean for run in group.runs
                               if (result := run.sweep_result(level, dataset)) is not None]) for level in levels]
            if plot_over_folds(axis, series, group.label, scale=100.0):
                modality = summary.set_modality(dataset)
        axis.set_title(dataset_title(dataset, modality), fontsize=10)
        axis.set_xlabel("t_test")
        axis.set_ylabel("Dice [%]")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(f"Dice against the test noise level (threshold: {summary.headline})", fontsize=11)
    figure.tight_layout()
    return figure


def _froc_figure(summary: EvaluationSummary) -> Figure:
    """Lesion recall against false-positive components per volume at multiples of the headline
    threshold, one panel per lesion set, one line per model (each point's coordinates averaged over
    the folds); the headline threshold itself is the ringed point."""
    datasets = summary.datasets
    figure = Figure(figsize=(4.0 * len(datasets), 3.2))
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for axis, dataset in zip(axes, datasets):
        for group in summary.groups:
            curves = [result.froc for run in group.runs if (result := run.set_result(dataset)) is not None]
            if not curves:
                continue
            fp = np.nanmean([[point.false_positives_per_volume for point in curve] for curve in curves], axis=0)
            recall = 100.0 * np.nanmean([[point.recall for point in curve] for curve in curves], axis=0)
            line = axis.plot(fp, recall, marker="o", markersize=3, label=group.label)[0]
            headline = [point.factor for point in curves[0]].index(1.0)
            axis.plot(fp[headline], recall[headline], marker="o", markersize=9, fillstyle="none",
                      color=line.get_color())
        axis.set_xscale("symlog", linthresh=1.0)
        axis.set_title(dataset_title(dataset, summary.set_modality(dataset)), fontsize=10)
        axis.set_xlabel("false-positive components per volume")
        axis.set_ylabel("lesion recall [%]")
        axis.set_ylim(-2, 102)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    figure.suptitle(f"FROC: the headline threshold ({summary.headline}, ringed) times 1/4 ... 4", fontsize=11)
    figure.tight_layout()
    return figure


def _runs_table(summary: EvaluationSummary) -> str:
    """One row per run: its model, fold, test levels and the volumes of every split it used."""
    rows = []
    for group in summary.groups:
        for run in group.runs:
            levels = "–" if run.test_levels is None else ", ".join(str(level) for level in run.test_levels)
            sets = ", ".join(f"{result.dataset} {result.n_val}/{result.n_test}"
                             + (f" ({result.n_empty_target} without lesion)" if result.n_empty_target else "")
                             for result in run.sets)
            healthy = "–" if run.healthy is None else str(run.healthy.n)
            cells = [group.label, run.name, run.method, run.modality, str(run.fold), levels, sets, healthy]
            rows.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")
    header = "".join(f"<th>{name}</th>" for name in ("model", "run", "method", "modality", "fold", "t_test",
                                                     "lesion sets (validation/test volumes)", "IXI test volumes"))
    return f'<table class="meta"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_report(summary: EvaluationSummary, tables: Sequence[Table]) -> str:
    """The report as one HTML document (see the module docstring)."""
    post = summary.postprocessing
    settings = (f"median {post.median_size}³ ({'on' if post.median else 'off'}), brain-mask erosion "
                f"{post.erosion_iterations}x ({'on' if post.erosion else 'off'}), order {post.order}, connected "
                f"components {post.component_rule.replace('_', ' ')} {post.min_component_size} voxels "
                f"({'on' if post.components else 'off'})")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>brainuad evaluation report</title>", f"<style>{REPORT_STYLE}</style></head><body>",
        "<h1>brainuad evaluation report</h1>",
        f"<p>Thresholds: <b>{html.escape(summary.headline)}</b> (headline)"
        + "".join(f", {html.escape(label)}" for label in summary.thresholds[1:])
        + f". Post-processing: {html.escape(settings)}.</p>",
        _runs_table(summary),
    ]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in summary.notes]
    parts.append("<h2>Tables</h2>")
    parts += [table.to_html() for table in tables]
    parts.append("<h2>Examples: best, median and worst test volumes</h2>")
    parts.append(f"<p>By Dice with the headline threshold ({html.escape(summary.headline)}) and the full "
                 "post-processing; each model's first fold; the axial slice with the most lesion.</p>")
    for group in summary.groups:
        run = group.runs[0]
        for result in run.sets:
            if result.examples:
                title = f"{group.label} ({run.name}), {dataset_title(result.dataset, result.modality)}"
                caption = (f"{title}: anomaly map before post-processing; thresholded: post-processed, "
                           f"binarised at {result.scores(summary.headline).threshold.value:.4g} "
                           f"({summary.headline}), small components removed.")
                parts.append(figure_html(_examples_figure(result.examples, title), caption))
    if summary.datasets:
        parts.append("<h2>Lesion detection (FROC)</h2>")
        parts.append(figure_html(_froc_figure(summary), "Lesion recall (pooled over the test volumes) against the "
                                                         "false-positive components per volume, the threshold scaled "
                                                         "by 1/4 to 4 in steps of about sqrt 2; full post-processing."))
        parts.append("<h2>Dice per volume</h2>")
        parts.append(figure_html(_dice_histograms(summary), "Histogram of the per-volume Dice of every lesion set."))
    histograms = [(group, _intensity_histograms(group)) for group in summary.groups]
    if any(figure is not None for _, figure in histograms):
        parts.append("<h2>Intensity histograms</h2>")
        for group, figure in histograms:
            if figure is not None:
                parts.append(figure_html(figure, f"{group.label}: mean densities of input and reconstruction "
                                                  "intensities in the brain (500 bins; the end bins, which hold "
                                                  "the clipped intensities, may reach above the plot); KLD = "
                                                  "KL(input || reconstruction) per volume, averaged."))
    if summary.sweep_levels:
        parts.append("<h2>Dice against t_test</h2>")
        parts.append(figure_html(_sweep_figure(summary), "Dice (mean ± std over folds) at each single test noise "
                                                          "level."))
    parts.append("<h2>Definitions</h2><ul>" + "".join(f"<li>{html.escape(text)}</li>"
                                                      for text in summary.conventions) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
