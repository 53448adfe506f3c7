"""f-AnoGAN (Schlegl et al. 2019; paper §4.4: latent size 128, learning rate 1e-4).

Two training stages, in this order (the epoch decides the stage, so a resumed run continues in
the right one):

1. **GAN** (the first ``gan_epochs`` epochs): a Wasserstein GAN with gradient penalty (WGAN-GP,
   Gulrajani et al. 2017). Generator G: z ~ N(0, I) in R^128 -> slice in [0, 1]; critic D: slice ->
   score. Critic loss ``D(G(z)) - D(x) + lambda (||grad D(x_hat)||_2 - 1)^2`` with
   ``x_hat = a x + (1 - a) G(z)``, a ~ U(0, 1) per sample, lambda = 10; generator loss
   ``-D(G(z))``, one generator update per ``n_critic`` critic updates.
2. **Encoder** (the remaining epochs): G and D are frozen and an encoder E: slice -> z is trained
   with the izi_f loss ``mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2``, f the
   critic's flattened deepest features, kappa = 1.

The validation loss is the izi_f loss (:meth:`FAnoGAN.training_loss`). Test: the reconstruction
is ``G(E(x))`` and the anomaly map the residual ``|x - G(E(x))|``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from brainuad.checks import check_int
from brainuad.config import AutoencoderConfig, RunConfigBase, Section, TrainConfig
from brainuad.methods.base import ReconstructionMethod
from brainuad.methods.components import IMAGE_SIZE, conv_decoder, conv_encoder
from brainuad.methods.spec import MethodSpec, OptimizerSettings
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder
from brainuad.nn.discriminators import Critic

__all__ = ["AdversarialConfig", "FANOGAN_SPEC", "FAnoGAN", "FAnoGANRunConfig", "WGAN_BETAS"]

WGAN_BETAS = (0.0, 0.9)
"""Adam betas of f-AnoGAN's three optimisers (the WGAN-GP values, Gulrajani et al. 2017)."""


