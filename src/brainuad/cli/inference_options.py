"""The scoring options ``evaluate`` and ``experiment`` share (none changes a result)."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["BATCH_SLICES", "LOADER_WORKERS"]

BATCH_SLICES: Any = typer.Option(
    None, "--batch-slices", min=1,
    help="Slices per forward pass of a diffusion model, the slices and noise levels of several volumes together "
         "(default: the run's inference_batch_size, else 64 on a CPU and 512 on a GPU). Results do not change.")
LOADER_WORKERS: Any = typer.Option(
    0, "--workers", min=0,
    help="Processes reading and resampling volumes ahead of the model, and as many measuring the scored test volumes "
         "(0: none).")
