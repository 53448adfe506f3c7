"""Dense-bottleneck autoencoders: AE and VAE (Baur et al. 2021) and the sequential SVAE
(Behrendt et al. 2022); paper §4.4, method.md §3 "Baselines".

Every slice passes a convolutional encoder to a dense latent code and a decoder back to an image
in [0, 1]; the pseudo-healthy reconstruction is the decoding of the code (the posterior mean for
the variational models), and the anomaly map the residual ``|x - x_rec|``.

The latent code is a small strategy object:

- :class:`DeterministicLatent` (AE): the encoder's output is the code; no penalty.
- :class:`GaussianLatent` (VAE, SVAE): the encoder's output is (mu, log sigma^2); in training the
  code is drawn as ``mu + sigma * eps`` (reparameterisation), at test it is ``mu``; the penalty is
  ``beta * KL(N(mu, sigma^2) || N(0, I))`` (paper: beta = 0.001).

Loss per slice (mean over the batch): ``(sum_pixels |x - x_hat| + penalty) / (H W)``, i.e. the
mean L1 error plus the penalty per pixel -- the usual beta-VAE objective with an L1 (Laplace)
reconstruction term, divided by the number of pixels so its scale matches the other methods'.

SVAE: the slices of a stack of S consecutive axial slices are encoded one by one to vectors, a
transformer mixes them across the stack (inter-slice dependencies), a linear layer gives each
slice's (mu, log sigma^2), and each slice's code is decoded on its own. It trains on stacks
(N, S, H, W); a volume is reconstructed with windows of S consecutive slices, each slice taken
from the window that centres it (clamped at the ends of the volume).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor, nn

from brainuad.methods.base import (
    ReconstructionMethod,
    VolumeLike,
    slices_to_volume,
    volume_slices,
)
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder, SliceTransformer

__all__ = ["Autoencoder", "DeterministicLatent", "GaussianLatent", "LatentCode", "SequenceVAE",
           "gaussian_kl", "window_starts"]


def gaussian_kl(mu: Tensor, log_variance: Tensor) -> Tensor:
    """KL(N(mu, diag(sigma^2)) || N(0, I)) per sample, in nats.

    ``0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``.

    Args:
        mu, log_variance: (N, D).

    Returns:
        (N,) >= 0.
    """
    return 0.5 * (mu.square() + log_variance.exp() - log_variance - 1).sum(dim=1)


class LatentCode(ABC):
    """How an encoder's output becomes a latent code, and the code's penalty."""

    @abstractmethod
    def encoder_width(self, latent_dim: int) -> int:
        """Width of the encoder output needed for codes of ``latent_dim``."""

    @abstractmethod
    def __call__(self, h: Tensor, sample: bool, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The code and its penalty.

        Args:
            h: (N, encoder_width) encoder outputs.
            sample: draw a code (training) rather than take the most likely one (test).
            generator: random generator for the draw (None: torch's default).

        Returns:
            z (N, latent_dim) and the penalty (N,), in nats.
        """


class DeterministicLatent(LatentCode):
    """AE: ``z = h``, no penalty."""

    def encoder_width(self, latent_dim: int) -> int:
        return latent_dim

    def __call__(self, h: Tensor, sample: bool, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return h, h.new_zeros(len(h))

    def __repr__(self) -> str:
        return "DeterministicLatent()"


class GaussianLatent(LatentCode):
    """VAE: ``(mu, log sigma^2) = split(h)``; z = mu + sigma * eps when sampling, else mu;
    penalty ``beta * KL`` (see :func:`gaussian_kl`).

    Args:
        beta: weight of the KL term (>= 0; paper 0.001).
    """

    def __init__(self, beta: float = 0.001) -> None:
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.beta = beta

    def encoder_width(self, latent_dim: int) -> int:
        return 2 * latent_dim

    def __call__(self, h: Tensor, sample: bool, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        mu, log_variance = h.chunk(2, dim=1)
        if not sample:
            return mu, self.beta * gaussian_kl(mu, log_variance)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * log_variance).exp() * eps, self.beta * gaussian_kl(mu, log_variance)

    def __repr__(self) -> str:
        return f"GaussianLatent(beta={self.beta!r})"


def _check_slices(images: Tensor, size: int) -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, size, size):
        raise ValueError(f"images must have shape (N, 1, {size}, {size}), got {tuple(images.shape)}")


def _per_pixel_loss(images: Tensor, reconstructions: Tensor, penalty: Tensor) -> Tensor:
    """Mean over slices of ``(sum_pixels |x - x_hat| + penalty) / pixels``; a scalar."""
    pixels = images.shape[-1] * images.shape[-2]
    return (images - reconstructions).abs().mean() + penalty.mean() / pixels


class Autoencoder(ReconstructionMethod):
    """AE (with :class:`DeterministicLatent`) or VAE (with :class:`GaussianLatent`) on single slices.

    Args:
        encoder: slice -> (N, latent.encoder_width(decoder.latent_dim)).
        decoder: code -> slice in [0, 1].
        latent: the latent strategy.
        inference_batch_size, seed: see :class:`ReconstructionMethod`.
    """

    def __init__(self, encoder: ConvEncoder, decoder: ConvDecoder, latent: LatentCode, *,
                 inference_batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(inference_batch_size, seed)
        if encoder.out_dim != latent.encoder_width(decoder.latent_dim):
            raise ValueError(f"the encoder's out_dim ({encoder.out_dim}) must be "
                             f"{latent.encoder_width(decoder.latent_dim)} for {latent!r} with latent_dim "
                             f"{decoder.latent_dim}")
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-pixel L1 error + penalty (module docstring); images: (N, 1, S, S) in [0, 1]."""
        _check_slices(images, self.encoder.image_size)
        z, penalty = self.latent(self.encoder(images), sample=True, generator=generator)
        return _per_pixel_loss(images, self.decoder(z), penalty)

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Decoding of the most likely code: (N, 1, S, S) in [0, 1] -> same shape, [0, 1]."""
        _check_slices(images, self.encoder.image_size)
        z, _ = self.latent(self.encoder(images), sample=False)
        return self.decoder(z)


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
        return _per_pixel_loss(images, reconstructions, penalty)

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
        outputs = torch.cat([self.reconstruct_stacks(batch) for batch in windows.split(self.inference_batch_size)])
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
