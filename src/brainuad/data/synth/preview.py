"""A PNG montage of a data directory: a few subjects per data set, one axial slice each, with the
ground truth outlined, to see at a glance that the images look like brains with lesions.

Rows: the healthy set's test subjects in T1 and in T2, then one row per lesion set in its
evaluation modality (through the slice with the most lesion); sets the directory lacks are left out.
It reads the files the split CSVs name, so it works on any directory in the layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brainuad.atomic import atomic_path
from brainuad.checks import check_int
from brainuad.data.io import read_image
from brainuad.data.layout import DATASETS, data_file, load_split, resolve_data_root
from brainuad.errors import InputError

_LABELS = {"ixi": "IXI (healthy)", "brats21": "BraTS21 (tumour)", "mslub": "MSLUB (MS)",
           "atlas": "ATLAS v2 (stroke)", "wmh": "WMH"}


def write_preview(root: str | Path, path: str | Path | None = None, *, per_set: int = 3) -> Path:
    """Save the montage of the data directory ``root``.

    Args:
        root: data directory (holding splits/, Train/, Test/) or its parent.
        path: the PNG to write (default ``root/preview.png``).
        per_set: subjects shown per row (the first of each test split), >= 1.

    Returns:
        The written PNG.

    Raises:
        ValueError: ``per_set`` < 1.
        InputError: no data set of the directory has a test split to show.
    """
    check_int("per_set", per_set)
    root = resolve_data_root(root)
    path = root / "preview.png" if path is None else Path(path)
    rows = []
    for dataset_id, spec in DATASETS.items():
        if not (root / "splits" / spec.split_file("test")).is_file():
            continue
        records = load_split(root, dataset_id, "test")[:per_set]
        if spec.healthy:
            modalities = spec.modalities
        elif spec.eval_modality is not None:
            modalities = (spec.eval_modality,)
        else:
            raise ValueError(f"the {spec.id} data set has no evaluation modality")
        for modality in modalities:
            rows.append((f"{_LABELS[dataset_id]} {modality.upper()}",
                         [_panel(root, record.with_modality(modality).img_path, record.seg_path, record.img_name)
                          for record in records]))
    if not rows:
        raise InputError(root, "has no test split of any data set to preview")
    _draw(rows, per_set, path)
    return path


def _panel(root: Path, image_path: str, seg_path: str | None, name: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(slice, its ground truth or None, title) of one subject: the axial slice with the most
    lesion, or with the most brain for a healthy subject."""
    image, _ = read_image(data_file(root, image_path))
    if seg_path is not None:
        seg, _ = read_image(data_file(root, seg_path), dtype=np.uint8)
        k = int(np.argmax(seg.sum(axis=(0, 1))))
        return image[:, :, k], seg[:, :, k], f"{name}  z={k}  {seg.sum() / 1000:.1f} cm3"
    k = int(np.argmax((image > 0).sum(axis=(0, 1))))
    return image[:, :, k], None, f"{name}  z={k}"


def _draw(rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray | None, str]]]], columns: int, path: Path) -> None:
    from matplotlib.figure import (
        Figure,  # no pyplot: no global state, the Agg canvas writes the PNG
    )

    figure = Figure(figsize=(2.6 * columns, 2.8 * len(rows)))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for row, (label, panels) in enumerate(rows):
        for column, (image, seg, title) in enumerate(panels):
            axis = axes[row, column]
            brain = image[image > 0]
            top = float(np.percentile(brain, 99.5)) if brain.size else 1.0
            # (i, j) = (left-right, posterior-anterior): transpose so anterior is up
            axis.imshow(image.T, origin="lower", cmap="gray", vmin=0.0, vmax=top, interpolation="nearest")
            if seg is not None and seg.any():
                axis.contour(seg.T, levels=[0.5], colors="red", linewidths=0.7, origin="lower")
            axis.set_title(f"{label}\n{title}", fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90, format="png")
