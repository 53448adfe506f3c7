"""The sequential VAE (SVAE, Behrendt et al. 2022; paper §4.4, method.md §3 "Baselines").

SVAE: the slices of a stack of S consecutive axial slices are encoded one by one to vectors, a
transformer mixes them across the stack (inter-slice dependencies), a linear layer gives each
slice's (mu, log sigma^2), and each slice's code is decoded on its own. It trains on stacks
(N, S, H, W); a volume is reconstructed with windows of S consecutive slices, each slice taken
from the window that centres it (clamped at the ends of the volume).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from brainuad.config import AutoencoderConfig, Section, StackRunConfigBase
from brainuad.methods.autoencoders import GaussianLatent, LatentCode, VariationalConfig, per_pixel_loss
from brainuad.methods.base import ReconstructionMethod, VolumeLike, slices_to_volume, volume_slices
from brainuad.methods.components import conv_decoder, conv_encoder
from brainuad.methods.spec import MethodSpec
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder, SliceTransformer

__all__ = ["SVAERunConfig", "SVAE_SPEC", "SequenceConfig", "SequenceVAE", "window_starts"]


def window_starts(depth: int, stack_size: int) -> Tensor:
    """For each slice of a volume, the first slice of the window of ``stack_size`` consecutive
    slices that centres it, clamped to the volume: (depth,) long, in 0 .. depth - stack_size.

    Raises:
        ValueError: the volume has fewer slices than a window.
    """
    if stack_size < 1 or depth < stack_size:
        raise ValueError(f"a volume of {depth} slices cannot hold windows of {stack_size} slices")
    return (torch.arange(depth) - stack_size // 2).clamp(0, depth - stack_size)


class SequenceVAE(ReconstructionMethod):
    """SVAE: a VAE whose slice codes depend on the other slices of a stack (module docstring).

    Args:
        encoder: slice -> (N, mixer.dim) vector.
        mixer: self-attention across the S slices of a stack.
        decoder: code -> slice in [0, 1].
        latent: the latent strategy (:class:`GaussianLatent` for the SVAE).
        inference_batch_size: windows (stacks) per forward pass at test time.
        seed: see :class:`ReconstructionMethod`.
    """

    def __init__(self, encoder: ConvEncoder, mixer: SliceTransformer, decoder: ConvDecoder, latent: LatentCode, *,
                 inference_batch_size: int = 8, seed: int = 0) -> None:
        super().__init__(inference_batch_size, seed)
        if encoder.out_dim != mixer.dim:
            raise ValueError(f"the encoder's out_dim ({encoder.out_dim}) must equal the mixer's dim ({mixer.dim})")
        self.encoder = encoder
        self.mixer = mixer
        self.to_latent = nn.Linear(mixer.dim, latent.encoder_width(decoder.latent_dim))
        self.decoder = decoder
        self.latent = latent

    @property
    def stack_size(self) -> int:
        """Consecutive slices S per stack."""
        return self.mixer.stack_size

    def _check_stacks(self, stacks: Tensor) -> None:
        size = self.encoder.image_size
        if stacks.ndim != 4 or tuple(stacks.shape[1:]) != (self.stack_size, size, size):
            raise ValueError(f"stacks must have shape (N, {self.stack_size}, {size}, {size}), "
                             f"got {tuple(stacks.shape)}")

    def _forward(self, stacks: Tensor, sample: bool, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        n, s, height, width = stacks.shape
        h = self.encoder(stacks.reshape(n * s, 1, height, width)).reshape(n, s, -1)
        h = self.to_latent(self.mixer(h)).reshape(n * s, -1)
        z, penalty = self.latent(h, sample=sample, generator=generator)
        return self.decoder(z).reshape(n, s, height, width), penalty

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-pixel L1 error + penalty over every slice of the stacks.

        Args:
            images: (N, S, H, W) stacks of S consecutive slices in [0, 1].
        """
        self._check_stacks(images)
        reconstructions, penalty = self._forward(images, sample=True, generator=generator)
        return per_pixel_loss(images, reconstructions, penalty)

    def reconstruct_stacks(self, stacks: Tensor) -> Tensor:
        """Decoding of the most likely codes: (N, S, H, W) in [0, 1] -> same shape, [0, 1]."""
        self._check_stacks(stacks)
        return self._forward(stacks, sample=False, generator=None)[0]

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Reconstruct the consecutive slices of one volume, each in the window that centres it.

        Args:
            images: (Z, 1, H, W), the Z >= S axial slices of a volume, in order.

        Returns:
            (Z, 1, H, W) in [0, 1].
        """
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (Z, 1, H, W), got {tuple(images.shape)}")
        starts = window_starts(len(images), self.stack_size).to(images.device)
        unique = starts.unique()
        windows = torch.stack([images[start:start + self.stack_size, 0] for start in unique.tolist()])
        outputs = torch.cat([self.reconstruct_stacks(batch) for batch in windows.split(self.forward_batch)])
        window_of_slice = torch.searchsorted(unique, starts)
        offset = torch.arange(len(images), device=images.device) - starts
        return outputs[window_of_slice, offset][:, None]

    @torch.no_grad()
    def reconstruct(self, volume: VolumeLike) -> np.ndarray:
        """Reconstruct every axial slice of a model-grid volume (windows of S slices, in batches
        of ``inference_batch_size`` windows).

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        was_training = self.training
        self.eval()
        reconstruction = self.reconstruct_slices(volume_slices(volume).to(self.device)).float().cpu()
        self.train(was_training)
        return slices_to_volume(reconstruction)


class SequenceConfig(Section):
    """SVAE (Behrendt et al. 2022): self-attention over the latents of consecutive slices."""

    stack_size: int = Field(8, ge=2, description="consecutive axial slices per training item")
    layers: int = Field(2, ge=1, description="transformer encoder layers across the slices")
    heads: int = Field(4, ge=1)


class SVAERunConfig(StackRunConfigBase):
    """Sequential VAE over stacks of consecutive slices (Behrendt et al. 2022), beta = 0.001.

    Trained without augmentation: the slice augmentation acts on single slices, not on stacks."""

    method: Literal["svae"] = "svae"
    model: AutoencoderConfig = AutoencoderConfig()
    vae: VariationalConfig = VariationalConfig()
    sequence: SequenceConfig = SequenceConfig()


def build_svae(config: SVAERunConfig, load_pretrained: bool) -> SequenceVAE:
    """The untrained SVAE of a run config."""
    model, sequence = config.model, config.sequence
    mixer = SliceTransformer(model.latent_dim, sequence.stack_size, sequence.layers, sequence.heads)
    return SequenceVAE(conv_encoder(model, model.latent_dim), mixer, conv_decoder(model),
                       GaussianLatent(config.vae.beta), inference_batch_size=model.inference_batch_size,
                       seed=config.train.seed)


SVAE_SPEC = MethodSpec("svae", SVAERunConfig, build_svae, "sequential VAE over stacks of consecutive slices",
                       stack_size=lambda config: config.sequence.stack_size)
