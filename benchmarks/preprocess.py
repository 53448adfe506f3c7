"""Benchmark of the preprocessing pipeline: seconds per subject for each step, on this machine.

Raw synthetic subjects at their download's resolution (``brainuad synth --raw``: skull, random pose,
oblique anisotropic grids, bias field) go through the default pipeline of their data set: 1 mm
resampling, deepbet (or none for BraTS), registration to MNI152, rigid alignment of IXI's T2, brain
crop, N4 (4 levels x 200 iterations, tolerance 5e-4), 192 x 192 x 160. One process, the threads
SimpleITK and torch choose; the first subject also pays for loading deepbet and the atlas.

Prints one row per subject and the mean per step (over the subjects that ran it), and, with
``--scan``, the same for a scan of your own (a raw head scan, run with the default pipeline).

Usage: ``python benchmarks/preprocess.py [--datasets mslub ixi] [--subjects 2] [--scan PATH]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from brainuad.data.synth.raw import DOWNLOAD_FOLDERS, raw_subject, write_raw_subject
from brainuad.preprocess.pipeline import Pipeline, ScanInputs
from brainuad.preprocess.prepare import default_pipeline
from brainuad.preprocess.recipes import recipe

STEPS = ("resample", "skull_strip", "register", "align", "crop", "bias", "pad")


def run(label: str, inputs: ScanInputs, pipeline: Pipeline) -> dict[str, float]:
    """Prepare one subject; step -> seconds (and ``total``)."""
    started = time.perf_counter()
    prepared = pipeline.run(inputs)
    seconds = dict(prepared.record.seconds)
    seconds["total"] = time.perf_counter() - started
    cells = " ".join(f"{seconds.get(step, float('nan')):>11.1f}" for step in (*STEPS, "total"))
    print(f"{label:<28} {cells}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mslub", "ixi"], choices=list(DOWNLOAD_FOLDERS))
    parser.add_argument("--subjects", type=int, default=2, help="raw synthetic subjects per data set")
    parser.add_argument("--scan", type=Path, default=None, help="also time a raw scan of your own (skull on)")
    arguments = parser.parse_args()

    print(f"{os.cpu_count()} CPU cores; seconds per step")
    print(f"{'subject':<28} " + " ".join(f"{step:>11}" for step in (*STEPS, "total")))
    timings: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="brainuad-bench-") as folder:
        for dataset_id in arguments.datasets:
            for index in range(arguments.subjects):
                raw = raw_subject(dataset_id, index, seed=0)
                write_raw_subject(folder, raw)
                found = recipe(dataset_id).find(Path(folder) / DOWNLOAD_FOLDERS[dataset_id])
                subject = next(s for s in found.subjects if s.name == raw.name)
                shape = "x".join(str(n) for n in raw.scans[subject.inputs.modality].image.shape)
                timings.append(run(f"{dataset_id} {index} ({shape})", subject.inputs, default_pipeline(dataset_id)))
    if arguments.scan is not None:
        timings.append(run(arguments.scan.name[:28], ScanInputs(arguments.scan.name, "t1", arguments.scan), Pipeline()))
    means = {step: [t[step] for t in timings if step in t] for step in (*STEPS, "total")}
    print(f"{'mean':<28} " + " ".join(f"{np.mean(means[step]) if means[step] else float('nan'):>11.1f}"
                                       for step in (*STEPS, "total")))


if __name__ == "__main__":
    main()
