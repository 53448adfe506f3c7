"""DDPM for anomaly detection (paper §3.1, method.md §3); the conditioned cDDPM builds on it.

Training: one noise level per slice, x0-prediction, L1 loss. Test: no iterative sampling; the
input is noised to ``t_test`` and x0 predicted in one step, or the reconstructions at several
levels (the ensemble, fresh noise each) are averaged.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from brainuad.config import DiffusionConfig, RunConfigBase, UNetConfig
from brainuad.image_range import to_image_range, to_model_range
from brainuad.methods.base import ReconstructionMethod, VolumeLike, volume_slices
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.spec import MethodSpec
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["DDPM", "DDPMRunConfig", "DDPM_SPEC", "diffusion_options"]


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

    conditioned = False
    """Whether the denoiser sees an encoding of the input (the cDDPM) or not."""

    def context(self, x0: Tensor) -> Tensor | None:
        """Conditioning of the denoiser on the clean input; None for the unconditioned DDPM."""
        return None

    def _context_of(self, x0: Tensor, condition: Tensor | None) -> Tensor | None:
        """:meth:`context` of ``condition`` ((N, C, H, W) in [0, 1]) if given, else of ``x0`` (model range)."""
        return self.context(x0 if condition is None else to_model_range(condition))

    def _noise_like(self, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        n, c, h, w = x0.shape
        return self.noise.sample((n, c, h, w), device=x0.device, dtype=x0.dtype, generator=generator)

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean L1 ``|x0 - x0_hat|`` at a uniformly drawn t per slice; images: (N, 1, H, W) in [0, 1]."""
        return self.denoising_loss(images, generator)

    def denoising_loss(self, images: Tensor, generator: torch.Generator | None = None,
                       condition: Tensor | None = None) -> Tensor:
        """Mean L1 ``|x0 - x0_hat|`` at a uniformly drawn t per slice.

        Args:
            images: (N, 1, H, W) in [0, 1], the slices to noise and denoise.
            condition: (N, C, H, W) in [0, 1], what the conditioning encoder sees instead of
                ``images`` (the 2.5-D cDDPM: each slice with its neighbours), or None.
        """
        x0 = to_model_range(images)
        t = self.schedule.sample_timesteps(x0.shape[0], x0.device, generator)
        x_t = self.schedule.q_sample(x0, t, self._noise_like(x0, generator))
        return (self.unet(x_t, t, self._context_of(x0, condition)) - x0).abs().mean()

    def levels(self, t_test: int | None = None, ensemble: Sequence[int] | None = None) -> tuple[int, ...]:
        """The test noise levels: ``ensemble`` if given, else ``t_test`` if given, else the defaults."""
        if ensemble is not None:
            return tuple(self.schedule.check_level(level) for level in ensemble)
        if t_test is not None:
            return (self.schedule.check_level(t_test),)
        return self.ensemble or (self.t_test,)

    def reconstruct_at(self, images: Tensor, levels: Sequence[int], generator: torch.Generator | None = None,
                       condition: Tensor | None = None) -> Tensor:
        """Mean of the one-step reconstructions at each level (fresh noise each, each clamped to [0, 1]).

        Args:
            images: (N, 1, H, W) in [0, 1].
            levels: noise levels in 1..T.
            condition: (N, C, H, W) in [0, 1], what the conditioning encoder sees instead of
                ``images`` (the domain-shift study's cropped conditioning; C > 1 for the 2.5-D
                cDDPM's neighbouring slices), or None; an unconditioned DDPM ignores it.

        Returns:
            (N, 1, H, W) in [0, 1].
        """
        x0 = to_model_range(images)
        context = self._context_of(x0, condition)
        total = torch.zeros_like(images)
        for level in levels:
            t = torch.full((x0.shape[0],), level, device=x0.device, dtype=torch.long)
            x_t = self.schedule.q_sample(x0, t, self._noise_like(x0, generator))
            total += to_image_range(self.unet(x_t, t, context))
        return total / len(levels)

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.reconstruct_at(images, self.levels(), generator)

    def condition_slices(self, condition: VolumeLike) -> Tensor:
        """What the conditioning encoder sees for each axial slice of a conditioning volume:
        (X, Y, Z) -> (Z, 1, X, Y), its slices (the 2.5-D cDDPM: each with its neighbours)."""
        return volume_slices(condition)

    def reconstruct(self, volume: VolumeLike, *, t_test: int | None = None,
                    ensemble: Sequence[int] | None = None, condition: VolumeLike | None = None) -> np.ndarray:
        """Reconstruct all axial slices of a model-grid volume, one forward pass per slice and level.

        Args:
            volume: a GridVolume or (X, Y, Z) array in [0, 1].
            t_test: a single noise level (overrides the default).
            ensemble: levels to average (overrides ``t_test`` and the default).
            condition: a volume of the same shape the conditioning encoder sees instead of
                ``volume`` (see :meth:`reconstruct_at`), or None.

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        levels = self.levels(t_test, ensemble)
        return self._map_slices(volume, lambda batch, generator, given: self.reconstruct_at(
            batch, levels, generator, given), None if condition is None else self.condition_slices(condition))


class DDPMRunConfig(RunConfigBase):
    """DDPM with simplex noise (AnoDDPM-style); x0-prediction, L1 loss."""

    method: Literal["ddpm"] = "ddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig()


def diffusion_options(diffusion: DiffusionConfig, seed: int) -> dict[str, Any]:
    """The keyword arguments of :class:`DDPM` (and its subclasses) a diffusion section sets."""
    return dict(t_test=diffusion.t_test, ensemble=diffusion.ensemble,
                inference_batch_size=diffusion.inference_batch_size, seed=seed)


def build_ddpm(config: DDPMRunConfig, load_pretrained: bool) -> DDPM:
    """The untrained DDPM of a run config."""
    diffusion = config.diffusion
    return DDPM(build_unet(config.model), build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps),
                **diffusion_options(diffusion, config.train.seed))


DDPM_SPEC = MethodSpec("ddpm", DDPMRunConfig, build_ddpm, "DDPM with simplex noise, one-step reconstruction",
                       noise_levels=lambda config: config.diffusion.timesteps)
