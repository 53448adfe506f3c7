"""Patched DDPM (pDDPM, Behrendt et al. 2023; method.md §3 "pDDPM").

The slice is divided into a grid of square patches (2 x 2 patches of 48 px on a 96 px slice).
Training: one random patch per slice is noised while the rest stays clean; the loss is the L1
error on that patch. Test: each patch is noised and reconstructed in turn (the others clean),
and the reconstructed patch regions are tiled into the full slice.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from pydantic import Field
from torch import Tensor

from brainuad.config import DiffusionConfig, RunConfigBase, Section, UNetConfig
from brainuad.image_range import to_model_range
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.ddpm import DDPM, OneStepPass, diffusion_options
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.spec import MethodSpec
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["PDDPM", "PDDPMRunConfig", "PDDPM_SPEC", "PatchConfig", "patch_masks"]


def patch_masks(height: int, width: int, patch_size: int, device: torch.device | None = None) -> Tensor:
    """Boolean masks of the patch grid: (P, 1, H, W), P = (H / patch_size) * (W / patch_size).

    Raises:
        ValueError: ``patch_size`` does not divide both ``height`` and ``width``.
    """
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch_size {patch_size!r} must divide the slice size {height} x {width}")
    rows, cols = height // patch_size, width // patch_size
    masks = torch.zeros(rows * cols, 1, height, width, dtype=torch.bool, device=device)
    for index in range(rows * cols):
        row, col = divmod(index, cols)
        masks[index, :, row * patch_size:(row + 1) * patch_size, col * patch_size:(col + 1) * patch_size] = True
    return masks


class PDDPM(DDPM):
    """DDPM that noises and reconstructs one patch at a time.

    Args:
        patch_size: side of the square patches in px (48).
        (others as :class:`DDPM`)
    """

    def __init__(self, unet: UNet, noise: NoiseSampler, schedule: DiffusionSchedule, *, patch_size: int = 48,
                 **options) -> None:
        super().__init__(unet, noise, schedule, **options)
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size!r}")
        self.patch_size = patch_size

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean L1 error on one randomly chosen noised patch per slice; images (N, 1, H, W) in [0, 1]."""
        x0 = to_model_range(images)
        masks = patch_masks(x0.shape[-2], x0.shape[-1], self.patch_size, x0.device)
        chosen = masks[torch.randint(len(masks), (x0.shape[0],), device=x0.device, generator=generator)]
        t = self.schedule.sample_timesteps(x0.shape[0], x0.device, generator)
        x_t = torch.where(chosen, self.schedule.q_sample(x0, t, self._noise_like(x0, generator)), x0)
        error = (self.unet(x_t, t, self.context(x0)) - x0).abs()
        return error[chosen.expand_as(error)].mean()

    def one_step_passes(self, x0: Tensor, levels: Sequence[int],
                        generator: torch.Generator | None = None) -> list[OneStepPass]:
        """Per level, per patch: that patch noised (fresh noise each), the rest clean; the pass's
        reconstruction counts on its patch only, so the patches tile each level's slice."""
        masks = patch_masks(x0.shape[-2], x0.shape[-1], self.patch_size, x0.device)
        passes = []
        for level in levels:
            t = torch.full((x0.shape[0],), level, device=x0.device, dtype=torch.long)
            for mask in masks:
                x_t = torch.where(mask, self.schedule.q_sample(x0, t, self._noise_like(x0, generator)), x0)
                passes.append(OneStepPass(x_t, level, mask))
        return passes

    def passes_per_slice(self, levels: Sequence[int], height: int, width: int) -> int:
        return len(levels) * (height // self.patch_size) * (width // self.patch_size)


class PatchConfig(Section):
    """pDDPM patching (method.md §3 "pDDPM")."""

    size: int = Field(48, ge=1)


class PDDPMRunConfig(RunConfigBase):
    """Patched DDPM (Behrendt et al. 2023)."""

    method: Literal["pddpm"] = "pddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    patch: PatchConfig = PatchConfig()


def build_pddpm(config: PDDPMRunConfig, load_pretrained: bool) -> PDDPM:
    """The untrained pDDPM of a run config."""
    diffusion = config.diffusion
    return PDDPM(build_unet(config.model), build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps),
                 patch_size=config.patch.size, **diffusion_options(diffusion, config.train.seed))


PDDPM_SPEC = MethodSpec("pddpm", PDDPMRunConfig, build_pddpm, "patched DDPM: one noised patch at a time",
                        noise_levels=lambda config: config.diffusion.timesteps)
