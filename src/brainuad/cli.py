"""The ``brainuad`` command and its sub-commands."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import track

from brainuad.errors import BrainUADError, ConfigError
from brainuad.lock import FolderLock

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
    """Turn errors a user can act on into a one-line message instead of a traceback.

    brainuad's input and config errors and the library's ``ValueError`` for a bad value: the
    message and exit code 2. A file that cannot be read or written (``OSError``: permissions, a full
    disk, a vanished folder): which file and why, exit code 1. Nothing is left half-written (every
    write is atomic, :mod:`brainuad.atomic`).
    """
    try:
        yield
    except (BrainUADError, ValueError) as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        err_console.print(f"[bold red]error:[/] {escape(where + (error.strerror or str(error)))}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
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
    with user_errors():
        if raw:
            from brainuad.data.synth.raw import synthesize_raw

            summary = synthesize_raw(out, size=size, seed=seed, workers=workers, progress=True)
        else:
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
    steps: int = typer.Option(500, min=1, help="Training budget per diffusion model, in optimiser steps (the same "
                                               "models and tables on any machine for one seed)."),
    minutes: Optional[float] = typer.Option(None, min=0.01, help="Also stop each training after this wall time; "
                                                                 "then results depend on the machine's speed."),
    size: str = typer.Option("small", help="Synthetic cohort size: tiny, small or medium."),
    seed: int = typer.Option(0, help="Seed of the synthetic cohort and of training."),
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
    with user_errors():
        result = run_demo(out, steps=steps, minutes=minutes, size=size, seed=seed, say=console.print)
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


def _predict_all(detector, scans: list[Path], mask: Optional[Path], out: Path, failures: list) -> int:
    """Predict and write every scan, reporting each; failures are appended; returns how many were written."""
    from brainuad.predict import write_prediction

    done = 0
    results = detector.predict_files(scans, mask)
    for scan, outcome in track(results, total=len(scans), description="predicting", console=err_console,
                               transient=True):
        if isinstance(outcome, BrainUADError):
            failures.append(outcome)
            err_console.print(f"[red]failed:[/] {escape(str(outcome))}", highlight=False)
            continue
        try:
            write_prediction(outcome, out)
        except (OSError, BrainUADError) as error:
            failures.append(error)
            err_console.print(f"[red]failed:[/] {escape(f'{scan}: outputs cannot be written to {out} ({error})')}",
                              highlight=False)
            continue
        done += 1
        console.print(f"{escape(str(scan))}: {outcome.anomaly_volume_ml:.1f} ml above the threshold -> "
                      f"{escape(str(out / outcome.name))}_*; brain mask: {escape(outcome.mask_source)}", highlight=False)
        for note in outcome.notes:
            console.print(f"  note: {escape(note)}", highlight=False)
        for warning in outcome.warnings:
            err_console.print(f"  [yellow]warning:[/] {escape(f'{scan.name}: {warning}')}", highlight=False)
    return done


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Training run directory (config.yaml and model.safetensors)."),
    inputs: list[Path] = typer.Argument(..., help="Preprocessed scans (NIfTI, NRRD, MHA: 1 mm, in the training space, "
                                                  "skull stripped) or folders of them (not recursive; *_mask and "
                                                  "*_seg files are skipped)."),
    out: Path = typer.Option(..., "--out", help="Output folder for <name>_anomaly.nii.gz, <name>_mask.nii.gz, "
                                                "<name>_reconstruction.nii.gz and <name>_overview.png."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0,
                                              help="Binarise the post-processed residual above this value "
                                                   "(paper post-processing)."),
    threshold_from: Optional[Path] = typer.Option(None, "--threshold-from",
                                                  help="Take the run's headline threshold (and post-processing) "
                                                       "from this evaluation's summary.json."),
    dataset: Optional[str] = typer.Option(None, "--set", help="Lesion set whose threshold to use (brats21, mslub, "
                                                              "atlas, wmh); default: the run's first set."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Brain mask for every input (default: X_mask.* beside "
                                                             "X.* or X_t2.*, or ../mask/X_mask.*; else the scan's "
                                                             "nonzero voxels)."),
    device: str = typer.Option("cpu", "--device", help="Device the model runs on: cpu, cuda, cuda:1, ..."),
    orientation: str = typer.Option("RAS", "--orientation", help="Axis order of the training data; scans are "
                                                                 "reoriented to it (flips/permutations only)."),
    raw: bool = typer.Option(False, "--raw", help="The inputs are raw scans: preprocess each first (1 mm, affine "
                                                  "registration to the training data's atlas, skull stripping, N4) "
                                                  "and map the results back onto the raw scan's grid."),
    atlas: Optional[Path] = typer.Option(None, "--atlas", help="With --raw: the template the training data were "
                                                                "registered to (default: the atlas in the run's data "
                                                                "directory's space.json, else MNI152)."),
    atlas_mask: Optional[Path] = typer.Option(None, "--atlas-mask", help="With --raw: the template's brain mask "
                                                                         "(default: its non-zero voxels)."),
    skull_strip: str = typer.Option("deepbet", "--skull-strip", help="With --raw: deepbet, none (already stripped), "
                                                                     "atlas-mask or hd-bet (your own install); a "
                                                                     "--mask or a mask beside the scan replaces it."),
) -> None:
    """Anomaly maps of preprocessed (or, with --raw, raw) scans, written in each scan's own geometry (shape and
    affine).

    Without --threshold or --threshold-from: the validation threshold 'brainuad evaluate' stored in the run.

    Reconstructions are on the model's normalised [0, 1] intensity scale, not the scan's units.

    Exit code 0 when every scan was predicted, 1 when any failed (each is reported), 2 for a usage error.
    """
    from brainuad.data.layout import LESION_SETS
    from brainuad.predict import (
        check_orientation,
        discover_inputs,
        load_detector,
        training_atlas,
    )
    from brainuad.preprocess.command import check_pipeline_options, load_atlas
    from brainuad.preprocess.prepare import default_pipeline

    if threshold is not None and (threshold_from is not None or dataset is not None):
        raise typer.BadParameter("give either a value, or --threshold-from/--set, not both", param_hint="--threshold")
    if dataset is not None and dataset not in LESION_SETS:
        raise typer.BadParameter(f"unknown lesion set {dataset!r}; choose from {', '.join(LESION_SETS)}",
                                 param_hint="--set")
    if mask is not None and not mask.is_file():
        raise typer.BadParameter(f"{mask}: file not found", param_hint="--mask")
    try:
        check_orientation(orientation)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--orientation") from None
    if not raw and (atlas is not None or atlas_mask is not None):
        raise typer.BadParameter("only raw scans are registered: add --raw", param_hint="--atlas")
    check_pipeline_options(atlas, atlas_mask, skull_strip)
    with user_errors():
        discovery = discover_inputs(inputs)
        preprocessing = None
        if raw:
            if atlas is not None:
                template, space = load_atlas(atlas, atlas_mask), f"--atlas {atlas}"
            else:
                template, space = training_atlas(run)
                template.load()  # a bad atlas file is reported now, not once per scan
            preprocessing = default_pipeline(atlas=template, skull_strip=skull_strip)
        detector = load_detector(run, threshold=threshold, threshold_from=threshold_from, dataset=dataset,
                                 device=device, orientation=orientation, preprocessing=preprocessing)
    console.print(f"threshold {detector.threshold.value:.6g}: {detector.threshold.origin}", highlight=False)
    if detector.threshold.value <= 0:
        err_console.print("[yellow]warning:[/] the threshold is 0, so every brain voxel with any residual is "
                          "flagged (the validation search found no better one: the model did not learn to tell "
                          "this lesion set from healthy tissue); give --threshold or --set", highlight=False)
    if raw:
        console.print(f"raw scans: registered to {template.name} ({space}); skull strip {skull_strip}",
                      highlight=False)
    if discovery.ignored:
        console.print(f"skipped {len(discovery.ignored)} mask, segmentation or output file(s) in the given folders")
    failures = list(discovery.problems)
    for problem in discovery.problems:
        err_console.print(f"[red]failed:[/] {problem}", highlight=False)
    with user_errors(), FolderLock(out, "writing predictions"):
        done = _predict_all(detector, discovery.scans, mask, out, failures)
    console.print(f"{done} of {done + len(failures)} scan(s) predicted into {out} (reconstructions on the model's "
                  "normalised [0, 1] intensity scale)")
    raise typer.Exit(1 if failures else 0)


from brainuad.evaluate.command import evaluate  # noqa: E402  (registers below; imports brainuad.cli lazily)

app.command()(evaluate)

from brainuad.preprocess.command import prepare  # noqa: E402

app.command()(prepare)


def main() -> None:
    """Console-script entry point."""
    app()
