"""The synthetic cohort on disk: sizes, per-subject seeds, splits, the data layout and its summary.

``synthesize_cohort(OUT)`` writes, in the authors' preprocessed-archive layout (see
:mod:`brainuad.data.layout`)::

    OUT/Train/ixi/{t1,t2,mask}/IXI-SYN-0001_{t1,t2,mask}.nii.gz
    OUT/Test/Brats21/{t2,t1,mask,seg}/BraTS-SYN-0001_{t2,t1,mask,seg}.nii.gz   (and MSLUB: T2, and T1
                                                                               for multi-contrast methods)
    OUT/Test/ATLAS_v2/{t1,mask,seg}/ATLAS-SYN-0001_{t1,mask,seg}.nii.gz     (and WMH, T1)
    OUT/splits/IXI_{train,val}_fold{0..4}.csv, IXI_test.csv, <set>_{val,test}.csv
    OUT/preview.png, OUT/synthetic-cohort.json (what wrote the folder: size and seed)

Every subject draws from its own generator, derived from (seed, data set, index) with
``numpy.random.SeedSequence``, so the files are the same whatever the number of worker processes.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from brainuad.atomic import write_text
from brainuad.checks import check_int
from brainuad.data.io import write_image
from brainuad.data.layout import (
    DATASETS,
    NUM_FOLDS,
    DatasetSpec,
    SplitRecord,
    write_split_csv,
)
from brainuad.data.synth.parallel import map_subjects
from brainuad.data.synth.preview import write_preview
from brainuad.data.synth.subjects import SyntheticSubject, synthesize_subject
from brainuad.errors import InputError
from brainuad.lock import LOCK_FILE, FolderLock
from brainuad.version import __version__

SizeName = Literal["tiny", "small", "medium"]
MARKER = "synthetic-cohort.json"
_REPLACED = ("Train", "Test", "splits", "preview.png", MARKER)  # what replacing an earlier cohort removes
_NAME_PREFIX = {"ixi": "IXI-SYN", "brats21": "BraTS-SYN", "mslub": "MSLUB-SYN", "atlas": "ATLAS-SYN",
                "wmh": "WMH-SYN"}


@dataclass(frozen=True)
class CohortSize:
    """Numbers of subjects of a cohort.

    Attributes:
        healthy_train, healthy_val: IXI subjects in each fold's train and validation split; the
            fold pool (train + val) is split differently per fold.
        healthy_test: IXI test subjects (never in a fold).
        lesion_val, lesion_test: subjects of each lesion set's validation and test split.
    """

    healthy_train: int
    healthy_val: int
    healthy_test: int
    lesion_val: int
    lesion_test: int

    @property
    def pool(self) -> int:
        """IXI subjects shared out among the folds' train and validation splits."""
        return self.healthy_train + self.healthy_val

    def subjects(self, dataset_id: str) -> int:
        """Distinct subjects of ``dataset_id`` in the cohort."""
        if DATASETS[dataset_id].healthy:
            return self.pool + self.healthy_test
        return self.lesion_val + self.lesion_test


SIZES: dict[str, CohortSize] = {
    "tiny": CohortSize(6, 2, 2, 3, 3),
    "small": CohortSize(40, 8, 10, 8, 16),
    "medium": CohortSize(150, 20, 40, 20, 60),
}


@dataclass(frozen=True)
class CohortSummary:
    """What :func:`synthesize_cohort` wrote.

    Attributes:
        root: the data directory.
        size: the size's name.
        seed: the cohort's seed.
        subjects: data set -> distinct subjects written.
        seconds: wall-clock time taken.
        preview: the montage PNG.
    """

    root: Path
    size: str
    seed: int
    subjects: dict[str, int]
    seconds: float
    preview: Path

    def describe(self) -> str:
        """A short human-readable account."""
        counts = ", ".join(f"{name} {count}" for name, count in self.subjects.items())
        return (f"synthetic cohort '{self.size}' (seed {self.seed}) written to {self.root} in {self.seconds:.1f} s: "
                f"{counts} subjects; preview {self.preview}")


