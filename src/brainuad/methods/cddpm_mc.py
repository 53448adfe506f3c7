"""The multi-contrast cDDPM: the encoder sees the slice and the same slice of the subject's other
contrasts (paper §6.4, future work; docs/follow-up-methods.md).

The paper's cDDPM (:class:`~brainuad.methods.cddpm.CDDPM`) conditions the denoising of a T2 slice on
an encoding of that T2 slice alone; its outlook proposes multi-contrast input where a data set has
several sequences. Here the encoder F_enc sees the slice of the modality the model is trained on
(``data.modality``, T2 by default) and the same slice of each other contrast (``encoder.contrasts``,
T1 by default) as the channels of one image, while the UNet still noises, denoises and scores the
trained modality only: the residual ``|x - x_rec|`` is the T2 residual, comparable with the cDDPM's.
A lesion that changes T1 as well (a tumour or MS lesion, dark in T1) then reaches the encoder
through two contrasts, and the healthy anatomy the reconstruction should keep through both.

Everything else is the cDDPM's: FiLM conditioning on concat(c, c_t), x0 prediction, L1 loss, the
test-time ensemble t_test = 250, 500, 750, the training augmentation (one draw for all channels of
a slice: the same blur, bias field, gamma and ghosting, as torchio does to a multi-channel image).

Data: every subject needs its other contrasts on the grid of its image (the data layout's
``t1/`` beside ``t2/``; ``brainuad prepare`` brings BraTS21's and MSLUB's T1 along, ``brainuad synth``
writes them): training items are (1 + C, H, W) slices (:class:`~brainuad.data.datasets.RandomSliceDataset`
with ``contrasts``), test volumes carry their contrasts
(:attr:`~brainuad.data.grid.GridVolume.contrasts`), and ``brainuad predict`` finds each scan's
other contrasts beside it. SparK pre-trains a 1-channel body: ``encoder.pretrained`` is loaded
with the stem kernel averaged over the 1 + C channels (:func:`~brainuad.methods.spark.load_body_weights`).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import Tensor

from brainuad.config import DiffusionConfig, EncoderConfig, RunConfigBase, UNetConfig
from brainuad.data.grid import GridVolume
from brainuad.methods.base import VolumeLike, float_tensor
from brainuad.methods.cddpm import CDDPM, build_encoder
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.ddpm import diffusion_options
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.spec import MethodSpec
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["CDDPM_MC_SPEC", "ContrastEncoderConfig", "MultiContrastCDDPM", "MultiContrastCDDPMRunConfig"]

Contrast = Literal["t1", "t2", "flair"]


class MultiContrastCDDPM(CDDPM):
    """A cDDPM whose encoder sees each slice with the same slice of the other contrasts (module docstring).

    Args:
        encoder: F_enc with ``in_channels`` = 1 + C and ``out_dim`` equal to the UNet's ``context_dim``.
        contrasts: the C >= 1 other contrasts, in channel order after the slice (``("t1",)``).
        (others as :class:`~brainuad.methods.cddpm.CDDPM`)
    """

    def __init__(self, unet: UNet, encoder: ImageEncoder, noise: NoiseSampler, schedule: DiffusionSchedule, *,
                 contrasts: Sequence[str] = ("t1",), **options: Any) -> None:
        contrasts = tuple(contrasts)
        if not contrasts or len(set(contrasts)) != len(contrasts):
            raise ValueError(f"contrasts must name at least one contrast, each once, got {list(contrasts)}")
        if encoder.in_channels != 1 + len(contrasts):
            raise ValueError(f"the encoder takes {encoder.in_channels} channels; the slice and {len(contrasts)} other "
                             f"contrast(s) need {1 + len(contrasts)}")
        super().__init__(unet, encoder, noise, schedule, **options)
        self.contrasts = contrasts

    @property
    def channels(self) -> int:
        """Channels 1 + C the encoder sees."""
        return 1 + len(self.contrasts)

    def _check_channels(self, condition: Tensor | None, what: str) -> Tensor:
        if condition is None or condition.ndim != 4 or condition.shape[1] != self.channels:
            shape = None if condition is None else tuple(condition.shape)
            raise ValueError(f"{what} must be (N, {self.channels}, H, W): each slice with its "
                             f"{', '.join(self.contrasts)} slice; got {shape}")
        return condition

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mean L1 ``|x0 - x0_hat|`` on the slices (channel 0), the encoder seeing all channels.

        Args:
            images: (N, 1 + C, H, W) in [0, 1]: each slice, then its other contrasts.
        """
        self._check_channels(images, "images")
        return self.denoising_loss(images[:, :1], generator, condition=images)

    def reconstruct_at(self, images: Tensor, levels: Sequence[int], generator: torch.Generator | None = None,
                       condition: Tensor | None = None) -> Tensor:
        """The cDDPM's reconstruction of the slices ``images`` ((N, 1, H, W) in [0, 1]) conditioned on
        ``condition``, (N, 1 + C, H, W): the slices with their other contrasts (required: a slice
        alone does not say what its T1 looks like). Returns (N, 1, H, W) in [0, 1]."""
        return super().reconstruct_at(images, levels, generator, self._check_channels(condition, "the condition"))

    def condition_slices(self, condition: VolumeLike) -> Tensor:
        """What the encoder sees for each axial slice of a volume: a :class:`GridVolume` loaded with
        its other contrasts (:meth:`GridVolume.channels`), or a (1 + C, X, Y, Z) array of them ->
        (Z, 1 + C, X, Y).

        Raises:
            ValueError: a volume without its other contrasts, or an array of another shape.
        """
        channels = float_tensor(condition.channels(self.contrasts) if isinstance(condition, GridVolume) else condition)
        if channels.ndim != 4 or channels.shape[0] != self.channels:
            raise ValueError(f"the multi-contrast cDDPM reads each volume with its {', '.join(self.contrasts)} image: "
                             f"give a GridVolume loaded with them or a ({self.channels}, X, Y, Z) array, got shape "
                             f"{tuple(channels.shape)}")
        return channels.permute(3, 0, 1, 2).contiguous()

    def reconstruct_many(self, volumes: Sequence[VolumeLike], *, t_test: int | None = None,
                         ensemble: Sequence[int] | None = None,
                         conditions: Sequence[VolumeLike] | None = None) -> list[np.ndarray]:
        """As :meth:`~brainuad.methods.ddpm.DDPM.reconstruct_many`; each volume's encoder sees its
        condition if given, else the volume with its other contrasts. Returns per volume (X, Y, Z)
        float32 in [0, 1]."""
        return super().reconstruct_many(volumes, t_test=t_test, ensemble=ensemble,
                                        conditions=volumes if conditions is None else conditions)


