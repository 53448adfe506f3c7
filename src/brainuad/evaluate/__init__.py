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
