"""Check a data directory: layout, split CSVs and every file they name.

Findings name their file. Errors (the data cannot be trusted as it is): a missing split CSV of a
data set that is otherwise present, a CSV without the needed columns, a missing, unreadable or
truncated image, a 4-D image, NaN/inf voxels, an image/mask/segmentation shape or affine
mismatch, an empty brain mask, a missing segmentation of a lesion set, the same subject in a
training fold and the test split (or in a fold's train and val). Warnings: duplicate rows, an
empty lesion segmentation, a non-binary mask or segmentation; train/test overlap is reported as a
warning instead of an error with ``allow_overlap`` (to use the authors' exact splits, which have
9 IXI test subjects also in training fold 0). A set's optional other modalities (BraTS21's and
MSLUB's T1, WMH's FLAIR: :attr:`~brainuad.data.layout.DatasetSpec.extra_modalities`) are checked
like its image where their folder exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

import numpy as np

from brainuad.data.io import read_image
from brainuad.data.layout import (
    DATASETS,
    NUM_FOLDS,
    DatasetSpec,
    SplitRecord,
    data_file,
    modality_path,
    read_split_csv,
    resolve_data_root,
)
from brainuad.errors import InputError

Severity = Literal["error", "warning"]
_AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Finding:
    """One problem found: its severity, the file it concerns and what is wrong."""

    severity: Severity
    path: Path
    message: str


@dataclass
class ValidationReport:
    """Everything :func:`validate_data_dir` found, plus what it checked."""

    root: Path
    findings: list[Finding] = field(default_factory=list)
    datasets_present: list[str] = field(default_factory=list)
    files_checked: int = 0
    rows_checked: int = 0

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def add(self, severity: Severity, path: Path, message: str) -> None:
        self.findings.append(Finding(severity, path, message))


@dataclass(frozen=True)
class _FileFacts:
    shape: tuple[int, ...]
    affine: np.ndarray
    nonzero: int
    binary: bool


class _FileChecker:
    """Reads each file once and remembers its shape, affine and content facts."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        self.cache: dict[Path, _FileFacts | None] = {}

    def facts(self, path: Path) -> _FileFacts | None:
        if path not in self.cache:
            try:
                array, affine = read_image(path)
            except InputError as error:
                self.report.add("error", path, error.problem + (f" ({error.hint})" if error.hint else ""))
                self.cache[path] = None
            else:
                self.report.files_checked += 1
                self.cache[path] = _FileFacts(array.shape, affine, int(np.count_nonzero(array)),
                                              bool(np.isin(array, (0, 1)).all()))
        return self.cache[path]


def validate_data_dir(path: str | Path, *, allow_overlap: bool = False, datasets: Iterable[str] | None = None,
                      progress: Callable[[Iterable], Iterable] | None = None) -> ValidationReport:
    """Check the layout and splits of a data directory and every file its CSVs name.

    Args:
        path: the data directory (or the parent of its ``Data/`` folder).
        allow_overlap: report a subject in both a training fold and the test split as a warning
            instead of an error.
        datasets: ids to check (default: every data set present).
        progress: optional wrapper around the row iterator (a progress bar).

    Returns:
        The :class:`ValidationReport`; ``report.ok`` is False when there is any error.

    Raises:
        InputError: ``path`` is not a data directory at all.
    """
    root = resolve_data_root(path)
    report = ValidationReport(root=root)
    splits_dir = root / "splits"
    if not splits_dir.is_dir():
        report.add("error", splits_dir, "no splits/ folder: the split CSVs are missing")
        return report
    wanted = list(DATASETS) if datasets is None else [DATASETS[name].id for name in datasets]
    checker = _FileChecker(report)
    for dataset_id in wanted:
        spec = DATASETS[dataset_id]
        tables = _read_tables(spec, root, report)
        if tables is None:
            continue
        report.datasets_present.append(dataset_id)
        _check_duplicates(tables, report)
        if spec.healthy:
            _check_fold_overlap(tables, spec, report, allow_overlap)
        rows = [(csv_path, record) for csv_path, records in tables.items() for record in records]
        unique_rows = list({(record.img_path, record.mask_path, record.seg_path): (csv_path, record)
                            for csv_path, record in rows}.values())
        iterator = progress(unique_rows) if progress else unique_rows
        for csv_path, record in iterator:
            _check_row(spec, root, csv_path, record, checker, report)
    if not report.datasets_present:
        report.add("error", splits_dir, "no split CSV of any known data set (IXI_*, Brats21_*, MSLUB_*, "
                                        "ATLAS_v2_*, WMH_*) was found")
    return report


def _read_tables(spec: DatasetSpec, root: Path, report: ValidationReport) -> dict[Path, list[SplitRecord]] | None:
    """The split CSVs of one data set, or None when the data set is absent altogether."""
    paths = [root / "splits" / name for name in spec.split_names()]
    present = [path for path in paths if path.is_file()]
    if not present and not (root / spec.stage / spec.folder).is_dir():
        return None
    tables: dict[Path, list[SplitRecord]] = {}
    for csv_path in paths:
        if not csv_path.is_file():
            report.add("error", csv_path, f"split CSV of {spec.id} is missing")
            continue
        try:
            tables[csv_path] = read_split_csv(csv_path)
        except InputError as error:
            report.add("error", csv_path, error.problem + (f" ({error.hint})" if error.hint else ""))
            continue
        report.rows_checked += len(tables[csv_path])
        if not tables[csv_path]:
            report.add("error", csv_path, "split CSV has no rows")
    return tables


