"""Benchmark of the evaluation protocol on synthetic 96 x 96 x 50 residual maps.

Prints one table:

- per-volume post-processing + all segmentation metrics (target <= 0.4 s), next to scipy's
  full-grid 5^3 median alone;
- the batched torch post-processing on ``--device``;
- the exact val-dice threshold search over a ``--split-size``-volume split (target <= 5 s) and
  the authors' bisection;
- peak memory when scoring N test volumes with the streaming accumulators, for each N of
  ``--volumes`` (target < 1.5 GB and flat in N);
- the error of the histogram (pooled) AUPRC / AUROC against the exact values.

Synthetic volumes: an ellipsoid brain mask, gamma-distributed residuals inside it modulated by
a smooth random texture (clusters of high healthy residuals, the false positives), weaker ones
outside (as a reconstruction of the background would leave), 1-3 spherical lesions whose
residuals are raised by a gamma-distributed amount.

Usage: ``python benchmarks/evaluate.py [--volumes 100 1000] [--split-size 100] [--device cpu]``
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from brainuad.evaluate.metrics import ScoreHistogram, ranking_scores, score_volume
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.thresholds import ValDice, ValDiceBisection, VoxelPool

SHAPE = (96, 96, 50)
THRESHOLD = 0.05  # fixed binarisation threshold for the timing and streaming runs


def synthetic_volume(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(residual float32, brain bool, lesion bool), each (96, 96, 50)."""
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    radii = rng.uniform((38, 42, 26), (44, 47, 32))
    brain = ((x - 48) / radii[0]) ** 2 + ((y - 48) / radii[1]) ** 2 + ((z - 25) / radii[2]) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.standard_normal(SHAPE, dtype=np.float32), 2.0)
    texture *= 1.0 / texture.std()  # smooth structure: clusters of high healthy residuals
    healthy = rng.gamma(2.0, 0.015, SHAPE).astype(np.float32) * np.exp(0.5 * texture)
    residual = np.where(brain, healthy, rng.gamma(1.0, 0.005, SHAPE).astype(np.float32))
    lesion = np.zeros(SHAPE, dtype=bool)
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform((30, 30, 15), (66, 66, 35))
        radius = rng.uniform(3, 10)
        lesion |= ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 < radius**2) & brain
    residual[lesion] += rng.gamma(2.0, 0.02, int(lesion.sum())).astype(np.float32)
    return residual, brain, lesion


