"""Model weights as safetensors files: written atomically, read without unpickling anything."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from brainuad.atomic import atomic_path
from brainuad.errors import InputError

__all__ = ["load_weights", "save_weights"]


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
