"""The ``brainuad calibrate`` command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

import typer
from rich.markup import escape
from rich.progress import Progress

from brainuad.cli.console import console, err_console, user_errors
from brainuad.cli.predict import (
    ATLAS,
    ATLAS_MASK,
    DEVICE,
    ORIENTATION,
    RAW,
    SKULL_STRIP,
    check_scan_options,
    raw_preprocessing,
)

__all__ = ["calibrate"]


def calibrate(
    run: Path = typer.Argument(..., help="Training run directory (config.yaml and model.safetensors)."),
    inputs: list[Path] = typer.Argument(..., help="Healthy scans of your site (preprocessed, or raw with --raw), or "
                                                  "folders of them (not recursive; *_mask and *_seg files are "
                                                  "skipped)."),
    alpha: float = typer.Option(..., "--alpha",
                                help="The bound: with --bound fpr the expected fraction of a new healthy scan's brain "
                                     "voxels flagged; with --bound volume the probability that more than "
                                     "--max-false-ml ml of it are flagged."),
    bound: str = typer.Option("fpr", "--bound", help="fpr: expected voxel false-positive rate <= alpha (needs at least "
                                                     "1/alpha - 1 scans); volume: P(flagged > --max-false-ml) <= "
                                                     "alpha."),
    max_false_ml: float = typer.Option(1.0, "--max-false-ml", min=0.0, help="With --bound volume: the false-lesion "
                                                                            "volume tolerated, in ml."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Brain mask for every input (default: each scan's own, "
                                                             "as brainuad predict finds it)."),
    postprocess_order: str = typer.Option("paper", "--postprocess-order",
                                          help="paper: median filter, then the eroded brain mask (default); "
                                               "authors_code: mask first, then median."),
    device: str = DEVICE,
    orientation: str = ORIENTATION,
    raw: bool = RAW,
    atlas: Optional[Path] = ATLAS,
    atlas_mask: Optional[Path] = ATLAS_MASK,
    skull_strip: str = SKULL_STRIP,
) -> None:
    """Calibrate the run's threshold on healthy scans of your own site and store it in the run.

    A split-conformal threshold (scans are the units): with --bound fpr a new healthy scan of the site has at most
    alpha of its brain voxels flagged on average; with --bound volume it has more than --max-false-ml ml flagged
    with probability at most alpha. Scans are scored exactly as brainuad predict scores them.

    The threshold goes into RUN/thresholds.json; brainuad predict then uses it unless --threshold, --threshold-from or
    --set is given. Prints the threshold and its leave-one-out false-positive rate.

    Exit code 0 when stored, 1 when scans failed (each reported; the others are used), 2 for a usage error.
    """
    from brainuad.evaluate.postprocess import PostProcessing, PostProcessingOrder
    from brainuad.evaluate.run_thresholds import write_calibration
    from brainuad.predict import Detector, ThresholdChoice, discover_inputs
    from brainuad.predict.calibrate import Bound, score_healthy_scans
    from brainuad.predict.calibrate import calibrate as calibrate_scores
    from brainuad.run_directory import load_run

    if not 0.0 < alpha < 1.0:
        raise typer.BadParameter(f"must lie strictly between 0 and 1, got {alpha!r}", param_hint="--alpha")
    if bound not in ("fpr", "volume"):
        raise typer.BadParameter(f"must be 'fpr' or 'volume', got {bound!r}", param_hint="--bound")
    if postprocess_order not in ("paper", "authors_code"):
        raise typer.BadParameter(f"must be 'paper' or 'authors_code', got {postprocess_order!r}",
                                 param_hint="--postprocess-order")
    check_scan_options(mask, orientation, raw, atlas, atlas_mask, skull_strip)
    postprocessing = PostProcessing(order=cast(PostProcessingOrder, postprocess_order))
    with user_errors():
        preprocessing = raw_preprocessing(run, raw, atlas, atlas_mask, skull_strip)
        config, method = load_run(run, device)
        detector = Detector(method, ThresholdChoice(0.0, postprocessing, "calibration: maps only"),
                            orientation=orientation, name=run.name, preprocessing=preprocessing,
                            normalise_on=config.data.normalise_on)
        discovery = discover_inputs(inputs, detector.contrasts)
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("scoring healthy scans", total=len(discovery.scans))
            scores = score_healthy_scans(detector, discovery.scans, mask,
                                         progress=lambda done: bar.update(task, completed=done))
        failures = [*discovery.problems, *scores.failures]
        for failure in failures:
            err_console.print(f"[red]failed:[/] {escape(str(failure))}", highlight=False)
        calibration = calibrate_scores(scores, detector, bound=cast(Bound, bound), alpha=alpha,
                                       max_false_ml=max_false_ml)
        stored = write_calibration(run, calibration)
    console.print(f"{calibration.strategy} threshold {calibration.value:.6g} from {len(calibration.scans)} healthy "
                  f"scan(s) ({postprocess_order} post-processing); leave-one-out false-positive rate "
                  f"{calibration.leave_one_out_rate:.3%}", highlight=False)
    if not calibration.feasible:
        err_console.print(f"[yellow]warning:[/] {len(calibration.scans)} scans cannot guarantee alpha={alpha:g}: the "
                          f"threshold flags none of them; give at least {_needed(alpha)} scans or a larger --alpha",
                          highlight=False)
    console.print(f"stored in {escape(str(stored))}; brainuad predict uses it unless --threshold, --threshold-from or "
                  "--set is given", highlight=False)
    raise typer.Exit(1 if failures else 0)


def _needed(alpha: float) -> int:
    from brainuad.evaluate.conformal import minimum_volumes

    return minimum_volumes(alpha)
