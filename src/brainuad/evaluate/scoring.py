"""How a trained method scores a model-grid volume, shared by the evaluation protocol and
``brainuad predict``.

A method offers ``anomaly_map(volume)`` (:class:`AnomalyScorer`) and, when it reconstructs a
pseudo-healthy volume, ``reconstruct(volume)`` (:class:`Reconstructor`; diffusion methods also take
a noise level, :class:`NoiseLevelReconstructor`). :func:`volume_scorer` picks the score: the
residual ``R = |x - x_rec|`` of a reconstruction (or the method's ``reconstruction_score`` of it),
else the method's own map; every volume costs one model call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from brainuad.checks import check_fraction
from brainuad.data.grid import MODEL_GRID_SHAPE, GridVolume
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.methods.base import AnomalyDetector, residual

__all__ = [
    "AnomalyScorer",
    "BatchReconstructor",
    "ConditionedReconstructor",
    "MapScorer",
    "MultiContrastReader",
    "NoiseLevelReconstructor",
    "Reconstructor",
    "ResidualScorer",
    "ScoredVolume",
    "ScoringReconstructor",
    "VolumeScorer",
    "crop_width",
    "read_contrasts",
    "volume_scorer",
]


@runtime_checkable
class AnomalyScorer(Protocol):
    """Anything with ``anomaly_map(volume) -> (96, 96, 50)`` non-negative scores."""

    def anomaly_map(self, volume: GridVolume) -> np.ndarray: ...


@runtime_checkable
class Reconstructor(Protocol):
    """A method that reconstructs a pseudo-healthy volume: ``reconstruct(volume) -> (96, 96, 50)``."""

    def reconstruct(self, volume: GridVolume) -> np.ndarray: ...


@runtime_checkable
class ScoringReconstructor(Protocol):
    """A reconstruction method with its own score of a reconstruction (pDDPM-IQA's l1 + SSIM fusion):
    ``reconstruction_score(image, reconstruction) -> (X, Y, Z)`` float32 >= 0."""

    def reconstruction_score(self, image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class NoiseLevelReconstructor(Protocol):
    """A diffusion method: ``reconstruct(volume, t_test=t)``; ``levels()`` its default test levels,
    ``levels(t_test=t)`` the single level ``t`` (raising ValueError outside its schedule)."""

    def reconstruct(self, volume: GridVolume, *, t_test: int | None = None) -> np.ndarray: ...

    def levels(self, t_test: int | None = None) -> tuple[int, ...]: ...


@runtime_checkable
class BatchReconstructor(Protocol):
    """A diffusion method that reconstructs several volumes in shared forward batches:
    ``reconstruct_many(volumes, t_test=t, conditions=images)`` equals ``reconstruct`` of each;
    ``passes_per_slice(levels, height, width)`` denoiser passes a slice costs, and
    ``forward_batch`` the rows of one forward batch."""

    @property
    def forward_batch(self) -> int: ...

    def reconstruct_many(self, volumes: Sequence[GridVolume], *, t_test: int | None = None,
                         conditions: Sequence[np.ndarray] | None = None) -> list[np.ndarray]: ...

    def levels(self, t_test: int | None = None) -> tuple[int, ...]: ...

    def passes_per_slice(self, levels: Sequence[int], height: int, width: int) -> int: ...


@runtime_checkable
class ConditionedReconstructor(Protocol):
    """A conditioned diffusion method (``conditioned`` true): its encoder may be given another
    image than the input, ``reconstruct(volume, t_test=t, condition=image)``."""

    conditioned: bool

    def reconstruct(self, volume: GridVolume, *, t_test: int | None = None,
                    condition: np.ndarray | None = None) -> np.ndarray: ...


@runtime_checkable
class MultiContrastReader(Protocol):
    """A method that reads each volume with other contrasts of its subject (the multi-contrast
    cDDPM): ``contrasts`` names them (``("t1",)``); its volumes must be loaded with them
    (:attr:`~brainuad.data.grid.GridVolume.contrasts`)."""

    contrasts: tuple[str, ...]


def read_contrasts(method: object) -> tuple[str, ...]:
    """The other contrasts ``method`` reads with each volume (:class:`MultiContrastReader`), else ()."""
    return tuple(method.contrasts) if isinstance(method, MultiContrastReader) else ()


@dataclass(frozen=True)
class ScoredVolume:
    """One volume's anomaly map and, for reconstruction methods, its reconstruction.

    Attributes:
        anomaly_map: (X, Y, Z) float32 >= 0.
        reconstruction: (X, Y, Z) float32 or None.
        postprocessed: the anomaly map after each post-processing an evaluation asked the stream
            for (:func:`~brainuad.evaluate.stream.scored_volumes`), (X, Y, Z) each; empty otherwise.
    """

    anomaly_map: np.ndarray
    reconstruction: np.ndarray | None
    postprocessed: Mapping[PostProcessing, np.ndarray] = field(default_factory=dict)


class VolumeScorer(ABC):
    """Turns model-grid volumes into :class:`ScoredVolume` s (one model call per volume)."""

    @property
    def volumes_per_batch(self) -> int:
        """How many volumes :meth:`score_many` is best given at once (their slices share forward batches)."""
        return 1

    @property
    def device(self) -> torch.device:
        """Where the method scores (and the evaluation post-processes) volumes; the CPU unless a
        scorer says otherwise."""
        return torch.device("cpu")

    @abstractmethod
    def _score_many(self, volumes: Sequence[GridVolume]) -> list[ScoredVolume]:
        """The scored volumes, in order (arrays of each volume's shape)."""

    def score_many(self, volumes: Sequence[GridVolume]) -> list[ScoredVolume]:
        """Score ``volumes`` without gradients and check the shapes."""
        with torch.no_grad():
            scored_volumes = self._score_many(volumes)
        for volume, scored in zip(volumes, scored_volumes, strict=True):
            for name, array in (("anomaly map", scored.anomaly_map), ("reconstruction", scored.reconstruction)):
                if array is not None and array.shape != volume.image.shape:
                    raise ValueError(f"the method's {name} of {volume.name} has shape {array.shape}, "
                                     f"expected {volume.image.shape}")
        return scored_volumes

    def score(self, volume: GridVolume) -> ScoredVolume:
        """:meth:`score_many` of one volume."""
        return self.score_many([volume])[0]


def _device_of(method: object) -> torch.device:
    """The device of a trained method (an :class:`AnomalyDetector`), else the CPU."""
    return method.device if isinstance(method, AnomalyDetector) else torch.device("cpu")


def crop_width(image: np.ndarray, width: float) -> np.ndarray:
    """The image cropped to the first ``width`` fraction of its x axis (the model grid's
    left-right; the width of an axial slice as the report shows it), the rest set to 0
    (background): the domain-shift study's conditioning input (paper §4.5.2).

    Args:
        image: (X, Y, Z) float array, or (C, X, Y, Z) channels (a volume with its other contrasts,
            each cropped alike).
        width: fraction in (0, 1]; 1 returns the image unchanged.

    Returns:
        float32 of the shape of ``image``.
    """
    check_fraction("width", width, open_low=True)
    cropped = np.array(image, dtype=np.float32)
    if cropped.ndim not in (3, 4):
        raise ValueError(f"image must be (X, Y, Z) or (C, X, Y, Z), got shape {cropped.shape}")
    cropped[..., int(round(width * cropped.shape[-3])):, :, :] = 0.0
    return cropped


class ResidualScorer(VolumeScorer):
    """A reconstruction method: the anomaly map from one reconstruction, the residual
    ``R = |x - x_rec|`` or the method's own ``reconstruction_score`` (:class:`ScoringReconstructor`).

    Args:
        method: offers ``reconstruct(volume)``.
        t_test: a single diffusion noise level replacing the method's default levels (sweeps).
        conditioning_width: for a conditioned diffusion method, the fraction of the input's width
            its encoder sees (:func:`crop_width`); 1: the whole input.
    """

    def __init__(self, method: Reconstructor, t_test: int | None = None, conditioning_width: float = 1.0) -> None:
        if t_test is not None and not isinstance(method, NoiseLevelReconstructor):
            raise ValueError(f"t_test={t_test!r} needs a diffusion method, got {type(method).__name__}")
        check_fraction("conditioning_width", conditioning_width, open_low=True)
        if conditioning_width < 1.0 and not (isinstance(method, ConditionedReconstructor) and method.conditioned):
            raise ValueError(f"conditioning_width={conditioning_width!r} needs a conditioned diffusion method, got "
                             f"{type(method).__name__}")
        self.method = method
        self.t_test = t_test
        self.conditioning_width = conditioning_width

    @property
    def device(self) -> torch.device:
        return _device_of(self.method)

    @property
    def volumes_per_batch(self) -> int:
        """Volumes whose denoiser passes fill one forward batch of a :class:`BatchReconstructor` (at least 1)."""
        if not isinstance(self.method, BatchReconstructor):
            return 1
        depth, height, width = MODEL_GRID_SHAPE[2], MODEL_GRID_SHAPE[0], MODEL_GRID_SHAPE[1]
        rows = depth * self.method.passes_per_slice(self.method.levels(self.t_test), height, width)
        return max(1, self.method.forward_batch // rows)

    def _reconstruct(self, volumes: Sequence[GridVolume]) -> list[np.ndarray]:
        conditions = None
        if self.conditioning_width < 1.0:
            contrasts = read_contrasts(self.method)
            conditions = [crop_width(volume.channels(contrasts) if contrasts else volume.image, self.conditioning_width)
                          for volume in volumes]
        if isinstance(self.method, BatchReconstructor):
            return self.method.reconstruct_many(volumes, t_test=self.t_test, conditions=conditions)
        if isinstance(self.method, ConditionedReconstructor) and conditions is not None:
            return [self.method.reconstruct(volume, t_test=self.t_test, condition=condition)
                    for volume, condition in zip(volumes, conditions)]
        if self.t_test is None:
            return [self.method.reconstruct(volume) for volume in volumes]
        if isinstance(self.method, NoiseLevelReconstructor):
            return [self.method.reconstruct(volume, t_test=self.t_test) for volume in volumes]
        raise ValueError(f"t_test={self.t_test!r} needs a diffusion method, got {type(self.method).__name__}")

    def _score_many(self, volumes: Sequence[GridVolume]) -> list[ScoredVolume]:
        scored = []
        for volume, reconstruction in zip(volumes, self._reconstruct(volumes), strict=True):
            reconstruction = np.asarray(reconstruction, dtype=np.float32)
            if isinstance(self.method, ScoringReconstructor):
                score = np.asarray(self.method.reconstruction_score(volume.image, reconstruction), dtype=np.float32)
            else:
                score = residual(volume.image, reconstruction)
            scored.append(ScoredVolume(score, reconstruction))
        return scored


class MapScorer(VolumeScorer):
    """A method without a reconstruction: its own ``anomaly_map`` (cast to float32)."""

    def __init__(self, method: AnomalyScorer) -> None:
        self.method = method

    @property
    def device(self) -> torch.device:
        return _device_of(self.method)

    def _score_many(self, volumes: Sequence[GridVolume]) -> list[ScoredVolume]:
        return [ScoredVolume(np.asarray(self.method.anomaly_map(volume), dtype=np.float32), None)
                for volume in volumes]


def volume_scorer(method: AnomalyScorer) -> VolumeScorer:
    """How ``method`` scores a volume: the residual of its reconstruction when it has
    ``reconstruct``, else its own ``anomaly_map`` (shared by the protocol and ``brainuad predict``)."""
    return ResidualScorer(method) if isinstance(method, Reconstructor) else MapScorer(method)
