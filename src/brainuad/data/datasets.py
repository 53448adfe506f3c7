"""Torch datasets over model-grid volumes: random training slices, fixed validation slices, volumes.

Slices are axial (the last array axis); a slice tensor is (1, 96, 96) in [0, 1] with its brain
mask (1, 96, 96) bool.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.cache import GridCache
from brainuad.data.grid import GridVolume
from brainuad.data.layout import Subject


def _slice_item(volume: GridVolume, index: int) -> dict[str, torch.Tensor]:
    return {
        "image": torch.from_numpy(np.ascontiguousarray(volume.image[:, :, index]))[None],
        "mask": torch.from_numpy(np.ascontiguousarray(volume.mask[:, :, index]))[None],
    }


class RandomSliceDataset(Dataset):
    """One uniformly drawn axial slice per volume per epoch (the paper's training sampling, §4.4).

    ``len`` is the number of volumes; item ``i`` is a fresh random slice of volume ``i`` each time
    it is asked for (drawn from torch's global generator, which Lightning seeds per worker).

    Args:
        volumes: model-grid volumes (held in memory).
        augmentation: applied to the image of each slice, or None.

    Items: ``{"image": (1, H, W) float32, "mask": (1, H, W) bool}``.
    """

    def __init__(self, volumes: Sequence[GridVolume], augmentation: SliceAugmentation | None = None) -> None:
        if not volumes:
            raise ValueError("RandomSliceDataset needs at least one volume")
        self.volumes = list(volumes)
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume = self.volumes[index]
        item = _slice_item(volume, int(torch.randint(volume.image.shape[2], ()).item()))
        if self.augmentation is not None:
            item["image"] = self.augmentation(item["image"])
        return item


class FixedSliceDataset(Dataset):
    """Evenly spaced axial slices of each volume, the same every epoch (for a stable validation loss).

    Args:
        volumes: model-grid volumes.
        slices_per_volume: slices taken from each volume, evenly spaced over its axial extent.

    Items: ``{"image": (1, H, W) float32, "mask": (1, H, W) bool}``.
    """

    def __init__(self, volumes: Sequence[GridVolume], slices_per_volume: int = 10) -> None:
        if not volumes:
            raise ValueError("FixedSliceDataset needs at least one volume")
        if slices_per_volume < 1:
            raise ValueError(f"slices_per_volume must be >= 1, got {slices_per_volume!r}")
        self.volumes = list(volumes)
        self.index = [(v, int(z)) for v, volume in enumerate(self.volumes)
                      for z in np.unique(np.linspace(0, volume.image.shape[2] - 1, slices_per_volume).round())]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume, z = self.index[index]
        return _slice_item(self.volumes[volume], z)


class VolumeDataset(Dataset):
    """Whole model-grid volumes of a list of subjects, loaded through a :class:`GridCache`."""

    def __init__(self, subjects: Sequence[Subject], cache: GridCache) -> None:
        self.subjects = list(subjects)
        self.cache = cache

    def __len__(self) -> int:
        return len(self.subjects)

    def __getitem__(self, index: int) -> GridVolume:
        return self.cache.load(self.subjects[index])
