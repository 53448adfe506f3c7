"""Paper-size DDPM and cDDPM: parameters, forward FLOPs per slice, training-step and reconstruction speed.

    python benchmarks/train_step.py                       # CPU, batch 8
    python benchmarks/train_step.py --device cuda --batch 32

Prints one table row per model. On a GPU the step runs under bf16 autocast with channels-last
inputs (the training defaults there) and the achieved fraction of the bf16 peak is printed
(``--peak-tflops``, default 989 dense bf16 TFLOP/s of an H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from brainuad.methods.registry import build_detector, parse_config


def forward_flops(method, size: int) -> float:
    """FLOPs of one training forward pass (UNet, plus the encoder for cDDPM) for one slice."""
    images = torch.rand(1, 1, size, size, device=method.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        method.training_loss(images)
    return float(counter.get_total_flops())


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_training_step(method, batch: int, size: int, repeats: int, bf16: bool) -> float:
    """Median seconds of a training step (after one warm-up step): channels-last inputs and
    network, fused Adam, bf16 autocast when ``bf16``."""
    method.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-5, fused=True)
    images = torch.rand(batch, 1, size, size, device=method.device).contiguous(memory_format=torch.channels_last)
    timings = []
    for step in range(repeats + 1):
        synchronise(method.device)
        start = time.perf_counter()
        with torch.autocast(method.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = method.training_loss(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronise(method.device)
        if step:  # the first step warms up
            timings.append(time.perf_counter() - start)
    method.eval()
    return sorted(timings)[len(timings) // 2]


@torch.no_grad()
def time_reconstruction(method, batch: int, size: int, repeats: int, gpu: bool) -> float:
    """Seconds per one-step reconstruction pass of ``batch`` slices at one noise level."""
    images = torch.rand(batch, 1, size, size, device=method.device)
    timings = []
    for step in range(repeats + 1):
        synchronise(method.device)
        start = time.perf_counter()
        with torch.autocast(method.device.type, dtype=torch.bfloat16, enabled=gpu):
            method.reconstruct_at(images, (500,))
        synchronise(method.device)
        if step:
            timings.append(time.perf_counter() - start)
    return sorted(timings)[len(timings) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--methods", nargs="+", default=["ddpm", "cddpm"])
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    print(f"device {device}, batch {args.batch}, {args.size}x{args.size} slices, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    header = (f"{'method':8} {'params (M)':>11} {'GFLOP/slice fwd':>16} {'train step (s)':>15} {'slices/s':>9} "
              f"{'recon passes/s':>15}" + (f" {'bf16 peak %':>11}" if gpu else ""))
    print(header)
    print("-" * len(header))
    for name in args.methods:
        method = build_detector(parse_config({"method": name}), load_pretrained=False).to(device)
        if gpu:
            method.to(memory_format=torch.channels_last)
        parameters = sum(p.numel() for p in method.parameters()) / 1e6
        flops = forward_flops(method, args.size)
        step = time_training_step(method, args.batch, args.size, args.repeats, gpu)
        recon = time_reconstruction(method, args.batch, args.size, args.repeats, gpu)
        slices_per_second = args.batch / step
        row = (f"{name:8} {parameters:11.2f} {flops / 1e9:16.2f} {step:15.3f} {slices_per_second:9.1f} "
               f"{args.batch / recon:15.1f}")
        if gpu:  # forward + backward is about 3x the forward FLOPs
            row += f" {100 * 3 * flops * slices_per_second / (args.peak_tflops * 1e12):11.2f}"
        print(row)


if __name__ == "__main__":
    main()
