"""Loading subjects onto the model grid once, with an in-memory and an optional on-disk cache.

The first load of a subject reads its files and runs :func:`~brainuad.data.grid.to_model_grid`
(about 0.5 s); later loads come from memory, or from a ``.npz`` file in ``cache_dir`` in later
runs (a few ms). A cache entry is keyed by the files' paths, sizes and modification times and the
grid parameters, so a changed file is re-read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from brainuad.atomic import atomic_path
from brainuad.data.grid import (
    CROP_SHAPE,
    DOWNSAMPLE,
    GridTransform,
    GridVolume,
    NormaliseOn,
    to_model_grid,
)
from brainuad.data.layout import Subject
from brainuad.data.volume import Volume
from brainuad.errors import InputError

_CACHE_VERSION = 2


class GridCache:
    """Model-grid volumes by subject, read from disk at most once per run.

    Args:
        cache_dir: folder for ``.npz`` copies that survive the run (None: memory only).
        crop_shape, factor: the model-grid parameters (method.md §2 defaults).
        normalise_on: where intensities are normalised (:func:`~brainuad.data.grid.to_model_grid`).
        in_memory: keep every loaded volume in memory (training reads its volumes every epoch);
            False for one pass over many volumes (evaluation), where memory must stay flat and
            only ``cache_dir`` keeps copies.
    """

    def __init__(self, cache_dir: str | Path | None = None, crop_shape: tuple[int, int, int] = CROP_SHAPE,
                 factor: int = DOWNSAMPLE, *, normalise_on: NormaliseOn = "model_grid", in_memory: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        ci, cj, ck = crop_shape
        self.crop_shape = (ci, cj, ck)
        self.factor = factor
        self.normalise_on = normalise_on
        self.in_memory = in_memory
        self._memory: dict[str, GridVolume] = {}

    def _key(self, subject: Subject) -> str:
        facts = [str(_CACHE_VERSION), str(self.crop_shape), str(self.factor), self.normalise_on,
                 ",".join(name for name, _ in subject.contrasts)]
        for path in (subject.image, subject.mask, subject.seg, *(path for _, path in subject.contrasts)):
            if path is None:
                facts.append("-")
                continue
            stat = path.stat()
            facts.append(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        return hashlib.sha256("\n".join(facts).encode()).hexdigest()[:32]

    def load(self, subject: Subject) -> GridVolume:
        """The subject on the model grid (96, 96, 50), from the cache when possible.

        Raises:
            InputError: a file is missing, unreadable or inconsistent (see :meth:`Volume.load`).
        """
        for path in (subject.image, subject.mask, subject.seg):
            if path is not None and not path.is_file():
                raise InputError(path, f"file of subject {subject.name} not found")
        for name, path in subject.contrasts:
            if not path.is_file():
                raise InputError(path, f"the {name} image of subject {subject.name} not found (the method reads the "
                                       f"{name} image of every subject beside its {subject.image.parent.name} image)",
                                 f"prepare the data set with its {name} scans (brainuad prepare brings them along "
                                 f"where the download has them), or train a single-contrast method")
        key = self._key(subject)
        if key in self._memory:
            return self._memory[key]
        grid = self._read_disk(key, subject) if self.cache_dir else None
        if grid is None:
            volume = Volume.load(subject.image, subject.mask, subject.seg, name=subject.name)
            grid = to_model_grid(volume, self.crop_shape, self.factor, self.normalise_on,
                                 {name: volume.load_contrast(path, name) for name, path in subject.contrasts})
            if self.cache_dir:
                self._write_disk(key, grid)
        if self.in_memory:
            self._memory[key] = grid
        return grid

    def _read_disk(self, key: str, subject: Subject) -> GridVolume | None:
        if self.cache_dir is None:
            return None
        path = self.cache_dir / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path) as stored:
            meta = json.loads(str(stored["meta"]))
            transform = GridTransform(tuple(meta["input_shape"]), stored["input_affine"], tuple(meta["offsets"]),
                                      tuple(meta["crop_shape"]), meta["factor"])
            seg = stored["seg"] if meta["has_seg"] else None
            contrasts = {name: stored[f"contrast_{name}"] for name in meta.get("contrasts", [])}
            return GridVolume(stored["image"], stored["mask"], seg, subject.name, transform, contrasts)

    def _write_disk(self, key: str, grid: GridVolume) -> None:
        if self.cache_dir is None:
            return
        transform = grid.transform
        meta = {"input_shape": transform.input_shape, "offsets": transform.offsets,
                "crop_shape": transform.crop_shape, "factor": transform.factor, "has_seg": grid.seg is not None,
                "contrasts": list(grid.contrasts)}
        arrays: dict[str, Any] = {  # keyword arrays of np.savez
            "image": grid.image, "mask": grid.mask, "seg": grid.seg if grid.seg is not None else np.zeros(0, bool),
            "input_affine": transform.input_affine, "meta": np.array(json.dumps(meta)),
            **{f"contrast_{name}": array for name, array in grid.contrasts.items()}}
        with atomic_path(self.cache_dir / f"{key}.npz") as temporary:
            np.savez(temporary, **arrays)
