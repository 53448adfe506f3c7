"""The interface every anomaly-detection method offers.

A method is a ``torch.nn.Module`` with

- ``training_loss(images, generator=None)``: the loss on a batch of healthy slices
  (N, 1, H, W) in [0, 1], a scalar tensor (with a fixed ``generator`` it is deterministic, which
  the validation loss uses);
- ``anomaly_map(volume)``: a (X, Y, Z) float32 map of a model-grid volume, higher = more
  anomalous.

Reconstruction-based methods derive from :class:`ReconstructionMethod` and implement
``reconstruct_slices``; they get ``reconstruct(volume)`` (all axial slices, in batches) and the
residual ``|x - x_rec|`` as their anomaly map.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from brainuad.data.grid import GridVolume

VolumeLike = GridVolume | np.ndarray | Tensor

DEFAULT_FORWARD_BATCH = {"cpu": 64, "cuda": 512}
"""Slices per forward pass at test time by device type, where a config leaves it open: on a CPU
about one volume's slices (more buys no speed and costs memory); on a GPU the passes of several
volumes (the 3-level ensemble of 50 slices is 150 rows a volume)."""


def volume_slices(volume: VolumeLike) -> Tensor:
    """The axial slices of a model-grid volume as a batch.

    Args:
        volume: a :class:`GridVolume` or an (X, Y, Z) array in [0, 1].

    Returns:
        (Z, 1, X, Y) float32 CPU tensor.
    """
    array = volume.image if isinstance(volume, GridVolume) else volume
    tensor = torch.as_tensor(np.asarray(array, dtype=np.float32)) if not isinstance(array, Tensor) else array.float()
    if tensor.ndim != 3:
        raise ValueError(f"a volume must be 3-D (X, Y, Z), got shape {tuple(tensor.shape)}")
    return tensor.permute(2, 0, 1)[:, None].contiguous()


def volume_noise_seed(seed: int, volume: VolumeLike) -> int:
    """The seed of one volume's test-time noise, from the run seed and the volume's voxels.

    Every volume of a split gets its own noise (never the same field for slice z of every
    volume), and the same volume gets the same noise in every run with that seed, in any order,
    whatever its file name or orientation on disk (a scan's maps depend on the scan alone).

    Args:
        seed: the run seed.
        volume: a :class:`GridVolume` or an (X, Y, Z) array; its image voxels identify it.

    Returns:
        an integer in [0, 2**63).
    """
    array = volume.image if isinstance(volume, GridVolume) else volume
    array = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
    digest = hashlib.blake2b(np.ascontiguousarray(array, dtype=np.float32).tobytes(), digest_size=8,
                             key=str(int(seed)).encode()).digest()
    return int.from_bytes(digest, "little") >> 1


def slices_to_volume(slices: Tensor) -> np.ndarray:
    """Inverse of :func:`volume_slices`: (Z, 1, X, Y) -> (X, Y, Z) float32 numpy array."""
    return slices[:, 0].permute(1, 2, 0).float().cpu().numpy()


class AnomalyDetector(nn.Module, ABC):
    """A trainable unsupervised anomaly-detection method (see the module docstring)."""

    @abstractmethod
    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Loss on healthy slices ``images``: (N, 1, H, W) in [0, 1]; a scalar tensor."""

    @abstractmethod
    def anomaly_map(self, volume: VolumeLike) -> np.ndarray:
        """(X, Y, Z) float32 anomaly scores of a model-grid volume."""

    @property
    def device(self) -> torch.device:
        """The device of the method's parameters (CPU for a method without any)."""
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")


class ReconstructionMethod(AnomalyDetector):
    """A method whose anomaly map is the residual between a volume and its pseudo-healthy
    reconstruction.

    Args:
        inference_batch_size: slices per forward pass in :meth:`reconstruct`, or None: the
            default of the device the method is on (:data:`DEFAULT_FORWARD_BATCH`).
        seed: the run seed; with a volume's voxels it seeds that volume's test-time noise
            (:func:`volume_noise_seed`), so a reconstruction is reproducible and independent of the others.
    """

    def __init__(self, inference_batch_size: int | None = 64, seed: int = 0) -> None:
        super().__init__()
        if inference_batch_size is not None and inference_batch_size < 1:
            raise ValueError(f"inference_batch_size must be >= 1 or None, got {inference_batch_size!r}")
        self.inference_batch_size = inference_batch_size
        self.seed = seed

    @property
    def forward_batch(self) -> int:
        """Slices (rows) per forward pass at test time: ``inference_batch_size``, or the default
        of the method's device."""
        if self.inference_batch_size is not None:
            return self.inference_batch_size
        return DEFAULT_FORWARD_BATCH.get(self.device.type, DEFAULT_FORWARD_BATCH["cpu"])

    @abstractmethod
    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Pseudo-healthy reconstructions of slices: (N, 1, H, W) in [0, 1] -> same shape, [0, 1]."""

    @torch.no_grad()
    def _map_slices(self, volume: VolumeLike, fn: Callable[[Tensor, torch.Generator, Tensor | None], Tensor],
                    conditions: Tensor | None = None) -> np.ndarray:
        """``fn(slices, generator, condition_slices)`` over the axial slices (Z, 1, X, Y) of ``volume``
        in batches of ``inference_batch_size``, with the same rows of ``conditions`` ((Z, C, X, Y),
        what a conditioned method's encoder sees for each slice), or None."""
        was_training = self.training
        self.eval()
        slices = volume_slices(volume)
        if conditions is not None and (conditions.ndim != 4 or conditions.shape[0] != slices.shape[0]
                                       or conditions.shape[2:] != slices.shape[2:]):
            raise ValueError(f"the condition's slices {tuple(conditions.shape)} do not match the volume's "
                             f"{tuple(slices.shape)}")
        generator = torch.Generator(device=self.device).manual_seed(volume_noise_seed(self.seed, volume))
        outputs = []
        for start in range(0, slices.shape[0], self.forward_batch):
            stop = start + self.forward_batch
            batch = slices[start:stop].to(self.device).contiguous(memory_format=torch.channels_last)
            given = None if conditions is None else conditions[start:stop].to(self.device).contiguous(
                memory_format=torch.channels_last)
            outputs.append(fn(batch, generator, given).float().cpu())
        self.train(was_training)
        return slices_to_volume(torch.cat(outputs))

    def reconstruct(self, volume: VolumeLike) -> np.ndarray:
        """Reconstruct every axial slice of a model-grid volume.

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        return self._map_slices(volume, lambda batch, generator, _: self.reconstruct_slices(batch, generator))

    def reconstruction_score(self, image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
        """The anomaly map of a volume from its reconstruction: the residual ``|x - x_rec|``
        (:func:`residual`) unless a method scores otherwise (pDDPM-IQA).

        Args:
            image, reconstruction: (X, Y, Z) in [0, 1].

        Returns:
            (X, Y, Z) float32 >= 0.
        """
        return residual(image, reconstruction)

    def anomaly_map(self, volume: VolumeLike) -> np.ndarray:
        """:meth:`reconstruction_score` of the volume's reconstruction: (X, Y, Z) float32 >= 0."""
        image = volume.image if isinstance(volume, GridVolume) else np.asarray(volume, dtype=np.float32)
        return self.reconstruction_score(image, self.reconstruct(volume))


def residual(image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """The anomaly map of a reconstruction method: ``|x - x_rec|``, float32 >= 0, the shape of both
    (e.g. (X, Y, Z))."""
    if np.shape(image) != np.shape(reconstruction):
        raise ValueError(f"image {np.shape(image)} and reconstruction {np.shape(reconstruction)} differ in shape")
    return np.abs(np.asarray(image, dtype=np.float32) - np.asarray(reconstruction, dtype=np.float32))
