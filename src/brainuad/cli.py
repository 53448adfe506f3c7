"""The ``brainuad`` command and its sub-commands."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import track

from brainuad.errors import BrainUADError, ConfigError

app = typer.Typer(
    name="brainuad",
    help="Unsupervised anomaly detection in brain MRI with conditioned diffusion models (cDDPM), "
         "its baselines and its evaluation protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


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
    workers: int = typer.Option(2, min=1, help="Subjects generated in parallel processes."),
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
    for finding in report.findings:
        colour = "red" if finding.severity == "error" else "yellow"
        console.print(f"[{colour}]{finding.severity}[/] {finding.path}: {finding.message}", markup=True,
                      highlight=False)
    console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), help="Folder for the demo's data, runs and evaluation."),
    minutes: float = typer.Option(6.0, min=0.1, help="Training budget per diffusion model, in minutes."),
    size: str = typer.Option("small", help="Synthetic cohort size: tiny, small or medium."),
    seed: int = typer.Option(0, help="Seed of the synthetic cohort and of training."),
) -> None:
    """The main job on data it generates, no data needed.

    Synthesises a cohort and validates it, trains a cDDPM and a DDPM (tiny configs, T2, IXI fold 0)
    for MINUTES each and fits the intensity-threshold baseline, evaluates all three on the synthetic
    BraTS21 and MSLUB sets with the paper's protocol, and writes OUT/evaluation/report.html.
    Re-running into the same folder keeps finished steps.
    """
    from rich.table import Table

    from brainuad.demo import run_demo

    if size not in ("tiny", "small", "medium"):
        raise typer.BadParameter(f"size must be tiny, small or medium, got {size!r}", param_hint="--size")
    with user_errors():
        result = run_demo(out, minutes=minutes, size=size, seed=seed, say=console.print)
    table = Table("method", "set", "threshold", "Dice (%)", "AUPRC per volume (%)", "AUPRC pooled (%)",
                  title="Test split, validation-Dice threshold (synthetic cohort)")
    for row in result.rows:
        table.add_row(row.method, row.dataset, f"{row.threshold:.4f}", f"{100 * row.dice:.2f} ± {100 * row.dice_std:.2f}",
                      f"{100 * row.auprc_per_volume:.2f}", f"{100 * row.auprc_pooled:.2f}")
    console.print(table)
    for dataset in ("brats21", "mslub"):
        baseline = result.dice("thresh", dataset)
        ratio = result.dice("cddpm", dataset) / baseline if baseline > 0 else float("inf")
        console.print(f"{dataset}: cDDPM Dice is {ratio:.2f}x that of intensity thresholding")
    console.print(f"finished in {result.seconds / 60:.1f} min\n[bold green]report:[/] {result.report.resolve()}")


def _train(config_path: Path, data: Optional[Path], out: Optional[Path], overrides: list[str],
           expected: tuple[str, ...]) -> None:
    from brainuad.config import load_config
    from brainuad.train import train_run

    with user_errors():
        extra = list(overrides or [])
        if data is not None:
            extra.append(f"data.root={data}")
        config = load_config(config_path, extra)
        if config.method not in expected:
            raise ConfigError(f"{config_path}: method {config.method!r} cannot be used here "
                              f"(expected {' or '.join(expected)})")
        run_dir = out or Path("runs") / f"{config.method}-{config.data.modality}-fold{config.data.fold}"
        console.print(f"training {config.method} into {run_dir}")
        summary = train_run(config, run_dir)
    console.print(f"done: {summary.epochs} epochs, {summary.steps} steps in {summary.seconds:.0f} s; "
                  f"best validation loss {summary.best_val_loss}")
    if summary.psnr_noised_db is not None:
        console.print(f"PSNR against the clean validation slices at t=500: noised input "
                      f"{summary.psnr_noised_db:.2f} dB, reconstruction {summary.psnr_reconstruction_db:.2f} dB "
                      f"({summary.psnr_reconstruction_db - summary.psnr_noised_db:+.2f} dB); "
                      f"examples in {Path(summary.run_dir) / 'examples.png'}")
    console.print(f"weights: {summary.weights}")


_OVERRIDES_HELP = "Config overrides as dotted key=value pairs, e.g. data.fold=2 train.max_epochs=3."


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML run config (configs/cddpm.yaml, configs/tiny/ddpm.yaml, ...)."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    data: Optional[Path] = typer.Option(None, help="Data directory (sets data.root)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/METHOD-MODALITY-foldN). "
                                                  "An existing run resumes from its last checkpoint."),
) -> None:
    """Train a detector (ddpm, pddpm, cddpm; baselines ae, vae, svae, dae, fanogan, thresh) on healthy slices
    of one IXI fold.

    Writes RUN/config.yaml, RUN/model.safetensors (best validation loss), RUN/checkpoints/ (resumable),
    RUN/logs/ (CSV and TensorBoard) and, for diffusion models, RUN/examples.png with the PSNR check at t=500.
    Thresh is fitted in one pass over the training volumes (no checkpoints or logs).
    """
    _train(config, data, out, overrides or [],
           ("ddpm", "pddpm", "cddpm", "ae", "vae", "svae", "dae", "fanogan", "thresh"))


@app.command()
def pretrain(
    config: Path = typer.Argument(..., help="YAML SparK config (configs/spark.yaml or configs/tiny/spark.yaml)."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    data: Optional[Path] = typer.Option(None, help="Data directory (sets data.root)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/spark-MODALITY-foldN)."),
) -> None:
    """SparK masked-image pre-training of the cDDPM's encoder on healthy slices.

    Writes RUN/encoder.safetensors; name it in a cDDPM config as encoder.pretrained.
    """
    _train(config, data, out, overrides or [], ("spark",))


from brainuad.evaluate.command import evaluate  # noqa: E402  (registers below; imports brainuad.cli lazily)

app.command()(evaluate)


def main() -> None:
    """Console-script entry point."""
    app()
