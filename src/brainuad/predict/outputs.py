"""The files written for one prediction (:func:`write_prediction`): the anomaly map, binary mask and
reconstruction as NIfTI images in the scan's own geometry, and a PNG overview of a few axial
slices of the model grid (:func:`write_overview`; matplotlib is imported only when drawing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from brainuad.atomic import atomic_path
from brainuad.checks import check_int
from brainuad.data.io import write_image
from brainuad.errors import InputError

if TYPE_CHECKING:
    from brainuad.predict.detector import GridMaps, PredictionResult

__all__ = ["PredictionFiles", "write_overview", "write_prediction"]

_OVERVIEW_SLICES = 4


@dataclass(frozen=True)
class PredictionFiles:
    """The files :func:`write_prediction` wrote for one scan."""

    anomaly_map: Path
    binary_mask: Path
    reconstruction: Path | None
    overview: Path


def write_prediction(result: PredictionResult, out_dir: str | Path) -> PredictionFiles:
    """Write ``<name>_anomaly.nii.gz`` (float32), ``<name>_mask.nii.gz`` (uint8 0/1),
    ``<name>_reconstruction.nii.gz`` (float32, normalised [0, 1] scale; methods with
    reconstructions only), each with the scan's shape and affine, and ``<name>_overview.png`` into
    ``out_dir``, each atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, not an output folder")
    stem = out / result.name
    return PredictionFiles(
        anomaly_map=write_image(f"{stem}_anomaly.nii.gz", result.anomaly_map.astype(np.float32), result.affine),
        binary_mask=write_image(f"{stem}_mask.nii.gz", result.binary_mask.astype(np.uint8), result.affine),
        reconstruction=None if result.reconstruction is None else write_image(
            f"{stem}_reconstruction.nii.gz", result.reconstruction.astype(np.float32), result.affine),
        overview=write_overview(result, f"{stem}_overview.png"))


def _overview_slices(maps: GridMaps, count: int) -> list[int]:
    """Axial indices: evenly spaced over the brain's extent, the one with the most detected voxels
    in place of its nearest neighbour."""
    brain = np.flatnonzero(maps.brain_mask.any(axis=(0, 1)))
    low, high = (int(brain[0]), int(brain[-1])) if brain.size else (0, maps.image.shape[2] - 1)
    chosen = [int(round(value)) for value in np.linspace(low, high, count + 2)[1:-1]]
    detected = maps.binary_mask.sum(axis=(0, 1))
    if detected.any():
        peak = int(np.argmax(detected))
        nearest = min(range(len(chosen)), key=lambda index: abs(chosen[index] - peak))
        chosen[nearest] = peak
    return sorted(set(chosen))


def write_overview(result: PredictionResult, path: str | Path, slices: int = _OVERVIEW_SLICES) -> Path:
    """A PNG of a few axial slices of the model grid: the input, its reconstruction (when the method
    has one), the anomaly map (one colour scale, the threshold marked on it) and the input with
    the binary mask outlined; written atomically.

    Slices are drawn with anterior up and the first array axis (Right, in RAS order) to the right.
    """
    from matplotlib.figure import (
        Figure,  # no pyplot: no global state, safe outside the main thread
    )

    check_int("slices", slices)
    path = Path(path)
    maps = result.grid
    picks = _overview_slices(maps, slices)
    top = max(float(maps.anomaly_map.max()), 1.5 * result.threshold.value, 1e-6)
    columns = [("input (normalised)", maps.image, "gray", 1.0)]
    if maps.reconstruction is not None:
        columns.append(("reconstruction", maps.reconstruction, "gray", 1.0))
    columns += [("anomaly map", maps.anomaly_map, "magma", top), ("detected (red outline)", maps.image, "gray", 1.0)]
    figure = Figure(figsize=(2.3 * len(columns) + 0.5, 2.3 * len(picks) + 0.5), layout="constrained")
    axes = figure.subplots(len(picks), len(columns), squeeze=False)
    for row, z in enumerate(picks):
        for column, (title, volume, colours, high) in enumerate(columns):
            axis = axes[row, column]
            shown = axis.imshow(volume[..., z].T, origin="lower", cmap=colours, vmin=0.0, vmax=high,
                                interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=9)
            if column == 0:
                axis.set_ylabel(f"axial slice {z}", fontsize=8)
            if colours == "magma":
                colorbar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
                colorbar.ax.axhline(result.threshold.value, color="cyan", linewidth=1.2)
                colorbar.ax.tick_params(labelsize=6)
        if maps.binary_mask[..., z].any():
            axes[row, -1].contour(maps.binary_mask[..., z].T.astype(np.float32), levels=[0.5], colors="red",
                                  linewidths=0.8, origin="lower")
    figure.suptitle(f"{result.name}: threshold {result.threshold.value:.4g} (cyan line), "
                    f"{result.anomaly_volume_ml:.1f} ml detected", fontsize=10)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    return path
