"""The ``brainuad demo`` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import typer

from brainuad.cli.console import console, user_errors

if TYPE_CHECKING:
    from brainuad.data.synth.cohort import SizeName

__all__ = ["demo"]


def demo(
    out: Path = typer.Option(Path("demo"), help="Folder for the demo's data, runs and evaluation."),
    steps: int = typer.Option(500, min=1, help="Training budget per diffusion model, in optimiser steps (the same "
                                               "models and tables on any machine for one seed)."),
    minutes: Optional[float] = typer.Option(None, min=0.01, help="Also stop each training after this wall time; "
                                                                 "then results depend on the machine's speed."),
    size: str = typer.Option("small", help="Synthetic cohort size: tiny, small or medium."),
    seed: int = typer.Option(0, help="Seed of the synthetic cohort and of training."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate on the first N volumes of every split only "
                                                          "(a quick look, not a result)."),
) -> None:
    """The main job on data it generates, no data needed.

    Synthesises a cohort and validates it, trains a cDDPM and a DDPM (tiny configs, T2, IXI fold 0)
    for STEPS optimiser steps each (or MINUTES, whichever comes first), fits the intensity-threshold
    baseline, evaluates all three on the synthetic BraTS21 and MSLUB sets with the paper's protocol,
    and writes OUT/evaluation/report.html. Re-running into the same folder keeps finished steps.
    """
    from rich.table import Table

    from brainuad.demo import run_demo

    if size not in ("tiny", "small", "medium"):
        raise typer.BadParameter(f"size must be tiny, small or medium, got {size!r}", param_hint="--size")
    size_name = cast("SizeName", size)
    with user_errors():
        result = run_demo(out, steps=steps, minutes=minutes, size=size_name, seed=seed, limit=limit,
                          say=console.print)
    table = Table("method", "set", "threshold", "Dice (%)", "AUPRC per volume (%)", "AUPRC pooled (%)",
                  title="Test split, validation-Dice threshold (synthetic cohort)")
    for row in result.rows:
        table.add_row(row.method, row.dataset, f"{row.threshold:.4f}",
                      f"{100 * row.dice:.2f} ± {100 * row.dice_std:.2f}", f"{100 * row.auprc_per_volume:.2f}",
                      f"{100 * row.auprc_pooled:.2f}")
    console.print(table)
    for dataset in ("brats21", "mslub"):
        baseline = result.dice("thresh", dataset)
        ratio = result.dice("cddpm", dataset) / baseline if baseline > 0 else float("inf")
        console.print(f"{dataset}: cDDPM Dice is {ratio:.2f}x that of intensity thresholding")
    console.print(f"finished in {result.seconds / 60:.1f} min\n[bold green]report:[/] {result.report.resolve()}")
