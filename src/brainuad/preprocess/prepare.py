"""``brainuad prepare``: a data set's download -> its part of a prepared data directory.

Steps: the recipe finds the subjects (:mod:`.recipes`); the data directory's space is checked or
recorded (``OUT/space.json``: one atlas, spacing and shape per directory, so sets that arrive in
another space are registered into it like any scan); every subject goes through the pipeline in
its own process (:mod:`.batch`), its files written atomically in the layout of
:mod:`brainuad.data.layout`, its transform record last (the mark of a finished subject, so a
re-run skips it); then the split CSVs are written and the data set is validated.

Splits are drawn among the prepared subjects (those that failed are left out, so the CSVs always
validate; the summary lists them), in an order given by a hash of each name, which depends on
nothing else: re-running after fixing a subject moves only a few others. Sizes (:data:`SPLIT_SCHEMES`,
``--splits``): the validation and test sizes of the paper's Table 1 (``paper``, the default) or of
the authors' split CSVs (``authors``: IXI 387 / 44 / 160), scaled down in proportion when there are
fewer subjects than they used (:func:`split_sizes`). IXI: a test split, and 5 folds whose validation
blocks are disjoint while the pool allows. The summary and ``prepare-<id>.json`` state the scheme.

Outputs, besides the images (``OUT/<Train|Test>/<folder>/<t1|t2|flair|mask|seg>/<name>_<kind>.nii.gz``):
``OUT/<Train|Test>/<folder>/transforms/<name>.json`` (:class:`PreparationRecord`),
``OUT/splits/*.csv``, ``OUT/space.json``, ``OUT/prepare-<id>.log`` (one line per subject, with
tracebacks of failures) and ``OUT/prepare-<id>.json`` (the summary).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
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
    dataset,
    write_split_csv,
)
from brainuad.data.synth.cohort import fold_indices
from brainuad.errors import InputError
from brainuad.lock import FolderLock
from brainuad.preprocess.batch import JobResult, NamedJob, run_jobs
from brainuad.preprocess.pipeline import Pipeline
from brainuad.preprocess.recipes import FoundSubject, recipe
from brainuad.preprocess.register import Atlas, AtlasRegistration
from brainuad.preprocess.skullstrip import skull_stripper

SPACE_FILE = "space.json"
SPLIT_SEED = 20230101
SplitScheme = Literal["paper", "authors"]
SPLIT_SCHEMES: dict[str, str] = {
    "paper": "the paper's Table 1: IXI 358 train / 44 validation per fold / 158 test (of 560), BraTS21 100 / 1151, "
             "MSLUB 10 / 20, ATLAS 175 / 480, WMH 15 / 45 (validation / test)",
    "authors": "the authors' split CSVs: IXI 387 train / 44 validation per fold / 160 test (of 591); the lesion sets "
               "as the paper",
}
"""The split-size schemes ``prepare`` writes, in words (printed with its summary)."""
_IXI_SIZES: dict[str, tuple[int, int, int]] = {"paper": (44, 158, 560), "authors": (44, 160, 591)}
"""(validation per fold, test, all subjects) of IXI under each scheme."""


def default_pipeline(dataset_id: str | None = None, *, atlas: Atlas | None = None,
                     skull_strip: str | None = None) -> Pipeline:
    """The paper's pipeline for ``dataset_id`` (None: a scan of no known data set, e.g. a clinical scan
    for ``predict --raw``): 1 mm, registration to ``atlas`` (default MNI152), the skull stripper its
    data need (or ``skull_strip``: deepbet, none, atlas-mask, hd-bet; deepbet for no data set), brain
    crop, N4 (4 x 200, 5e-4), 192 x 192 x 160."""
    default_stripper = "deepbet" if dataset_id is None else recipe(dataset_id).skull_strip
    stripper = skull_stripper(skull_strip or default_stripper)
    return Pipeline(registration=AtlasRegistration(atlas or Atlas.mni152()), skull_strip=stripper)


def split_sizes(dataset_id: str, subjects: int, scheme: SplitScheme = "paper") -> tuple[int, int]:
    """(validation, test) sizes for ``subjects`` subjects of ``dataset_id``.

    Lesion sets: the paper's validation size (Table 1) when there are at least as many subjects
    as the paper used, the rest for testing; fewer subjects scale both down in proportion (at
    least 1 each). IXI: (validation per fold, test), 44 and 158 of 560 (``paper``) or 44 and 160 of
    591 (``authors``), scaled the same way, leaving a training pool of at least validation + 1.

    Raises:
        ValueError: an unknown data set or scheme, or too few subjects for the splits (2 for a
            lesion set, 3 for IXI).
    """
    if scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split scheme must be one of {', '.join(SPLIT_SCHEMES)}, got {scheme!r}")
    spec = dataset(dataset_id)
    val, test = spec.paper_sizes
    if spec.healthy:
        if subjects < 3:
            raise ValueError(f"split_sizes: {dataset_id} needs at least 3 subjects, got {subjects}")
        val, test, total = _IXI_SIZES[scheme]
        fraction = min(1.0, subjects / total)
        test_n = max(1, round(test * fraction))
        val_n = max(1, round(val * fraction))
        val_n = min(val_n, subjects - test_n - 1)
        return val_n, test_n
    if subjects < 2:
        raise ValueError(f"split_sizes: {dataset_id} needs at least 2 subjects, got {subjects}")
    if subjects >= val + test:
        return val, subjects - val
    val_n = min(max(1, round(val * subjects / (val + test))), subjects - 1)
    return val_n, subjects - val_n


def assign_splits(dataset_id: str, names: list[str], scheme: SplitScheme = "paper") -> dict[str, list[str]]:
    """Split-CSV file name -> subject names (each list sorted), determined by the set of ``names`` alone.

    The subjects are ordered by the SHA-256 of ``"<SPLIT_SEED>:<name>"``; lesion sets: the first
    ``val`` are the validation split, the rest the test split; IXI: the first ``test`` are the test
    split, and fold f's validation split is the block of ``val`` pool positions from ``f * val``
    (wrapping round the pool), its training split the rest of the pool.

    Raises:
        ValueError: an unknown data set or scheme, or too few names (see :func:`split_sizes`).
    """
    spec = dataset(dataset_id)
    order = sorted(names, key=lambda name: hashlib.sha256(f"{SPLIT_SEED}:{name}".encode()).hexdigest())
    val, test = split_sizes(dataset_id, len(order), scheme)
    if not spec.healthy:
        return {spec.split_file("val"): sorted(order[:val]), spec.split_file("test"): sorted(order[val:])}
    splits = {spec.split_file("test"): sorted(order[:test])}
    pool = order[test:]
    for fold in range(NUM_FOLDS):
        train, held_out = fold_indices(len(pool), val, fold)
        splits[spec.split_file("train", fold)] = sorted(pool[i] for i in train)
        splits[spec.split_file("val", fold)] = sorted(pool[i] for i in held_out)
    return splits


def layout_path(spec: DatasetSpec, kind: str, name: str) -> str:
    """Split-CSV path of one file of a subject: ``/Test/Brats21/t2/NAME_t2.nii.gz`` (kind: a modality,
    ``mask`` or ``seg``)."""
    return f"/{spec.stage}/{spec.folder}/{kind}/{name}_{kind}.nii.gz"


def record_path(root: Path, spec: DatasetSpec, name: str) -> Path:
    """Where the transform record of a prepared subject is (written last: it marks the subject done)."""
    return root / spec.stage / spec.folder / "transforms" / f"{name}.json"


@dataclass(frozen=True)
class _SubjectJob:
    root: str
    dataset_id: str
    subject: FoundSubject
    pipeline: Pipeline

    def outputs(self) -> list[Path]:
        spec = DATASETS[self.dataset_id]
        kinds = [self.subject.inputs.modality, *(other.modality for other in self.subject.inputs.others), "mask"]
        kinds += ["seg"] if self.subject.inputs.seg is not None else []
        root = Path(self.root)
        return [root / layout_path(spec, kind, self.subject.name).lstrip("/") for kind in kinds]


def _is_done(job: _SubjectJob) -> bool:
    spec = DATASETS[job.dataset_id]
    return record_path(Path(job.root), spec, job.subject.name).is_file() and all(p.is_file() for p in job.outputs())


def _prepare_subject(job: _SubjectJob) -> None:
    """Prepare one subject and write its files, the transform record last (runs in a worker process)."""
    spec = DATASETS[job.dataset_id]
    root = Path(job.root)
    prepared = job.pipeline.run(job.subject.inputs)
    arrays = dict(prepared.images)
    arrays["mask"] = prepared.mask.astype(np.uint8)
    if prepared.seg is not None:
        arrays["seg"] = prepared.seg.astype(np.uint8)
    for kind, array in arrays.items():
        write_image(root / layout_path(spec, kind, job.subject.name).lstrip("/"), array, prepared.grid.affine)
    prepared.record.save(record_path(root, spec, job.subject.name))


@dataclass
class PrepareSummary:
    """What :func:`prepare_dataset` did.

    Attributes:
        dataset_id: the data set.
        root: the data directory.
        found: complete subjects found in the download.
        results: each subject's :class:`JobResult` (done, skipped, failed with its reason).
        incomplete: subjects left out, with why (a missing modality or label map).
        notes: remarks on the download (ages unreadable, ...).
        splits: split-CSV name -> rows written.
        split_scheme: whose split sizes they follow (:data:`SPLIT_SCHEMES`).
        validation_errors: findings of ``brainuad validate`` on the data set (empty when it passes).
        seconds: wall-clock time.
        log: the log file.
    """

    dataset_id: str
    root: Path
    found: int
    results: list[JobResult]
    incomplete: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    split_scheme: SplitScheme = "paper"
    validation_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: Path | None = None

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [result for result in self.results if result.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no subject failed and the data set validates."""
        return not self.failed and not self.validation_errors

    def describe(self) -> str:
        """A short human-readable account."""
        lines = [f"{self.dataset_id}: {self.found} subject(s) found in the download; {self.count('done')} done, "
                 f"{self.count('skipped')} skipped (already prepared), {self.count('failed')} failed, "
                 f"{len(self.incomplete)} incomplete (left out), in {self.seconds:.0f} s"]
        lines += [f"  failed {result.name}: {result.reason}" for result in self.failed]
        lines += [f"  incomplete {name}: {why}" for name, why in sorted(self.incomplete.items())]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  split sizes: {self.split_scheme} ({SPLIT_SCHEMES[self.split_scheme]}), scaled to the "
                     "subjects prepared")
        lines.append("  splits: " + ", ".join(f"{name} {rows}" for name, rows in self.splits.items()))
        errors = self.validation_errors
        lines.append("  validation: " + ("passed" if not errors else
                                         f"{len(errors)} error(s): " + "; ".join(errors[:5])))
        if self.log is not None:
            lines.append(f"  log: {self.log}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"dataset": self.dataset_id, "root": str(self.root), "found": self.found,
                "done": [r.name for r in self.results if r.status == "done"],
                "skipped": [r.name for r in self.results if r.status == "skipped"],
                "failed": {r.name: r.reason for r in self.failed}, "incomplete": self.incomplete,
                "notes": self.notes, "split_scheme": self.split_scheme, "splits": self.splits,
                "validation_errors": self.validation_errors,
                "seconds": round(self.seconds, 1)}


