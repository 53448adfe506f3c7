"""Run directories: the trained weights as safetensors next to the run's config.

A run directory holds ``config.yaml`` (every setting of the run), ``model.safetensors`` (the best
weights by validation loss), ``checkpoints/`` (Lightning state for resuming), ``logs/`` (CSV and
TensorBoard) and training figures. Loading a trained model for inference reads only
``config.yaml`` and ``model.safetensors``: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from brainuad.atomic import atomic_path, write_text
from brainuad.config import dump_config, load_config
from brainuad.errors import InputError

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a state dict as safetensors, atomically (contiguous CPU copies of the tensors)."""
    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary))
    return path


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors state dict (never unpickles).

    Raises:
        InputError: the file is missing or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(path, f"is not a readable safetensors file ({error})") from error


def write_config(run_dir: str | Path, config) -> Path:
    """Write the run's full config to ``RUN/config.yaml``, atomically."""
    return write_text(Path(run_dir) / CONFIG_FILE, dump_config(config))


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """The run's config and its trained method, ready for inference (eval mode).

    Raises:
        InputError: the run directory lacks ``config.yaml`` or ``model.safetensors``, or the
            weights do not fit the configured network.
    """
    from brainuad.methods.registry import build_detector

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run directory not found")
    if not (run_dir / CONFIG_FILE).is_file():
        raise InputError(run_dir, f"no {CONFIG_FILE} in the run directory", "is this a brainuad training run?")
    config = load_config(run_dir / CONFIG_FILE)
    if config.method == "spark":
        raise InputError(run_dir, "is a SparK pre-training run, not an anomaly detector",
                         "name it in a cDDPM config as encoder.pretrained instead")
    method = build_detector(config, load_pretrained=False)
    state = load_weights(run_dir / WEIGHTS_FILE)
    try:
        missing, unexpected = method.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape
        raise InputError(run_dir / WEIGHTS_FILE, f"weights do not fit the configured {config.method}: "
                         f"{str(error).splitlines()[-1].strip()}", f"was {CONFIG_FILE} edited after training?") from None
    if missing or unexpected:
        raise InputError(run_dir / WEIGHTS_FILE, f"weights do not fit the configured {config.method} "
                         f"(missing {len(missing)} keys, e.g. {missing[:2]}; unexpected {len(unexpected)}, "
                         f"e.g. {unexpected[:2]})", f"was {CONFIG_FILE} edited after training?")
    # channels-last: about 2x faster convolutions on CPUs (oneDNN) and the fast path on GPUs
    return config, method.to(device, memory_format=torch.channels_last).eval()
