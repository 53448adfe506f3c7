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

import numpy as np
import torch
from torch import Tensor, nn

from brainuad.data.grid import GridVolume

VolumeLike = GridVolume | np.ndarray | Tensor

DEFAULT_FORWARD_BATCH = {"cpu": 64, "cuda": 512}
"""Slices per forward pass at test time by device type, where a config leaves it open: on a CPU
about one volume's slices (more buys no speed and costs memory); on a GPU the passes of several
volumes (the 3-level ensemble of 50 slices is 150 rows a volume)."""


def float_tensor(array: np.ndarray | Tensor) -> Tensor:
    """An array or tensor as a float32 tensor (a numpy array on the CPU, a tensor where it lies)."""
    return array.float() if isinstance(array, Tensor) else torch.as_tensor(np.asarray(array, dtype=np.float32))


def volume_slices(volume: VolumeLike) -> Tensor:
    """The axial slices of a model-grid volume as a batch.

    Args:
        volume: a :class:`GridVolume` or an (X, Y, Z) array in [0, 1].

    Returns:
        (Z, 1, X, Y) float32 CPU tensor.
    """
    tensor = float_tensor(volume.image if isinstance(volume, GridVolume) else volume)
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


def slices_on(slices: Tensor, device: torch.device) -> Tensor:
    """(N, C, H, W) slices on ``device``, channels-last (the layout the networks run fastest in);
    copied to a GPU from pinned memory without blocking."""
    if device.type == "cuda":
        return slices.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return slices.to(device).contiguous(memory_format=torch.channels_last)


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
    def reconstruct(self, volume: VolumeLike) -> np.ndarray:
        """Reconstruct every axial slice of a model-grid volume, :attr:`forward_batch` slices per
        forward pass, the test-time noise seeded by the volume (:func:`volume_noise_seed`).

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        was_training = self.training
        self.eval()
        slices = volume_slices(volume)
        generator = torch.Generator(device=self.device).manual_seed(volume_noise_seed(self.seed, volume))
        outputs = [self.reconstruct_slices(slices_on(batch, self.device), generator).float().cpu()
                   for batch in slices.split(self.forward_batch)]
        self.train(was_training)
        return slices_to_volume(torch.cat(outputs))

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