def subject_name(dataset_id: str, index: int) -> str:
    """Name of the ``index``-th (0-based) subject of ``dataset_id``, e.g. ``IXI-SYN-0001``."""
    return f"{_NAME_PREFIX[dataset_id]}-{index + 1:04d}"


def subject_generator(seed: int, dataset_id: str, index: int) -> np.random.Generator:
    """The generator of one subject, from (seed, data set, index) alone."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(list(DATASETS).index(dataset_id), index)))


def cohort_subject(dataset_id: str, index: int, seed: int = 0) -> SyntheticSubject:
    """The ``index``-th subject of ``dataset_id`` in the cohort of ``seed``, in memory: exactly what
    :func:`synthesize_cohort` writes for it, whatever the cohort size."""
    if dataset_id not in DATASETS:
        raise ValueError(f"dataset_id must be one of {', '.join(DATASETS)}, got {dataset_id!r}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    return synthesize_subject(dataset_id, subject_name(dataset_id, index), subject_generator(seed, dataset_id, index))


def fold_indices(pool: int, val: int, fold: int) -> tuple[list[int], list[int]]:
    """(train, val) pool positions of one fold: val is the block of ``val`` positions starting at
    ``fold * val`` (wrapping round the pool), train is the rest of the pool."""
    if not 0 < val < pool:
        raise ValueError(f"val must be between 1 and pool - 1 = {pool - 1}, got {val!r}")
    held_out = [(fold * val + offset) % pool for offset in range(val)]
    return [index for index in range(pool) if index not in held_out], held_out


def check_generation_arguments(size: str, seed: int, workers: int) -> None:
    """Check the arguments every cohort writer takes (``brainuad synth``, with or without ``--raw``).

    Raises:
        ValueError: ``size`` is not a cohort size, ``seed`` not an integer >= 0, or ``workers`` not an
            integer >= 1.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    check_int("seed", seed, 0, allow_numpy=True)
    check_int("workers", workers, allow_numpy=True)


def synthesize_cohort(out: str | Path, *, size: SizeName = "small", seed: int = 0, workers: int = 1,
                      progress: bool = True) -> CohortSummary:
    """Write a synthetic cohort (healthy IXI-like subjects and the four lesion sets) under ``out``.

    Args:
        out: the data directory to create. It must be new or empty, or hold an earlier synthetic
            cohort (which is replaced).
        size: ``tiny`` (tests: 6/2/2 healthy, 3/3 per lesion set), ``small`` (the demo: 40/8/10 and
            8/16) or ``medium`` (150/20/40 and 20/60): healthy train / val per fold / test, then
            validation / test per lesion set.
        seed: the cohort's seed (>= 0); the same seed writes identical images.
        workers: processes generating subjects in parallel (>= 1).
        progress: show a progress bar on stderr.

    Returns:
        The :class:`CohortSummary`.

    Raises:
        ValueError: a bad argument.
        InputError: ``out`` is a file, or a non-empty folder that holds no synthetic cohort.
    """
    check_generation_arguments(size, seed, workers)
    started = time.perf_counter()
    root = Path(out)
    with FolderLock(root, "writing a synthetic cohort"):
        _prepare(root)
        write_text(root / MARKER, json.dumps({"generator": "brainuad synth", "version": __version__,
                                               "size": size, "seed": int(seed)}, indent=2) + "\n")
        counts = SIZES[size]
        tasks = [_Task(str(root), dataset_id, index, int(seed))
                 for dataset_id in DATASETS for index in range(counts.subjects(dataset_id))]
        results = map_subjects(_write_subject, tasks, int(workers), progress=progress,
                               description="synthesizing subjects")
        written = {(result.dataset_id, result.index): result for result in results}
        for dataset_id, spec in DATASETS.items():
            results = [written[dataset_id, index] for index in range(counts.subjects(dataset_id))]
            _write_splits(root, spec, counts, results)
        preview = write_preview(root)
        return CohortSummary(root, size, int(seed), {name: counts.subjects(name) for name in DATASETS},
                             time.perf_counter() - started, preview)


