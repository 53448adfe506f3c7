"""The diffusion process shared by DDPM, pDDPM and cDDPM (method.md §3, paper §3.1).

T = 1000 steps, cosine schedule (Nichol & Dhariwal 2021: s = 0.008, beta clipped at 0.999);
images mapped from [0, 1] to [-1, 1]; the forward process
``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` with eps Gaussian or simplex noise; the network
predicts x0 directly and the loss is the mean L1 error ``|x0 - x0_hat|``. Timesteps run from 1
to T; ``abar_t = prod_{s=1..t} (1 - beta_s)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def cosine_alpha_bar(t: Tensor, timesteps: int, s: float = 0.008) -> Tensor:
    """The closed form ``f(t) / f(0)``, ``f(t) = cos(((t / T) + s) / (1 + s) * pi / 2) ** 2``."""
    def f(u: Tensor) -> Tensor:
        return torch.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2

    return f(t.double()) / f(torch.zeros((), dtype=torch.float64))


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """beta_1..beta_T of the cosine schedule: ``1 - abar_t / abar_{t-1}`` clipped at ``max_beta``.

    Returns:
        (T,) float64.
    """
    if timesteps < 2:
        raise ValueError(f"timesteps must be >= 2, got {timesteps!r}")
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    alpha_bar = cosine_alpha_bar(steps, timesteps, s)
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


class DiffusionSchedule(nn.Module):
    """The forward process: ``abar_t`` for t = 1..T as a buffer, ``q_sample`` and timestep draws.

    Args:
        timesteps: T (1000).
    """

    betas: Tensor
    alphas_cumprod: Tensor

    def __init__(self, timesteps: int = 1000) -> None:
        super().__init__()
        betas = cosine_betas(timesteps)
        self.timesteps = timesteps
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)

    def alpha_bar(self, t: Tensor) -> Tensor:
        """abar_t for integer timesteps t in 1..T: (N,) -> (N,)."""
        return self.alphas_cumprod[t.long() - 1]

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``; x0, noise: (N, C, H, W); t: (N,)."""
        alpha_bar = self.alpha_bar(t).view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def sample_timesteps(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """n timesteps drawn uniformly from 1..T: (n,) int64."""
        return torch.randint(1, self.timesteps + 1, (n,), device=device, generator=generator)

    def check_level(self, level: int) -> int:
        """Validate a test-time noise level (1..T)."""
        if not isinstance(level, int) or not 1 <= level <= self.timesteps:
            raise ValueError(f"noise level must be an integer in 1..{self.timesteps}, got {level!r}")
        return level
