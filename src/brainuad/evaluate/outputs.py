"""The files of an evaluation: summary.json, per_volume.csv, tables/ and report.html."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainuad.atomic import write_text
from brainuad.errors import InputError
from brainuad.evaluate.report import render_report
from brainuad.evaluate.results import EvaluationSummary, RunResult, SetResult, to_jsonable
from brainuad.evaluate.tables import Table, build_tables

__all__ = ["EvaluationFiles", "PER_VOLUME_COLUMNS", "PER_VOLUME_FILE", "REPORT_FILE", "SUMMARY_FILE",
           "csv_text", "per_volume_rows", "write_evaluation", "write_tables"]

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
PER_VOLUME_FILE = "per_volume.csv"


@dataclass(frozen=True)
class EvaluationFiles:
    """The files :func:`write_evaluation` wrote."""

    summary: Path
    per_volume: Path
    tables: tuple[Path, ...]
    report: Path



PER_VOLUME_COLUMNS = ("group", "run", "fold", "set", "split", "t_test", "volume", "lesion_voxels", "postprocessing",
                      "threshold", "threshold_value", "dice", "tp", "fp", "fn", "lesions", "lesions_detected",
                      "fp_components", "auprc_volume", "auroc_volume",
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
            counts, found = segmentation.counts, segmentation.lesion_counts
            yield {**shared, "postprocessing": segmentation.postprocessing, "threshold": segmentation.threshold,
                   "threshold_value": values[segmentation.threshold + "/" + segmentation.postprocessing],
                   "dice": segmentation.dice, "tp": counts.tp, "fp": counts.fp, "fn": counts.fn,
                   "lesions": found.lesions, "lesions_detected": found.detected, "fp_components": found.false_positives}


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


def csv_text(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header of ``columns``; a key a row lacks, or None, is an empty field."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return stream.getvalue()


def _table_file_name(table: Table) -> str:
    return "".join(char if char.isalnum() or char in "-_" else "-" for char in table.key).strip("-")


def write_tables(tables: Sequence[Table], out_dir: Path) -> list[Path]:
    """Write ``tables/<table key>.{md,csv,tex}`` and ``tables.md`` (all tables, in order) into
    ``out_dir``, each atomically; returns the paths written."""
    written = []
    for table in tables:
        stem = out_dir / "tables" / _table_file_name(table)
        written += [write_text(stem.with_suffix(".md"), table.to_markdown()),
                    write_text(stem.with_suffix(".csv"), table.to_csv()),
                    write_text(stem.with_suffix(".tex"), table.to_latex())]
    written.append(write_text(out_dir / "tables.md", "\n\n".join(table.to_markdown() for table in tables) + "\n"))
    return written


def write_evaluation(summary: EvaluationSummary, out_dir: str | Path) -> EvaluationFiles:
    """Write ``summary.json``, ``per_volume.csv``, ``tables/<table>.{md,csv,tex}``, ``tables.md`` (all
    tables) and the self-contained ``report.html`` into ``out_dir``, each atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not an output folder")
    tables = build_tables(summary)
    written = write_tables(tables, out)
    payload = {"summary": to_jsonable(summary), "tables": to_jsonable(tables)}
    summary_path = write_text(out / SUMMARY_FILE, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    per_volume = write_text(out / PER_VOLUME_FILE, csv_text(per_volume_rows(summary), PER_VOLUME_COLUMNS))
    report = write_text(out / REPORT_FILE, render_report(summary, tables))
    return EvaluationFiles(summary_path, per_volume, tuple(written), report)
