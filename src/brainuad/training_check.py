"""The end-of-training check of a diffusion model: PSNR at t = 500 and a figure of examples.

On healthy validation slices, the one-step reconstruction from ``x_t`` should be much closer to
the clean slice than ``x_t`` itself: a trained model gains several dB of PSNR over its noised input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from brainuad.atomic import atomic_path
from brainuad.data.grid import GridVolume
from brainuad.evaluate.reconstruction import peak_signal_noise_ratio
from brainuad.image_range import to_image_range, to_model_range
from brainuad.methods.ddpm import DDPM


@dataclass(frozen=True)
class DiffusionCheck:
    """PSNR in dB (data range 1) of the noised input and of the reconstruction against the clean slices."""

    level: int
    slices: int
    psnr_noised_db: float
    psnr_reconstruction_db: float


def _brain_slices(method: DDPM, volumes: Sequence[GridVolume], per_volume: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_volume`` slices of each volume, evenly over its brain-containing extent: (N, 1, H, W),
    and what the method's encoder sees for each (N, C, H, W): :meth:`DDPM.condition_slices`."""
    slices, conditions = [], []
    for volume in volumes:
        brain = np.flatnonzero(volume.mask.sum(axis=(0, 1)) > 0.2 * volume.mask.sum(axis=(0, 1)).max())
        picked = brain[np.linspace(0, len(brain) - 1, per_volume).round().astype(int)]
        slices.append(torch.from_numpy(volume.image[:, :, picked].transpose(2, 0, 1).copy())[:, None])
        conditions.append(method.condition_slices(volume)[torch.from_numpy(picked)])
    return torch.cat(slices), torch.cat(conditions)


@torch.no_grad()
def diffusion_check(method: DDPM, volumes: Sequence[GridVolume], figure: Path | None = None, *, level: int = 500,
                    per_volume: int = 4, seed: int = 0) -> DiffusionCheck:
    """Noise healthy slices to ``level``, reconstruct in one step, and compare both with the clean slices.

    Args:
        method: a trained diffusion method (eval mode is set here).
        volumes: healthy model-grid volumes (the validation split).
        figure: where to save a PNG of examples (clean, noised, reconstruction, residual), or None.
        level: the noise level t.
        per_volume: slices taken from each volume (evenly over its brain-containing extent).
    """
    method.eval()
    images, conditions = (slices.to(method.device) for slices in _brain_slices(method, volumes, per_volume))
    generator = torch.Generator(device=method.device).manual_seed(seed)
    x0 = to_model_range(images)
    t = torch.full((len(images),), level, device=images.device, dtype=torch.long)
    n, c, h, w = x0.shape
    noise = method.noise.sample((n, c, h, w), device=x0.device, generator=generator)
    noised = to_image_range(method.schedule.q_sample(x0, t, noise))
    reconstruction = method.reconstruct_at(images, (level,), generator, conditions)
    check = DiffusionCheck(level, len(images), peak_signal_noise_ratio(images.cpu().numpy(), noised.cpu().numpy()),
                           peak_signal_noise_ratio(images.cpu().numpy(), reconstruction.cpu().numpy()))
    if figure is not None:
        _save_examples(figure, images, noised, reconstruction, check)
    return check


def _save_examples(path: Path, images, noised, reconstruction, check: DiffusionCheck, rows: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(0, len(images) - 1, min(rows, len(images))).round().astype(int)
    fig, axes = plt.subplots(len(picks), 4, figsize=(8, 2.1 * len(picks)), squeeze=False)
    titles = ("clean", f"noised t={check.level}", "reconstruction", "|clean - reconstruction|")
    for row, index in enumerate(picks):
        panels = (images[index, 0], noised[index, 0], reconstruction[index, 0],
                  (images[index, 0] - reconstruction[index, 0]).abs())
        for column, panel in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel.cpu().numpy().T, cmap="gray" if column < 3 else "magma", origin="lower",
                        vmin=0, vmax=1 if column < 3 else 0.5)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[column], fontsize=9)
    fig.suptitle(f"PSNR noised {check.psnr_noised_db:.1f} dB -> reconstruction {check.psnr_reconstruction_db:.1f} dB",
                 fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as temporary:
            fig.savefig(temporary, dpi=90, format="png")
    finally:
        plt.close(fig)