class FAnoGAN(ReconstructionMethod):
    """WGAN-GP generator and critic, and the izi_f encoder (module docstring).

    Args:
        image_generator: G, latent code -> slice in [0, 1].
        critic: D.
        encoder: E, slice -> latent code (``out_dim`` = G's ``latent_dim``).
        gan_epochs: epochs of the GAN stage (>= 1); later epochs train the encoder.
        n_critic: critic updates per generator update (>= 1).
        gradient_penalty: lambda (>= 0).
        feature_weight: kappa (>= 0).
        inference_batch_size, seed: see :class:`ReconstructionMethod`.
    """

    def __init__(self, image_generator: ConvDecoder, critic: Critic, encoder: ConvEncoder, *, gan_epochs: int,
                 n_critic: int = 5, gradient_penalty: float = 10.0, feature_weight: float = 1.0,
                 inference_batch_size: int = 64, seed: int = 0) -> None:
        super().__init__(inference_batch_size, seed)
        if encoder.out_dim != image_generator.latent_dim:
            raise ValueError(f"the encoder's out_dim ({encoder.out_dim}) must equal the generator's latent_dim "
                             f"({image_generator.latent_dim})")
        if encoder.image_size != critic.image_size:
            raise ValueError(f"the encoder's image_size ({encoder.image_size}) must equal the critic's "
                             f"({critic.image_size})")
        for name, value in (("gan_epochs", gan_epochs), ("n_critic", n_critic)):
            check_int(name, value)
        for name, weight in (("gradient_penalty", gradient_penalty), ("feature_weight", feature_weight)):
            if not weight >= 0:
                raise ValueError(f"{name} must be >= 0, got {weight!r}")
        self.image_generator = image_generator
        self.critic = critic
        self.encoder = encoder
        self.gan_epochs = gan_epochs
        self.n_critic = n_critic
        self.gradient_penalty = gradient_penalty
        self.feature_weight = feature_weight

    @property
    def latent_dim(self) -> int:
        """Width of the latent code z."""
        return self.image_generator.latent_dim

    def in_gan_stage(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` trains the GAN (else the encoder)."""
        return epoch < self.gan_epochs

    def stage_modules(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The modules each optimiser updates, in order: critic, generator, encoder."""
        return self.critic, self.image_generator, self.encoder

    def sample_latent(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """n codes z ~ N(0, I): (n, latent_dim)."""
        return torch.randn((n, self.latent_dim), generator=generator, device=device)

    def _check_images(self, images: Tensor) -> None:
        size = self.encoder.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (1, size, size):
            raise ValueError(f"images must have shape (N, 1, {size}, {size}), got {tuple(images.shape)}")

    def critic_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """WGAN-GP critic loss on real slices and as many generated ones (the generator gets no
        gradient); images: (N, 1, S, S) in [0, 1]; a scalar."""
        self._check_images(images)
        with torch.no_grad():
            fake = self.image_generator(self.sample_latent(len(images), images.device, generator))
        weight = torch.rand((len(images), 1, 1, 1), generator=generator, device=images.device, dtype=images.dtype)
        mixed = (weight * images + (1 - weight) * fake).requires_grad_(True)
        gradient, = torch.autograd.grad(self.critic(mixed).sum(), mixed, create_graph=True)
        penalty = (gradient.flatten(1).norm(dim=1) - 1).square().mean()
        return self.critic(fake).mean() - self.critic(images).mean() + self.gradient_penalty * penalty

    def generator_loss(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """WGAN generator loss ``-mean D(G(z))`` over n codes; a scalar."""
        return -self.critic(self.image_generator(self.sample_latent(n, device, generator))).mean()

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The izi_f encoder loss (module docstring); images: (N, 1, S, S) in [0, 1]; a scalar.
        Deterministic (``generator`` is not used)."""
        self._check_images(images)
        reconstructions = self.image_generator(self.encoder(images))
        residual = (images - reconstructions).square().mean()
        features = (self.critic.features(images) - self.critic.features(reconstructions)).square().mean()
        return residual + self.feature_weight * features

    def reconstruct_slices(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``G(E(x))``: (N, 1, S, S) in [0, 1] -> same shape, [0, 1]."""
        self._check_images(images)
        return self.image_generator(self.encoder(images))


class AdversarialConfig(Section):
    """f-AnoGAN (Schlegl et al. 2019): WGAN-GP, then the izi_f encoder."""

    gan_epochs: int = Field(800, ge=1, description="epochs of WGAN-GP training; the encoder trains after them")
    n_critic: int = Field(5, ge=1, description="critic updates per generator update")
    gradient_penalty: float = Field(10.0, ge=0, description="lambda of the WGAN-GP gradient penalty")
    feature_weight: float = Field(1.0, ge=0, description="kappa: weight of the critic-feature residual in izi_f")


class FAnoGANRunConfig(RunConfigBase):
    """f-AnoGAN (Schlegl et al. 2019): latent 128, lr 1e-4 (paper §4.4)."""

    method: Literal["fanogan"] = "fanogan"
    model: AutoencoderConfig = AutoencoderConfig(channels=(64, 128, 256, 512), latent_dim=128)
    fanogan: AdversarialConfig = AdversarialConfig()
    train: TrainConfig = TrainConfig(lr=1e-4)

    @model_validator(mode="after")
    def _encoder_epochs_left(self) -> "FAnoGANRunConfig":
        if self.train.max_epochs <= self.fanogan.gan_epochs:
            raise ValueError(f"train.max_epochs ({self.train.max_epochs}) must exceed fanogan.gan_epochs "
                             f"({self.fanogan.gan_epochs}): the encoder trains in the epochs after the GAN")
        return self


def build_fanogan(config: FAnoGANRunConfig, load_pretrained: bool) -> FAnoGAN:
    """The untrained f-AnoGAN of a run config."""
    model, adversarial = config.model, config.fanogan
    return FAnoGAN(conv_decoder(model), Critic(model.channels, IMAGE_SIZE), conv_encoder(model, model.latent_dim),
                   gan_epochs=adversarial.gan_epochs, n_critic=adversarial.n_critic,
                   gradient_penalty=adversarial.gradient_penalty, feature_weight=adversarial.feature_weight,
                   inference_batch_size=model.inference_batch_size, seed=config.train.seed)


FANOGAN_SPEC = MethodSpec("fanogan", FAnoGANRunConfig, build_fanogan, "f-AnoGAN: WGAN-GP, then the izi_f encoder",
                          training="adversarial", optimizer=OptimizerSettings("adam", betas=WGAN_BETAS))
