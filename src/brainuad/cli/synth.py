"""The ``brainuad synth`` command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from brainuad.cli.console import console, user_errors

if TYPE_CHECKING:
    from brainuad.data.synth.cohort import CohortSummary, SizeName
    from brainuad.data.synth.raw import RawSummary

__all__ = ["synth"]


def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic data directory into."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same cohort."),
    size: str = typer.Option("small", help="Cohort size: tiny (tests), small (the demo) or medium."),
    workers: int = typer.Option(2, min=1, help="Subjects generated in parallel processes."),
    raw: bool = typer.Option(False, "--raw", help="Write the same subjects as raw scans (skull, anisotropic "
                                                  "oblique grids, random pose, bias field) in each data set's "
                                                  "download layout, to try 'brainuad prepare' on."),
) -> None:
    """Write a synthetic cohort (healthy IXI-like subjects and four lesion sets) in the data layout.

    Healthy subjects are deformed MNI152 brains with T1 and T2 contrast; the lesion sets mimic
    BraTS21 (tumours, T2), MSLUB (MS lesions, T2), ATLAS (stroke, T1) and WMH (white-matter
    hyperintensities, T1). Also writes OUT/preview.png. With --raw: OUT/IXI, OUT/BraTS21, OUT/MSLUB,
    OUT/ATLAS_2 and OUT/WMH, the downloads 'brainuad prepare' reads.
    """
    from brainuad.data.synth import synthesize_cohort

    if size not in ("tiny", "small", "medium"):
        raise typer.BadParameter(f"size must be tiny, small or medium, got {size!r}", param_hint="--size")
    size_name = cast("SizeName", size)
    summary: RawSummary | CohortSummary
    with user_errors():
        if raw:
            from brainuad.data.synth.raw import synthesize_raw

            summary = synthesize_raw(out, size=size_name, seed=seed, workers=workers, progress=True)
        else:
            summary = synthesize_cohort(out, size=size_name, seed=seed, workers=workers, progress=True)
    console.print(summary.describe())
