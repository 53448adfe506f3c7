"""Thresh: the histogram-equalised intensity as the anomaly score (Meissen et al. 2022; paper §4.4).

Meissen et al. showed that on FLAIR/T2 images a lesion segmentation by thresholding the
histogram-equalised intensity rivals the reconstruction methods. Their baseline equalises each
scan with the histogram of *its own* brain voxels and needs no training data; that is the
default here (``equalisation="per_scan"``, the paper's Thresh row). With F the empirical
cumulative distribution of the reference brain intensities (a histogram of ``bins`` equal bins on
[0, 1], linear between the bin edges), a voxel's score is

- ``F(x)`` for hyperintense lesions (T2: tumours, MS lesions), the fraction of reference brain
  voxels darker than it;
- ``1 - F(x)`` for hypointense lesions (T1: strokes, white-matter hyperintensities appear dark),

inside the brain mask and 0 outside. The reference is

- ``per_scan``: the scan's own brain voxels (Meissen et al.); nothing is fitted;
- ``healthy_fit``: the brain voxels of the healthy training volumes, pooled in one pass
  (:meth:`IntensityThreshold.fit`), kept as a buffer saved with the run like any weights. A
  variant of this project, named so it is never mistaken for the paper's row.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from brainuad.checks import check_int
from brainuad.config import RunConfigBase, Section
from brainuad.data.grid import GridVolume
from brainuad.methods.base import AnomalyDetector, VolumeLike
from brainuad.methods.spec import MethodSpec

Polarity = Literal["hyper", "hypo"]
Equalisation = Literal["per_scan", "healthy_fit"]
EQUALISATIONS: tuple[Equalisation, ...] = ("per_scan", "healthy_fit")
POLARITY_BY_MODALITY: dict[str, Polarity] = {"t2": "hyper", "t1": "hypo"}
"""The lesion polarity of each modality (paper's sets: T2 tumours and MS lesions are bright; T1
strokes and white-matter lesions are dark)."""


def brain_counts(values: Tensor, bins: int) -> Tensor:
    """Histogram of brain intensities: (bins,) float64 counts of ``bins`` equal bins on [0, 1]
    (values outside [0, 1] are counted in the first or last bin)."""
    return torch.histc(values.double().clamp(0, 1), bins=bins, min=0.0, max=1.0)


def counts_to_cdf(counts: Tensor) -> Tensor:
    """The empirical CDF at the bin edges ``linspace(0, 1, bins + 1)`` of a :func:`brain_counts`
    histogram: (bins + 1,) float64 from 0 to 1; all zero for an empty histogram."""
    total = counts.sum()
    cdf = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return cdf / total if total > 0 else cdf


def read_cdf(cdf: Tensor, intensities: Tensor) -> Tensor:
    """F(x) of a CDF from :func:`counts_to_cdf`, linear between the bin edges.

    Args:
        cdf: (bins + 1,) float64.
        intensities: any shape, [0, 1] intensities (values outside are clamped).

    Returns:
        same shape as ``intensities``, float32 in [0, 1].
    """
    bins = cdf.numel() - 1
    position = intensities.double().clamp(0, 1) * bins
    index = position.floor().clamp(max=bins - 1).long()
    low, high = cdf[index], cdf[index + 1]
    return (low + (position - index) * (high - low)).float()


class IntensityThreshold(AnomalyDetector):
    """Anomaly score = the histogram-equalised intensity (see the module docstring).

    Args:
        polarity: ``"hyper"`` (score F(x)) or ``"hypo"`` (score 1 - F(x)).
        bins: histogram bins on [0, 1] of the equalisation (>= 2).
        equalisation: ``"per_scan"`` (each scan's own brain histogram; Meissen et al., the
            default) or ``"healthy_fit"`` (the pooled healthy training brains, :meth:`fit`).

    Buffers (``healthy_fit`` only): ``cdf`` (bins + 1,) float64, F at the bin edges
    ``linspace(0, 1, bins + 1)``; all zero until :meth:`fit`.
    """

    cdf: Tensor

    def __init__(self, polarity: Polarity, bins: int = 1024, equalisation: Equalisation = "per_scan") -> None:
        super().__init__()
        if polarity not in ("hyper", "hypo"):
            raise ValueError(f"polarity must be 'hyper' or 'hypo', got {polarity!r}")
        check_int("bins", bins, 2)
        if equalisation not in EQUALISATIONS:
            raise ValueError(f"equalisation must be one of {', '.join(EQUALISATIONS)}, got {equalisation!r}")
        self.polarity = polarity
        self.bins = bins
        self.equalisation = equalisation
        if equalisation == "healthy_fit":
            self.register_buffer("cdf", torch.zeros(bins + 1, dtype=torch.float64))

    @property
    def fitted(self) -> bool:
        """Whether the method can score: always with ``per_scan``; with ``healthy_fit`` once
        :meth:`fit` (or loading fitted weights) has set the distribution."""
        return self.equalisation == "per_scan" or bool(self.cdf[-1] > 0)

    def fit(self, volumes: Sequence[GridVolume]) -> None:
        """Fit F on the brain voxels (``volume.mask``) of healthy model-grid volumes
        (``healthy_fit``); with ``per_scan`` there is nothing to fit and the volumes are not read.

        Intensities outside [0, 1] are counted in the first or last bin.

        Raises:
            ValueError: no volume, or no brain voxel in any of them.
        """
        if not volumes:
            raise ValueError("fit needs at least one volume, got none")
        if self.equalisation == "per_scan":
            return
        counts = torch.stack([brain_counts(torch.from_numpy(volume.image[volume.mask]), self.bins)
                              for volume in volumes]).sum(dim=0)
        if counts.sum() == 0:
            raise ValueError(f"the {len(volumes)} volumes given to fit have no brain voxel")
        self.cdf.copy_(counts_to_cdf(counts))

    def _reference(self, brain_values: Tensor) -> Tensor:
        """The CDF that equalises a scan whose brain intensities are ``brain_values``."""
        if self.equalisation == "per_scan":
            return counts_to_cdf(brain_counts(brain_values, self.bins))
        if not self.fitted:
            raise RuntimeError("IntensityThreshold is not fitted: call fit(volumes) or load a fitted run first")
        return self.cdf

    def equalise(self, intensities: Tensor, brain_values: Tensor | None = None) -> Tensor:
        """F(x), linear between the bin edges.

        Args:
            intensities: any shape, [0, 1] intensities (values outside are clamped).
            brain_values: (N,) the scan's brain intensities, the reference of ``per_scan``
                (default: ``intensities`` themselves); unused by ``healthy_fit``.

        Returns:
            same shape, float32 in [0, 1].
        """
        reference = self._reference(intensities.reshape(-1) if brain_values is None else brain_values)
        return read_cdf(reference, intensities.to(reference.device))

    def score(self, intensities: Tensor, brain_values: Tensor | None = None) -> Tensor:
        """The anomaly score of intensities: F(x) (hyper) or 1 - F(x) (hypo); same shape, float32
        (``brain_values`` as in :meth:`equalise`)."""
        equalised = self.equalise(intensities, brain_values)
        return equalised if self.polarity == "hyper" else 1 - equalised

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """How far the equalisation is from these slices' brain intensities (no gradient).

        The Wasserstein-1 distance between the equalised intensities of the slices' brain voxels
        (non-zero voxels: the background of a model-grid volume is 0) and the uniform distribution
        on [0, 1], which it is for voxels drawn from the reference distribution:
        ``mean_i |e_(i) - (i + 0.5) / n|`` over the n sorted equalised values ``e_(i)``; 0 when the
        slices have no brain voxel. With ``per_scan`` the slices are their own reference, so only
        the histogram's binning is left (a check, not a model fit).

        Args:
            images: (N, 1, H, W) in [0, 1].
            generator: unused (the distance is deterministic).

        Returns:
            scalar tensor >= 0 (at most 0.5).
        """
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
        values = images[images > 0]
        if values.numel() == 0:
            return images.new_zeros(())
        equalised = self.equalise(values).sort().values
        uniform = (torch.arange(len(equalised), device=images.device, dtype=torch.float32) + 0.5) / len(equalised)
        return (equalised - uniform).abs().mean().to(images.dtype)

    @torch.no_grad()
    def anomaly_map(self, volume: VolumeLike) -> np.ndarray:
        """The score inside the brain, 0 outside.

        Args:
            volume: a :class:`GridVolume` (its ``mask`` is the brain) or an (X, Y, Z) array in
                [0, 1] (the brain: its non-zero voxels).

        Returns:
            (X, Y, Z) float32 in [0, 1].
        """
        if isinstance(volume, GridVolume):
            image, brain = volume.image, volume.mask
        else:
            image = volume.detach().cpu().numpy() if isinstance(volume, Tensor) else np.asarray(volume)
            if image.ndim != 3:
                raise ValueError(f"a volume must be 3-D (X, Y, Z), got shape {image.shape}")
            brain = image > 0
        intensities = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        brain_values = intensities[torch.from_numpy(np.ascontiguousarray(brain, dtype=bool))]
        scores = self.score(intensities, brain_values)
        return np.where(brain, scores.cpu().numpy(), 0.0).astype(np.float32)


class ThreshConfig(Section):
    """Thresh (Meissen et al. 2022): the histogram-equalised intensity as the anomaly score."""

    polarity: Literal["auto", "hyper", "hypo"] = Field(
        "auto", description="lesions brighter (hyper) or darker (hypo) than tissue; auto: hyper on T2, hypo on T1")
    bins: int = Field(1024, ge=2, description="histogram bins on [0, 1] of the equalisation")
    equalisation: Literal["per_scan", "healthy_fit"] = Field(
        "per_scan", description="per_scan: each scan equalised with its own brain histogram (Meissen et al., the "
                                "paper's row); healthy_fit: with the pooled healthy training brains")


class ThreshRunConfig(RunConfigBase):
    """Intensity thresholding (Thresh): no gradient training, only the fitted equalisation."""

    method: Literal["thresh"] = "thresh"
    thresh: ThreshConfig = ThreshConfig()


def build_thresh(config: ThreshRunConfig, load_pretrained: bool) -> IntensityThreshold:
    """The Thresh of a run config (polarity ``auto``: that of the training modality)."""
    polarity = config.thresh.polarity
    return IntensityThreshold(POLARITY_BY_MODALITY[config.data.modality] if polarity == "auto" else polarity,
                              config.thresh.bins, config.thresh.equalisation)


THRESH_SPEC = MethodSpec("thresh", ThreshRunConfig, build_thresh,
                         "intensity thresholding after histogram equalisation (Meissen et al.)", training="fit")
