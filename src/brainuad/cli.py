"""The ``brainuad`` command and its sub-commands."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from brainuad.errors import BrainUADError

app = typer.Typer(
    name="brainuad",
    help="Unsupervised anomaly detection in brain MRI with conditioned diffusion models (cDDPM), "
         "its baselines and its evaluation protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn brainuad's input errors into a one-line message and exit code 2."""
    try:
        yield
    except BrainUADError as error:
        err_console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic data directory into."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same cohort."),
    size: str = typer.Option("small", help="Cohort size: tiny (tests), small (the demo) or medium."),
    workers: int = typer.Option(1, min=1, help="Subjects generated in parallel processes."),
) -> None:
    """Write a synthetic cohort (healthy IXI-like subjects and four lesion sets) in the data layout.

    Healthy subjects are deformed MNI152 brains with T1 and T2 contrast; the lesion sets mimic
    BraTS21 (tumours, T2), MSLUB (MS lesions, T2), ATLAS (stroke, T1) and WMH (white-matter
    hyperintensities, T1). Also writes OUT/preview.png.
    """
    from brainuad.data.synth import synthesize_cohort

    if size not in ("tiny", "small", "medium"):
        raise typer.BadParameter(f"size must be tiny, small or medium, got {size!r}", param_hint="--size")
    with user_errors():
        summary = synthesize_cohort(out, size=size, seed=seed, workers=workers, progress=True)
    console.print(summary.describe())


@app.command()
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
    if report.findings:
        table = Table("severity", "file", "problem", show_lines=False)
        for finding in report.findings:
            colour = "red" if finding.severity == "error" else "yellow"
            table.add_row(f"[{colour}]{finding.severity}[/]", str(finding.path), finding.message)
        console.print(table)
    console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    """Console-script entry point."""
    app()
