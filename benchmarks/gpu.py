"""Throughput of training, reconstruction and the whole evaluation on one device, beside the
authors' way of doing the same work.

    python benchmarks/gpu.py                                   # CPU: tiny networks, 6 volumes
    python benchmarks/gpu.py --device cuda --size paper --volumes 1151 --batch 32 --compile

Prints one table:

- the device's measured matmul peak (fp32, and bf16 on a GPU), the reference of every fraction;
- training slices/s of the DDPM and cDDPM at ``--batch`` (channels-last, fused Adam; fp32, and
  bf16 autocast on a GPU), as a fraction of the peak (forward + backward taken as 3 forwards),
  and with ``--compile`` once more with each network compiled by torch.compile (and the seconds
  the compilation took);
- training data slices/s: drawn and augmented on the device in batch (``data.slices_on=device``)
  against torchio one slice at a time (the rate of one DataLoader worker, ``slices_on=loader``);
- the training loss of the cDDPM after ``--precision-steps`` steps in fp32, bf16 autocast and
  (on a GPU) fp16 autocast with a gradient scaler: the same initial weights, slices, augmentations
  and noise in each, lr 1e-4 (ten times the paper's, for a short run), the mean loss of the last
  quarter of the steps and its difference from fp32;
- reconstruction passes/s of the cDDPM's 3-level ensemble: brainuad's batched path (the slices
  and levels of several volumes in one forward batch, ``--batch-slices``, noise on the device)
  against one volume and one level per forward pass with simplex noise drawn on the CPU by
  opensimplex (the authors' loop);
- a BraTS21-size evaluation end to end (``--volumes`` synthetic 96 x 96 x 50 volumes with
  lesions: reading, ensemble reconstruction, post-processing, binarisation, connected
  components, Dice and AUPRC): brainuad's stream (:func:`brainuad.evaluate.stream.scored_volumes`:
  volumes read by ``--workers`` loader workers, the median and erosion on the device -- batched
  with torch on a GPU, only where the eroded brain mask keeps a voxel on a CPU -- and the
  components and scores in ``--workers`` CPU processes,
  :class:`~brainuad.evaluate.worker_pool.OrderedPool`) against the authors' loop (as above, then
  scipy's full-grid median filter and erosion, everything in one process); seconds, volumes/s,
  peak memory (each measured in a fresh process: peak resident memory on a CPU, peak allocated
  on a GPU), and the ratio of the two from the same run.

Both evaluation paths see the same volumes and the same network; their maps differ only by the
noise draws. ``--size paper`` builds the paper's networks (UNet base 128, ResNet-50 encoder);
``--size tiny`` the test configs' (for a CPU).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
from noise import opensimplex_batch  # benchmarks/noise.py: the authors' field generator
from scipy import ndimage
from train_step import forward_flops, synchronise, time_training_step  # benchmarks/train_step.py

from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.datasets import RandomSliceDataset
from brainuad.data.device_slices import DeviceSlices
from brainuad.data.grid import MODEL_GRID_SHAPE, GridVolume
from brainuad.data.layout import Subject
from brainuad.evaluate.metrics import score_volume
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.scoring import ResidualScorer
from brainuad.evaluate.stream import scored_volumes
from brainuad.evaluate.worker_pool import OrderedPool
from brainuad.image_range import to_image_range, to_model_range
from brainuad.methods.ddpm import DDPM
from brainuad.methods.registry import build_detector, load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "brainuad" / "configs"
THRESHOLD = 0.1  # fixed binarisation threshold of both evaluation paths


def build(method: str, size: str, device: torch.device, authors: bool = False) -> DDPM:
    """The paper-size (``size="paper"``) or tiny test-config network of ``method``, untrained, on
    ``device``: channels-last as brainuad runs it, or (``authors``) in the default contiguous
    layout, as the authors' code does. The same seed gives both the same weights."""
    config = parse_config({"method": method}) if size == "paper" else load_config(CONFIGS / "tiny" / f"{method}.yaml")
    torch.manual_seed(0)
    model = build_detector(config, load_pretrained=False).to(device)
    layout = torch.contiguous_format if authors else torch.channels_last
    return model.to(memory_format=layout).eval()  # type: ignore[no-any-return]


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of a square matmul (8192 on a GPU, 2048 on a CPU), best of 5."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(6):
        synchronise(device)
        start = time.perf_counter()
        a @ b
        synchronise(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def unet_flops(method: DDPM) -> float:
    """FLOPs of one denoiser pass over one slice (the encoder's context is computed once a slice)."""
    from torch.utils.flop_counter import FlopCounterMode

    x0 = torch.rand(1, 1, *MODEL_GRID_SHAPE[:2], device=method.device)
    t = torch.full((1,), 500, device=method.device, dtype=torch.long)
    context = method.context(x0)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        method.unet(x0, t, context)
    return float(counter.get_total_flops())


def synthetic_volume(index: int) -> GridVolume:
    """A reproducible model-grid volume: an ellipsoid brain of smooth texture with 1-3 bright lesions."""
    rng = np.random.default_rng(index)
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in MODEL_GRID_SHAPE), indexing="ij")
    radii = rng.uniform((38, 42, 20), (44, 47, 24))
    brain = ((x - 48) / radii[0]) ** 2 + ((y - 48) / radii[1]) ** 2 + ((z - 25) / radii[2]) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.standard_normal(MODEL_GRID_SHAPE).astype(np.float32), 2.0)
    image = np.where(brain, 0.45 + 0.1 * texture / texture.std(), 0.0).astype(np.float32)
    lesion = np.zeros(MODEL_GRID_SHAPE, dtype=bool)
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform((30, 30, 15), (66, 66, 35))
        lesion |= ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 < rng.uniform(3, 9) ** 2)
    lesion &= brain
    image[lesion] = np.clip(image[lesion] + 0.4, 0, 1)
    return GridVolume(np.clip(image, 0, 1), brain, lesion, f"synthetic-{index}", None)


