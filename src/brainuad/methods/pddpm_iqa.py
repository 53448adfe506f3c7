"""pDDPM-IQA: the patched DDPM scored by "fusion quality" (Pan et al. 2024; docs/follow-up-methods.md).

Pan et al., "Rethinking Medical Anomaly Detection in Brain MRI: An Image Quality Assessment
Perspective" (arXiv 2408.08228, 2024), keep the pDDPM (:class:`~brainuad.methods.pddpm.PDDPM`,
trained as it is) and change its anomaly score: the l1 residual misses differences of local
structure and contrast that SSIM sees, so they fuse the two. Their reported figures under this
protocol (Dice / AUPRC in %): BraTS21 59.45 / 62.99, MSLUB 12.93 / 11.51.

Score of a volume x and its reconstruction x_rec (both (X, Y, Z) in [0, 1]), per voxel::

    S = w_ssim * max(0, 1 - SSIM_local(x, x_rec)) + w_l1 * |x - x_rec|

with SSIM_local the 2-D SSIM of the ``window`` x ``window`` px uniform window around the voxel on
its axial slice (:func:`~brainuad.methods.similarity.ssim_map`, scikit-image's definition; 1 - SSIM
lies in [0, 2], the clip only removes rounding below 0). Defaults: w_ssim = 0.84, w_l1 = 0.16,
Pan et al.'s fusion weight alpha = 0.84 (the SSIM + l1 mix of Zhao et al. 2017), a weighted sum as
theirs: a voxel flagged by either cue stays flagged, where a product would need both (and vanish
wherever the reconstruction matches one of them). The 7 px window is scikit-image's default, the
evaluation's SSIM window. In the background, where x and x_rec are both about 0, SSIM is about 1 and
S about 0; the evaluation masks the map with the eroded brain mask anyway, as for every method.
The default test noise level is t_test = 750 (the pDDPM's: 500).

Left out: Pan et al.'s second component, an intensity transformation of the data that raises the
average intensity ratio between lesions and healthy tissue (a preprocessing change, not a method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from brainuad.config import DiffusionConfig, RunConfigBase, Section, UNetConfig
from brainuad.methods.base import residual
from brainuad.methods.components import build_noise, build_unet
from brainuad.methods.ddpm import diffusion_options
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.pddpm import PDDPM, PatchConfig
from brainuad.methods.similarity import ssim_map
from brainuad.methods.spec import MethodSpec
from brainuad.nn.unet import UNet
from brainuad.noise import NoiseSampler

__all__ = ["FusionScore", "FusionScoreConfig", "PDDPMIQA", "PDDPMIQARunConfig", "PDDPM_IQA_SPEC"]


@dataclass(frozen=True)
class FusionScore:
    """The fusion-quality anomaly score (module docstring).

    Attributes:
        l1_weight: w_l1 >= 0, the weight of ``|x - x_rec|``.
        ssim_weight: w_ssim >= 0, the weight of ``1 - SSIM``; not both 0.
        window: edge of the uniform SSIM window on each axial slice in px, odd, >= 3.
    """

    l1_weight: float = 0.16
    ssim_weight: float = 0.84
    window: int = 7

    def __post_init__(self) -> None:
        for name in ("l1_weight", "ssim_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.l1_weight == 0 and self.ssim_weight == 0:
            raise ValueError("l1_weight and ssim_weight cannot both be 0")
        if not isinstance(self.window, int) or self.window < 3 or self.window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 3, got {self.window!r}")

    def __call__(self, image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
        """The score of a volume.

        Args:
            image: (X, Y, Z) in [0, 1], axial slices along the last axis.
            reconstruction: same shape, in [0, 1].

        Returns:
            (X, Y, Z) float32 >= 0 (at most 2 * w_ssim + w_l1).
        """
        if np.ndim(image) != 3:
            raise ValueError(f"the fusion score needs (X, Y, Z) volumes, got shape {np.shape(image)}")
        similarity = ssim_map(image, reconstruction, (self.window, self.window, 1))
        dissimilarity = np.clip(1.0 - similarity, 0.0, None)
        score = self.ssim_weight * dissimilarity + self.l1_weight * residual(image, reconstruction)
        return score.astype(np.float32)


class PDDPMIQA(PDDPM):
    """The pDDPM with the fusion-quality score as its anomaly map (module docstring).

    Args:
        fusion: the score of a volume and its reconstruction.
        (others as :class:`~brainuad.methods.pddpm.PDDPM`)
    """

    def __init__(self, unet: UNet, noise: NoiseSampler, schedule: DiffusionSchedule, *,
                 fusion: FusionScore = FusionScore(), **options: Any) -> None:
        super().__init__(unet, noise, schedule, **options)
        self.fusion = fusion

    def reconstruction_score(self, image: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
        """The fusion score of (X, Y, Z) volumes in [0, 1]: (X, Y, Z) float32 >= 0."""
        return self.fusion(image, reconstruction)


class FusionScoreConfig(Section):
    """pDDPM-IQA's score ``w_ssim * (1 - SSIM) + w_l1 * |x - x_rec|`` (Pan et al. 2024: alpha = 0.84)."""

    l1_weight: float = Field(0.16, ge=0, description="weight w_l1 of the l1 residual")
    ssim_weight: float = Field(0.84, ge=0, description="weight w_ssim of 1 - SSIM")
    ssim_window: int = Field(7, ge=3, description="edge of the uniform SSIM window on each axial slice, px (odd)")

    def fusion(self) -> FusionScore:
        """The score these settings describe."""
        return FusionScore(self.l1_weight, self.ssim_weight, self.ssim_window)

    @model_validator(mode="after")
    def _valid_score(self) -> "FusionScoreConfig":
        self.fusion()
        return self


class PDDPMIQARunConfig(RunConfigBase):
    """pDDPM-IQA (Pan et al. 2024): the pDDPM at t_test = 750, scored by fusion quality."""

    method: Literal["pddpm_iqa"] = "pddpm_iqa"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig(t_test=750)
    patch: PatchConfig = PatchConfig()
    score: FusionScoreConfig = FusionScoreConfig()


def build_pddpm_iqa(config: PDDPMIQARunConfig, load_pretrained: bool) -> PDDPMIQA:
    """The untrained pDDPM-IQA of a run config."""
    diffusion = config.diffusion
    return PDDPMIQA(build_unet(config.model), build_noise(diffusion.noise), DiffusionSchedule(diffusion.timesteps),
                    patch_size=config.patch.size, fusion=config.score.fusion(),
                    **diffusion_options(diffusion, config.train.seed))


PDDPM_IQA_SPEC = MethodSpec("pddpm_iqa", PDDPMIQARunConfig, build_pddpm_iqa,
                            "pDDPM scored by fusion quality (1 - SSIM and l1, Pan et al. 2024)",
                            noise_levels=lambda config: config.diffusion.timesteps)
