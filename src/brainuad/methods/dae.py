"""DAE: a UNet denoising autoencoder trained with coarse noise (Kascenas et al. 2022; paper §4.4).

Training: Gaussian noise is drawn on a coarse grid (``resolution`` x ``resolution`` cells, std
0.2 in [0, 1] intensity units), upsampled bilinearly to the slice, and added to the brain (the
non-zero voxels of a model-grid slice; the background stays 0); the UNet maps the noisy slice
back to the clean one, loss = mean squared error. Test: the input is *not* noised; the
reconstruction is the UNet's output on the clean input, so an anomaly is whatever the network,
having learnt to remove blob-like deviations from healthy anatomy, takes away.

The network is the project's ADM-style UNet (:class:`~brainuad.nn.unet.UNet`) fed a constant
time step 0: a DAE has no noise level to condition on.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from brainuad.checks import check_int
from brainuad.config import RunConfigBase, Section, UNetConfig, execution_field
from brainuad.image_range import to_model_range
from brainuad.methods.base import ReconstructionMethod
from brainuad.methods.components import build_unet
from brainuad.methods.spec import MethodSpec
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["CoarseNoise", "CoarseNoiseConfig", "DAERunConfig", "DAE_SPEC", "DenoisingAutoencoder"]


class CoarseNoise(NoiseSampler):
    """Gaussian noise of std ``std`` on a ``resolution`` x ``resolution`` grid, bilinearly upsampled.

    Args:
        resolution: cells per side of the coarse grid (Kascenas et al.: 16 for 128 px slices).
        std: standard deviation of the grid values.
    """

    def __init__(self, resolution: int = 16, std: float = 0.2) -> None:
        check_int("resolution", resolution)
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.resolution = resolution
        self.std = std

    def sample(self, shape: tuple[int, int, int, int], *, device: torch.device | str,
               dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
        """(N, C, H, W) noise, smooth at the scale of H / resolution pixels (see :class:`NoiseSampler`)."""
        if len(shape) != 4 or any(isinstance(side, bool) or int(side) < 1 for side in shape):
            raise ValueError(f"shape must be four positive integers (N, C, H, W), got {shape!r}")
        n, c, height, width = (int(side) for side in shape)
        coarse = torch.randn((n, c, self.resolution, self.resolution), generator=generator, device=device,
                             dtype=torch.float32) * self.std
        return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False).to(dtype)

    def __repr__(self) -> str:
        return f"CoarseNoise(resolution={self.resolution!r}, std={self.std!r})"


class DenoisingAutoencoder(ReconstructionMethod):
    """A UNet that removes coarse noise from healthy slices (module docstring).

    Args:
        unet: 1 channel in and out, unconditioned (``context_dim=None``).
        noise: the training noise.
        inference_batch_size, seed: see :class:`ReconstructionMethod`.
    """

    def __init__(self, unet: UNet, noise: NoiseSampler, *, inference_batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(inference_batch_size, seed)
        if unet.in_channels != 1 or unet.out_channels != 1 or unet.context_dim is not None:
            raise ValueError("the DAE's UNet must map 1 channel to 1 channel without context, got in_channels="
                             f"{unet.in_channels}, out_channels={unet.out_channels}, context_dim={unet.context_dim}")
        self.unet = unet
        self.noise = noise

    def denoise(self, images: Tensor) -> Tensor:
        """The UNet's estimate of the clean slices: (N, 1, H, W) in [0, 1] -> (N, 1, H, W), [0, 1]
        scale, not clamped."""
        t = torch.zeros(len(images), device=images.device, dtype=torch.long)
        return (self.unet(to_model_range(images), t) + 1) / 2

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean squared error of the denoised noisy slices; images: (N, 1, H, W) in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
        n, c, h, w = images.shape
        noise = self.noise.sample((n, c, h, w), device=images.device, dtype=images.dtype, generator=generator)
        noisy = images + noise * (images > 0)
        return (self.denoise(noisy) - images).square().mean()

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The denoised clean input, clamped: (N, 1, H, W) in [0, 1] -> same shape, [0, 1]."""
        return self.denoise(images).clamp(0, 1)


class CoarseNoiseConfig(Section):
    """DAE (Kascenas et al. 2022): Gaussian noise drawn on a coarse grid, upsampled bilinearly."""

    resolution: int = Field(16, ge=1, description="side of the coarse noise grid, in cells")
    std: float = Field(0.2, gt=0, description="standard deviation of the noise, in [0, 1] intensity units")
    inference_batch_size: int = execution_field(64, ge=1)


class DAERunConfig(RunConfigBase):
    """Denoising autoencoder (Kascenas et al. 2022): a UNet removing coarse noise."""

    method: Literal["dae"] = "dae"
    model: UNetConfig = UNetConfig()
    dae: CoarseNoiseConfig = CoarseNoiseConfig()


def build_dae(config: DAERunConfig, load_pretrained: bool) -> DenoisingAutoencoder:
    """The untrained DAE of a run config."""
    return DenoisingAutoencoder(build_unet(config.model), CoarseNoise(config.dae.resolution, config.dae.std),
                                inference_batch_size=config.dae.inference_batch_size, seed=config.train.seed)


DAE_SPEC = MethodSpec("dae", DAERunConfig, build_dae, "denoising autoencoder removing coarse noise (Kascenas et al.)")
