"""DDPM and the conditioned cDDPM for anomaly detection (paper §3.1-3.2, method.md §3).

Training: one noise level per slice, x0-prediction, L1 loss. Test: no iterative sampling; the
input is noised to ``t_test`` and x0 predicted in one step, or the reconstructions at several
levels (the ensemble, fresh noise each) are averaged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from brainuad.methods.base import ReconstructionMethod, VolumeLike
from brainuad.methods.diffusion import DiffusionSchedule, to_image_range, to_model_range
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler


class DDPM(ReconstructionMethod):
    """Denoising diffusion model reconstructing slices in one step from ``x_t``.

    Args:
        unet: the denoising network predicting x0.
        noise: the forward-process noise (simplex by default in the configs).
        schedule: the diffusion schedule (T, abar_t).
        t_test: default single test noise level (paper: 500).
        ensemble: default test levels averaged instead of ``t_test`` (cDDPM: 250, 500, 750), or None.
        inference_batch_size, seed: see :class:`ReconstructionMethod`.
    """

    def __init__(self, unet: UNet, noise: NoiseSampler, schedule: DiffusionSchedule, *, t_test: int = 500,
                 ensemble: Sequence[int] | None = None, inference_batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(inference_batch_size, seed)
        self.unet = unet
        self.noise = noise
        self.schedule = schedule
        self.t_test = schedule.check_level(t_test)
        self.ensemble = None if ensemble is None else tuple(schedule.check_level(level) for level in ensemble)
        if self.ensemble is not None and not self.ensemble:
            raise ValueError("ensemble must name at least one noise level, or be None")

    def context(self, x0: Tensor) -> Tensor | None:
        """Conditioning of the denoiser on the clean input; None for the unconditioned DDPM."""
        return None

    def _noise_like(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.noise.sample(tuple(x0.shape), device=x0.device, dtype=x0.dtype, generator=generator)

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean L1 ``|x0 - x0_hat|`` at a uniformly drawn t per slice; images: (N, 1, H, W) in [0, 1]."""
        x0 = to_model_range(images)
        t = self.schedule.sample_timesteps(x0.shape[0], x0.device, generator)
        x_t = self.schedule.q_sample(x0, t, self._noise_like(x0, generator))
        return (self.unet(x_t, t, self.context(x0)) - x0).abs().mean()

    def levels(self, t_test: int | None = None, ensemble: Sequence[int] | None = None) -> tuple[int, ...]:
        """The test noise levels: ``ensemble`` if given, else ``t_test`` if given, else the defaults."""
        if ensemble is not None:
            return tuple(self.schedule.check_level(level) for level in ensemble)
        if t_test is not None:
            return (self.schedule.check_level(t_test),)
        return self.ensemble or (self.t_test,)

    def reconstruct_at(self, images: Tensor, levels: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
        """Mean of the one-step reconstructions at each level (fresh noise each, each clamped to [0, 1]).

        Args:
            images: (N, 1, H, W) in [0, 1].
            levels: noise levels in 1..T.

        Returns:
            (N, 1, H, W) in [0, 1].
        """
        x0 = to_model_range(images)
        context = self.context(x0)
        total = torch.zeros_like(images)
        for level in levels:
            t = torch.full((x0.shape[0],), level, device=x0.device, dtype=torch.long)
            x_t = self.schedule.q_sample(x0, t, self._noise_like(x0, generator))
            total += to_image_range(self.unet(x_t, t, context))
        return total / len(levels)

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.reconstruct_at(images, self.levels(), generator)

    def reconstruct(self, volume: VolumeLike, *, t_test: int | None = None,
                    ensemble: Sequence[int] | None = None) -> np.ndarray:
        """Reconstruct all axial slices of a model-grid volume, one forward pass per slice and level.

        Args:
            volume: a GridVolume or (X, Y, Z) array in [0, 1].
            t_test: a single noise level (overrides the default).
            ensemble: levels to average (overrides ``t_test`` and the default).

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        levels = self.levels(t_test, ensemble)
        return self._map_slices(volume, lambda batch, generator: self.reconstruct_at(batch, levels, generator))


class CDDPM(DDPM):
    """DDPM conditioned on an encoding of the clean input slice (the paper's cDDPM, §3.2).

    The encoder F_enc maps the clean slice (in [-1, 1]) to c in R^d; the UNet's FiLM layers use
    concat(c, c_t). The encoder is trained end to end with the UNet.

    Args:
        encoder: F_enc, with ``out_dim`` equal to the UNet's ``context_dim``.
        (others as :class:`DDPM`)
    """

    def __init__(self, unet: UNet, encoder: ImageEncoder, noise: NoiseSampler, schedule: DiffusionSchedule,
                 **options) -> None:
        if unet.context_dim != encoder.out_dim:
            raise ValueError(f"the UNet's context_dim ({unet.context_dim}) must equal the encoder's out_dim "
                             f"({encoder.out_dim})")
        super().__init__(unet, noise, schedule, **options)
        self.encoder = encoder

    def context(self, x0: Tensor) -> Tensor:
        return self.encoder(x0)
