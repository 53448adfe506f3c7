"""Torch datasets over model-grid volumes: random training slices, fixed validation slices, volumes.

Slices are axial (the last array axis); a slice tensor is (1, 96, 96) in [0, 1] with its brain
mask (1, 96, 96) bool. With ``stack_size`` S > 1 (the SVAE) an item is a stack of S consecutive
axial slices instead: (S, 96, 96), slice order along the first axis. With ``contrasts`` (a
multi-contrast method) an item's image is the slice with the same slice of each other contrast as
channels: (1 + C, 96, 96), the volume's own image first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from brainuad.checks import check_int
from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.grid import GridVolume


def _slice_item(volume: GridVolume, start: int, count: int, contrasts: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Axial slices ``start .. start + count - 1`` as ``{"image": (count, H, W), "mask": (count, H, W)}``;
    with ``contrasts`` (and ``count`` 1) the image is ``(1 + C, H, W)``, the other contrasts' slices after
    the volume's own."""
    if contrasts:
        image = np.stack([volume.image[:, :, start], *(volume.contrasts[name][:, :, start] for name in contrasts)])
    else:
        image = volume.image[:, :, start:start + count].transpose(2, 0, 1)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image)),
        "mask": torch.from_numpy(np.ascontiguousarray(volume.mask[:, :, start:start + count].transpose(2, 0, 1))),
    }


def check_items(volumes: Sequence[GridVolume], stack_size: int, contrasts: Sequence[str]) -> tuple[str, ...]:
    """Check the items asked of ``volumes``: stacks of ``stack_size`` slices, or single slices with
    the ``contrasts`` every volume holds, not both; returns the contrasts as a tuple.

    Raises:
        ValueError: saying which is wrong (a volume without a contrast is named).
    """
    check_int("stack_size", stack_size)
    shortest = min(volume.image.shape[2] for volume in volumes)
    if stack_size > shortest:
        raise ValueError(f"stack_size {stack_size!r} exceeds the {shortest} axial slices of the shortest volume")
    if contrasts and stack_size > 1:
        raise ValueError(f"an item is a stack of slices (stack_size={stack_size!r}) or a slice with its other "
                         f"contrasts ({list(contrasts)}), not both")
    for volume in volumes:
        volume.check_contrasts(contrasts)
    return tuple(contrasts)


class RandomSliceDataset(Dataset):
    """One uniformly drawn axial slice per volume per epoch (the paper's training sampling, §4.4).

    ``len`` is the number of volumes; item ``i`` is a fresh random slice of volume ``i`` each time
    it is asked for (drawn from torch's global generator, which Lightning seeds per worker). With
    ``stack_size`` S > 1 it is a stack of S consecutive slices, its first slice drawn uniformly
    from the Z - S + 1 possible ones.

    Args:
        volumes: model-grid volumes (held in memory).
        augmentation: applied to the image of each slice, or None; only for single slices (S = 1).
            A slice with other contrasts is augmented with one draw for all its channels.
        stack_size: consecutive slices S per item.
        contrasts: other contrasts of each volume as channels after its image (S = 1 only).

    Items: ``{"image": (S, H, W) or (1 + C, H, W) float32, "mask": (S, H, W) bool}``.
    """

    def __init__(self, volumes: Sequence[GridVolume], augmentation: SliceAugmentation | None = None,
                 stack_size: int = 1, contrasts: Sequence[str] = ()) -> None:
        if not volumes:
            raise ValueError("RandomSliceDataset needs at least one volume")
        self.contrasts = check_items(volumes, stack_size, contrasts)
        if stack_size > 1 and augmentation is not None:
            raise ValueError(f"augmentation transforms single slices; it cannot be used with stack_size={stack_size!r}")
        self.volumes = list(volumes)
        self.augmentation = augmentation
        self.stack_size = stack_size

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume = self.volumes[index]
        start = int(torch.randint(volume.image.shape[2] - self.stack_size + 1, ()).item())
        item = _slice_item(volume, start, self.stack_size, self.contrasts)
        if self.augmentation is not None:
            item["image"] = self.augmentation(item["image"])
        return item


class FixedSliceDataset(Dataset):
    """Evenly spaced axial slices of each volume, the same every epoch (for a stable validation loss).

    Args:
        volumes: model-grid volumes.
        slices_per_volume: slices (stacks) taken from each volume, evenly spaced over its axial extent.
        stack_size: consecutive slices S per item; the first slices of the stacks are evenly spaced
            over 0 .. Z - S.
        contrasts: other contrasts of each volume as channels after its image (S = 1 only).

    Items: ``{"image": (S, H, W) or (1 + C, H, W) float32, "mask": (S, H, W) bool}``.
    """

    def __init__(self, volumes: Sequence[GridVolume], slices_per_volume: int = 10, stack_size: int = 1,
                 contrasts: Sequence[str] = ()) -> None:
        if not volumes:
            raise ValueError("FixedSliceDataset needs at least one volume")
        if slices_per_volume < 1:
            raise ValueError(f"slices_per_volume must be >= 1, got {slices_per_volume!r}")
        self.contrasts = check_items(volumes, stack_size, contrasts)
        self.volumes = list(volumes)
        self.stack_size = stack_size
        self.index = [(v, int(z)) for v, volume in enumerate(self.volumes)
                      for z in np.unique(np.linspace(0, volume.image.shape[2] - stack_size, slices_per_volume).round())]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume, z = self.index[index]
        return _slice_item(self.volumes[volume], z, self.stack_size, self.contrasts)
