"""The ``brainuad predict`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import typer
from rich.markup import escape
from rich.progress import track

from brainuad.cli.console import console, err_console, user_errors
from brainuad.errors import BrainUADError
from brainuad.lock import FolderLock

__all__ = ["ATLAS", "ATLAS_MASK", "DEVICE", "ORIENTATION", "RAW", "SKULL_STRIP", "check_scan_options", "predict",
           "raw_preprocessing"]

DEVICE: Any = typer.Option("cpu", "--device", help="Device the model runs on: cpu, cuda, cuda:1, ...")
ORIENTATION: Any = typer.Option(
    "RAS", "--orientation", help="Axis order of the training data; scans are reoriented to it (flips/permutations "
                                 "only).")
RAW: Any = typer.Option(
    False, "--raw", help="The inputs are raw scans: preprocess each first (1 mm, affine registration to the training "
                         "data's atlas, skull stripping, N4) and map the results back onto the raw scan's grid.")
ATLAS: Any = typer.Option(
    None, "--atlas", help="With --raw: the template the training data were registered to (default: the atlas in the "
                          "run's data directory's space.json, else MNI152).")
ATLAS_MASK: Any = typer.Option(None, "--atlas-mask",
                               help="With --raw: the template's brain mask (default: its non-zero voxels).")
SKULL_STRIP: Any = typer.Option(
    "deepbet", "--skull-strip", help="With --raw: deepbet, none (already stripped), atlas-mask or hd-bet (your own "
                                     "install); a --mask or a mask beside the scan replaces it.")
"""The options that say how scans are read, shared by ``predict`` and ``calibrate``."""


def check_scan_options(mask: Optional[Path], orientation: str, raw: bool, atlas: Optional[Path],
                       atlas_mask: Optional[Path], skull_strip: str) -> None:
    """Usage errors of the options that say how scans are read (before anything is loaded)."""
    from brainuad.predict import check_orientation
    from brainuad.preprocess.options import OptionError, check_pipeline_options

    if mask is not None and not mask.is_file():
        raise typer.BadParameter(f"{mask}: file not found", param_hint="--mask")
    try:
        check_orientation(orientation)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--orientation") from None
    if not raw and (atlas is not None or atlas_mask is not None):
        raise typer.BadParameter("only raw scans are registered: add --raw", param_hint="--atlas")
    try:
        check_pipeline_options(atlas, atlas_mask, skull_strip)
    except OptionError as error:
        raise typer.BadParameter(str(error), param_hint=error.option) from None


def raw_preprocessing(run: Path, raw: bool, atlas: Optional[Path], atlas_mask: Optional[Path], skull_strip: str):
    """The preprocessing pipeline for raw scans (None without ``raw``), into the run's training space
    or the atlas given; says which space it registers to."""
    if not raw:
        return None
    from brainuad.predict import training_atlas
    from brainuad.preprocess.options import load_atlas
    from brainuad.preprocess.prepare import default_pipeline

    if atlas is not None:
        template, space = load_atlas(atlas, atlas_mask), f"--atlas {atlas}"
    else:
        template, space = training_atlas(run)
        template.load()  # a bad atlas file is reported now, not once per scan
    console.print(f"raw scans: registered to {template.name} ({space}); skull strip {skull_strip}", highlight=False)
    return default_pipeline(atlas=template, skull_strip=skull_strip)


def _parse_contrasts(values: Sequence[str], reads: Sequence[str], scans: int) -> dict[str, Path]:
    """``NAME=FILE`` values of --contrast -> {name: file}, checked against the contrasts the model
    ``reads`` (usage errors name the option)."""
    files: dict[str, Path] = {}
    for value in values:
        name, separator, file = value.partition("=")
        if not separator or not name or not file:
            raise typer.BadParameter(f"{value!r} is not NAME=FILE (e.g. t1=sub-01_t1.nii.gz)", param_hint="--contrast")
        if name not in reads:
            what = ", ".join(reads) or "no other contrast"
            raise typer.BadParameter(f"the model reads {what} beside each scan, not {name}", param_hint="--contrast")
        if not Path(file).is_file():
            raise typer.BadParameter(f"{file}: file not found", param_hint="--contrast")
        files[name] = Path(file)
    if files and scans != 1:
        raise typer.BadParameter(f"a contrast file belongs to one scan, and {scans} scans were given: predict them one "
                                 "at a time, or keep each scan's other contrasts beside it", param_hint="--contrast")
    return files


def _predict_all(detector, scans: Sequence[Path], mask: Optional[Path], contrasts: dict[str, Path], out: Path,
                 failures: list) -> int:
    """Predict and write every scan, reporting each; failures are appended; returns how many were written."""
    from brainuad.predict import write_prediction

    done = 0
    results = detector.predict_files(scans, mask, contrasts)
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
                      f"{escape(str(out / outcome.name))}_*; brain mask: {escape(outcome.mask_source)}",
                      highlight=False)
        for note in outcome.notes:
            console.print(f"  note: {escape(note)}", highlight=False)
        for warning in outcome.warnings:
            err_console.print(f"  [yellow]warning:[/] {escape(f'{scan.name}: {warning}')}", highlight=False)
    return done


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
    contrast: list[str] = typer.Option([], "--contrast", help="NAME=FILE: the scan's other contrast for a "
                                                             "multi-contrast model (cddpm_mc: t1=FILE); one scan only. "
                                                             "Default: X_t1.* beside X_t2.*, or ../t1/X_t1.*."),
    device: str = DEVICE,
    orientation: str = ORIENTATION,
    raw: bool = RAW,
    atlas: Optional[Path] = ATLAS,
    atlas_mask: Optional[Path] = ATLAS_MASK,
    skull_strip: str = SKULL_STRIP,
) -> None:
    """Anomaly maps of preprocessed (or, with --raw, raw) scans, written in each scan's own geometry (shape and
    affine).

    A multi-contrast model (cddpm_mc) reads each scan with the subject's other contrasts: found beside the scan
    (sub-01_t1.nii.gz beside sub-01_t2.nii.gz), or given with --contrast; in folders they are not taken as scans.

    Without --threshold, --threshold-from or --set: the threshold 'brainuad calibrate' stored in the run (from healthy
    scans of your site), else the validation threshold 'brainuad evaluate' stored for the run's first set.

    Reconstructions are on the model's normalised [0, 1] intensity scale, not the scan's units.

    Exit code 0 when every scan was predicted, 1 when any failed (each is reported), 2 for a usage error.
    """
    from brainuad.data.layout import LESION_SETS
    from brainuad.predict import discover_inputs, load_detector

    if threshold is not None and (threshold_from is not None or dataset is not None):
        raise typer.BadParameter("give either a value, or --threshold-from/--set, not both", param_hint="--threshold")
    if dataset is not None and dataset not in LESION_SETS:
        raise typer.BadParameter(f"unknown lesion set {dataset!r}; choose from {', '.join(LESION_SETS)}",
                                 param_hint="--set")
    check_scan_options(mask, orientation, raw, atlas, atlas_mask, skull_strip)
    with user_errors():
        preprocessing = raw_preprocessing(run, raw, atlas, atlas_mask, skull_strip)
        detector = load_detector(run, threshold=threshold, threshold_from=threshold_from, dataset=dataset,
                                 device=device, orientation=orientation, preprocessing=preprocessing)
        discovery = discover_inputs(inputs, detector.contrasts)
    contrasts = _parse_contrasts(contrast, detector.contrasts, len(discovery.scans))
    console.print(f"threshold {detector.threshold.value:.6g}: {detector.threshold.origin}", highlight=False)
    if detector.threshold.value <= 0:
        err_console.print("[yellow]warning:[/] the threshold is 0, so every brain voxel with any residual is "
                          "flagged (the validation search found no better one: the model did not learn to tell "
                          "this lesion set from healthy tissue); give --threshold or --set", highlight=False)
    if discovery.ignored:
        console.print(f"skipped {len(discovery.ignored)} mask, segmentation, output or other-contrast file(s) in the "
                      "given folders")
    failures = list(discovery.problems)
    for problem in discovery.problems:
        err_console.print(f"[red]failed:[/] {problem}", highlight=False)
    with user_errors(), FolderLock(out, "writing predictions"):
        done = _predict_all(detector, discovery.scans, mask, contrasts, out, failures)
    console.print(f"{done} of {done + len(failures)} scan(s) predicted into {out} (reconstructions on the model's "
                  "normalised [0, 1] intensity scale)")
    raise typer.Exit(1 if failures else 0)
