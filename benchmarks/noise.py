"""Benchmark: batched torch simplex noise vs. opensimplex + numba, one field at a time.

method.md §3 "Noise": 6 octaves, persistence 0.8, feature size 64 px at octave 0. The
authors' approach calls opensimplex's ``noise2array`` (numba-compiled when numba is
installed) once per octave for every field; brainuad draws a whole batch of independent
fields at once in torch (:class:`brainuad.noise.SimplexNoise`).

Usage::

    python benchmarks/noise.py --device cpu --batch 32 --size 96 --repeats 10 [--threads 1] [--busy 2]

Prints, per generator, the median wall time per batch and per (size x size) field, the best
wall time per field and the median process CPU time per field. On a busy shared machine,
compare with ``--threads 1``: multi-threaded runs of both libraries slow down erratically when
other processes compete for the cores. ``--busy N`` times everything while N busy-looping
processes compete for the cores (brainuad draws CPU fields on one torch thread whatever
``--threads`` says; the worst batch shows what contention does to the others).
"""

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np
import torch
from opensimplex import OpenSimplex

from brainuad.noise import GaussianNoise, NoiseSampler, SimplexNoise

OCTAVES = 6
PERSISTENCE = 0.8
FEATURE_SIZE = 64.0


class Timing(NamedTuple):
    """Wall-clock and process CPU seconds of one timed call."""

    wall: float
    cpu: float


def time_rounds(
    runs: dict[str, Callable[[], object]], repeats: int, synchronise: Callable[[], None]
) -> dict[str, list[Timing]]:
    """Timings of each run over ``repeats`` rounds, after two warm-up rounds.

    The runs take turns within a round, so that a change in the load of a shared machine
    affects all of them alike. CPU time (all threads of this process) is less sensitive to
    other processes than wall time.
    """
    timings: dict[str, list[Timing]] = {name: [] for name in runs}
    for round_index in range(repeats + 2):
        for name, run in runs.items():
            synchronise()
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            synchronise()
            if round_index >= 2:
                timings[name].append(
                    Timing(time.perf_counter() - wall, time.process_time() - cpu)
                )
    return timings


def opensimplex_batch(batch: int, size: int, seed: int, reseed: bool) -> np.ndarray:
    """(batch, size, size) octave sums, one noise2array call per octave and field.

    ``reseed``: build a new permutation (``OpenSimplex(seed)``) for every field, as needed for
    independent fields; otherwise reuse one generator (noise2array cost alone).
    """
    pixels = np.arange(size, dtype=np.float64)
    fields = np.zeros((batch, size, size))
    shared = OpenSimplex(seed)
    for index in range(batch):
        generator = OpenSimplex(seed + index) if reseed else shared
        for k in range(OCTAVES):
            scale = FEATURE_SIZE / 2**k
            fields[index] += PERSISTENCE**k * generator.noise2array(pixels / scale, pixels / scale)
    return fields


def torch_batch(
    sampler: NoiseSampler, batch: int, size: int, device: torch.device, generator: torch.Generator
) -> torch.Tensor:
    """(batch, 1, size, size) fields drawn in one call."""
    return sampler.sample((batch, 1, size, size), device=device, generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=32, help="fields per batch")
    parser.add_argument("--size", type=int, default=96, help="field height = width in pixels")
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed rounds (median and best reported)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both torch and numba (default: each library's own default)",
    )
    parser.add_argument(
        "--busy", type=int, default=0, help="busy-looping processes competing for the cores while timing"
    )
    args = parser.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads!r}")
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    for name in ("batch", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)!r}")
    if args.busy < 0:
        parser.error(f"--busy must be >= 0, got {args.busy!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")

    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    batch, size = args.batch, args.size
    simplex = SimplexNoise(OCTAVES, PERSISTENCE, FEATURE_SIZE)
    gaussian = GaussianNoise()
    torch_name = f"torch SimplexNoise per_sample ({device.type})"
    reseed_name = "opensimplex + numba, new seed per field"
    runs: dict[str, Callable[[], object]] = {
        torch_name: lambda: torch_batch(simplex, batch, size, device, generator),
        reseed_name: lambda: opensimplex_batch(batch, size, 0, reseed=True),
        "opensimplex + numba, noise2array only": lambda: opensimplex_batch(
            batch, size, 0, reseed=False
        ),
        f"torch GaussianNoise ({device.type}, reference)": lambda: torch_batch(
            gaussian, batch, size, device, generator
        ),
    }
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with torch.no_grad():
            times = time_rounds(runs, args.repeats, sync)
    finally:
        for process in busy:
            process.kill()
            process.wait()

    print(
        f"{batch} fields of {size}x{size}, {OCTAVES} octaves, persistence {PERSISTENCE}, "
        f"feature size {FEATURE_SIZE:g} px; {args.repeats} timed rounds; {args.busy} busy processes"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"numba {numba.__version__}, {numba.get_num_threads()} threads"
    )
    width = max(len(name) for name in times)
    print(
        f"{'generator':<{width}}  {'ms/batch':>9}  {'worst ms/batch':>14}  {'ms/field':>9}  "
        f"{'best ms/field':>13}  {'CPU ms/field':>12}"
    )
    for name, timings in times.items():
        wall = statistics.median(t.wall for t in timings)
        best = min(t.wall for t in timings)
        worst = max(t.wall for t in timings)
        cpu = statistics.median(t.cpu for t in timings)
        print(
            f"{name:<{width}}  {wall * 1e3:>9.2f}  {worst * 1e3:>14.2f}  {wall * 1e3 / batch:>9.3f}  "
            f"{best * 1e3 / batch:>13.3f}  {cpu * 1e3 / batch:>12.3f}"
        )
    torch_wall = statistics.median(t.wall for t in times[torch_name])
    reseed_wall = statistics.median(t.wall for t in times[reseed_name])
    print(
        "ms/batch, ms/field: median wall time; CPU: median process CPU time (all threads)\n"
        f"median speed-up of torch over opensimplex + numba (new seed per field): "
        f"{reseed_wall / torch_wall:.1f}x"
    )

if __name__ == "__main__":
    main()
