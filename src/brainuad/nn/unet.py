"""ADM-style denoising UNet with FiLM conditioning on time and (optionally) a context vector.

Paper: Behrendt et al. (cDDPM) §3.2 and §4.3 ("an Unet similar to Dhariwal and Nichol (2021),
with channel dimensions of [128, 256, 256]"); method.md §3 "Denoising UNet" / "Conditioning".
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from brainuad.checks import check_fraction, check_int, check_optional_int
from brainuad.nn.blocks import AttentionBlock, Resample, ResBlock, zero_init
from brainuad.nn.embeddings import (
    MLP,
    Conditioning,
    TimeConditioning,
    TimeContextConditioning,
    TimeEmbedding,
)

__all__ = ["UNet"]


class UNet(nn.Module):
    """Denoising UNet (ADM layout) predicting an image from a noisy image, t and a context.

    Layout, with L = len(channel_mult) levels and C_i = base_channels * channel_mult[i]:
    a 3x3 input conv to C_0; per level ``num_res_blocks`` :class:`ResBlock` s, then (except at
    the deepest level) a ResBlock with 2x2 average-pool downsampling; a middle block
    ResBlock -> :class:`AttentionBlock` -> ResBlock (the only self-attention); per level, from
    the deepest, ``num_res_blocks + 1`` ResBlocks, each fed the concatenation of the running
    features and one encoder activation (skip), then (except at the shallowest level) a
    ResBlock with nearest x2 upsampling; GroupNorm -> SiLU -> zero-initialised 3x3 conv to
    ``out_channels``. At initialisation the output is therefore exactly zero.
    Paper size: 96 -> 48 -> 24 px with 128 -> 256 -> 256 channels.

    Conditioning (a :class:`~brainuad.nn.embeddings.Conditioning` strategy, ``self.conditioning``;
    every ResBlock maps its output, the embedding E, to (gamma, beta) with its own MLP II):

    - ``context_dim=None``: unconditioned DDPM. E = MLP I(sinusoid(t)) of width
      ``time_embed_dim`` (default 4 * base_channels = 512, as ADM).
    - ``context_dim=d, context_mlp=False`` (paper cDDPM, the default conditioning): c_t =
      MLP I(sinusoid(t)) in R^``time_embed_dim`` (default d), E = c' = concat(c, c_t), of
      width 2d by default.
    - ``context_dim=d, context_mlp=True`` (authors' code; there d = 512): c first passes its
      own MLP (Linear(d, w), SiLU, Linear(w, w), w = ``time_embed_dim``, default d), then
      E = concat(MLP(c), c_t).

    The sinusoidal embedding has width base_channels; MLP I is Linear(base_channels, w) ->
    SiLU -> Linear(w, w).

    Measured parameter counts of the paper-size net (base 128, mult (1, 2, 2), 3 res blocks,
    in/out 1 channel, image encoder not included):

    - unconditioned (E = 512): 37,513,857 (method.md: about 37.5 M);
    - paper cDDPM, d = 128 (c_t in R^128, E = 256): 34,203,521;
    - paper cDDPM, d = 512 (E = 1024): 43,543,169;
    - authors' code, d = 512 with context MLP (E = 1024): 44,068,481 (method.md: about 44 M).

    Args:
        in_channels: channels of the noisy input image.
        out_channels: channels of the prediction.
        base_channels: channels C of the first level; even (width of the sinusoidal embedding).
        channel_mult: channel multiplier per level; one level per entry, each after the first
            at half the resolution of the one before.
        num_res_blocks: residual blocks per level in the encoder (the decoder has one more).
        attention_head_channels: channels per attention head in the middle block.
        dropout: dropout probability inside every residual block, in [0, 1).
        groups: GroupNorm groups; must divide every channel count.
        context_dim: width d of the context vector c, or None for an unconditioned net.
        context_mlp: pass c through its own MLP before the concatenation (authors' code).
        time_embed_dim: width of c_t (output of MLP I); default 4 * base_channels without
            context, context_dim with context.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 128,
        channel_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 3,
        attention_head_channels: int = 64,
        dropout: float = 0.0,
        groups: int = 32,
        context_dim: int | None = None,
        context_mlp: bool = False,
        time_embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        check_int("base_channels", base_channels)
        if base_channels % 2 != 0:
            raise ValueError(f"base_channels must be even, got {base_channels!r}")
        if len(channel_mult) == 0:
            raise ValueError(f"channel_mult must not be empty, got {channel_mult!r}")
        for multiplier in channel_mult:
            check_int("channel_mult entries", multiplier)
        check_int("num_res_blocks", num_res_blocks)
        check_int("attention_head_channels", attention_head_channels)
        check_int("groups", groups)
        channels = [base_channels * multiplier for multiplier in channel_mult]
        for level, level_channels in enumerate(channels):
            if level_channels % groups != 0:
                raise ValueError(
                    f"base_channels * channel_mult[{level}] = {level_channels!r} is not "
                    f"divisible by groups={groups!r}"
                )
        if channels[-1] % attention_head_channels != 0:
            raise ValueError(
                f"middle block channels {channels[-1]!r} are not divisible by "
                f"attention_head_channels={attention_head_channels!r}"
            )
        check_fraction("dropout", dropout, open_high=True)
        check_optional_int("context_dim", context_dim)
        if context_mlp and context_dim is None:
            raise ValueError("context_mlp=True requires a context_dim, got context_dim=None")
        check_optional_int("time_embed_dim", time_embed_dim)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.downsample_factor = 2 ** (len(channel_mult) - 1)
        self.conditioning = self._conditioning(
            base_channels, context_dim, context_mlp, time_embed_dim
        )
        emb_dim = self.conditioning.out_dim

        def res_block(c_in: int, c_out: int, resample: Resample = "none") -> ResBlock:
            return ResBlock(c_in, c_out, emb_dim, dropout, groups, resample)

        self.input_conv = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        skip_channels = [channels[0]]
        current = channels[0]
        self.down_levels = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for level, level_channels in enumerate(channels):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(res_block(current, level_channels))
                current = level_channels
                skip_channels.append(current)
            self.down_levels.append(blocks)
            if level < len(channels) - 1:
                self.downsamplers.append(res_block(current, current, "down"))
                skip_channels.append(current)

        self.middle_res1 = res_block(current, current)
        self.middle_attention = AttentionBlock(current, attention_head_channels, groups)
        self.middle_res2 = res_block(current, current)

        self.up_levels = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(channels))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(res_block(current + skip_channels.pop(), channels[level]))
                current = channels[level]
            self.up_levels.append(blocks)
            if level > 0:
                self.upsamplers.append(res_block(current, current, "up"))

        self.output_norm = nn.GroupNorm(groups, current)
        self.output_conv = zero_init(nn.Conv2d(current, out_channels, kernel_size=3, padding=1))

    @staticmethod
    def _conditioning(
        base_channels: int,
        context_dim: int | None,
        context_mlp: bool,
        time_embed_dim: int | None,
    ) -> Conditioning:
        if context_dim is None:
            width = 4 * base_channels if time_embed_dim is None else time_embed_dim
            return TimeConditioning(TimeEmbedding(base_channels, width))
        width = context_dim if time_embed_dim is None else time_embed_dim
        projection = MLP(context_dim, width) if context_mlp else None
        return TimeContextConditioning(TimeEmbedding(base_channels, width), context_dim, projection)

    @property
    def context_dim(self) -> int | None:
        """Width d of the context vector the net expects, or None when unconditioned."""
        return self.conditioning.context_dim

    def forward(self, x: Tensor, t: Tensor, context: Tensor | None = None) -> Tensor:
        """Predict from a noisy image.

        Args:
            x: (N, in_channels, H, W) noisy images, intensities in [-1, 1]; H and W divisible
                by ``downsample_factor``. channels_last memory format is accepted.
            t: (N,) time steps, int or float, in step units.
            context: (N, context_dim) context vectors c for a conditioned net, None otherwise.

        Returns:
            (N, out_channels, H, W) prediction.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)!r}"
            )
        height, width = x.shape[-2:]
        if height % self.downsample_factor != 0 or width % self.downsample_factor != 0:
            raise ValueError(
                f"x height and width must be divisible by {self.downsample_factor}, "
                f"got {(height, width)!r}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)!r}")
        emb = self.conditioning(t, context)

        h = self.input_conv(x)
        skips = [h]
        for level, blocks in enumerate(self.down_levels):
            for block in blocks:  # type: ignore[attr-defined]  # torch types ModuleList items as Module
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h, emb)
                skips.append(h)

        h = self.middle_res2(self.middle_attention(self.middle_res1(h, emb)), emb)

        for level, blocks in enumerate(self.up_levels):
            for block in blocks:  # type: ignore[attr-defined]  # torch types ModuleList items as Module
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if level < len(self.upsamplers):
                h = self.upsamplers[level](h, emb)
        return self.output_conv(F.silu(self.output_norm(h)))
