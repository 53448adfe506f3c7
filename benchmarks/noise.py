"""Benchmark: batched torch simplex noise vs. opensimplex + numba, one field at a time.

method.md §3 "Noise": 6 octaves, persistence 0.8, feature size 64 px at octave 0. The
authors' approach calls opensimplex's ``noise2array`` (numba-compiled when numba is
installed) once per octave for every field; brainuad draws a whole batch of independent
fields at once in torch (:class:`brainuad.noise.SimplexNoise`).

Usage::

    python benchmarks/noise.py --device cpu --batch 32 --size 96 --repeats 10

Prints the median time per batch and per (size x size) field for each generator, and the
best time per field.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
import torch
from opensimplex import OpenSimplex

from brainuad.noise import GaussianNoise, NoiseSampler, SimplexNoise

OCTAVES = 6
PERSISTENCE = 0.8
FEATURE_SIZE = 64.0


def time_rounds(
    runs: dict[str, Callable[[], object]], repeats: int, synchronise: Callable[[], None]
) -> dict[str, list[float]]:
    """Wall times (s) of each run over ``repeats`` rounds, after two warm-up rounds.

    The runs take turns within a round, so that a change in the load of a shared machine
    affects all of them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(repeats + 2):
        for name, run in runs.items():
            synchronise()
            start = time.perf_counter()
            run()
            synchronise()
            if round_index >= 2:
                times[name].append(time.perf_counter() - start)
    return times


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
    args = parser.parse_args()
    for name in ("batch", "size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)!r}")
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
    with torch.no_grad():
        times = time_rounds(runs, args.repeats, sync)

    print(
        f"{batch} fields of {size}x{size}, {OCTAVES} octaves, persistence {PERSISTENCE}, "
        f"feature size {FEATURE_SIZE:g} px; {args.repeats} timed rounds"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"numba {numba.__version__}, {numba.get_num_threads()} threads"
    )
    width = max(len(name) for name in times)
    header = f"{'generator':<{width}}  {'median ms/batch':>15}  {'median ms/field':>15}"
    print(f"{header}  {'best ms/field':>13}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(
            f"{name:<{width}}  {median * 1e3:>15.2f}  {median * 1e3 / batch:>15.3f}  "
            f"{min(seconds) * 1e3 / batch:>13.3f}"
        )
    speedup = statistics.median(times[reseed_name]) / statistics.median(times[torch_name])
    print(f"median speed-up of torch over opensimplex + numba (new seed per field): {speedup:.1f}x")


if __name__ == "__main__":
    main()