def clear_generated(root: Path, marker: str, replaced: tuple[str, ...], what: str) -> None:
    """Make ``root`` ready for generated data: create it, or remove the entries ``replaced`` of an
    earlier run of ``brainuad synth`` (recognised by its ``marker`` file). Any other non-empty folder is
    refused, so nothing a user wrote is ever deleted.

    Args:
        root: the output folder.
        marker: the name of the file an earlier run left directly under ``root``.
        replaced: names directly under ``root`` that an earlier run wrote (the marker included).
        what: what is written there, for messages ("synthetic cohort", "raw synthetic scans").
    """
    if root.exists() and not root.is_dir():
        raise InputError(root, "exists and is not a folder", f"give a folder to write the {what} into")
    if root.is_dir() and any(entry.name != LOCK_FILE for entry in root.iterdir()):
        if not (root / marker).is_file():
            raise InputError(root, f"is not empty and holds no {what}",
                             f"choose a new or empty folder; only {what} brainuad synth wrote are replaced")
        for name in replaced:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _prepare(root: Path) -> None:
    """Make ``root`` ready: create it, or clear an earlier synthetic cohort from it."""
    clear_generated(root, MARKER, _REPLACED, "synthetic cohort")


@dataclass(frozen=True)
class _Task:
    root: str
    dataset_id: str
    index: int
    seed: int


@dataclass(frozen=True)
class _Written:
    dataset_id: str
    index: int
    name: str
    age: float


def _relative(spec: DatasetSpec, folder: str, name: str) -> str:
    """Split-CSV path (``/Train/ixi/t1/NAME_t1.nii.gz``) of one file of a subject."""
    return f"/{spec.stage}/{spec.folder}/{folder}/{name}_{folder}.nii.gz"


def _write_subject(task: _Task) -> _Written:
    """Generate one subject and write its files (runs in a worker process when workers > 1)."""
    subject = cohort_subject(task.dataset_id, task.index, task.seed)
    spec = DATASETS[task.dataset_id]
    root = Path(task.root)
    volumes = dict(subject.images)
    volumes["mask"] = subject.mask
    if subject.seg is not None:
        volumes["seg"] = subject.seg
    for folder, array in volumes.items():
        write_image(root / _relative(spec, folder, subject.name).lstrip("/"), array, subject.affine)
    return _Written(task.dataset_id, task.index, subject.name, subject.age)


def _write_splits(root: Path, spec: DatasetSpec, counts: CohortSize, written: list[_Written]) -> None:
    """Write the split CSVs of one data set from its subjects (in index order)."""
    def record(subject: _Written) -> SplitRecord:
        image = spec.modalities[0] if spec.healthy else spec.eval_modality
        if image is None:
            raise ValueError(f"the {spec.id} data set has no evaluation modality")
        return SplitRecord(img_name=subject.name, age=subject.age, label=0 if spec.healthy else 1,
                           img_path=_relative(spec, image, subject.name),
                           mask_path=_relative(spec, "mask", subject.name),
                           seg_path=None if spec.healthy else _relative(spec, "seg", subject.name))

    splits = root / "splits"
    if spec.healthy:
        for fold in range(NUM_FOLDS):
            train, val = fold_indices(counts.pool, counts.healthy_val, fold)
            write_split_csv(splits / spec.split_file("train", fold), [record(written[index]) for index in train])
            write_split_csv(splits / spec.split_file("val", fold), [record(written[index]) for index in val])
        write_split_csv(splits / spec.split_file("test"), [record(subject) for subject in written[counts.pool:]])
        return
    write_split_csv(splits / spec.split_file("val"), [record(subject) for subject in written[:counts.lesion_val]])
    write_split_csv(splits / spec.split_file("test"), [record(subject) for subject in written[counts.lesion_val:]])