def prepare_dataset(dataset_id: str, src: str | Path, out: str | Path, *, pipeline: Pipeline | None = None,
                    workers: int = 1, splits: SplitScheme = "paper", progress: bool = True) -> PrepareSummary:
    """Prepare a data set's download into the data directory ``out``.

    Args:
        dataset_id: ``ixi``, ``brats21``, ``mslub``, ``atlas`` or ``wmh``.
        src: the download folder (layouts in :mod:`.recipes` and docs/preprocessing.md).
        out: the data directory (created if needed; other data sets in it are kept).
        pipeline: the preprocessing (default :func:`default_pipeline` of the data set).
        workers: subjects prepared in parallel processes (>= 1).
        splits: the split sizes, ``paper`` (Table 1) or ``authors`` (their CSVs); see :data:`SPLIT_SCHEMES`.
        progress: show a progress bar on stderr.

    Returns:
        The :class:`PrepareSummary` (also written to ``out/prepare-<id>.json``).

    Raises:
        ValueError: a bad argument.
        InputError: ``src`` is not a folder or holds no subject; ``out`` is in another space.
    """
    if dataset_id not in DATASETS:
        raise ValueError(f"unknown data set {dataset_id!r}; choose one of {', '.join(DATASETS)}")
    check_int("workers", workers)
    if splits not in SPLIT_SCHEMES:
        raise ValueError(f"splits must be one of {', '.join(SPLIT_SCHEMES)}, got {splits!r}")
    started = time.perf_counter()
    src, root = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(src, "download folder not found")
    pipeline = pipeline or default_pipeline(dataset_id)
    discovery = recipe(dataset_id).find(src)
    if not discovery.subjects:
        raise InputError(src, f"no complete {dataset_id} subject found"
                         + (f" ({len(discovery.incomplete)} incomplete)" if discovery.incomplete else ""),
                         "see docs/preprocessing.md for the folder layout the download must have")
    try:
        split_sizes(dataset_id, len(discovery.subjects), splits)
    except ValueError as error:
        raise InputError(src, str(error)) from None
    with FolderLock(root, f"preparing {dataset_id}"):
        _check_space(root, pipeline)
        spec = DATASETS[dataset_id]
        jobs = [NamedJob(subject.name, _SubjectJob(str(root), dataset_id, subject, pipeline))
                for subject in discovery.subjects]
        log = root / f"prepare-{dataset_id}.log"
        batch = run_jobs(jobs, _prepare_subject, workers=workers, is_done=_is_done, log=log, progress=progress,
                         description=f"preparing {dataset_id}")
        prepared = set(batch.names("done")) | set(batch.names("skipped"))
        summary = PrepareSummary(dataset_id, root, len(discovery.subjects), batch.results, discovery.incomplete,
                                 discovery.notes, split_scheme=splits, log=log)
        try:
            summary.splits = _write_splits(root, spec, discovery.subjects, prepared, splits)
        except ValueError as error:  # too few subjects were prepared to fill the splits
            summary.validation_errors = [f"no split CSVs written: {error}"]
        else:
            summary.validation_errors = _validate(root, dataset_id)
        summary.seconds = time.perf_counter() - started
        write_text(root / f"prepare-{dataset_id}.json", json.dumps(summary.to_dict(), indent=1) + "\n")
    return summary


