"""The measures of one lesion test volume, apart from the split's running totals.

What a test volume contributes -- its segmentation at every threshold chosen before the test split
(voxel and lesion counts), its lesion detection at the FROC multiples of the headline threshold and
per lesion size, its own AUPRC and AUROC, the l1 error of its reconstruction inside and outside the
lesions, the intensity histograms of input and reconstruction, and the example slice of its
headline segmentation -- depends on that volume and those thresholds only. Most of it is
connected-component labelling on the CPU, so :func:`measure_volume` runs in worker processes
while the model scores the next volumes (:class:`~brainuad.evaluate.worker_pool.OrderedPool`), and
the engine adds the measures to the split's totals in split order: the numbers do not depend on
where they were computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from brainuad.data.grid import GridVolume
from brainuad.evaluate.histograms import HistogramComparison, compare_intensity_histograms
from brainuad.evaluate.lesions import FROC_FACTORS, LESION_SIZE_BINS_ML, LesionDetection, LesionMap
from brainuad.evaluate.metrics import confusion_counts, ranking_scores
from brainuad.evaluate.reconstruction import lesion_l1
from brainuad.evaluate.results import ExampleSlice, LesionVolume, Segmentation
from brainuad.evaluate.rules import Binarisation
from brainuad.evaluate.scoring import ScoredVolume
from brainuad.evaluate.thresholds import Threshold

__all__ = ["HISTOGRAM_BINS", "VolumeMeasures", "MeasurePlan", "example_slice", "measure_volume"]

HISTOGRAM_BINS = 500
"""Bins of the brain-intensity histograms (kld, entropy difference, the report's densities)."""


@dataclass(frozen=True)
class MeasurePlan:
    """What every test volume of a split is measured against.

    Attributes:
        pairs: the binarisations (post-processing variant x threshold rule), the headline first.
        thresholds: the thresholds chosen before the test split, by binarisation (the headline's
            always among them; the oracle's, chosen on the test split itself, never).
    """

    pairs: tuple[Binarisation, ...]
    thresholds: Mapping[Binarisation, Threshold]

    @property
    def headline(self) -> Binarisation:
        return self.pairs[0]


@dataclass(frozen=True)
class VolumeMeasures:
    """One test volume's contribution to its split.

    Attributes:
        record: the volume's row (per-volume scores and its segmentation at each threshold).
        froc_counts: (len(FROC_FACTORS), 3) int64 lesions, detected lesions and false-positive
            components at each FROC multiple of the headline threshold.
        size_counts: (size bins, 2) int64 detected lesions and lesions per lesion-size bin at the
            headline threshold.
        densities: the brain-intensity histograms of input and reconstruction, or None without a
            reconstruction.
        example: the volume's example slice at the headline threshold, or None when its headline
            Dice is undefined.
    """

    record: LesionVolume
    froc_counts: np.ndarray
    size_counts: np.ndarray
    densities: HistogramComparison | None
    example: ExampleSlice | None


def example_slice(role: str, volume: GridVolume, target: np.ndarray, scored: ScoredVolume, prediction: np.ndarray,
                  dice: float) -> ExampleSlice:
    """The axial slice with the most lesion (the most brain when there is none) of a scored test
    volume, copied out of its (X, Y, Z) arrays; ``prediction`` is its binarised post-processed map."""
    weight = target if target.any() else volume.mask
    axial = int(np.argmax(weight.sum(axis=(0, 1))))
    reconstruction = None if scored.reconstruction is None else scored.reconstruction[..., axial].copy()
    return ExampleSlice(role, volume.name, dice, axial, volume.image[..., axial].copy(), reconstruction,
                        scored.anomaly_map[..., axial].copy(), prediction[..., axial].copy(),
                        target[..., axial].copy())


def _lesion_curves(plan: MeasurePlan, lesions: LesionMap, postprocessed: np.ndarray,
                   at_headline: LesionDetection) -> tuple[np.ndarray, np.ndarray]:
    """Lesion detection at every FROC multiple of the headline threshold (at factor 1 the
    headline's own, ``at_headline``) and per lesion size at the headline threshold."""
    postprocessing = plan.headline.variant.postprocessing
    value = plan.thresholds[plan.headline].value
    froc = np.zeros((len(FROC_FACTORS), 3), dtype=np.int64)
    for index, factor in enumerate(FROC_FACTORS):
        detection = at_headline if factor == 1.0 else lesions.detect(
            postprocessing.apply_to_binary(postprocessed > value * factor))
        counts = detection.counts
        froc[index] = (counts.lesions, counts.detected, counts.false_positives)
    return froc, np.asarray(at_headline.recall_by_size(LESION_SIZE_BINS_ML), dtype=np.int64)


def measure_volume(plan: MeasurePlan, volume: GridVolume, target: np.ndarray,
                        scored: ScoredVolume) -> VolumeMeasures:
    """The measures of one test volume (see the module docstring).

    Args:
        plan: the split's binarisations and pre-chosen thresholds.
        volume: the model-grid volume.
        target: its (X, Y, Z) boolean lesion segmentation.
        scored: its scored volume, with the ``postprocessed`` map of every pair's post-processing.
    """
    maps = scored.postprocessed
    full = maps[plan.headline.variant.postprocessing]
    lesions = LesionMap(target)
    segmentations = []
    detections: dict[Binarisation, LesionDetection] = {}
    example = None
    for pair, threshold in plan.thresholds.items():
        postprocessing = pair.variant.postprocessing
        prediction = postprocessing.apply_to_binary(maps[postprocessing] > threshold.value)
        detections[pair] = lesions.detect(prediction)
        counts = confusion_counts(prediction, target)
        segmentations.append(Segmentation(pair.variant.label, pair.rule.label, counts, detections[pair].counts))
        if pair == plan.headline and not np.isnan(counts.dice):
            example = example_slice("headline", volume, target, scored, prediction, counts.dice)
    froc, sizes = _lesion_curves(plan, lesions, maps[plan.headline.variant.postprocessing],
                                 detections[plan.headline])
    ranking = ranking_scores(full, target)
    l1 = densities = None
    if scored.reconstruction is not None:
        l1 = lesion_l1(volume.image, scored.reconstruction, target, volume.mask)
        densities = compare_intensity_histograms(volume.image, scored.reconstruction, volume.mask,
                                                 bins=HISTOGRAM_BINS)
    record = LesionVolume(volume.name, int(np.count_nonzero(target)), ranking.average_precision, ranking.roc_auc,
                          l1, None if densities is None else densities.kld,
                          None if densities is None else densities.entropy_difference, tuple(segmentations))
    return VolumeMeasures(record, froc, sizes, densities, example)
