"""The ``brainuad validate`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import track

from brainuad.cli.console import console, err_console, user_errors

__all__ = ["validate"]


def validate(
    data: Path = typer.Argument(..., help="Data directory (holding splits/, Train/, Test/) or its parent."),
    allow_overlap: bool = typer.Option(False, "--allow-overlap",
                                       help="Report subjects in both a training fold and the test split as a "
                                            "warning, not an error (to use the authors' exact splits)."),
    sets: Optional[list[str]] = typer.Option(None, "--set", help="Only check this data set (repeatable)."),
) -> None:
    """Check a data directory's layout, split CSVs and every file they name.

    Exits 0 when there is no error, 1 otherwise. Every finding names its file.
    """
    from brainuad.data.layout import DATASETS
    from brainuad.data.validate import validate_data_dir

    for name in sets or []:
        if name not in DATASETS:
            raise typer.BadParameter(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}",
                                     param_hint="--set")
    with user_errors():
        report = validate_data_dir(data, allow_overlap=allow_overlap, datasets=sets,
                                   progress=lambda rows: track(rows, description="checking files", console=err_console,
                                                               transient=True))
    console.print(f"data directory: {report.root}")
    console.print(f"data sets: {', '.join(report.datasets_present) or 'none'}; "
                  f"{report.rows_checked} split rows, {report.files_checked} files read")
    for finding in report.findings:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{colour}]{finding.severity}[/] {finding.path}: {finding.message}", markup=True,
                      highlight=False)
    console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    raise typer.Exit(0 if report.ok else 1)