class ContrastEncoderConfig(EncoderConfig):
    """The cDDPM's encoder section with the other contrasts it sees beside each slice."""

    contrasts: tuple[Contrast, ...] = Field(("t1",), description="the other contrasts of each subject the encoder sees "
                                                                 "beside the slice (channels after it)")

    @field_validator("contrasts")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"contrasts must name at least one contrast, each once, got {list(value)}")
        return value


class MultiContrastCDDPMRunConfig(RunConfigBase):
    """Multi-contrast cDDPM: the encoder sees the slice and its other contrasts; test-time ensemble by default."""

    method: Literal["cddpm_mc"] = "cddpm_mc"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig(ensemble=(250, 500, 750))
    encoder: ContrastEncoderConfig = ContrastEncoderConfig()

    @model_validator(mode="after")
    def _other_contrasts(self) -> "MultiContrastCDDPMRunConfig":
        if self.data.modality in self.encoder.contrasts:
            raise ValueError(f"encoder.contrasts must be other contrasts than data.modality ({self.data.modality}), "
                             f"got {list(self.encoder.contrasts)}")
        return self


def build_cddpm_mc(config: MultiContrastCDDPMRunConfig, load_pretrained: bool) -> MultiContrastCDDPM:
    """The untrained multi-contrast cDDPM of a run config (SparK weights, if named, inflated to 1 + C channels)."""
    contrasts = config.encoder.contrasts
    diffusion = config.diffusion
    unet = build_unet(config.model, config.encoder.dim, config.encoder.context_mlp)
    return MultiContrastCDDPM(unet, build_encoder(config.encoder, load_pretrained, 1 + len(contrasts)),
                              build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps),
                              contrasts=contrasts, **diffusion_options(diffusion, config.train.seed))


CDDPM_MC_SPEC = MethodSpec("cddpm_mc", MultiContrastCDDPMRunConfig, build_cddpm_mc,
                           "multi-contrast cDDPM: the encoder sees each slice with its other contrasts (T1 beside T2)",
                           noise_levels=lambda config: config.diffusion.timesteps,
                           contrasts=lambda config: tuple(config.encoder.contrasts))
