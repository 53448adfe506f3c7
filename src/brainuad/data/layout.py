"""Data-set layout and split CSVs, compatible with the authors' released preprocessed archive.

A data directory (``DATA``) looks like::

    DATA/Train/ixi/{t1,t2,mask}/IXI002-Guys-0828_{t1,t2,mask}.nii.gz
    DATA/Test/Brats21/{t2,mask,seg}/BraTS2021_00000_{t2,mask,seg}.nii.gz
    DATA/Test/{MSLUB,ATLAS_v2,WMH}/...
    DATA/splits/IXI_train_fold{0..4}.csv, IXI_val_fold{0..4}.csv, IXI_test.csv,
                Brats21_{val,test}.csv, MSLUB_{val,test}.csv, ATLAS_v2_{val,test}.csv, WMH_{val,test}.csv

``DATA`` may also be the parent of a ``Data/`` folder holding the above. Split CSVs have the columns
``img_name, age, label, img_path, mask_path, seg_path``; paths are relative to ``DATA`` and start
with ``/Train`` or ``/Test``. The image path of another modality of the same subject is found by
replacing the modality folder and the ``_<modality>`` file suffix only (never a blind string
replace over the whole path).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from brainuad.atomic import write_text
from brainuad.digest import file_digest, json_digest, listing_digest
from brainuad.errors import InputError

Modality = Literal["t1", "t2", "flair"]
SplitName = Literal["train", "val", "test"]
SPLIT_COLUMNS = ("img_name", "age", "label", "img_path", "mask_path", "seg_path")
NUM_FOLDS = 5


@dataclass(frozen=True)
class DatasetSpec:
    """One data set of the protocol.

    Attributes:
        id: brainuad's name for it (``ixi``, ``brats21``, ...).
        stage: top folder, ``Train`` (healthy) or ``Test`` (with lesions).
        folder: its folder under the stage folder (the authors' name).
        split_prefix: prefix of its split CSVs.
        modalities: the image modalities the layout holds for every subject.
        extra_modalities: other modalities a layout may hold for its subjects (``brainuad prepare``
            writes them where the download has them; multi-contrast methods read them).
        eval_modality: the modality it is evaluated on (method.md §1); None for the healthy set,
            which is used with the modality the model is trained on.
        paper_sizes: (validation, test) sizes of the paper's Table 1.
    """

    id: str
    stage: Literal["Train", "Test"]
    folder: str
    split_prefix: str
    modalities: tuple[str, ...]
    eval_modality: str | None
    paper_sizes: tuple[int, int]
    extra_modalities: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return self.stage == "Train"

    def split_names(self) -> list[str]:
        """File names of every split CSV of this set."""
        if self.healthy:
            names = [f"{self.split_prefix}_{kind}_fold{fold}.csv" for fold in range(NUM_FOLDS)
                     for kind in ("train", "val")]
            return names + [f"{self.split_prefix}_test.csv"]
        return [f"{self.split_prefix}_val.csv", f"{self.split_prefix}_test.csv"]

    def split_file(self, split: SplitName, fold: int | None = None) -> str:
        """File name of one split CSV; ``fold`` (0-4) is needed for IXI train/val."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        if self.healthy and split in ("train", "val"):
            if fold is None or not 0 <= fold < NUM_FOLDS:
                raise ValueError(f"fold must be 0..{NUM_FOLDS - 1} for the {self.id} {split} split, got {fold!r}")
            return f"{self.split_prefix}_{split}_fold{fold}.csv"
        if not self.healthy and split == "train":
            raise ValueError(f"{self.id} has no train split (only val and test): it is never trained on")
        return f"{self.split_prefix}_{split}.csv"


DATASETS: dict[str, DatasetSpec] = {
    spec.id: spec
    for spec in (
        DatasetSpec("ixi", "Train", "ixi", "IXI", ("t1", "t2"), None, (44, 158)),
        DatasetSpec("brats21", "Test", "Brats21", "Brats21", ("t2",), "t2", (100, 1151), ("t1",)),
        DatasetSpec("mslub", "Test", "MSLUB", "MSLUB", ("t2",), "t2", (10, 20), ("t1",)),
        DatasetSpec("atlas", "Test", "ATLAS_v2", "ATLAS_v2", ("t1",), "t1", (175, 480)),
        DatasetSpec("wmh", "Test", "WMH", "WMH", ("t1",), "t1", (15, 45), ("flair",)),
    )
}
LESION_SETS = tuple(name for name, spec in DATASETS.items() if not spec.healthy)


def dataset(dataset_id: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``dataset_id`` (``ixi``, ``brats21``, ``mslub``, ``atlas``, ``wmh``)."""
    try:
        return DATASETS[dataset_id.lower()]
    except KeyError:
        raise ValueError(f"unknown data set {dataset_id!r}; choose one of {', '.join(DATASETS)}") from None


def sets_for_modality(modality: str) -> tuple[str, ...]:
    """The lesion sets evaluated on ``modality`` (t2: brats21, mslub; t1: atlas, wmh)."""
    return tuple(name for name in LESION_SETS if DATASETS[name].eval_modality == modality)


def resolve_data_root(path: str | Path) -> Path:
    """The folder holding ``Train``/``Test``/``splits``: ``path`` itself or its ``Data/`` child.

    Raises:
        InputError: neither ``path`` nor ``path/Data`` looks like a data directory.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "data directory not found")
    for candidate in (path, path / "Data"):
        if (candidate / "splits").is_dir() or (candidate / "Train").is_dir() or (candidate / "Test").is_dir():
            return candidate
    raise InputError(path, "is not a brainuad data directory: no splits/, Train/ or Test/ folder in it or in Data/",
                     "create one with 'brainuad synth' or 'brainuad prepare', or point at the folder holding splits/")


@dataclass(frozen=True)
class SplitRecord:
    """One row of a split CSV. Paths are as written: relative to DATA and starting with ``/``."""

    img_name: str
    age: float | None
    label: int
    img_path: str
    mask_path: str
    seg_path: str | None

    def with_modality(self, modality: str) -> "SplitRecord":
        """The same subject with ``img_path`` pointing to another modality (see :func:`modality_path`)."""
        return SplitRecord(self.img_name, self.age, self.label, modality_path(self.img_path, modality),
                           self.mask_path, self.seg_path)


def splits_digest(root: str | Path) -> str:
    """SHA-256 of the split CSVs of a data directory (names and the digests of their bytes, sorted
    by name): equal splits, equal digests. Nothing is decoded: a CSV that is not text is reported
    by the reader that needs it, with its name."""
    folder = resolve_data_root(root) / "splits"
    return json_digest([(path.name, file_digest(path)) for path in sorted(folder.glob("*.csv"))])


def data_files_digest(root: str | Path) -> tuple[str, int, int]:
    """SHA-256 of the names and sizes of the files under ``Train/`` and ``Test/`` of a data
    directory (see :func:`~brainuad.digest.listing_digest`): (digest, files, bytes)."""
    root = resolve_data_root(root)
    parts = [listing_digest(root / stage) for stage in ("Train", "Test") if (root / stage).is_dir()]
    return (json_digest([part[0] for part in parts]), sum(part[1] for part in parts), sum(part[2] for part in parts))


def modality_path(img_path: str, modality: str) -> str:
    """Path of the ``modality`` image of the subject whose image is at ``img_path``.

    Only the modality folder (the parent folder of the file) and the ``_<modality>`` suffix of
    the file name change: ``/Train/ixi/t1/IXI012-HH-1211_t1.nii.gz`` -> ``/Train/ixi/t2/IXI012-HH-1211_t2.nii.gz``.
    A ``t1`` elsewhere in the path (in a subject name, say) is left alone.

    Raises:
        ValueError: the path's folder or file name does not name its modality.
    """
    if modality not in ("t1", "t2", "flair"):
        raise ValueError(f"modality must be 't1', 't2' or 'flair', got {modality!r}")
    path = PurePosixPath(img_path)
    current = path.parent.name
    if current not in ("t1", "t2", "flair"):
        raise ValueError(f"{img_path}: the image's folder {current!r} is not a modality folder (t1, t2, flair)")
    name = path.name
    suffix = next((s for s in (".nii.gz", ".nii", ".nrrd", ".mha") if name.endswith(s)), "")
    stem = name[: len(name) - len(suffix)]
    if not stem.endswith(f"_{current}"):
        raise ValueError(f"{img_path}: the file name does not end in '_{current}' before its suffix")
    new_name = stem[: -len(current)] + modality + suffix
    return str(path.parent.parent / modality / new_name)


def data_file(root: Path, relative: str) -> Path:
    """Absolute path of a split-CSV path (``/Train/...``) under the data root."""
    return root / relative.lstrip("/")


def _optional_float(value: str) -> float | None:
    value = (value or "").strip()
    if value == "" or value.lower() == "nan":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def read_split_csv(path: str | Path) -> list[SplitRecord]:
    """Read a split CSV (the authors' leading unnamed index column is accepted and ignored).

    Raises:
        InputError: the file is missing, not UTF-8 CSV text, lacks a needed column, or a row has a
            bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split CSV not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _split_records(path, csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"is not a readable CSV text file ({error})",
                         "write it as UTF-8 text with comma-separated columns") from None


def _split_records(path: Path, reader: csv.DictReader) -> list[SplitRecord]:
    missing = [column for column in SPLIT_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}",
                         f"a split CSV needs the columns {', '.join(SPLIT_COLUMNS)}")
    records = []
    for line, row in enumerate(reader, start=2):
        try:
            seg = (row["seg_path"] or "").strip()
            records.append(SplitRecord(
                img_name=row["img_name"].strip(),
                age=_optional_float(row["age"]),
                label=int(float(row["label"])),
                img_path=row["img_path"].strip(),
                mask_path=row["mask_path"].strip(),
                seg_path=None if seg.lower() in ("", "nan", "none") else seg,
            ))
        except (AttributeError, TypeError, ValueError) as error:
            raise InputError(path, f"line {line}: bad value ({error})") from error
    return records


def write_split_csv(path: str | Path, records: list[SplitRecord]) -> Path:
    """Write a split CSV in the authors' column order, atomically."""
    path = Path(path)
    stream = io.StringIO()
    writer = csv.writer(stream)
    writer.writerow(SPLIT_COLUMNS)
    for record in records:
        writer.writerow([record.img_name, "" if record.age is None else record.age, record.label,
                         record.img_path, record.mask_path, record.seg_path or ""])
    write_text(path, stream.getvalue())
    return path


def load_split(root: str | Path, dataset_id: str, split: SplitName, fold: int | None = None,
               modality: str | None = None) -> list[SplitRecord]:
    """Records of one split, with ``img_path`` switched to ``modality`` when it is given."""
    spec = dataset(dataset_id)
    root = resolve_data_root(root)
    records = read_split_csv(root / "splits" / spec.split_file(split, fold))
    if modality is not None:
        records = [record.with_modality(modality) for record in records]
    return records


@dataclass(frozen=True)
class Subject:
    """The files of one subject in one modality, as absolute paths.

    Attributes:
        contrasts: other modalities of the subject read with the image (name -> file), for a
            multi-contrast method; empty otherwise.
    """

    name: str
    image: Path
    mask: Path
    seg: Path | None
    label: int
    contrasts: tuple[tuple[str, Path], ...] = ()


def split_subjects(root: str | Path, dataset_id: str, split: SplitName, fold: int | None = None,
                   modality: str | None = None, contrasts: Sequence[str] = ()) -> list[Subject]:
    """The subjects of one split with absolute file paths.

    Args:
        root: the data directory (or its parent).
        dataset_id: ``ixi``, ``brats21``, ``mslub``, ``atlas`` or ``wmh``.
        split: ``train``/``val`` (IXI, with ``fold``) or ``val``/``test``.
        modality: the image modality; default the set's evaluation modality (required for IXI).
        contrasts: other modalities of each subject to read with the image (their files are found
            as :func:`modality_path` says, e.g. ``t2/X_t2.nii.gz`` -> ``t1/X_t1.nii.gz``).

    Duplicate rows (the authors' splits have some) are kept once.
    """
    spec = dataset(dataset_id)
    modality = modality or spec.eval_modality
    if modality is None:
        raise ValueError(f"the modality (t1 or t2) must be given for the {spec.id} data set")
    if modality in contrasts or len(set(contrasts)) != len(contrasts):
        raise ValueError(f"contrasts must be distinct modalities other than {modality}, got {list(contrasts)}")
    root = resolve_data_root(root)
    subjects: dict[str, Subject] = {}
    for record in load_split(root, dataset_id, split, fold, modality):
        others = tuple((name, data_file(root, modality_path(record.img_path, name))) for name in contrasts)
        subjects.setdefault(record.img_path, Subject(
            name=record.img_name, image=data_file(root, record.img_path), mask=data_file(root, record.mask_path),
            seg=data_file(root, record.seg_path) if record.seg_path else None, label=record.label, contrasts=others))
    return list(subjects.values())
