"""Building a method from its typed run config (the one place that reads a method's config)."""

from __future__ import annotations

from brainuad.config import (
    AERunConfig,
    AutoencoderConfig,
    CDDPMRunConfig,
    DAERunConfig,
    DDPMRunConfig,
    FAnoGANRunConfig,
    NoiseConfig,
    PDDPMRunConfig,
    SVAERunConfig,
    ThreshRunConfig,
    UNetConfig,
    VAERunConfig,
)
from brainuad.data.grid import MODEL_GRID_SHAPE
from brainuad.methods.autoencoders import (
    Autoencoder,
    DeterministicLatent,
    GaussianLatent,
    LatentCode,
    SequenceVAE,
)
from brainuad.methods.base import AnomalyDetector
from brainuad.methods.dae import CoarseNoise, DenoisingAutoencoder
from brainuad.methods.ddpm import CDDPM, DDPM
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.fanogan import FAnoGAN
from brainuad.methods.pddpm import PDDPM
from brainuad.methods.thresh import POLARITY_BY_MODALITY, IntensityThreshold
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder, SliceTransformer
from brainuad.nn.discriminators import Critic
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler, make_noise

DiffusionRunConfig = DDPMRunConfig | PDDPMRunConfig | CDDPMRunConfig
BaselineRunConfig = AERunConfig | VAERunConfig | SVAERunConfig | DAERunConfig | FAnoGANRunConfig | ThreshRunConfig
DetectorRunConfig = DiffusionRunConfig | BaselineRunConfig
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


def build_detector(config: DetectorRunConfig, *, load_pretrained: bool = True) -> AnomalyDetector:
    """The untrained method of a run config.

    Args:
        config: the run config of a diffusion model (DDPM, pDDPM, cDDPM) or a baseline (AE, VAE,
            SVAE, DAE, f-AnoGAN, Thresh).
        load_pretrained: for a cDDPM whose config names SparK-pretrained encoder weights, load them
            into the encoder body (the head to d starts fresh). Off when the run's own trained
            weights are loaded next anyway.
    """
    if not isinstance(config, (DDPMRunConfig, PDDPMRunConfig, CDDPMRunConfig)):
        return build_baseline(config)
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


def _encoder(config: AutoencoderConfig, out_dim: int) -> ConvEncoder:
    return ConvEncoder(out_dim, config.channels, IMAGE_SIZE, groups=config.groups)


def _decoder(config: AutoencoderConfig) -> ConvDecoder:
    return ConvDecoder(config.latent_dim, config.channels, IMAGE_SIZE, groups=config.groups)


def build_baseline(config: BaselineRunConfig) -> AnomalyDetector:
    """The untrained baseline of a run config (paper Table 3: AE, VAE, SVAE, DAE, f-AnoGAN, Thresh)."""
    seed = config.train.seed
    if isinstance(config, ThreshRunConfig):
        polarity = config.thresh.polarity
        return IntensityThreshold(POLARITY_BY_MODALITY[config.data.modality] if polarity == "auto" else polarity,
                                  config.thresh.bins, config.thresh.equalisation)
    if isinstance(config, DAERunConfig):
        return DenoisingAutoencoder(build_unet(config.model), CoarseNoise(config.dae.resolution, config.dae.std),
                                    inference_batch_size=config.dae.inference_batch_size, seed=seed)
    model = config.model
    options = dict(inference_batch_size=model.inference_batch_size, seed=seed)
    if isinstance(config, FAnoGANRunConfig):
        adversarial = config.fanogan
        return FAnoGAN(_decoder(model), Critic(model.channels, IMAGE_SIZE), _encoder(model, model.latent_dim),
                       gan_epochs=adversarial.gan_epochs, n_critic=adversarial.n_critic,
                       gradient_penalty=adversarial.gradient_penalty, feature_weight=adversarial.feature_weight,
                       **options)
    if isinstance(config, SVAERunConfig):
        sequence = config.sequence
        mixer = SliceTransformer(model.latent_dim, sequence.stack_size, sequence.layers, sequence.heads)
        return SequenceVAE(_encoder(model, model.latent_dim), mixer, _decoder(model), GaussianLatent(config.vae.beta),
                           **options)
    latent: LatentCode = GaussianLatent(config.vae.beta) if isinstance(config, VAERunConfig) else DeterministicLatent()
    return Autoencoder(_encoder(model, latent.encoder_width(model.latent_dim)), _decoder(model), latent, **options)
