"""Building blocks of the ADM-style denoising UNet: a FiLM residual block and self-attention.

References: Dhariwal & Nichol (2021), "Diffusion models beat GANs" (ADM: residual blocks
with scale-shift norm, resampling inside residual blocks, zero-initialised last layers);
Perez et al. (2018), FiLM; Behrendt et al. (cDDPM) §3.2 for the conditioning vector c'.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brainuad.checks import check_fraction, check_int

__all__ = ["AttentionBlock", "Resample", "ResBlock", "zero_init"]

Resample = Literal["none", "up", "down"]
"""Resampling inside a residual block: none, nearest x2 upsampling, or 2x2 average pooling."""


def zero_init(module: nn.Module) -> nn.Module:
    """Set every parameter of ``module`` to zero in place and return it (ADM zero-init)."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


def _check_channels(name: str, channels: int, groups: int) -> None:
    check_int(name, channels)
    if channels % groups != 0:
        raise ValueError(f"{name}={channels!r} is not divisible by groups={groups!r}")


def _check_feature_map(x: Tensor, channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"x must have shape (N, {channels}, H, W), got {tuple(x.shape)!r}")


def _resampler(resample: Resample) -> nn.Module:
    if resample == "up":
        return nn.Upsample(scale_factor=2.0, mode="nearest")
    if resample == "down":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if resample == "none":
        return nn.Identity()
    raise ValueError(f"resample must be one of 'none', 'up', 'down', got {resample!r}")


class ResBlock(nn.Module):
    """ADM residual block with FiLM (scale-shift) conditioning and optional resampling.

    ``h = conv1(resample(SiLU(GN(x))))``; ``(gamma, beta) = MLP II(emb)`` with
    MLP II = SiLU -> Linear(emb_dim, 2 * out_channels) (first half gamma, second half beta);
    ``h = conv2(dropout(SiLU(GN(h) * (1 + gamma) + beta)))`` with conv2 zero-initialised;
    output ``skip(resample(x)) + h``, skip = identity or a 1x1 conv when the channel count
    changes. At initialisation the block is therefore ``skip(resample(x))``.

    Args:
        in_channels: channels C_in of the input feature map.
        out_channels: channels C_out of the output feature map.
        emb_dim: width E of the embedding vector (time, or c' for the cDDPM).
        dropout: dropout probability before the last conv, in [0, 1).
        groups: GroupNorm groups; must divide in_channels and out_channels.
        resample: "none", "up" (nearest, x2) or "down" (2x2 average pool), applied to both the
            residual path (between the first norm/activation and the first conv) and the skip.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        emb_dim: int,
        dropout: float = 0.0,
        groups: int = 32,
        resample: Resample = "none",
    ) -> None:
        super().__init__()
        check_int("groups", groups)
        _check_channels("in_channels", in_channels, groups)
        _check_channels("out_channels", out_channels, groups)
        check_int("emb_dim", emb_dim)
        check_fraction("dropout", dropout, open_high=True)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.emb_dim = emb_dim
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.resample = _resampler(resample)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.film = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_channels))
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, kernel_size=1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (N, C_in, H, W), emb: (N, E) -> (N, C_out, H', W').

        H' = 2H for "up", H // 2 for "down", H otherwise (likewise W).
        """
        _check_feature_map(x, self.in_channels)
        if emb.ndim != 2 or emb.shape != (x.shape[0], self.emb_dim):
            raise ValueError(
                f"emb must have shape ({x.shape[0]}, {self.emb_dim}), got {tuple(emb.shape)!r}"
            )
        h = self.conv1(self.resample(F.silu(self.norm1(x), inplace=True)))
        gamma, beta = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = torch.addcmul(beta, self.norm2(h), 1 + gamma)  # one pass over h instead of two
        h = self.conv2(self.dropout(F.silu(h, inplace=True)))
        return h.add_(self.skip(self.resample(x)))


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map, with a residual.

    ``x + proj(MHA(qkv(GN(x))))``: qkv is a 1x1 conv to 3C channels (split into q, k, v, each
    into ``C / head_channels`` heads), attention is softmax(q k^T / sqrt(head_channels)) v
    (torch's ``scaled_dot_product_attention``), proj is a zero-initialised 1x1 conv, so the
    block is the identity at initialisation.

    Args:
        channels: channels C of the feature map.
        head_channels: channels per head (64 in ADM: 4 heads at 256 channels).
        groups: GroupNorm groups; must divide channels.
    """

    def __init__(self, channels: int, head_channels: int = 64, groups: int = 32) -> None:
        super().__init__()
        check_int("groups", groups)
        _check_channels("channels", channels, groups)
        check_int("head_channels", head_channels)
        if channels % head_channels != 0:
            raise ValueError(
                f"channels={channels!r} is not divisible by head_channels={head_channels!r}"
            )
        self.channels = channels
        self.head_channels = head_channels
        self.num_heads = channels // head_channels
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj = zero_init(nn.Conv2d(channels, channels, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, H, W) -> (N, C, H, W)."""
        _check_feature_map(x, self.channels)
        n, c, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.num_heads, self.head_channels, -1)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (N, heads, H*W, head_channels)
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(-1, -2).reshape(n, c, height, width)
        return x + self.proj(attended)