def _check_duplicates(tables: dict[Path, list[SplitRecord]], report: ValidationReport) -> None:
    for csv_path, records in tables.items():
        counts = Counter(records)
        for record, count in counts.items():
            if count > 1:
                report.add("warning", csv_path, f"row of subject {record.img_name} appears {count} times "
                                                f"(duplicate rows)")


def _check_fold_overlap(tables: dict[Path, list[SplitRecord]], spec: DatasetSpec, report: ValidationReport,
                        allow_overlap: bool) -> None:
    by_name = {path.name: {record.img_name for record in records} for path, records in tables.items()}
    test_name = spec.split_file("test")
    test = by_name.get(test_name, set())
    overlap_severity: Severity = "warning" if allow_overlap else "error"
    for fold in range(NUM_FOLDS):
        train_name, val_name = spec.split_file("train", fold), spec.split_file("val", fold)
        train, val = by_name.get(train_name, set()), by_name.get(val_name, set())
        for other_name, other, severity in ((test_name, test, overlap_severity), (val_name, val, "error")):
            shared = sorted(train & other)
            if shared:
                listed = ", ".join(shared[:10]) + (" ..." if len(shared) > 10 else "")
                report.add(severity, tables_path(tables, train_name),
                           f"{len(shared)} subject(s) of training fold {fold} also in {other_name}: {listed}"
                           + (" (allowed by --allow-overlap)" if severity == "warning" else
                              " (results on that split are invalid; pass --allow-overlap to accept it)"
                              if other_name == test_name else ""))
        leaked = sorted(val & test)
        if leaked:
            report.add(overlap_severity, tables_path(tables, val_name),
                       f"{len(leaked)} subject(s) of validation fold {fold} also in {test_name}: "
                       + ", ".join(leaked[:10]))


def tables_path(tables: dict[Path, list[SplitRecord]], name: str) -> Path:
    """The path among ``tables`` whose file name is ``name``."""
    return next(path for path in tables if path.name == name)


def _check_row(spec: DatasetSpec, root: Path, csv_path: Path, record: SplitRecord, checker: _FileChecker,
               report: ValidationReport) -> None:
    image_paths: list[Path] = []
    present_extras = tuple(modality for modality in spec.extra_modalities
                           if (root / spec.stage / spec.folder / modality).is_dir())
    for modality in spec.modalities + present_extras:
        try:
            relative = modality_path(record.img_path, modality)
        except ValueError as error:
            report.add("error", csv_path, f"subject {record.img_name}: {error}")
            return
        image_paths.append(data_file(root, relative))
    mask_path = data_file(root, record.mask_path)
    seg_path = data_file(root, record.seg_path) if record.seg_path else None
    if not spec.healthy and seg_path is None:
        report.add("error", csv_path, f"subject {record.img_name} of lesion set {spec.id} has no seg_path")
    for path in [*image_paths, mask_path] + ([seg_path] if seg_path else []):
        if not path.exists():
            report.add("error", path, f"file not found (named by {csv_path.name}, subject {record.img_name})")
    present = {path: checker.facts(path) for path in [*image_paths, mask_path] + ([seg_path] if seg_path else [])
               if path.exists()}
    reference_path = image_paths[0]
    reference = present.get(reference_path)
    if reference is None:
        return
    for path, facts in present.items():
        if facts is None or path == reference_path:
            continue
        if facts.shape != reference.shape:
            report.add("error", path, f"shape {facts.shape} differs from {reference_path.name} {reference.shape}")
        elif not np.allclose(facts.affine, reference.affine, atol=_AFFINE_TOLERANCE_MM):
            report.add("error", path, f"affine differs from that of {reference_path.name}")
    mask = present.get(mask_path)
    if mask is not None:
        if mask.nonzero == 0:
            report.add("error", mask_path, "brain mask is empty")
        elif not mask.binary:
            report.add("warning", mask_path, "brain mask is not binary (values other than 0 and 1)")
    seg = present.get(seg_path) if seg_path else None
    if seg_path is not None and seg is not None:
        if seg.nonzero == 0:
            report.add("warning", seg_path, "segmentation is empty (no lesion voxel)")
        elif not seg.binary:
            report.add("warning", seg_path, "segmentation is not binary; voxels > 0.5 count as lesion")
        if seg.nonzero and mask is not None and mask.nonzero and seg.shape == mask.shape:
            _check_lesion_inside(seg_path, mask_path, report)


def _check_lesion_inside(seg_path: Path, mask_path: Path, report: ValidationReport) -> None:
    """Warn when lesion voxels lie outside the brain mask: the anomaly map is 0 there, so they
    are counted as missed in every Dice (as in the authors' protocol)."""
    lesion = read_image(seg_path)[0] > 0.5
    outside = int(np.count_nonzero(lesion & ~(read_image(mask_path)[0] > 0.5)))
    if outside:
        report.add("warning", seg_path, f"{outside} lesion voxels outside the brain mask "
                                        f"({100 * outside / max(int(lesion.sum()), 1):.1f} % of the lesion): they "
                                        "are never scored and count as missed")
