"""Convolutional encoders and decoders around a dense bottleneck, and the slice-sequence mixer.

The dense-bottleneck autoencoders of Baur et al. (2021) (AE, VAE), the per-slice part of the
SVAE (Behrendt et al. 2022) and the generator and encoder of f-AnoGAN (Schlegl et al. 2019) share
these parts:

- :class:`DownStack`: per level a 4 x 4 convolution of stride 2, GroupNorm, LeakyReLU(0.2);
  (N, C_in, H, W) -> (N, C_L, H / 2^L, W / 2^L).
- :class:`UpStack`: per level nearest x2 upsampling, a 3 x 3 convolution, GroupNorm, LeakyReLU(0.2).
- :class:`ConvEncoder`: a DownStack, flattened, and a linear layer to a vector (a latent code, the
  mean and log-variance of one, or a feature vector).
- :class:`ConvDecoder`: a linear layer from a latent code to the deepest feature map, an UpStack
  and a 3 x 3 convolution to one channel with a sigmoid, so images come out in [0, 1].
- :class:`SliceTransformer`: self-attention across the slices of a stack (SVAE).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from brainuad.checks import check_int

__all__ = ["ConvDecoder", "ConvEncoder", "DownStack", "SliceTransformer", "UpStack"]


def _check_channels(channels: Sequence[int], groups: int) -> tuple[int, ...]:
    check_int("groups", groups)
    channels = tuple(channels)
    if not channels:
        raise ValueError("channels must name at least one level, got an empty sequence")
    for width in channels:
        check_int("every entry of channels", width)
        if width % groups != 0:
            raise ValueError(f"channels entry {width!r} is not divisible by groups={groups!r}")
    return channels


def _deepest_size(image_size: int, levels: int) -> int:
    check_int("image_size", image_size)
    if image_size % 2**levels != 0:
        raise ValueError(f"image_size {image_size!r} must be divisible by 2 ** {levels} (one halving per level)")
    return image_size // 2**levels


def _check_images(x: Tensor, channels: int, size: int | None = None) -> None:
    if x.ndim != 4 or x.shape[1] != channels or (size is not None and tuple(x.shape[-2:]) != (size, size)):
        expected = f"(N, {channels}, {size}, {size})" if size is not None else f"(N, {channels}, H, W)"
        raise ValueError(f"x must have shape {expected}, got {tuple(x.shape)}")


class DownStack(nn.Module):
    """Strided convolutions halving the resolution once per level.

    Args:
        in_channels: channels of the input.
        channels: output channels of each level (C_1 .. C_L).
        groups: GroupNorm groups (must divide every entry of ``channels``; 1 normalises each
            sample over all its channels and pixels, like a LayerNorm, as a WGAN-GP critic needs).
    """

    def __init__(self, in_channels: int, channels: Sequence[int], groups: int = 8) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        self.channels = _check_channels(channels, groups)
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        previous = in_channels
        for width in self.channels:
            layers += [nn.Conv2d(previous, width, kernel_size=4, stride=2, padding=1), nn.GroupNorm(groups, width),
                       nn.LeakyReLU(0.2)]
            previous = width
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, H, W), H and W divisible by 2^L -> (N, C_L, H / 2^L, W / 2^L)."""
        _check_images(x, self.in_channels)
        return self.layers(x)


