"""Neural networks: the denoising UNet, its blocks and embeddings, and the image encoder."""

from brainuad.nn.blocks import AttentionBlock, Resample, ResBlock, zero_init
from brainuad.nn.embeddings import (
    MLP,
    Conditioning,
    TimeConditioning,
    TimeContextConditioning,
    TimeEmbedding,
    timestep_embedding,
)
from brainuad.nn.encoders import BasicBlock, Bottleneck, ImageEncoder, ResNetBody
from brainuad.nn.unet import UNet

__all__ = [
    "MLP",
    "AttentionBlock",
    "BasicBlock",
    "Bottleneck",
    "Conditioning",
    "ImageEncoder",
    "ResBlock",
    "ResNetBody",
    "Resample",
    "TimeConditioning",
    "TimeContextConditioning",
    "TimeEmbedding",
    "UNet",
    "timestep_embedding",
    "zero_init",
]
