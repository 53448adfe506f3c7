"""The WGAN-GP critic of f-AnoGAN (Schlegl et al. 2019; Gulrajani et al. 2017).

A :class:`~brainuad.nn.autoencoders.ConvEncoder` to one score, with per-sample normalisation
(GroupNorm with one group, i.e. a LayerNorm over channels and pixels: batch statistics would break
the per-sample gradient penalty). Its flattened deepest feature map (``features``) is the feature
space f(.) of the izi_f encoder loss.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from brainuad.nn.autoencoders import ConvEncoder

__all__ = ["Critic"]


class Critic(ConvEncoder):
    """Wasserstein critic: image -> unbounded realness score.

    Args:
        channels: channels of each level (C_1 .. C_L), one halving of the resolution per level.
        image_size: side S of the square input (divisible by 2^L).
        in_channels: channels of the input image.
    """

    def __init__(self, channels: Sequence[int], image_size: int = 96, in_channels: int = 1) -> None:
        super().__init__(1, channels, image_size, in_channels, groups=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, S, S) -> (N,) scores."""
        return super().forward(x)[:, 0]
