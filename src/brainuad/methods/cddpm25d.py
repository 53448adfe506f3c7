"""The 2.5-D cDDPM: the encoder sees each slice with its neighbours (paper §6.4, future work;
docs/follow-up-methods.md).

The paper's cDDPM (:class:`~brainuad.methods.cddpm.CDDPM`) conditions the denoising of a slice on an
encoding of that slice alone; its outlook proposes 3-D input to the image encoder, to keep the
context between slices without training a 3-D DDPM. Here the encoder F_enc sees a stack of
S = 2k + 1 consecutive axial slices, the slice and its k neighbours on each side as the channels of
one image (k = 1: 3 channels), while the UNet still noises and denoises the centre slice only.
Everything else is the cDDPM's: FiLM conditioning on concat(c, c_t), x0 prediction, L1 loss, the
test-time ensemble t_test = 250, 500, 750.

Training: items are stacks of S consecutive slices, one random stack per volume per epoch (the
data module's stacks, as the SVAE's: ``MethodSpec.stack_size``), so the centre slice is never one of
the k outermost slices of a volume; no augmentation (it transforms single slices).
Test: ``reconstruct(volume)`` gives each slice its stack from the volume (or from the conditioning
volume the domain-shift study passes); past the ends of a volume the nearest slice repeats (edge
replication, :func:`neighbour_stacks`). Slices given without neighbours
(``reconstruct_at(images)`` without a condition) are each their own neighbours; the PSNR check after
training gives each slice its stack.
SparK pre-trains a 1-channel body: ``encoder.pretrained`` is loaded with the stem kernel averaged
over the S channels (:func:`~brainuad.methods.spark.load_body_weights`).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from brainuad.config import DiffusionConfig, EncoderConfig, StackRunConfigBase, UNetConfig
from brainuad.methods.base import VolumeLike, volume_slices
from brainuad.methods.cddpm import CDDPM, build_encoder
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.ddpm import diffusion_options
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.spec import MethodSpec
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["CDDPM25D", "CDDPM25DRunConfig", "CDDPM25D_SPEC", "StackEncoderConfig", "neighbour_stacks"]


def neighbour_stacks(slices: Tensor, neighbours: int) -> Tensor:
    """Each slice of a volume with its ``neighbours`` k neighbours on each side, the nearest slice
    repeated past the ends.

    Args:
        slices: (Z, 1, H, W), the consecutive axial slices of one volume.
        neighbours: k >= 0.

    Returns:
        (Z, 2k + 1, H, W): row z holds slices z - k .. z + k (indices clamped to 0 .. Z - 1), slice z
        in channel k.
    """
    if slices.ndim != 4 or slices.shape[1] != 1 or slices.shape[0] < 1:
        raise ValueError(f"slices must have shape (Z, 1, H, W) with Z >= 1, got {tuple(slices.shape)}")
    if not isinstance(neighbours, int) or neighbours < 0:
        raise ValueError(f"neighbours must be an integer >= 0, got {neighbours!r}")
    depth = slices.shape[0]
    offsets = torch.arange(-neighbours, neighbours + 1, device=slices.device)
    index = (torch.arange(depth, device=slices.device)[:, None] + offsets).clamp(0, depth - 1)
    return slices[:, 0][index]


class CDDPM25D(CDDPM):
    """A cDDPM whose encoder sees each slice with its k neighbours on each side (module docstring).

    Args:
        encoder: F_enc with ``in_channels`` = 2k + 1 and ``out_dim`` equal to the UNet's ``context_dim``.
        neighbours: k >= 1, neighbours on each side (1: stacks of 3 slices).
        (others as :class:`~brainuad.methods.cddpm.CDDPM`)
    """

    def __init__(self, unet: UNet, encoder: ImageEncoder, noise: NoiseSampler, schedule: DiffusionSchedule, *,
                 neighbours: int = 1, **options: Any) -> None:
        if not isinstance(neighbours, int) or neighbours < 1:
            raise ValueError(f"neighbours must be an integer >= 1, got {neighbours!r}")
        if encoder.in_channels != 2 * neighbours + 1:
            raise ValueError(f"the encoder takes {encoder.in_channels} channels; {neighbours} neighbours on each "
                             f"side need {2 * neighbours + 1}")
        super().__init__(unet, encoder, noise, schedule, **options)
        self.neighbours = neighbours

    @property
    def stack_size(self) -> int:
        """Slices S = 2k + 1 the encoder sees."""
        return 2 * self.neighbours + 1

    def _stacks(self, condition: Tensor) -> Tensor:
        """(N, S, H, W) stacks as they are; (N, 1, H, W) slices each repeated S times (its own neighbours)."""
        if condition.ndim == 4 and condition.shape[1] == self.stack_size:
            return condition
        if condition.ndim == 4 and condition.shape[1] == 1:
            return condition.expand(-1, self.stack_size, -1, -1)
        raise ValueError(f"the conditioning must have shape (N, {self.stack_size}, H, W) or (N, 1, H, W), got "
                         f"{tuple(condition.shape)}")

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean L1 ``|x0 - x0_hat|`` on the centre slices, the encoder seeing the whole stacks.

        Args:
            images: (N, S, H, W) stacks of S = 2k + 1 consecutive slices in [0, 1].
        """
        if images.ndim != 4 or images.shape[1] != self.stack_size:
            raise ValueError(f"images must be stacks of shape (N, {self.stack_size}, H, W), got {tuple(images.shape)}")
        centre = images[:, self.neighbours:self.neighbours + 1]
        return self.denoising_loss(centre, generator, condition=images)

    def reconstruct_at(self, images: Tensor, levels: Sequence[int], generator: torch.Generator | None = None,
                       condition: Tensor | None = None) -> Tensor:
        """The cDDPM's reconstruction of the slices ``images`` ((N, 1, H, W) in [0, 1]) conditioned on
        ``condition``: (N, S, H, W) stacks, (N, 1, H, W) slices or None (``images``); a slice without
        neighbours is its own. Returns (N, 1, H, W) in [0, 1]."""
        stacks = self._stacks(images if condition is None else condition)
        return super().reconstruct_at(images, levels, generator, stacks)

    def condition_slices(self, condition: VolumeLike) -> Tensor:
        """Each axial slice of a conditioning volume with its neighbours: (X, Y, Z) -> (Z, S, X, Y)
        (:func:`neighbour_stacks`)."""
        return neighbour_stacks(volume_slices(condition), self.neighbours)

    def reconstruct_many(self, volumes: Sequence[VolumeLike], *, t_test: int | None = None,
                         ensemble: Sequence[int] | None = None,
                         conditions: Sequence[VolumeLike] | None = None) -> list[np.ndarray]:
        """As :meth:`~brainuad.methods.ddpm.DDPM.reconstruct_many`; each volume's encoder sees the
        stacks of its condition if given, else of the volume. Returns per volume (X, Y, Z) float32
        in [0, 1]."""
        return super().reconstruct_many(volumes, t_test=t_test, ensemble=ensemble,
                                        conditions=volumes if conditions is None else conditions)


