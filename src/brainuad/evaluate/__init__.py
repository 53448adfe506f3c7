"""The model-independent evaluation protocol (method.md §4, paper §4.3 and §4.5).

- :mod:`~brainuad.evaluate.postprocess`: median filter, brain-mask erosion, small-component removal.
- :mod:`~brainuad.evaluate.thresholds`: voxel pools and threshold strategies (val-dice, bisection,
  healthy-fpr, oracle).
- :mod:`~brainuad.evaluate.metrics`: confusion counts, Dice, exact and streamed AUPRC / AUROC.
- :mod:`~brainuad.evaluate.reconstruction`: SSIM, PSNR, l1 errors, l1-ratio, 3-D medical LPIPS.
- :mod:`~brainuad.evaluate.histograms`: intensity histograms, ``kld`` and ``entropy_difference``.
- :mod:`~brainuad.evaluate.statistics`: mean ± std and permutation tests.
"""

from brainuad.evaluate.histograms import HistogramComparison, compare_intensity_histograms, intensity_density
from brainuad.evaluate.metrics import (
    ConfusionCounts,
    RankingScores,
    ScoreHistogram,
    VolumeScores,
    confusion_counts,
    dice_score,
    ranking_scores,
    score_volume,
)
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.reconstruction import (
    LesionL1,
    LpipsUnavailableError,
    MedicalLpips,
    l1_error,
    lesion_l1,
    peak_signal_noise_ratio,
    structural_similarity,
)
from brainuad.evaluate.statistics import (
    MeanStd,
    PermutationTestResult,
    mean_std,
    paired_permutation_test,
    unpaired_permutation_test,
)
from brainuad.evaluate.thresholds import (
    HealthyFPR,
    Oracle,
    Threshold,
    ThresholdStrategy,
    ValDice,
    ValDiceBisection,
    VoxelPool,
)

__all__ = [
    "ConfusionCounts",
    "HealthyFPR",
    "HistogramComparison",
    "LesionL1",
    "LpipsUnavailableError",
    "MeanStd",
    "MedicalLpips",
    "Oracle",
    "PermutationTestResult",
    "PostProcessing",
    "RankingScores",
    "ScoreHistogram",
    "Threshold",
    "ThresholdStrategy",
    "ValDice",
    "ValDiceBisection",
    "VolumeScores",
    "VoxelPool",
    "compare_intensity_histograms",
    "confusion_counts",
    "dice_score",
    "intensity_density",
    "l1_error",
    "lesion_l1",
    "mean_std",
    "paired_permutation_test",
    "peak_signal_noise_ratio",
    "ranking_scores",
    "score_volume",
    "structural_similarity",
    "unpaired_permutation_test",
]
