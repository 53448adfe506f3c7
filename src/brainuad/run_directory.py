"""Run directories: a run's config beside its trained weights.

A run directory holds ``config.yaml`` (every setting of the run), the best weights by validation
loss as safetensors (``model.safetensors``; a SparK run ``encoder.safetensors``),
``checkpoints/`` (Lightning state for resuming), ``logs/`` (CSV and TensorBoard) and training
figures. Loading a trained model for inference reads only ``config.yaml`` and the weights:
nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from brainuad.atomic import write_text
from brainuad.config import dump_config
from brainuad.errors import InputError
from brainuad.methods.base import AnomalyDetector
from brainuad.methods.registry import build_detector, load_config, spec_of
from brainuad.methods.spec import WEIGHTS_FILE
from brainuad.weights import load_weights

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "load_run", "read_run_config", "write_config"]

CONFIG_FILE = "config.yaml"


def write_config(run_dir: str | Path, config: BaseModel) -> Path:
    """Write the run's full config to ``RUN/config.yaml``, atomically."""
    return write_text(Path(run_dir) / CONFIG_FILE, dump_config(config))


def read_run_config(run_dir: str | Path, *, trained: bool = False) -> Any:
    """The config of a detector's run directory, checked before anything else is read.

    Args:
        run_dir: the run directory.
        trained: also require the trained weights file.

    Raises:
        InputError: the directory or its ``config.yaml`` is missing, the run is of a pre-trainer
            (SparK) rather than a detector, or (``trained``) it has no weights yet.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run directory not found")
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(run_dir, f"no {CONFIG_FILE} in the run directory", "is this a brainuad training run?")
    config = load_config(run_dir / CONFIG_FILE)
    spec = spec_of(config)
    if not spec.detector:
        raise InputError(run_dir, f"is a {spec.name} pre-training run, not an anomaly detector",
                         f"name its {spec.weights_file} in a cDDPM config as encoder.pretrained instead")
    if trained and not (run_dir / spec.weights_file).is_file():
        raise InputError(run_dir, f"no {spec.weights_file} in the run directory", "has its training finished?")
    return config


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Any, AnomalyDetector]:
    """The run's config and its trained method, ready for inference (eval mode).

    Raises:
        InputError: the run directory lacks ``config.yaml`` or the weights, or the weights do not
            fit the configured network.
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    method = build_detector(config, load_pretrained=False)
    weights = run_dir / spec_of(config).weights_file
    state = load_weights(weights)
    try:
        missing, unexpected = method.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape
        raise InputError(weights, f"weights do not fit the configured {config.method}: "
                         f"{str(error).splitlines()[-1].strip()}",
                         f"was {CONFIG_FILE} edited after training?") from None
    if missing or unexpected:
        raise InputError(weights, f"weights do not fit the configured {config.method} "
                         f"(missing {len(missing)} keys, e.g. {missing[:2]}; unexpected {len(unexpected)}, "
                         f"e.g. {unexpected[:2]})", f"was {CONFIG_FILE} edited after training?")
    # channels-last: about 2x faster convolutions on CPUs (oneDNN) and the fast path on GPUs
    # (torch's stubs of Module.to lack its memory_format keyword)
    return config, method.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
