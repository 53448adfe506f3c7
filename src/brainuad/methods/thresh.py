"""Thresh: the histogram-equalised intensity as the anomaly score (Meissen et al. 2022; paper §4.4).

Meissen et al. showed that on FLAIR/T2 images a lesion segmentation by thresholding the
histogram-equalised intensity rivals the reconstruction methods. Here the equalisation is
*fitted* on healthy data: the empirical cumulative distribution F of the brain intensities of the
healthy training volumes (a histogram of ``bins`` equal bins on [0, 1], linear between the bin
edges). A voxel's score is

- ``F(x)`` for hyperintense lesions (T2: tumours, MS lesions), the fraction of healthy brain
  voxels darker than it;
- ``1 - F(x)`` for hypointense lesions (T1: strokes, white-matter hyperintensities appear dark),

inside the brain mask and 0 outside. This is the only "training": no gradients, one pass over the
training volumes (:meth:`IntensityThreshold.fit`). The fitted distribution is a buffer, saved
with the run like any weights.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor

from brainuad.data.grid import GridVolume
from brainuad.methods.base import AnomalyDetector, VolumeLike

Polarity = Literal["hyper", "hypo"]
POLARITY_BY_MODALITY: dict[str, Polarity] = {"t2": "hyper", "t1": "hypo"}
"""The lesion polarity of each modality (paper's sets: T2 tumours and MS lesions are bright; T1
strokes and white-matter lesions are dark)."""


class IntensityThreshold(AnomalyDetector):
    """Anomaly score = the histogram-equalised intensity (see the module docstring).

    Args:
        polarity: ``"hyper"`` (score F(x)) or ``"hypo"`` (score 1 - F(x)).
        bins: histogram bins on [0, 1] of the fitted equalisation (>= 2).

    Buffers: ``cdf`` (bins + 1,) float64, F at the bin edges ``linspace(0, 1, bins + 1)``; all
    zero until :meth:`fit`.
    """

    def __init__(self, polarity: Polarity, bins: int = 1024) -> None:
        super().__init__()
        if polarity not in ("hyper", "hypo"):
            raise ValueError(f"polarity must be 'hyper' or 'hypo', got {polarity!r}")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
        self.polarity = polarity
        self.bins = bins
        self.register_buffer("cdf", torch.zeros(bins + 1, dtype=torch.float64))

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or loading fitted weights) has set the distribution."""
        return bool(self.cdf[-1] > 0)

    def fit(self, volumes: Sequence[GridVolume]) -> None:
        """Fit F on the brain voxels (``volume.mask``) of healthy model-grid volumes.

        Intensities outside [0, 1] are counted in the first or last bin.

        Raises:
            ValueError: no volume, or no brain voxel in any of them.
        """
        if not volumes:
            raise ValueError("fit needs at least one volume, got none")
        counts = np.zeros(self.bins, dtype=np.int64)
        for volume in volumes:
            values = np.clip(volume.image[volume.mask], 0.0, 1.0)
            counts += np.histogram(values, bins=self.bins, range=(0.0, 1.0))[0]
        total = counts.sum()
        if total == 0:
            raise ValueError(f"the {len(volumes)} volumes given to fit have no brain voxel")
        cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
        self.cdf.copy_(torch.from_numpy(cdf))

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("IntensityThreshold is not fitted: call fit(volumes) or load a fitted run first")

    def equalise(self, intensities: Tensor) -> Tensor:
        """F(x), linear between the bin edges.

        Args:
            intensities: any shape, [0, 1] intensities (values outside are clamped).

        Returns:
            same shape, float32 in [0, 1].
        """
        self._check_fitted()
        position = intensities.double().clamp(0, 1) * self.bins
        index = position.floor().clamp(max=self.bins - 1).long()
        low, high = self.cdf[index], self.cdf[index + 1]
        return (low + (position - index) * (high - low)).float()

    def score(self, intensities: Tensor) -> Tensor:
        """The anomaly score of intensities: F(x) (hyper) or 1 - F(x) (hypo); same shape, float32."""
        equalised = self.equalise(intensities)
        return equalised if self.polarity == "hyper" else 1 - equalised

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """How far the fitted equalisation is from these slices' brain intensities (no gradient).

        The Wasserstein-1 distance between the equalised intensities of the slices' brain voxels
        (non-zero voxels: the background of a model-grid volume is 0) and the uniform distribution
        on [0, 1], which it is for voxels drawn from the fitted distribution:
        ``mean_i |e_(i) - (i + 0.5) / n|`` over the n sorted equalised values ``e_(i)``; 0 when the
        slices have no brain voxel.

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
        scores = self.score(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).to(self.cdf.device))
        return np.where(brain, scores.cpu().numpy(), 0.0).astype(np.float32)
