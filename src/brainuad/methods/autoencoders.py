"""Dense-bottleneck autoencoders: AE and VAE (Baur et al. 2021); paper §4.4, method.md §3
"Baselines". The sequential SVAE (:mod:`brainuad.methods.svae`) shares their latent codes and loss.

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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from brainuad.config import AutoencoderConfig, RunConfigBase, Section
from brainuad.methods.base import ReconstructionMethod
from brainuad.methods.components import conv_decoder, conv_encoder
from brainuad.methods.spec import MethodSpec
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder

__all__ = ["AERunConfig", "AE_SPEC", "Autoencoder", "DeterministicLatent", "GaussianLatent", "LatentCode",
           "VAERunConfig", "VAE_SPEC", "VariationalConfig", "gaussian_kl", "per_pixel_loss"]


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


def per_pixel_loss(images: Tensor, reconstructions: Tensor, penalty: Tensor) -> Tensor:
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
        return per_pixel_loss(images, self.decoder(z), penalty)

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Decoding of the most likely code: (N, 1, S, S) in [0, 1] -> same shape, [0, 1]."""
        _check_slices(images, self.encoder.image_size)
        z, _ = self.latent(self.encoder(images), sample=False)
        return self.decoder(z)


class VariationalConfig(Section):
    """The VAE's loss: L1 reconstruction summed over pixels + beta * KL (paper §4.4: beta = 0.001)."""

    beta: float = Field(0.001, ge=0)


class AERunConfig(RunConfigBase):
    """Dense autoencoder (Baur et al. 2021)."""

    method: Literal["ae"] = "ae"
    model: AutoencoderConfig = AutoencoderConfig()


class VAERunConfig(RunConfigBase):
    """Dense variational autoencoder (Baur et al. 2021), beta = 0.001."""

    method: Literal["vae"] = "vae"
    model: AutoencoderConfig = AutoencoderConfig()
    vae: VariationalConfig = VariationalConfig()


def build_autoencoder(config: AERunConfig | VAERunConfig, load_pretrained: bool) -> Autoencoder:
    """The untrained AE (deterministic code) or VAE (Gaussian code) of a run config."""
    model = config.model
    latent: LatentCode = GaussianLatent(config.vae.beta) if isinstance(config, VAERunConfig) else DeterministicLatent()
    return Autoencoder(conv_encoder(model, latent.encoder_width(model.latent_dim)), conv_decoder(model), latent,
                       inference_batch_size=model.inference_batch_size, seed=config.train.seed)


AE_SPEC = MethodSpec("ae", AERunConfig, build_autoencoder, "dense autoencoder (Baur et al. 2021)")
VAE_SPEC = MethodSpec("vae", VAERunConfig, build_autoencoder, "dense variational autoencoder, beta 0.001")
