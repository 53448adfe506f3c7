"""The two intensity-normalisation orders and the two Thresh equalisations on the synthetic cohort.

``data.normalise_on``: ``model_grid`` (this project's default: downsample to 2 mm, then clip and
rescale with the 2 mm brain's 1st/99th percentiles) or ``input_grid`` (the authors' code: clip and
rescale at 1 mm, then downsample; the cubic B-spline overshoots [0, 1] at edges). ``thresh.
equalisation``: ``per_scan`` (Meissen et al., each scan on its own brain histogram; the paper's
row) or ``healthy_fit`` (the pooled healthy training brains).

Prints two tables:

1. per order, over the volumes of the healthy IXI test split and the lesion test splits: the
   fraction of brain voxels outside [0, 1], the min and max intensity, the fraction of voxels
   outside the 2 mm brain mask above 0.01, and the mean absolute difference between the two
   orders inside the brain;
2. Thresh (T2: BraTS21, MSLUB) for every (order, equalisation): test Dice at the validation-Dice
   threshold (full post-processing), per-volume AUPRC and pooled AUPRC.

Usage: ``python benchmarks/normalisation.py [--data DIR] [--size small] [--seed 0]``
(without ``--data`` the cohort is synthesised into a temporary folder first, about a minute).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from brainuad.config import packaged_config
from brainuad.data.grid import NORMALISE_ON, to_model_grid
from brainuad.data.layout import split_subjects
from brainuad.data.synth.cohort import synthesize_cohort
from brainuad.data.volume import Volume
from brainuad.evaluate.runs import evaluate_runs
from brainuad.methods.registry import load_config
from brainuad.train import train_run

EQUALISATIONS = ("per_scan", "healthy_fit")
SETS = ("brats21", "mslub")


def intensity_table(data: Path) -> None:
    """Table 1: how the two orders differ on the model grid."""
    subjects = [*split_subjects(data, "ixi", "test", None, "t2")]
    for dataset in SETS:
        subjects += split_subjects(data, dataset, "test", None, "t2")
    rows = {order: [] for order in NORMALISE_ON}
    differences = []
    for subject in subjects:
        volume = Volume.load(subject.image, subject.mask, name=subject.name)
        grids = {order: to_model_grid(volume, normalise_on=order) for order in NORMALISE_ON}
        for order, grid in grids.items():
            brain = grid.image[grid.mask]
            outside_mask = grid.image[~grid.mask]
            rows[order].append((np.mean((brain < 0) | (brain > 1)), brain.min(), brain.max(),
                                np.mean(np.abs(outside_mask) > 0.01)))
        mask = grids["model_grid"].mask
        differences.append(np.abs(grids["model_grid"].image[mask] - grids["input_grid"].image[mask]).mean())
    print(f"\n{len(subjects)} volumes (IXI test, {', '.join(SETS)} test), T2\n")
    print("| order | brain voxels outside [0, 1] (%) | min | max | voxels outside the mask above 0.01 (%) |")
    print("|---|---|---|---|---|")
    for order, values in rows.items():
        array = np.array(values)
        print(f"| {order} | {100 * array[:, 0].mean():.3f} | {array[:, 1].min():.4f} | {array[:, 2].max():.4f} | "
              f"{100 * array[:, 3].mean():.3f} |")
    print(f"\nmean |model_grid - input_grid| inside the brain: {np.mean(differences):.5f} "
          f"(max over volumes {np.max(differences):.5f}; intensities in [0, 1])")


def thresh_table(data: Path, work: Path) -> None:
    """Table 2: Thresh under every (order, equalisation)."""
    runs = []
    for order in NORMALISE_ON:
        for equalisation in EQUALISATIONS:
            config = load_config(packaged_config("tiny/thresh"),
                                 [f"data.root={data}", "data.modality=t2", f"data.normalise_on={order}",
                                  f"thresh.equalisation={equalisation}"])
            run_dir = work / f"thresh-{order}-{equalisation}"
            train_run(config, run_dir, progress=False)
            runs.append((order, equalisation, run_dir))
    print("\n| order | equalisation | set | Dice (%) | AUPRC per volume (%) | AUPRC pooled (%) |")
    print("|---|---|---|---|---|---|")
    for order, equalisation, run_dir in runs:
        summary = evaluate_runs([run_dir], data, work / f"evaluation-{run_dir.name}", sets=list(SETS),
                                ablation=False, progress=False)
        for result in summary.runs[0].sets:
            scores = result.scores(summary.headline)
            print(f"| {order} | {equalisation} | {result.dataset} | {100 * scores.dice.mean:.2f} | "
                  f"{100 * result.average_precision.mean:.2f} | {100 * result.pooled_average_precision:.2f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="a synthetic (or real, prepared) data directory")
    parser.add_argument("--size", default="small", choices=("tiny", "small", "medium"))
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="brainuad-normalisation-") as folder:
        work = Path(folder)
        data = arguments.data
        if data is None:
            data = work / "data"
            synthesize_cohort(data, size=arguments.size, seed=arguments.seed, workers=2, progress=False)
        intensity_table(data)
        thresh_table(data, work)


if __name__ == "__main__":
    main()
