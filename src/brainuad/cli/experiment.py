"""The ``brainuad experiment`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from brainuad.cli.console import console, err_console, user_errors
from brainuad.cli.inference_options import BATCH_SLICES, LOADER_WORKERS

__all__ = ["experiment"]


def _patterns(values: list[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _devices(device: str) -> tuple[str | None, str]:
    """(training accelerator or None for the configs', evaluation device) for ``--device``."""
    import torch

    if device == "auto":
        return None, "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu", "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise typer.BadParameter("no CUDA device is available here; use --device cpu", param_hint="--device")
        return "gpu", device
    raise typer.BadParameter(f"device must be auto, cpu, cuda or cuda:N, got {device!r}", param_hint="--device")


def experiment(
    experiment_file: str = typer.Argument(..., metavar="EXPERIMENT",
                                          help="An experiment YAML file, or a shipped one by name (tiny, "
                                               "paper-table3, paper-table2, paper-domain-shift, paper-t-test)."),
    data: Path = typer.Option(..., "--data", help="The data directory (brainuad synth / prepare layout)."),
    out: Path = typer.Option(..., "--out", help="Folder for the runs, results, manifest and report."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."),
    batch_slices: Optional[int] = BATCH_SLICES,
    workers: int = LOADER_WORKERS,
    only: list[str] = typer.Option([], "--only", help="Work on the runs whose key matches this shell pattern "
                                                       "(repeatable or comma-separated, e.g. 'cddpm-*-fold0'); "
                                                       "their pre-trainings come along."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs, their state, estimated cost) "
                                                          "and stop."),
) -> None:
    """Train every missing run of an experiment, evaluate them and write one report.

    Every model of EXPERIMENT is trained once per fold and modality into OUT/runs (SparK
    pre-training first where a model needs one), evaluated with the paper's protocol, put through
    the studies the file names, and reported in OUT/report.html (Tables 2-4 as mean ± std over
    folds beside the paper's rows, domain-shift tables and figures, a cost table) with
    OUT/manifest.json. Calling it again keeps what is finished and resumes what was interrupted;
    a failed run is reported and the rest go on (exit code 1).
    """
    from brainuad.evaluate.inference import Inference
    from brainuad.experiment.manifest import MANIFEST_FILE, estimate_seconds, read_records
    from brainuad.experiment.plan import plan_experiment
    from brainuad.experiment.run import run_experiment, run_state
    from brainuad.experiment.spec import experiment_file as find_experiment
    from brainuad.experiment.spec import load_experiment

    accelerator, evaluation_device = _devices(device)
    with user_errors():
        source = find_experiment(experiment_file)
        plan = plan_experiment(load_experiment(source), source, data, out, only=_patterns(only),
                               accelerator=accelerator)
        if dry_run:
            estimates = estimate_seconds(plan, read_records(plan.out / MANIFEST_FILE))
            header = ("run", "model", "method", "kind", "modality", "fold", "state", "steps", "volumes", "estimate")
            rows = []
            for run in plan.chosen:
                estimate = estimates[run.key]
                rows.append((run.key, run.label, run.config.method, run.kind, run.modality, str(run.fold),
                             run_state(run), str(run.steps), str(run.test_volumes) if run.test_volumes else "–",
                             "–" if estimate is None else f"{estimate / 60:.1f} min"))
            widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
            console.print(f"{plan.experiment.name}: {len(plan.chosen)} of {len(plan.runs)} runs selected "
                          "(volumes: what its evaluation reads)", highlight=False)
            for row in (header, *rows):
                console.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(),
                              highlight=False, markup=False)
            pending = [run for run in plan.chosen if run_state(run) != "finished"]
            measured = [value for run in pending if (value := estimates[run.key]) is not None]
            console.print(f"to train: {len(pending)} run(s); estimated "
                          + (f"{sum(measured) / 60:.1f} min for {len(measured)} of them" if measured
                             else "cost unknown (no earlier run of these models measured in this folder)")
                          + "; evaluation and studies come after.", highlight=False)
            return
        outcome = run_experiment(plan, inference=Inference(evaluation_device, batch_slices, workers),
                                 say=console.print, progress=True)
    console.print(f"[bold green]report:[/] {outcome.report.resolve()}\nmanifest: {outcome.manifest.resolve()}")
    if outcome.failures:
        for what, message in outcome.failures.items():
            err_console.print(f"[bold red]failed:[/] {what}: {message}", highlight=False)
        raise typer.Exit(1)

