"""Networks and noise built from the config sections several methods share.

:func:`build_unet` (DDPM, pDDPM, cDDPM, DAE), :func:`build_noise` (the diffusion methods) and
:func:`conv_encoder` / :func:`conv_decoder` (AE, VAE, SVAE, f-AnoGAN).
"""

from __future__ import annotations

from brainuad.config import AutoencoderConfig, NoiseConfig, UNetConfig
from brainuad.data.grid import MODEL_GRID_SHAPE
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler, make_noise

__all__ = ["IMAGE_SIZE", "build_noise", "build_unet", "conv_decoder", "conv_encoder"]

IMAGE_SIZE = MODEL_GRID_SHAPE[0]
"""Side of the square axial slices every method sees (the model grid's 96 px)."""


def build_noise(config: NoiseConfig) -> NoiseSampler:
    """The noise strategy a config names."""
    if config.kind == "gaussian":
        return make_noise("gaussian")
    return make_noise("simplex", octaves=config.octaves, persistence=config.persistence,
                      feature_size=config.feature_size, per_sample=config.per_sample, normalise=config.normalise)


def build_unet(config: UNetConfig, context_dim: int | None = None, context_mlp: bool = False) -> UNet:
    """The denoising UNet of a config (1 channel in and out)."""
    return UNet(in_channels=1, out_channels=1, base_channels=config.base_channels,
                channel_mult=tuple(config.channel_mult), num_res_blocks=config.num_res_blocks,
                attention_head_channels=config.attention_head_channels, dropout=config.dropout,
                groups=config.groups, context_dim=context_dim, context_mlp=context_mlp)


def conv_encoder(config: AutoencoderConfig, out_dim: int) -> ConvEncoder:
    """A slice encoder to ``out_dim`` features (96 px slices)."""
    return ConvEncoder(out_dim, config.channels, IMAGE_SIZE, groups=config.groups)


def conv_decoder(config: AutoencoderConfig) -> ConvDecoder:
    """A decoder from the latent code back to a 96 px slice."""
    return ConvDecoder(config.latent_dim, config.channels, IMAGE_SIZE, groups=config.groups)
