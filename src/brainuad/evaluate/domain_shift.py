"""The domain-shift study (paper §4.5.2, §5.2-§5.3, Fig. 2 and Fig. 3): how a diffusion model's
reconstructions follow inputs of a contrast it never saw, and (cDDPM) conditioning on part of
the input only.

For every contrast level ``cl`` (paper: 0.3, 0.7, 1.0, 1.5, 2.0) every volume is changed to
``x^cl`` (intensities in [0, 1] raised to the power ``cl``, :func:`shift_contrast`) as it is read;
for every test noise level (paper: 500 and 1000) and, for a conditioned model, every
conditioning width (paper: 100 % and 50 %, :func:`~brainuad.evaluate.scoring.crop_width`):

- on the healthy IXI test split of the run's modality: l1 error in the brain, SSIM, PSNR and the
  brain-intensity histogram distances ``kld`` (true KL) and ``entropy_difference`` (the paper's
  printed formula) between the shifted input and its reconstruction;
- on each lesion set: Dice of the test split at the val-dice threshold chosen again on the
  validation split *with the same shift* (residual magnitudes change with the contrast, so a
  threshold of the unshifted data would not measure the reconstruction), full post-processing.

Fig. 3: at the contrast levels of the histograms (paper: 0.5, 1 and 2) the mean brain-intensity
densities of input and reconstruction with the model's own test levels and the whole input as
conditioning, on the IXI test split (brain) and on each lesion set's test split (the brain
outside the annotated lesions only, as the paper does for BraTS21).

Fig. 2: one axial slice of the first IXI test volume, input and reconstruction, per condition.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from brainuad.checks import check_fraction, check_optional_int
from brainuad.data.cache import GridCache
from brainuad.data.grid import GridVolume, NormaliseOn
from brainuad.data.layout import resolve_data_root, sets_for_modality
from brainuad.evaluate.engine import (
    DensitySums,
    SplitContext,
    evaluate_healthy,
    evaluate_set,
)
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.protocol import check_sets
from brainuad.evaluate.results import HealthyResult, IntensityDensities, SetResult
from brainuad.evaluate.rules import Binarisation, postprocessing_variants, threshold_rules
from brainuad.evaluate.scoring import (
    ConditionedReconstructor,
    NoiseLevelReconstructor,
    ResidualScorer,
    ScoredVolume,
    VolumeScorer,
    read_contrasts,
)
from brainuad.evaluate.statistics import MeanStd, mean_std

__all__ = ["CONDITIONING_WIDTHS", "CONTRAST_LEVELS", "DomainShiftRun", "DomainShiftSettings", "HISTOGRAM_CONTRASTS",
           "SHIFT_NOISE_LEVELS", "ShiftExample", "ShiftHistogram", "ShiftPoint", "evaluate_domain_shift",
           "shift_contrast"]

CONTRAST_LEVELS = (0.3, 0.7, 1.0, 1.5, 2.0)
SHIFT_NOISE_LEVELS = (500, 1000)
CONDITIONING_WIDTHS = (1.0, 0.5)
HISTOGRAM_CONTRASTS = (0.5, 1.0, 2.0)
"""The paper's values (§4.5.2 and Fig. 3)."""


def shift_contrast(volume: GridVolume, level: float) -> GridVolume:
    """``volume`` with its image changed to ``x^level`` (clipped to [0, 1] first; paper §4.5.2).

    Args:
        volume: a model-grid volume, image (X, Y, Z) in about [0, 1].
        level: the contrast level, > 0 (1: unchanged).
    """
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not level > 0:
        raise ValueError(f"a contrast level must be a number > 0, got {level!r}")
    image = np.power(np.clip(volume.image, 0.0, 1.0), float(level)).astype(np.float32)
    return replace(volume, image=image)


