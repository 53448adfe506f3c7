"""The experiment's report: ``OUT/report.html`` with its tables as files beside it.

- ``report.html``: what the experiment was made from (package, commit, data digests, machine),
  the state of every run and every failure, Tables 2, 3 and 4 (mean ± std over folds, best in
  bold, ``*`` where the best model beats every other with p < 0.05), each of Tables 2 and 3
  followed by the same columns beside the paper's published rows, the domain-shift tables and
  figures (Fig. 2, Fig. 3 and the metrics per contrast level), and a cost table from the
  manifest; the evaluation's own report (example slices, per-volume Dice, histograms) is linked;
- ``tables/<key>.{md,csv,tex}`` and ``tables.md``: every table of the report;
- ``domain_shift.csv``: one row per run, condition and set (the figures' numbers).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from brainuad.atomic import write_text
from brainuad.evaluate.domain_shift import DomainShiftRun
from brainuad.evaluate.domain_shift_report import (
    SHIFT_CSV_COLUMNS,
    domain_shift_tables,
    histogram_figure,
    metrics_figure,
    reconstructions_figure,
    shift_groups,
    shift_rows,
)
from brainuad.evaluate.outputs import REPORT_FILE, csv_text, write_tables
from brainuad.evaluate.report import REPORT_STYLE, figure_html
from brainuad.evaluate.results import EvaluationSummary
from brainuad.evaluate.statistics import MeanStd
from brainuad.evaluate.tables import DATASET_NAMES, Cell, Column, Row, Table, build_tables
from brainuad.experiment.manifest import Manifest, RunRecord
from brainuad.experiment.plan import Plan
from brainuad.experiment.reference import REFERENCE_ROWS, REFERENCE_SOURCE, reference_metric

__all__ = ["DOMAIN_SHIFT_CSV", "beside_paper", "write_experiment_report"]

DOMAIN_SHIFT_CSV = "domain_shift.csv"
_DATASET_IDS = {name: dataset for dataset, name in DATASET_NAMES.items()}


def _column_dataset(column: Column) -> str | None:
    """The data set a column belongs to (its group is e.g. ``BraTS21 (T2)``)."""
    return _DATASET_IDS.get(column.group.split(" (")[0])


def _published(value: tuple[float, float | None], column: Column) -> MeanStd:
    """A published value (display units) as raw units: a mean alone counts as one value."""
    mean, std = value
    return MeanStd(mean / column.scale, math.nan if std is None else std / column.scale, 1 if std is None else 5, 0,
                   1)


def beside_paper(table: Table, references: dict[str, str]) -> Table | None:
    """``table`` (Table 2 or a Table 3) with each model's published row below its measured one.

    Args:
        table: a measured table, its first row label the model.
        references: model label -> name of its published row
            (:data:`~brainuad.experiment.reference.REFERENCE_ROWS`).

    Returns:
        The table, or None when no model has a published row with a value in its columns.
    """
    rows: list[Row] = []
    matched = False
    for row in table.rows:
        label, folds = row.labels[0], row.labels[1]
        rows.append(Row((label, f"measured, {folds} fold(s)"), tuple(Cell(cell.value) for cell in row.cells)))
        name = references.get(label)
        if name is None:
            continue
        published = REFERENCE_ROWS[name].values
        cells = []
        for column in table.columns:
            metric, dataset = reference_metric(column.title), _column_dataset(column)
            value = None if metric is None or dataset is None else published.get((dataset, metric))
            cells.append(Cell(None if value is None else _published(value, column)))
        if any(cell.value is not None for cell in cells):
            matched = True
            rows.append(Row((label, f"paper: {name}"), tuple(cells)))
    if not matched:
        return None
    notes = (f"Published values: {REFERENCE_SOURCE}. A published mean without its standard deviation is printed "
             "alone; '–': the paper printed no value there.",
             "The measured rows are this experiment's (mean ± sample std over its folds); the data, the training "
             "budget and the number of folds may differ from the paper's.")
    return Table(f"{table.key}-beside-paper", f"{table.title}: measured beside the paper", ("Model", "Source"),
                 table.columns, tuple(rows), notes)


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.2f}"


def _seconds(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.3g}"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "meta") -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _provenance(plan: Plan, manifest: Manifest) -> str:
    header = manifest.header
    package, data, machine = header["brainuad"], header["data"], header["machine"]
    gpus = ", ".join(machine["gpus"]) or "none"
    rows = [("brainuad", f"{package['version']} (commit {package['commit'] or 'unknown'})"),
            ("experiment file", f"{header['experiment']['file']} (settings digest {header['experiment']['digest']})"),
            ("data", f"{data['root']}: {data['files']} files, {data['bytes'] / 2**20:.1f} MiB"),
            ("data digests", f"split CSVs {data['splits_digest']}; file list with sizes {data['files_digest']}"),
            ("machine", f"{machine['cpu']} ({machine['cores']} cores); GPU: {gpus}; torch {machine['torch']}, "
                        f"CUDA {machine['cuda'] or 'none'}; Python {machine['python']}")]
    return _html_table(("", ""), rows)


def _runs_state(plan: Plan, manifest: Manifest) -> str:
    rows = []
    for run in plan.runs:
        record = manifest.runs[run.key]
        rows.append((run.key, run.label, run.kind, run.config.method, run.modality, str(run.fold),
                     record.config_hash[:12], record.state, record.message or ""))
    return _html_table(("run", "model", "kind", "method", "modality", "fold", "config hash", "state", "note"), rows)


def _total(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def _cost(plan: Plan, manifest: Manifest) -> str:
    rows = []
    records: list[RunRecord] = []
    for run in plan.runs:
        record = manifest.runs[run.key]
        records.append(record)
        evaluation = "kept" if record.evaluation_reused else _minutes(record.evaluation_seconds)
        shift = "kept" if record.domain_shift_reused else _minutes(record.domain_shift_seconds)
        rows.append((run.key, _minutes(record.training_seconds), "–" if record.steps is None else str(record.steps),
                     _seconds(record.seconds_per_step), _seconds(record.seconds_per_epoch), evaluation,
                     "–" if record.evaluation_volumes is None else str(record.evaluation_volumes),
                     _seconds(record.seconds_per_volume), shift))
    rows.append(("all runs", _minutes(_total([r.training_seconds for r in records])), "", "", "",
                 _minutes(_total([r.evaluation_seconds for r in records])), "", "",
                 _minutes(_total([r.domain_shift_seconds for r in records]))))
    table = _html_table(("run", "training [min]", "steps", "s / step", "s / epoch", "evaluation [min]",
                         "volumes read", "s / volume", "domain shift [min]"), rows)
    stages = ", ".join(f"{name.replace('_', ' ')} {seconds / 60:.2f} min" for name, seconds in manifest.stages.items())
    return (table + f"<p>Wall time of this call's stages: {html.escape(stages or 'none yet')}. Measured when the "
            "work was done; 'kept': read back from an earlier call's stored result.</p>")


def _domain_shift_figures(shifts: Sequence[DomainShiftRun]) -> list[str]:
    parts = []
    conditions = dict.fromkeys((point.t_test, point.width) for run in shifts for point in run.points)
    for t_test, width in conditions:
        parts.append(figure_html(metrics_figure(shifts, t_test, width),
                                 f"l1, SSIM and KLD on the healthy IXI test split and Dice on the lesion sets "
                                 f"against the contrast level (t_test = {t_test}, conditioning width {width:.0%}); "
                                 "mean ± std over folds."))
    histograms = histogram_figure(shifts)
    if histograms is not None:
        parts.append(figure_html(histograms, "Fig. 3: brain-intensity densities of the shifted input and each "
                                             "model's reconstruction (each model's first fold)."))
    for label, members in shift_groups(shifts):
        parts.append(figure_html(reconstructions_figure(members[0]),
                                 f"Fig. 2: {label}, one healthy test slice per contrast level ({members[0].name})."))
    return parts


def write_experiment_report(plan: Plan, manifest: Manifest, summary: EvaluationSummary | None,
                            shifts: Sequence[DomainShiftRun], failures: dict[str, str]) -> Path:
    """Write the report and its table files into ``plan.out`` (see the module docstring), each
    atomically; returns the report's path."""
    experiment = plan.experiment
    references = {entry.label: entry.reference for entry in experiment.methods if entry.reference is not None}
    measured = build_tables(summary) if summary is not None else ()
    tables: list[Table] = []
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>brainuad experiment: {html.escape(experiment.name)}</title>",
             f"<style>{REPORT_STYLE}</style></head><body>",
             f"<h1>Experiment: {html.escape(experiment.name)}</h1>"]
    if experiment.description:
        parts.append(f"<p>{html.escape(experiment.description)}</p>")
    parts += ["<h2>Provenance</h2>", _provenance(plan, manifest), "<h2>Runs</h2>", _runs_state(plan, manifest)]
    parts += [f'<p class="note">FAILED: {html.escape(what)}: {html.escape(message)}</p>'
              for what, message in failures.items()]
    parts.append("<h2>Tables</h2>")
    if summary is None:
        parts.append('<p class="note">No model was evaluated: no table.</p>')
    else:
        parts.append('<p>The evaluation\'s own report, with example slices, per-volume Dice and intensity '
                     'histograms: <a href="evaluation/report.html">evaluation/report.html</a>.</p>')
        parts += [f'<p class="note">{html.escape(note)}</p>' for note in summary.notes]
    for table in measured:
        tables.append(table)
        parts.append(table.to_html())
        paper = beside_paper(table, references) if table.key == "table2" or table.key.startswith("table3-") \
            else None
        if paper is not None:
            tables.append(paper)
            parts.append(paper.to_html())
    if shifts:
        parts.append("<h2>Domain shift</h2>")
        shift_tables = domain_shift_tables(shifts)
        tables += shift_tables
        parts += [table.to_html() for table in shift_tables]
        parts += _domain_shift_figures(shifts)
        write_text(plan.out / DOMAIN_SHIFT_CSV, csv_text(shift_rows(shifts), SHIFT_CSV_COLUMNS))
    parts += ["<h2>Cost</h2>", _cost(plan, manifest), "</body></html>"]
    if tables:
        write_tables(tables, plan.out)
    return write_text(plan.out / REPORT_FILE, "\n".join(parts) + "\n")