def _space(pipeline: Pipeline) -> dict:
    """The description of the space a pipeline writes into (what must match within a directory)."""
    registration = pipeline.registration
    return {"atlas": None if registration is None else registration.atlas.fingerprint(),
            "spacing_mm": None if pipeline.resampling is None else pipeline.resampling.spacing_mm,
            "shape": None if pipeline.shape is None else [int(s) for s in pipeline.shape]}


def _check_space(root: Path, pipeline: Pipeline) -> None:
    """Record the directory's space, or check that ``pipeline`` writes into the recorded one."""
    path = root / SPACE_FILE
    wanted = _space(pipeline)
    if not path.is_file():
        atlas = None if pipeline.registration is None else pipeline.registration.atlas
        files = {"image": None if atlas is None or atlas.image_path is None else str(atlas.image_path.resolve()),
                 "mask": None if atlas is None or atlas.mask_path is None else str(atlas.mask_path.resolve())}
        write_text(path, json.dumps({**wanted, "atlas_files": files}, indent=1) + "\n")
        return
    recorded = _read_space(path)
    if {key: recorded.get(key) for key in wanted} != wanted:
        atlas = (recorded.get("atlas") or {}).get("name", "no atlas")
        raise InputError(path, f"this data directory is in another space ({atlas}, "
                               f"{recorded.get('spacing_mm')} mm, shape {recorded.get('shape')})",
                         "prepare into it with the same --atlas, or choose another output folder")