def training_data_rates(device: torch.device, batch: int, repeats: int) -> tuple[float, float]:
    """Slices/s of training batches drawn and augmented on ``device`` in batch, and of torchio
    augmenting one slice at a time in this process (one loader worker's rate)."""
    volumes = [synthetic_volume(index) for index in range(16)]
    indices = torch.arange(batch, device=device) % len(volumes)
    slices = DeviceSlices(volumes, SliceAugmentation())
    slices.draw(indices)  # warm-up: moves the volumes to the device
    synchronise(device)
    start = time.perf_counter()
    for _ in range(repeats):
        slices.draw(indices)
    synchronise(device)
    on_device = batch * repeats / (time.perf_counter() - start)
    dataset = RandomSliceDataset(volumes, SliceAugmentation())
    count = min(batch * repeats, 400)
    start = time.perf_counter()
    for index in range(count):
        dataset[index % len(volumes)]
    return on_device, count / (time.perf_counter() - start)


def precision_losses(size: str, device: torch.device, steps: int, batch: int) -> dict[str, float]:
    """Mean cDDPM training loss over the last quarter of ``steps`` steps per precision (fp32, bf16
    autocast, and fp16 autocast with a gradient scaler on a GPU), everything else equal."""
    volumes = [synthetic_volume(index) for index in range(16)]
    slices = DeviceSlices(volumes, SliceAugmentation())
    indices = torch.arange(batch, device=device) % len(volumes)
    kinds = {"fp32": None, "bf16": torch.bfloat16, **({"fp16": torch.float16} if device.type == "cuda" else {})}
    losses = {}
    for kind, dtype in kinds.items():
        method = build("cddpm", size, device).train()
        optimizer = torch.optim.Adam(method.parameters(), lr=1e-4, fused=True)
        scaler = torch.amp.GradScaler(device.type, enabled=kind == "fp16")
        torch.manual_seed(1)  # the same slices and augmentations in every precision
        history = []
        for step in range(steps):
            images = slices.draw(indices)["image"].contiguous(memory_format=torch.channels_last)
            generator = torch.Generator(device).manual_seed(step)  # the same noise
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = method.training_loss(images, generator)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            history.append(float(loss.detach()))
        losses[kind] = float(np.mean(history[-max(1, steps // 4):]))
        del method, optimizer
    return losses


def _subject(index: int) -> Subject:
    return Subject(f"synthetic-{index}", Path(f"synthetic-{index}"), Path(f"synthetic-{index}-mask"), None, 0)


def _load(subject: Subject) -> GridVolume:
    return synthetic_volume(int(subject.name.rsplit("-", 1)[1]))


def _authors_reconstruction(method: DDPM, image: np.ndarray, seed: int) -> np.ndarray:
    """One volume, one level per forward pass, simplex fields drawn on the CPU (opensimplex)."""
    slices = torch.from_numpy(image).permute(2, 0, 1)[:, None].to(method.device)
    x0 = to_model_range(slices)
    context = method.context(x0)
    total = torch.zeros_like(slices)
    for offset, level in enumerate(method.levels()):
        fields = opensimplex_batch(len(slices), MODEL_GRID_SHAPE[0], seed + 1000 * offset, reseed=True)
        noise = torch.from_numpy(fields / np.abs(fields).max()).float()[:, None].to(method.device)
        t = torch.full((len(slices),), level, device=method.device, dtype=torch.long)
        total += to_image_range(method.unet(method.schedule.q_sample(x0, t, noise), t, context))
    return (total / len(method.levels()))[:, 0].permute(1, 2, 0).float().cpu().numpy()


def _authors_postprocessing(residual: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """scipy's full-grid 5^3 median, then the brain mask eroded slice-wise (3 iterations)."""
    eroded = ndimage.binary_erosion(brain, structure=np.ones((3, 3, 1), dtype=bool), iterations=3)
    return ndimage.median_filter(residual, size=5) * eroded


def binarised_scores(processed: np.ndarray, target: np.ndarray) -> float:
    """Dice of a post-processed map binarised at :data:`THRESHOLD`, small components removed (and
    its AUPRC, computed and dropped, as an evaluation would)."""
    prediction = PostProcessing().apply_to_binary(processed > THRESHOLD)
    return score_volume(prediction, target, processed).dice


def evaluation_run(size: str, device: str, volumes: int, batch_slices: int | None, workers: int,
                   authors: bool, threads: int) -> tuple[float, float, float]:
    """(seconds, peak memory in MiB, mean Dice) of one evaluation path in this (fresh) process."""
    torch.set_num_threads(threads)
    method = build("cddpm", size, torch.device(device), authors=authors)
    if batch_slices is not None:
        method.inference_batch_size = batch_slices
    post = PostProcessing()
    dice = []
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad():
        if authors:
            for index in range(volumes):
                volume = synthetic_volume(index)
                reconstruction = _authors_reconstruction(method, volume.image, index)
                processed = _authors_postprocessing(np.abs(volume.image - reconstruction), volume.mask)
                dice.append(binarised_scores(processed, volume.seg))
        else:
            stream = scored_volumes(ResidualScorer(method), [_subject(i) for i in range(volumes)], _load,
                                    workers=workers, postprocessings=(post,))
            with OrderedPool(binarised_scores, workers) as measuring:
                calls = ((None, (scored.postprocessed[post], volume.seg)) for _, volume, scored in stream)
                dice.extend(value for _, value in measuring.map(calls))
    synchronise(torch.device(device))
    seconds = time.perf_counter() - start
    if torch.device(device).type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:  # this process's high-water mark (ru_maxrss would include the parent's, kept across exec)
        status = Path("/proc/self/status").read_text()
        peak = float(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 2**10
    return seconds, peak, float(np.nanmean(dice))


def in_fresh_process(*arguments: object) -> tuple[float, float, float]:
    """:func:`evaluation_run` in a new process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(evaluation_run, *arguments).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=["tiny", "paper"], default=None,
                        help="networks (default: paper on a GPU, tiny on a CPU)")
    parser.add_argument("--batch", type=int, default=None, help="training slices per step (default 32 GPU, 8 CPU)")
    parser.add_argument("--volumes", type=int, default=None, help="evaluation volumes (default 1151 GPU, 6 CPU)")
    parser.add_argument("--batch-slices", type=int, default=None,
                        help="rows per forward pass of the batched path (default: the device's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers and measuring processes of the batched path (default 8 GPU, 0 CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps")
    parser.add_argument("--precision-steps", type=int, default=None,
                        help="training steps per precision of the loss comparison (default 400 GPU, 40 CPU; 0: skip)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time training with torch.compile (train.compile)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    size = args.size or ("paper" if gpu else "tiny")
    batch = args.batch or (32 if gpu else 8)
    volumes = args.volumes or (1151 if gpu else 6)
    workers = args.workers if args.workers is not None else (8 if gpu else 0)
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {threads} threads"
    print(f"device: {name}; torch {torch.__version__}; {size} networks; training batch {batch}; "
          f"{volumes} evaluation volumes")
    rows: list[tuple[str, str, str]] = []
    peaks = {"fp32": matmul_tflops(device, torch.float32)}
    if gpu:
        peaks["bf16"] = matmul_tflops(device, torch.bfloat16)
    rows += [(f"measured {kind} matmul peak", f"{value:.2f} TFLOP/s", "") for kind, value in peaks.items()]

    if not args.skip_training:
        for method_name in ("ddpm", "cddpm"):
            method = build(method_name, size, device)
            flops = forward_flops(method, MODEL_GRID_SHAPE[0])
            for kind in peaks:
                rate = batch / time_training_step(method, batch, MODEL_GRID_SHAPE[0], args.repeats, kind == "bf16")
                fraction = 3 * flops * rate / (peaks[kind] * 1e12)
                rows.append((f"training {method_name}, batch {batch}, {kind}", f"{rate:.1f} slices/s",
                             f"{100 * fraction:.1f} % of the {kind} peak"))
            if args.compile:  # train.compile=true: each network through torch.compile, as the trainer does
                for network in method.children():
                    network.compile()
                start = time.perf_counter()
                step = time_training_step(method, batch, MODEL_GRID_SHAPE[0], args.repeats, gpu)
                kind = "bf16" if gpu else "fp32"
                rows.append((f"training {method_name}, batch {batch}, {kind}, compiled", f"{batch / step:.1f} slices/s",
                             f"{100 * 3 * flops * batch / step / (peaks[kind] * 1e12):.1f} % of the {kind} peak; "
                             f"{time.perf_counter() - start - (args.repeats * step):.0f} s to compile"))
            del method
        on_device, per_worker = training_data_rates(device, batch, 20)
        rows.append((f"training data, batch {batch}, drawn and augmented on the device", f"{on_device:.0f} slices/s",
                     f"{on_device / per_worker:.1f}x one loader worker"))
        rows.append(("training data, torchio one slice at a time", f"{per_worker:.0f} slices/s", "per loader worker"))
        steps = args.precision_steps if args.precision_steps is not None else (400 if gpu else 40)
        if steps:
            losses = precision_losses(size, device, steps, batch)
            for kind, loss in losses.items():
                change = "" if kind == "fp32" else f"{100 * (loss / losses['fp32'] - 1):+.1f} % against fp32"
                rows.append((f"cDDPM loss after {steps} steps, {kind}", f"{loss:.4f}", change))

    method = build("cddpm", size, device)
    authors_method = build("cddpm", size, device, authors=True)
    if args.batch_slices is not None:
        method.inference_batch_size = args.batch_slices
    sample = [synthetic_volume(index) for index in range(min(volumes, 4))]
    passes = len(sample) * MODEL_GRID_SHAPE[2] * len(method.levels())
    with torch.no_grad():
        method.reconstruct_many(sample[:1])  # warm-up
        synchronise(device)
        start = time.perf_counter()
        method.reconstruct_many(sample)
        synchronise(device)
        batched = passes / (time.perf_counter() - start)
        _authors_reconstruction(authors_method, sample[0].image, 0)  # warm-up
        synchronise(device)
        start = time.perf_counter()
        for index, volume in enumerate(sample):
            _authors_reconstruction(authors_method, volume.image, index)
        synchronise(device)
        authors = passes / (time.perf_counter() - start)
    fraction = unet_flops(method) * batched / (peaks["fp32"] * 1e12)
    rows.append((f"reconstruction passes, batched ({method.forward_batch} rows)", f"{batched:.1f} passes/s",
                 f"{batched / authors:.2f}x the authors' loop; {100 * fraction:.1f} % of the fp32 peak"))
    rows.append(("reconstruction passes, one volume and level per pass", f"{authors:.1f} passes/s",
                 "contiguous layout, noise by opensimplex on the CPU"))
    del method, authors_method

    ours = in_fresh_process(size, args.device, volumes, args.batch_slices, workers, False, threads)
    theirs = in_fresh_process(size, args.device, volumes, None, 0, True, threads)
    memory = "peak allocated" if gpu else "peak resident"
    rows.append((f"evaluation of {volumes} volumes, brainuad stream",
                 f"{ours[0]:.1f} s ({volumes / ours[0]:.2f} vol/s)",
                 f"{ours[0] / theirs[0]:.2f}x the time; {memory} {ours[1]:.0f} MiB; Dice {ours[2]:.3f}"))
    rows.append((f"evaluation of {volumes} volumes, authors' loop", f"{theirs[0]:.1f} s "
                 f"({volumes / theirs[0]:.2f} vol/s)", f"{memory} {theirs[1]:.0f} MiB; Dice {theirs[2]:.3f}"))
    rows.append(("  per volume: authors' / brainuad", f"{theirs[0] / ours[0]:.2f}x", "target >= 1.3x on a CPU"))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, width)).rstrip())


if __name__ == "__main__":
    main()