def seconds(function: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def score_one(post: PostProcessing, residual: np.ndarray, brain: np.ndarray, lesion: np.ndarray,
              histogram: ScoreHistogram) -> float:
    """Post-process, binarise, remove components and compute every segmentation metric; the Dice."""
    processed = post.apply_to_residual(residual, brain)
    prediction = post.apply_to_binary(processed > THRESHOLD)
    histogram.add(processed, lesion, mask=brain)
    return score_volume(prediction, lesion, processed).dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, nargs="+", default=[100, 1000],
                        help="numbers of test volumes to stream for the memory figure")
    parser.add_argument("--split-size", type=int, default=100, help="volumes in the threshold-search split")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device of the batched torch post-processing")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows: list[tuple[str, str, str]] = []
    post = PostProcessing()

    # 1. per-volume post-processing + metrics
    cases = [synthetic_volume(rng) for _ in range(8)]
    residual, brain, lesion = cases[0]
    rows.append(("scipy median_filter 5^3, full grid (reference)",
                 f"{seconds(lambda: ndimage.median_filter(residual, 5), 3):.3f} s", ""))
    for order in ("paper", "authors_code"):
        variant = PostProcessing(order=order)
        rows.append((f"post-processing ({order} order)",
                     f"{seconds(lambda: variant.apply_to_residual(residual, brain)):.3f} s", ""))
    histogram = ScoreHistogram()
    per_volume = np.median([seconds(lambda c=c: score_one(post, *c, histogram), 1) for c in cases])
    rows.append(("post-processing + all segmentation metrics / volume", f"{per_volume:.3f} s", "<= 0.4 s"))

    # 2. batched torch post-processing
    device = torch.device(args.device)
    batch_residual = torch.from_numpy(np.stack([c[0] for c in cases])).to(device)
    batch_brain = torch.from_numpy(np.stack([c[1] for c in cases])).to(device)

    def torch_batch() -> None:
        post.apply_to_residual_batch(batch_residual, batch_brain)
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch_batch()
    rows.append((f"torch post-processing on {device} / volume (batch of {len(cases)})",
                 f"{seconds(torch_batch, 2) / len(cases):.3f} s", ""))

    # 3. exact threshold search over a split
    pool = VoxelPool.for_volumes(args.split_size, SHAPE)
    start = time.perf_counter()
    for k in range(args.split_size):
        residual, brain, lesion = cases[k] if k < len(cases) else synthetic_volume(rng)
        pool.add(post.apply_to_residual(residual, brain), lesion)
    fill = time.perf_counter() - start
    start = time.perf_counter()
    exact = ValDice().select(pool)
    search = time.perf_counter() - start
    start = time.perf_counter()
    legacy = ValDiceBisection().select(pool)
    bisection = time.perf_counter() - start
    voxels = args.split_size * int(np.prod(SHAPE))
    rows.append((f"generate, post-process, pool {args.split_size} volumes ({voxels / 1e6:.1f} M voxels)",
                 f"{fill:.2f} s", ""))
    rows.append(("exact val-dice search (sort + scan)", f"{search:.2f} s", "<= 5 s"))
    rows.append(("  threshold / pooled Dice", f"{exact.value:.5f} / {exact.dice:.4f}", ""))
    rows.append(("authors' bisection (10 steps)", f"{bisection:.2f} s", ""))
    rows.append(("  threshold / pooled Dice", f"{legacy.value:.5f} / {legacy.dice:.4f}", ""))
    del pool

    # 4. streaming memory, on pre-post-processed volumes cycled (the post-processing cost is above)
    processed = [(post.apply_to_residual(r, b), b, les) for r, b, les in cases]
    for n_volumes in args.volumes:
        tracemalloc.start()
        streamed = ScoreHistogram()
        results = []
        for k in range(n_volumes):
            scores, brain, lesion = processed[k % len(processed)]
            prediction = post.apply_to_binary(scores > THRESHOLD)
            streamed.add(scores, lesion, mask=brain)
            results.append(score_volume(prediction, lesion, scores))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append((f"peak traced memory, streaming {n_volumes} volumes", f"{peak / 2**20:.1f} MiB", "< 1.5 GB, flat"))
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    rows.append(("process max RSS, whole run (torch, the 100-volume pool and sort)", f"{max_rss:.0f} MiB", ""))

    # 5. histogram AUPRC / AUROC error against the exact values
    extra = [synthetic_volume(rng) for _ in range(2 * len(cases))]
    split = processed + [(post.apply_to_residual(r, b), b, les) for r, b, les in extra]
    truth = ranking_scores(np.concatenate([s[b] for s, b, _ in split]), np.concatenate([les[b] for _, b, les in split]))
    rows.append((f"pooled brain AUPRC / AUROC, exact ({len(split)} volumes)",
                 f"{truth.average_precision:.6f} / {truth.roc_auc:.6f}", ""))
    for bins in (2**16, ScoreHistogram().bins):
        streamed = ScoreHistogram(bins=bins)
        for scores, brain, lesion in split:
            streamed.add(scores, lesion, mask=brain)
        approx = streamed.ranking_scores()
        rows.append((f"  |error| of the histogram AUPRC, AUROC ({bins} bins)",
                     f"{abs(truth.average_precision - approx.average_precision):.1e}, "
                     f"{abs(truth.roc_auc - approx.roc_auc):.1e}", "< 1e-4"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>22}  {target}")


if __name__ == "__main__":
    main()