class StackEncoderConfig(EncoderConfig):
    """The cDDPM's encoder section with the slices it sees around each slice."""

    neighbours: int = Field(1, ge=1, description="neighbouring slices on each side the encoder sees (k; it takes "
                                                  "2k + 1 channels)")


class CDDPM25DRunConfig(StackRunConfigBase):
    """2.5-D cDDPM: trained on stacks of 2k + 1 slices, test-time ensemble by default."""

    method: Literal["cddpm25d"] = "cddpm25d"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig(ensemble=(250, 500, 750))
    encoder: StackEncoderConfig = StackEncoderConfig()


def build_cddpm25d(config: CDDPM25DRunConfig, load_pretrained: bool) -> CDDPM25D:
    """The untrained 2.5-D cDDPM of a run config (SparK weights, if named, inflated to 2k + 1 channels)."""
    neighbours = config.encoder.neighbours
    diffusion = config.diffusion
    unet = build_unet(config.model, config.encoder.dim, config.encoder.context_mlp)
    return CDDPM25D(unet, build_encoder(config.encoder, load_pretrained, 2 * neighbours + 1),
                    build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps), neighbours=neighbours,
                    **diffusion_options(diffusion, config.train.seed))


CDDPM25D_SPEC = MethodSpec("cddpm25d", CDDPM25DRunConfig, build_cddpm25d,
                           "2.5-D cDDPM: the encoder sees each slice with its neighbours",
                           stack_size=lambda config: 2 * config.encoder.neighbours + 1,
                           noise_levels=lambda config: config.diffusion.timesteps)
