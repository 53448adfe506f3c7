"""The ``brainuad train`` and ``brainuad pretrain`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from brainuad.cli.console import console, user_errors
from brainuad.errors import ConfigError

__all__ = ["pretrain", "train"]


def _train(config_path: Path, data: Optional[Path], out: Optional[Path], overrides: list[str],
           devices: Optional[int], num_nodes: Optional[int], detector: bool) -> None:
    """Train the config's method; ``detector``: the command trains detectors (else pre-trainers)."""
    from brainuad.methods.registry import SPECS, load_config, spec_of
    from brainuad.train import train_run

    with user_errors():
        extra = list(overrides or [])
        if data is not None:
            extra.append(f"data.root={data}")
        if devices is not None:
            extra.append(f"train.devices={devices}")
        if num_nodes is not None:
            extra.append(f"train.num_nodes={num_nodes}")
        config = load_config(config_path, extra)
        if spec_of(config).detector != detector:
            expected = [name for name, spec in SPECS.items() if spec.detector == detector]
            raise ConfigError(f"{config_path}: method {config.method!r} cannot be used here "
                              f"(expected {' or '.join(expected)})")
        run_dir = out or Path("runs") / f"{config.method}-{config.data.modality}-fold{config.data.fold}"
        console.print(f"training {config.method} into {run_dir}")
        summary = train_run(config, run_dir)
    if not summary.weights:  # another process of a DDP run: the first one reports the run
        return
    console.print(f"done: {summary.epochs} epochs, {summary.steps} steps in {summary.seconds:.0f} s; "
                  f"best validation loss {summary.best_val_loss}")
    if summary.psnr_noised_db is not None and summary.psnr_reconstruction_db is not None:
        console.print(f"PSNR against the clean validation slices at t=500: noised input "
                      f"{summary.psnr_noised_db:.2f} dB, reconstruction {summary.psnr_reconstruction_db:.2f} dB "
                      f"({summary.psnr_reconstruction_db - summary.psnr_noised_db:+.2f} dB); "
                      f"examples in {Path(summary.run_dir) / 'examples.png'}")
    console.print(f"weights: {summary.weights}")


_OVERRIDES_HELP = "Config overrides as dotted key=value pairs, e.g. data.fold=2 train.max_epochs=3."
_DEVICES: Optional[int] = typer.Option(
    None, "--devices", min=1, help="Devices per machine (sets train.devices): several GPUs (or CPU processes) train "
                                   "with Lightning's DDP, the batch size per device.")
_NUM_NODES: Optional[int] = typer.Option(
    None, "--num-nodes", min=1, help="Machines (sets train.num_nodes); start one process per device on each, e.g. "
                                     "with srun or torchrun (docs/performance.md).")


def train(
    config: Path = typer.Argument(..., help="YAML run config (configs/cddpm.yaml, configs/tiny/ddpm.yaml, ...)."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    data: Optional[Path] = typer.Option(None, help="Data directory (sets data.root)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/METHOD-MODALITY-foldN). "
                                                  "An existing run resumes from its last checkpoint."),
    devices: Optional[int] = _DEVICES,
    num_nodes: Optional[int] = _NUM_NODES,
) -> None:
    """Train a detector (ddpm, pddpm, cddpm; baselines ae, vae, svae, dae, fanogan, thresh) on healthy slices
    of one IXI fold.

    Writes RUN/config.yaml, RUN/model.safetensors (best validation loss), RUN/checkpoints/ (resumable),
    RUN/logs/ (CSV and TensorBoard) and, for diffusion models, RUN/examples.png with the PSNR check at t=500.
    Thresh is fitted in one pass over the training volumes (no checkpoints or logs).
    """
    _train(config, data, out, overrides or [], devices, num_nodes, detector=True)


def pretrain(
    config: Path = typer.Argument(..., help="YAML SparK config (configs/spark.yaml or configs/tiny/spark.yaml)."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    data: Optional[Path] = typer.Option(None, help="Data directory (sets data.root)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/spark-MODALITY-foldN)."),
    devices: Optional[int] = _DEVICES,
    num_nodes: Optional[int] = _NUM_NODES,
) -> None:
    """SparK masked-image pre-training of the cDDPM's encoder on healthy slices.

    Writes RUN/encoder.safetensors; name it in a cDDPM config as encoder.pretrained.
    """
    _train(config, data, out, overrides or [], devices, num_nodes, detector=False)
