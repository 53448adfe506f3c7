"""The conditioned DDPM, the paper's method (paper §3.2, method.md §3 "Conditioning").

A :class:`~brainuad.methods.ddpm.DDPM` whose denoiser is conditioned on an encoding of the clean
input slice; the encoder may start from SparK-pretrained weights (:mod:`brainuad.methods.spark`).
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from brainuad.config import DiffusionConfig, EncoderConfig, RunConfigBase, UNetConfig
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.ddpm import DDPM, diffusion_options
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.spark import load_body_weights
from brainuad.methods.spec import MethodSpec
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["CDDPM", "CDDPMRunConfig", "CDDPM_SPEC", "build_encoder"]


class CDDPM(DDPM):
    """DDPM conditioned on an encoding of the clean input slice (the paper's cDDPM, §3.2).

    The encoder F_enc maps the clean slice (in [-1, 1]) to c in R^d; the UNet's FiLM layers use
    concat(c, c_t). The encoder is trained end to end with the UNet.

    Args:
        encoder: F_enc, with ``out_dim`` equal to the UNet's ``context_dim``.
        (others as :class:`DDPM`)
    """

    def __init__(self, unet: UNet, encoder: ImageEncoder, noise: NoiseSampler, schedule: DiffusionSchedule,
                 **options: Any) -> None:
        if unet.context_dim != encoder.out_dim:
            raise ValueError(f"the UNet's context_dim ({unet.context_dim}) must equal the encoder's out_dim "
                             f"({encoder.out_dim})")
        super().__init__(unet, noise, schedule, **options)
        self.encoder = encoder

    conditioned = True

    def context(self, x0: Tensor) -> Tensor:
        return self.encoder(x0)


class CDDPMRunConfig(RunConfigBase):
    """Conditioned DDPM (the paper's method); test-time ensemble by default."""

    method: Literal["cddpm"] = "cddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig(ensemble=(250, 500, 750))
    encoder: EncoderConfig = EncoderConfig()


def build_encoder(config: EncoderConfig, load_pretrained: bool, in_channels: int = 1) -> ImageEncoder:
    """The encoder F_enc of an encoder section, for images of ``in_channels`` channels; with
    ``load_pretrained`` and ``pretrained`` set, its body starts from those SparK weights (see
    :func:`~brainuad.methods.spark.load_body_weights`; the head to d starts fresh)."""
    encoder = ImageEncoder(depth=config.depth, out_dim=config.dim, in_channels=in_channels)
    if load_pretrained and config.pretrained is not None:
        load_body_weights(encoder.body, config.pretrained)
    return encoder


def build_cddpm(config: CDDPMRunConfig, load_pretrained: bool) -> CDDPM:
    """The untrained cDDPM of a run config; with ``load_pretrained`` and ``encoder.pretrained`` set,
    the encoder body starts from those SparK weights (the head to d starts fresh)."""
    encoder = build_encoder(config.encoder, load_pretrained)
    diffusion = config.diffusion
    unet = build_unet(config.model, config.encoder.dim, config.encoder.context_mlp)
    return CDDPM(unet, encoder, build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps),
                 **diffusion_options(diffusion, config.train.seed))


CDDPM_SPEC = MethodSpec("cddpm", CDDPMRunConfig, build_cddpm,
                        "conditioned DDPM (the paper's method), test-time ensemble",
                        noise_levels=lambda config: config.diffusion.timesteps)
