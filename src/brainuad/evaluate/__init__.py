"""The model-independent evaluation protocol (method.md §4, paper §4.3 and §4.5).

- :mod:`~brainuad.evaluate.postprocess`: median filter, brain-mask erosion, small-component removal.
- :mod:`~brainuad.evaluate.thresholds`: voxel pools and threshold strategies (val-dice, bisection,
  healthy-fpr, oracle).
- :mod:`~brainuad.evaluate.metrics`: confusion counts, Dice, exact and streamed AUPRC / AUROC.
- :mod:`~brainuad.evaluate.reconstruction`: SSIM, PSNR, l1 errors, l1-ratio, 3-D medical LPIPS.
- :mod:`~brainuad.evaluate.histograms`: intensity histograms, ``kld`` and ``entropy_difference``.
- :mod:`~brainuad.evaluate.statistics`: mean ± std and permutation tests.
- :mod:`~brainuad.evaluate.protocol`: the runner (``brainuad evaluate``): typed results, streaming
  evaluation of runs or built methods, outputs.
- :mod:`~brainuad.evaluate.tables`: the paper's Tables 2-4 (Markdown, CSV, LaTeX, HTML).
- :mod:`~brainuad.evaluate.report`: the self-contained HTML report.
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
from brainuad.evaluate.protocol import (
    EvaluationSummary,
    GroupResult,
    HealthyResult,
    RunResult,
    SetResult,
    evaluate_method,
    evaluate_runs,
    summarise,
    write_evaluation,
)
from brainuad.evaluate.reconstruction import (
    LesionL1,
    LpipsUnavailableError,
    MedicalLpips,
    l1_error,
    lesion_l1,
    peak_signal_noise_ratio,
    structural_similarity,
)
from brainuad.evaluate.report import render_report
from brainuad.evaluate.statistics import (
    MeanStd,
    PermutationTestResult,
    mean_std,
    paired_permutation_test,
    unpaired_permutation_test,
)
from brainuad.evaluate.tables import Table, build_tables
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
    "EvaluationSummary",
    "GroupResult",
    "HealthyResult",
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
    "RunResult",
    "ScoreHistogram",
    "SetResult",
    "Table",
    "Threshold",
    "ThresholdStrategy",
    "ValDice",
    "ValDiceBisection",
    "VolumeScores",
    "VoxelPool",
    "build_tables",
    "compare_intensity_histograms",
    "confusion_counts",
    "dice_score",
    "evaluate_method",
    "evaluate_runs",
    "intensity_density",
    "l1_error",
    "lesion_l1",
    "mean_std",
    "paired_permutation_test",
    "peak_signal_noise_ratio",
    "ranking_scores",
    "render_report",
    "score_volume",
    "structural_similarity",
    "summarise",
    "unpaired_permutation_test",
    "write_evaluation",
]
