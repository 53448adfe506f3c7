"""Lightning DataModule of healthy training and validation slices (IXI layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

import lightning as L
from torch.utils.data import DataLoader

from brainuad.checks import check_int
from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.cache import GridCache
from brainuad.data.datasets import FixedSliceDataset, RandomSliceDataset
from brainuad.data.device_slices import DeviceSlices, VolumeIndices
from brainuad.data.grid import GridVolume
from brainuad.data.layout import SplitName, split_subjects


class HealthySlicesDataModule(L.LightningDataModule):
    """Training slices of one IXI fold (one random slice per volume per epoch, augmented) and
    fixed validation slices of the same fold's validation split.

    Args:
        root: the data directory.
        modality: ``t1`` or ``t2``.
        fold: 0-4.
        batch_size: slices per batch (paper: 32).
        num_workers: DataLoader worker processes.
        augmentation: the training augmentation, or None.
        val_slices_per_volume: evenly spaced validation slices per volume.
        cache: where model-grid volumes are cached.
        progress: optional wrapper showing progress while volumes are loaded.
        stack_size: consecutive axial slices per item (1: single slices; S > 1: stacks of S
            slices for the SVAE, without augmentation).
        slices_on: where training slices are drawn and augmented: ``"loader"`` (DataLoader workers,
            torchio, the authors' pipeline) or ``"device"`` (the volumes held on the training
            device, batches drawn and augmented there: :mod:`brainuad.data.device_slices`).
        contrasts: other modalities of each subject read with ``modality`` and given as channels
            after it (a multi-contrast method: ``("t1",)`` beside T2 slices); items are then
            (1 + C, H, W).
    """

    def __init__(self, root: str | Path, modality: str, fold: int, *, batch_size: int = 32, num_workers: int = 0,
                 augmentation: SliceAugmentation | None = SliceAugmentation(), val_slices_per_volume: int = 10,
                 cache: GridCache | None = None,
                 progress: Callable[[Iterable, str], Iterable] | None = None, stack_size: int = 1,
                 slices_on: Literal["loader", "device"] = "loader", contrasts: Sequence[str] = ()) -> None:
        super().__init__()
        if modality not in ("t1", "t2"):
            raise ValueError(f"modality must be 't1' or 't2', got {modality!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        check_int("stack_size", stack_size)
        if stack_size > 1 and augmentation is not None:
            raise ValueError(f"augmentation transforms single slices; pass augmentation=None with "
                             f"stack_size={stack_size!r}")
        self.root = Path(root)
        self.modality = modality
        self.fold = fold
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augmentation = augmentation
        self.val_slices_per_volume = val_slices_per_volume
        self.cache = cache or GridCache()
        self.progress = progress
        self.stack_size = stack_size
        if slices_on not in ("loader", "device"):
            raise ValueError(f"slices_on must be 'loader' or 'device', got {slices_on!r}")
        self.slices_on = slices_on
        self.contrasts = tuple(contrasts)
        self.device_slices: DeviceSlices | None = None
        self.train_volumes: list[GridVolume] = []
        self.val_volumes: list[GridVolume] = []

    def _load(self, split: SplitName) -> list[GridVolume]:
        subjects = split_subjects(self.root, "ixi", split, self.fold, self.modality, self.contrasts)
        if self.progress is None:
            return [self.cache.load(subject) for subject in subjects]
        bar = self.progress(subjects, f"loading IXI {split} fold {self.fold} ({self.modality})")
        try:
            return [self.cache.load(subject) for subject in bar]
        finally:  # stop the bar (and its refresh thread) now, also when a volume cannot be read
            close = getattr(bar, "close", None)
            if close is not None:
                close()

    def setup(self, stage: str | None = None) -> None:
        if not self.train_volumes:
            self.train_volumes = self._load("train")
        if not self.val_volumes:
            self.val_volumes = self._load("val")

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        if self.slices_on == "loader":
            return self._loader(RandomSliceDataset(self.train_volumes, self.augmentation, self.stack_size,
                                                   self.contrasts), shuffle=True)
        self.device_slices = DeviceSlices(self.train_volumes, self.augmentation, self.stack_size, self.contrasts)
        return DataLoader(VolumeIndices(len(self.train_volumes)), batch_size=self.batch_size, shuffle=True,
                          drop_last=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: a batch of training volume indices becomes their drawn, augmented slices."""
        if self.device_slices is not None and not isinstance(batch, dict):
            return self.device_slices.draw(batch)
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._loader(FixedSliceDataset(self.val_volumes, self.val_slices_per_volume, self.stack_size,
                                              self.contrasts), shuffle=False)
