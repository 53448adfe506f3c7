"""Training slices drawn and augmented on the training device (``data.slices_on: device``).

The training volumes are held on the device as one tensor; the DataLoader only hands out volume
indices (shuffled, and split across DDP ranks by Lightning's sampler), and each batch's slices are
gathered and augmented there in one go (:meth:`SliceAugmentation.augment_batch`), so a GPU never
waits for CPU workers. The sampling is the paper's (one uniformly drawn slice per volume per epoch,
§4.4), the same as :class:`~brainuad.data.datasets.RandomSliceDataset`'s; the draws come from the
device's global generator, which a resumed run restores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from brainuad.checks import check_int
from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.datasets import check_items
from brainuad.data.grid import GridVolume

__all__ = ["DeviceSlices", "VolumeIndices"]


class VolumeIndices(Dataset):
    """Item ``i`` is ``i``: what the training DataLoader hands out when slices are drawn on the device."""

    def __init__(self, count: int) -> None:
        self.count = check_int("VolumeIndices: count", count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        return index


class DeviceSlices:
    """The training volumes as a (N, Z, 1 + C, H, W) tensor, moved to each device once; draws and
    augments slices there.

    Args:
        volumes: model-grid volumes, all of one shape (X, Y, Z).
        augmentation: applied to single slices, or None.
        stack_size: consecutive axial slices S per item (S > 1: without augmentation).
        contrasts: other contrasts of each volume as channels after its image (S = 1 only).
    """

    def __init__(self, volumes: Sequence[GridVolume], augmentation: SliceAugmentation | None = None,
                 stack_size: int = 1, contrasts: Sequence[str] = ()) -> None:
        if not volumes:
            raise ValueError("DeviceSlices needs at least one volume")
        shape = volumes[0].image.shape
        for volume in volumes:
            if volume.image.shape != shape:
                raise ValueError(f"the training volumes must share one grid to be held as one tensor: {volume.name} "
                                 f"is {volume.image.shape}, {volumes[0].name} {shape}")
        contrasts = check_items(volumes, stack_size, contrasts)
        if stack_size > 1 and augmentation is not None:
            raise ValueError(f"augmentation transforms single slices; it cannot be used with stack_size={stack_size!r}")
        self.augmentation = augmentation
        self.stack_size = stack_size
        self._images = torch.from_numpy(np.stack([volume.channels(contrasts).transpose(3, 0, 1, 2)
                                                  for volume in volumes]))
        self._masks = torch.from_numpy(np.stack([volume.mask.transpose(2, 0, 1) for volume in volumes]))
        self._device: torch.device | None = None

    def __len__(self) -> int:
        return self._images.shape[0]

    def _on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._device != device:
            self._images, self._masks = self._images.to(device), self._masks.to(device)
            self._device = device
        return self._images, self._masks

    def draw(self, indices: Tensor) -> dict[str, Tensor]:
        """A random slice (stack) of each indexed volume, augmented, on the indices' device.

        Args:
            indices: (B,) int64 volume indices.

        Returns:
            ``{"image": (B, S, H, W) or (B, 1 + C, H, W) float32, "mask": (B, S, H, W) bool}``, as
            the DataLoader path's batches.
        """
        images, masks = self._on(indices.device)
        starts = torch.randint(images.shape[1] - self.stack_size + 1, indices.shape, device=indices.device)
        depth = starts[:, None] + torch.arange(self.stack_size, device=indices.device)
        drawn = images[indices[:, None], depth]  # (B, S, 1 + C, H, W): S or 1 + C is 1
        batch = {"image": drawn.flatten(1, 2), "mask": masks[indices[:, None], depth]}
        if self.augmentation is not None:
            batch["image"] = self.augmentation.augment_batch(batch["image"])
        return batch