class UpStack(nn.Module):
    """Nearest-neighbour upsampling and convolutions doubling the resolution once per level.

    Args:
        channels: output channels of each level, from the deepest input on (C_L .. C_1): the
            input has ``channels[0]`` channels and every level outputs the next entry (the last
            level keeps the last entry).
        groups: GroupNorm groups (must divide every entry).
    """

    def __init__(self, channels: Sequence[int], groups: int = 8) -> None:
        super().__init__()
        self.channels = _check_channels(channels, groups)
        layers: list[nn.Module] = []
        widths = (*self.channels, self.channels[-1])
        for previous, width in zip(widths[:-1], widths[1:]):
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                       nn.Conv2d(previous, width, kernel_size=3, padding=1), nn.GroupNorm(groups, width),
                       nn.LeakyReLU(0.2)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_L, h, w) -> (N, C_1, h * 2^L, w * 2^L)."""
        _check_images(x, self.channels[0])
        return self.layers(x)


class ConvEncoder(nn.Module):
    """Image -> vector: a :class:`DownStack`, flattened, then a linear layer.

    Args:
        out_dim: width of the output vector.
        channels: channels of each level (C_1 .. C_L).
        image_size: side S of the square input (divisible by 2^L).
        in_channels: channels of the input image.
        groups: GroupNorm groups.
    """

    def __init__(self, out_dim: int, channels: Sequence[int], image_size: int = 96, in_channels: int = 1,
                 groups: int = 8) -> None:
        super().__init__()
        check_int("out_dim", out_dim)
        self.body = DownStack(in_channels, channels, groups)
        self.image_size = image_size
        self.out_dim = out_dim
        deepest = _deepest_size(image_size, len(self.body.channels))
        self.feature_dim = self.body.channels[-1] * deepest * deepest
        self.head = nn.Linear(self.feature_dim, out_dim)

    def features(self, x: Tensor) -> Tensor:
        """The flattened deepest feature map: (N, C_in, S, S) -> (N, feature_dim)."""
        _check_images(x, self.body.in_channels, self.image_size)
        return self.body(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, S, S) -> (N, out_dim)."""
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    """Latent code -> image in [0, 1]: a linear layer to the deepest feature map, an
    :class:`UpStack`, a 3 x 3 convolution and a sigmoid.

    Args:
        latent_dim: width of the latent code.
        channels: channels of each level as in the encoder (C_1 .. C_L); the decoder runs them
            from C_L back to C_1.
        image_size: side S of the square output (divisible by 2^L).
        out_channels: channels of the output image.
        groups: GroupNorm groups.
    """

    def __init__(self, latent_dim: int, channels: Sequence[int], image_size: int = 96, out_channels: int = 1,
                 groups: int = 8) -> None:
        super().__init__()
        check_int("latent_dim", latent_dim)
        check_int("out_channels", out_channels)
        reversed_channels = tuple(reversed(_check_channels(channels, groups)))
        self.latent_dim = latent_dim
        self.deepest = _deepest_size(image_size, len(reversed_channels))
        self.input = nn.Linear(latent_dim, reversed_channels[0] * self.deepest * self.deepest)
        self.body = UpStack(reversed_channels, groups)
        self.output = nn.Conv2d(reversed_channels[-1], out_channels, kernel_size=3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        """z: (N, latent_dim) -> (N, out_channels, S, S) in [0, 1]."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        h = self.input(z).reshape(len(z), self.body.channels[0], self.deepest, self.deepest)
        return torch.sigmoid(self.output(self.body(h)))


class SliceTransformer(nn.Module):
    """Self-attention across the slices of a stack (SVAE): a learned embedding of each slice's
    position in the stack is added, then ``layers`` pre-norm transformer encoder layers.

    Args:
        dim: width D of each slice's vector (divisible by ``heads``).
        stack_size: slices S per stack (number of learned positions).
        layers: transformer encoder layers.
        heads: attention heads.
    """

    def __init__(self, dim: int, stack_size: int, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("stack_size", stack_size), ("layers", layers), ("heads", heads)):
            check_int(name, value)
        if dim % heads != 0:
            raise ValueError(f"dim={dim!r} is not divisible by heads={heads!r}")
        self.dim = dim
        self.stack_size = stack_size
        self.position = nn.Parameter(torch.zeros(stack_size, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, S, D) -> (N, S, D)."""
        if x.ndim != 3 or x.shape[1:] != (self.stack_size, self.dim):
            raise ValueError(f"x must have shape (N, {self.stack_size}, {self.dim}), got {tuple(x.shape)}")
        return self.encoder(x + self.position)
