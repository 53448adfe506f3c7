"""Building a method from its typed run config (the one place that reads a method's config)."""

from __future__ import annotations

from brainuad.config import CDDPMRunConfig, DDPMRunConfig, NoiseConfig, PDDPMRunConfig, UNetConfig
from brainuad.methods.base import AnomalyDetector
from brainuad.methods.ddpm import CDDPM, DDPM
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.pddpm import PDDPM
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler, make_noise

DetectorRunConfig = DDPMRunConfig | PDDPMRunConfig | CDDPMRunConfig


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


def build_detector(config: DetectorRunConfig, *, load_pretrained: bool = True) -> AnomalyDetector:
    """The untrained method of a run config.

    Args:
        config: a DDPM, pDDPM or cDDPM run config.
        load_pretrained: for a cDDPM whose config names SparK-pretrained encoder weights, load them
            into the encoder body (the head to d starts fresh). Off when the run's own trained
            weights are loaded next anyway.
    """
    diffusion = config.diffusion
    schedule = DiffusionSchedule(diffusion.timesteps)
    options = dict(t_test=diffusion.t_test, ensemble=diffusion.ensemble,
                   inference_batch_size=diffusion.inference_batch_size, seed=config.train.seed)
    noise = build_noise(diffusion.noise)
    if isinstance(config, CDDPMRunConfig):
        encoder = ImageEncoder(depth=config.encoder.depth, out_dim=config.encoder.dim)
        if load_pretrained and config.encoder.pretrained is not None:
            from brainuad.nn.spark import load_body_weights

            load_body_weights(encoder.body, config.encoder.pretrained)
        unet = build_unet(config.model, config.encoder.dim, config.encoder.context_mlp)
        return CDDPM(unet, encoder, noise, schedule, **options)
    unet = build_unet(config.model)
    if isinstance(config, PDDPMRunConfig):
        return PDDPM(unet, noise, schedule, patch_size=config.patch.size, **options)
    return DDPM(unet, noise, schedule, **options)