@dataclass(frozen=True)
class DomainShiftSettings:
    """What the study varies (the paper's values by default).

    Attributes:
        contrasts: contrast levels, each > 0.
        t_tests: single test noise levels.
        widths: conditioning widths in (0, 1] (conditioned models; an unconditioned one uses 1 only).
        histogram_contrasts: contrast levels of the Fig. 3 histograms.
        dice: also measure Dice on the lesion sets per condition (the costly part).
    """

    contrasts: tuple[float, ...] = CONTRAST_LEVELS
    t_tests: tuple[int, ...] = SHIFT_NOISE_LEVELS
    widths: tuple[float, ...] = CONDITIONING_WIDTHS
    histogram_contrasts: tuple[float, ...] = HISTOGRAM_CONTRASTS
    dice: bool = True

    def __post_init__(self) -> None:
        for name in ("contrasts", "histogram_contrasts"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(
                    not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0 for v in values):
                raise ValueError(f"{name} must be a tuple of numbers > 0, got {values!r}")
        if not self.contrasts:
            raise ValueError("contrasts must name at least one level")
        if not isinstance(self.t_tests, tuple) or not self.t_tests or not all(
                isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in self.t_tests):
            raise ValueError(f"t_tests must be a non-empty tuple of ints >= 1, got {self.t_tests!r}")
        if not isinstance(self.widths, tuple) or not self.widths:
            raise ValueError(f"widths must be a non-empty tuple, got {self.widths!r}")
        for width in self.widths:
            check_fraction("a conditioning width", width, open_low=True)


@dataclass(frozen=True)
class ShiftExample:
    """One axial slice of a healthy test volume under one condition (Fig. 2).

    Attributes:
        volume: subject name; slice_index: the axial index.
        image: (X, Y) the shifted input; reconstruction: (X, Y).
    """

    volume: str
    slice_index: int
    image: np.ndarray
    reconstruction: np.ndarray


@dataclass(frozen=True)
class ShiftPoint:
    """One condition of one run.

    Attributes:
        contrast: contrast level; t_test: noise level; width: conditioning width.
        healthy: reconstruction quality on the shifted healthy IXI test split.
        sets: per lesion set, the shifted set's results (Dice at the re-chosen val-dice threshold),
            empty without ``dice``.
        example: one reconstructed slice.
    """

    contrast: float
    t_test: int
    width: float
    healthy: HealthyResult
    sets: tuple[SetResult, ...]
    example: ShiftExample

    def dice(self, dataset: str) -> float | None:
        """Mean test Dice on ``dataset``, or None when not measured."""
        result = next((result for result in self.sets if result.dataset == dataset), None)
        return None if result is None else result.thresholded[0].dice.mean


@dataclass(frozen=True)
class ShiftHistogram:
    """Fig. 3: mean brain-intensity densities of shifted inputs and their reconstructions.

    Attributes:
        contrast: contrast level.
        dataset: ``ixi`` (its test split, the brain) or a lesion set (its test split, the brain
            outside the lesions).
        densities: mean densities (500 bins over [0, 1]).
        kld, entropy_difference: per volume, mean and population std.
    """

    contrast: float
    dataset: str
    densities: IntensityDensities
    kld: MeanStd
    entropy_difference: MeanStd


@dataclass(frozen=True)
class DomainShiftRun:
    """The study of one run (one model, one fold).

    Attributes:
        name, group, method, modality, fold: as :class:`~brainuad.evaluate.results.RunResult`.
        conditioned: whether the model conditions on its input (widths < 1 only then).
        default_levels: the model's own test levels (the histograms').
        points: one per (contrast, t_test, width).
        histograms: one per (histogram contrast, data set).
    """

    name: str
    group: str
    method: str
    modality: str
    fold: int
    conditioned: bool
    default_levels: tuple[int, ...]
    points: tuple[ShiftPoint, ...]
    histograms: tuple[ShiftHistogram, ...]

    def point(self, contrast: float, t_test: int, width: float) -> ShiftPoint | None:
        return next((point for point in self.points
                     if (point.contrast, point.t_test, point.width) == (contrast, t_test, width)), None)

    def histogram(self, contrast: float, dataset: str) -> ShiftHistogram | None:
        return next((item for item in self.histograms if (item.contrast, item.dataset) == (contrast, dataset)), None)


class _KeepSlice(VolumeScorer):
    """Scores with ``inner`` and keeps the most-brain axial slice of the volume named ``keep``."""

    def __init__(self, inner: VolumeScorer, keep: str) -> None:
        self.inner = inner
        self.keep = keep
        self.example: ShiftExample | None = None

    @property
    def volumes_per_batch(self) -> int:
        return self.inner.volumes_per_batch

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def _score_many(self, volumes: Sequence[GridVolume]) -> list[ScoredVolume]:
        scored_volumes = self.inner.score_many(volumes)
        for volume, scored in zip(volumes, scored_volumes):
            if volume.name == self.keep and scored.reconstruction is not None:
                axial = int(np.argmax(volume.mask.sum(axis=(0, 1))))
                self.example = ShiftExample(volume.name, axial, volume.image[..., axial].copy(),
                                            scored.reconstruction[..., axial].copy())
        return scored_volumes


def _histograms(scorer: VolumeScorer, dataset: str, context: SplitContext, contrast: float) -> ShiftHistogram:
    """Mean densities of the shifted test split of ``dataset`` and their reconstructions."""
    sums = DensitySums()
    klds, differences = [], []
    with context.scored(scorer, context.subjects(dataset, "test"),
                        context.bar(dataset, f"histograms x^{contrast:g}")) as stream:
        for _, volume, scored in stream:
            reconstruction = scored.reconstruction
            if reconstruction is None:
                raise ValueError(f"the histograms need reconstructions; none for {volume.name}")
            region = volume.mask if volume.seg is None else volume.mask & ~volume.seg
            if not region.any():
                continue
            kld, difference = sums.add(volume.image, reconstruction, region)
            klds.append(kld)
            differences.append(difference)
    densities = sums.mean()
    if densities is None:
        raise ValueError(f"no {dataset} test volume has brain voxels outside its lesions")
    return ShiftHistogram(contrast, dataset, densities, mean_std(klds, ddof=0), mean_std(differences, ddof=0))


def evaluate_domain_shift(method: NoiseLevelReconstructor, data_root: str | Path, *, name: str, modality: str,
                          fold: int = 0, group: str | None = None, method_name: str | None = None,
                          sets: Sequence[str] | None = None, settings: DomainShiftSettings = DomainShiftSettings(),
                          postprocessing: PostProcessing = PostProcessing(), limit: int | None = None,
                          cache_dir: str | Path | None = None, normalise_on: NormaliseOn = "model_grid",
                          workers: int = 0, progress: bool = True) -> DomainShiftRun:
    """The domain-shift study of one diffusion model (see the module docstring).

    Args:
        method: a diffusion model (``reconstruct(volume, t_test=...)``, ``levels()``); a conditioned
            one (``conditioned`` true) also takes ``condition=``.
        data_root: the data directory (or its parent).
        name, group, method_name, modality, fold, limit, cache_dir, normalise_on, workers, progress: as
            :func:`~brainuad.evaluate.protocol.evaluate_method`.
        sets: lesion sets for Dice and the histograms (default the modality's).
        settings: the conditions.
        postprocessing: the full post-processing of the Dice.

    Raises:
        ValueError: a bad argument (a noise level outside the model's schedule, ...).
    """
    if not isinstance(method, NoiseLevelReconstructor):
        raise ValueError(f"the domain-shift study needs a diffusion model, got {type(method).__name__}")
    if not isinstance(settings, DomainShiftSettings):
        raise ValueError(f"settings must be DomainShiftSettings, got {type(settings).__name__}")
    check_optional_int("limit", limit)
    for level in settings.t_tests:
        method.levels(t_test=level)
    chosen_sets = check_sets(sets, modality, name) if sets is not None else sets_for_modality(modality)
    conditioned = isinstance(method, ConditionedReconstructor) and method.conditioned
    widths = settings.widths if conditioned else tuple(width for width in settings.widths if width == 1.0) or (1.0,)
    cache = GridCache(cache_dir, normalise_on=normalise_on, in_memory=False)
    root = resolve_data_root(data_root)
    pairs = (Binarisation(postprocessing_variants(postprocessing, False)[0], threshold_rules(["val-dice"])[0]),)
    first_healthy = None
    points = []
    for contrast in settings.contrasts:
        context = SplitContext(root, modality, fold, limit, cache, progress, name,
                               shift=functools.partial(shift_contrast, level=float(contrast)), workers=workers,
                               contrasts=read_contrasts(method))
        for t_test in settings.t_tests:
            for width in widths:
                suffix = f" (x^{contrast:g}, t={t_test}, width {width:.0%})"
                scorer = ResidualScorer(method, t_test=t_test, conditioning_width=width)
                if first_healthy is None:
                    first_healthy = context.subjects("ixi", "test")[0].name
                keeper = _KeepSlice(scorer, first_healthy)
                healthy = evaluate_healthy(keeper, None, replace(context, run=name + suffix))
                if keeper.example is None:
                    raise ValueError(f"no reconstruction of {first_healthy} was kept")
                results = tuple(evaluate_set(scorer, dataset, pairs, {}, context, figures=False, suffix=suffix)
                                for dataset in chosen_sets) if settings.dice else ()
                points.append(ShiftPoint(float(contrast), t_test, float(width), healthy, results, keeper.example))
    histograms = []
    default = ResidualScorer(method)
    for contrast in settings.histogram_contrasts:
        context = SplitContext(root, modality, fold, limit, cache, progress, name,
                               shift=functools.partial(shift_contrast, level=float(contrast)), workers=workers,
                               contrasts=read_contrasts(method))
        for dataset in ("ixi", *chosen_sets):
            histograms.append(_histograms(default, dataset, context, float(contrast)))
    return DomainShiftRun(name=name, group=group or name, method=method_name or type(method).__name__.lower(),
                          modality=modality, fold=fold, conditioned=conditioned,
                          default_levels=tuple(method.levels()), points=tuple(points), histograms=tuple(histograms))