def _read_space(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(path, f"unreadable ({error})", "delete it only if the folder holds no prepared data") from None


def space_atlas(root: str | Path) -> Atlas | None:
    """The atlas a prepared data directory was registered to (from its ``space.json``), to prepare new
    scans into the same space (``predict --raw``); None when it was prepared without registration.

    Raises:
        InputError: ``space.json`` is missing or unreadable, or the atlas file it names is gone or
            has changed (its SHA-256 differs).
    """
    path = Path(root) / SPACE_FILE
    if not path.is_file():
        raise InputError(path, "not found: the data directory was not made by brainuad prepare")
    recorded = _read_space(path)
    fingerprint = recorded.get("atlas")
    if fingerprint is None:
        return None
    if fingerprint.get("image_sha256") == "bundled":
        return Atlas.mni152()
    files = recorded.get("atlas_files") or {}
    if not files.get("image") or not Path(files["image"]).is_file():
        raise InputError(path, f"the atlas file {files.get('image')} it names is missing", "give the atlas by path")
    atlas = Atlas.from_path(files["image"], files.get("mask"))
    if atlas.fingerprint()["image_sha256"] != fingerprint.get("image_sha256"):
        raise InputError(Path(files["image"]), "differs from the atlas the data directory was registered to")
    return atlas


def _write_splits(root: Path, spec: DatasetSpec, subjects: list[FoundSubject], prepared: set[str],
                  scheme: SplitScheme) -> dict[str, int]:
    """Write the split CSVs of the prepared subjects; returns CSV name -> rows."""
    by_name = {subject.name: subject for subject in subjects if subject.name in prepared}
    image = spec.modalities[0] if spec.healthy else spec.eval_modality
    if image is None:
        raise ValueError(f"the {spec.id} data set has no evaluation modality")
    written = {}
    for csv_name, names in assign_splits(spec.id, list(by_name), scheme).items():
        rows = [SplitRecord(img_name=name, age=by_name[name].age, label=0 if spec.healthy else 1,
                            img_path=layout_path(spec, image, name), mask_path=layout_path(spec, "mask", name),
                            seg_path=None if spec.healthy else layout_path(spec, "seg", name))
                for name in names]
        write_split_csv(root / "splits" / csv_name, rows)
        written[csv_name] = len(rows)
    return written


def _validate(root: Path, dataset_id: str) -> list[str]:
    from brainuad.data.validate import validate_data_dir

    report = validate_data_dir(root, datasets=[dataset_id])
    return [f"{finding.path}: {finding.message}" for finding in report.errors]

