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
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from brainuad.checks import check_fraction
from brainuad.data.grid import GridVolume
from brainuad.methods.base import residual

__all__ = [
    "AnomalyScorer",
    "ConditionedReconstructor",
    "MapScorer",
    "NoiseLevelReconstructor",
    "Reconstructor",
    "ResidualScorer",
    "ScoredVolume",
    "ScoringReconstructor",
    "VolumeScorer",
    "crop_width",
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
class ConditionedReconstructor(Protocol):
    """A conditioned diffusion method (``conditioned`` true): its encoder may be given another
    image than the input, ``reconstruct(volume, t_test=t, condition=image)``."""

    conditioned: bool

    def reconstruct(self, volume: GridVolume, *, t_test: int | None = None,
                    condition: np.ndarray | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class ScoredVolume:
    """One volume's anomaly map and, for reconstruction methods, its reconstruction.

    Attributes:
        anomaly_map: (X, Y, Z) float32 >= 0.
        reconstruction: (X, Y, Z) float32 or None.
    """

    anomaly_map: np.ndarray
    reconstruction: np.ndarray | None


class VolumeScorer(ABC):
    """Turns a model-grid volume into a :class:`ScoredVolume` (one model call per volume)."""

    @abstractmethod
    def _score(self, volume: GridVolume) -> ScoredVolume:
        """The scored volume (arrays of the volume's shape)."""

    def score(self, volume: GridVolume) -> ScoredVolume:
        """Score ``volume`` without gradients and check the shapes."""
        with torch.no_grad():
            scored = self._score(volume)
        for name, array in (("anomaly map", scored.anomaly_map), ("reconstruction", scored.reconstruction)):
            if array is not None and array.shape != volume.image.shape:
                raise ValueError(f"the method's {name} of {volume.name} has shape {array.shape}, "
                                 f"expected {volume.image.shape}")
        return scored


def crop_width(image: np.ndarray, width: float) -> np.ndarray:
    """The image cropped to the first ``width`` fraction of its first axis (the model grid's x,
    left-right; the width of an axial slice as the report shows it), the rest set to 0
    (background): the domain-shift study's conditioning input (paper §4.5.2).

    Args:
        image: (X, Y, Z) float array.
        width: fraction in (0, 1]; 1 returns the image unchanged.

    Returns:
        (X, Y, Z) float32.
    """
    check_fraction("width", width, open_low=True)
    cropped = np.array(image, dtype=np.float32)
    cropped[int(round(width * cropped.shape[0])):] = 0.0
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

    def _score(self, volume: GridVolume) -> ScoredVolume:
        if self.conditioning_width < 1.0 and isinstance(self.method, ConditionedReconstructor):
            reconstruction = self.method.reconstruct(volume, t_test=self.t_test,
                                                     condition=crop_width(volume.image, self.conditioning_width))
        elif self.t_test is None:
            reconstruction = self.method.reconstruct(volume)
        elif isinstance(self.method, NoiseLevelReconstructor):
            reconstruction = self.method.reconstruct(volume, t_test=self.t_test)
        else:
            raise ValueError(f"t_test={self.t_test!r} needs a diffusion method, got {type(self.method).__name__}")
        reconstruction = np.asarray(reconstruction, dtype=np.float32)
        if isinstance(self.method, ScoringReconstructor):
            return ScoredVolume(np.asarray(self.method.reconstruction_score(volume.image, reconstruction),
                                           dtype=np.float32), reconstruction)
        return ScoredVolume(residual(volume.image, reconstruction), reconstruction)


class MapScorer(VolumeScorer):
    """A method without a reconstruction: its own ``anomaly_map`` (cast to float32)."""

    def __init__(self, method: AnomalyScorer) -> None:
        self.method = method

    def _score(self, volume: GridVolume) -> ScoredVolume:
        return ScoredVolume(np.asarray(self.method.anomaly_map(volume), dtype=np.float32), None)


def volume_scorer(method: AnomalyScorer) -> VolumeScorer:
    """How ``method`` scores a volume: the residual of its reconstruction when it has
    ``reconstruct``, else its own ``anomaly_map`` (shared by the protocol and ``brainuad predict``)."""
    return ResidualScorer(method) if isinstance(method, Reconstructor) else MapScorer(method)
