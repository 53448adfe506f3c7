"""Benchmark of preprocessing and ``predict --raw`` on real MRI scans, as a user would run them.

Real scans (the folder described in ``../shared/data/README.md``; never part of the tests):

- ``ixi-t1-2mm/``: 40 healthy IXI T1 scans, 2 mm, skull on, not registered (deepbet skull stripping);
- ``mslub-mni/patient07``, ``patient19``: T2 and T1 of two MS patients, already skull stripped and in
  MNI space at 1 mm, with ``lesion.nii.gz`` (skull stripping ``none``: the brain is the scan's
  nonzero voxels, as ``prepare`` does for stripped data);
- ``tcia-glioma-raw/``: the T2 and T1 of a clinical glioma series, 0.9 x 0.9 x 5.5 mm, skull on, no
  label (deepbet).

Detectors: the ``--run`` directories given (each must hold ``thresholds.json`` from ``brainuad
evaluate``, unless ``--threshold`` is given), or, by default, tiny runs trained here on a synthetic
cohort with the command line (``brainuad synth --size tiny``; ``brainuad train`` with the packaged
``tiny/cddpm`` config on T1 and on T2 for ``--minutes`` each, and ``tiny/thresh``, per-scan
equalisation, on both; ``brainuad evaluate --limit 2`` on each, which stores its validation-Dice
thresholds in ``RUN/thresholds.json``).

Every scan goes through the default preprocessing pipeline (``default_pipeline``, what ``prepare``
and ``predict --raw`` use: 1 mm, skull stripping, affine registration to the runs' training atlas,
N4, 192 x 192 x 160) once, and is then predicted by every run of its modality (``load_detector``
with that pipeline, i.e. ``predict --raw``); the maps are written with ``write_prediction`` and read
back with nibabel. Thresholds: a run's stored threshold of the synthetic set closest to the scan
(MS: ``mslub`` on T2, ``wmh`` on T1; glioma: ``brats21`` on T2, ``atlas`` on T1; healthy IXI T1:
``atlas``), else the run's first stored set.

Columns, per scan and run: the status (``ok`` or the error); seconds of preprocessing (shared by
the scan's runs) and of prediction with writing; ``geometry`` (every written map has the input's
shape and affine); ``brain ml`` (the brain mask on the raw grid; 900-2000 ml is plausible, else
flagged ``!``); ``reg Dice`` (the registered brain mask against the atlas brain mask on the
prepared grid; nilearn's MNI152 template > 0.2, i.e. ``load_mni152_brain_mask``, for the synthetic
runs); ``bet Dice`` (MSLUB only: deepbet run on the stripped scan against its nonzero brain); the
threshold; ``flagged %`` (share of the brain above it); and, where a lesion label exists, the mean
anomaly in the lesion and in the rest of the brain, their ratio and the Dice of the binary mask,
all on the raw grid. A second table summarises each cohort and run (mean, and min-max).

Usage::

    python benchmarks/real_scans.py [DATA] [--run RUN ...] [--threshold T] [--limit N]
        [--minutes M] [--work DIR] [--csv PATH]

``DATA`` defaults to ``../shared/data`` beside the repository. ``--work DIR`` keeps the synthetic
cohort, the runs and the predictions there (a re-run reuses finished runs); by default they live in
a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from brainuad.config import packaged_config
from brainuad.errors import InputError
from brainuad.evaluate.run_thresholds import RUN_THRESHOLDS_FILE
from brainuad.methods.registry import load_config
from brainuad.predict import (
    Detector,
    PreparedScan,
    load_detector,
    training_atlas,
    write_prediction,
)
from brainuad.preprocess.prepare import default_pipeline
from brainuad.preprocess.register import Atlas
from brainuad.preprocess.resample import Grid, resample
from brainuad.preprocess.skullstrip import skull_stripper
from brainuad.run_directory import CONFIG_FILE, WEIGHTS_FILE

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
BRAIN_ML_RANGE = (900.0, 2000.0)
EVALUATE_LIMIT = 2
THRESHOLD_SETS = {("mslub", "t2"): "mslub", ("mslub", "t1"): "wmh",
                  ("glioma", "t2"): "brats21", ("glioma", "t1"): "atlas", ("ixi", "t1"): "atlas"}
"""(cohort, modality) -> the synthetic lesion set whose stored threshold a scan is binarised with."""
COLUMNS = ("scan", "cohort", "modality", "skull strip", "run", "status", "prep s", "predict s", "geometry",
           "brain ml", "reg Dice", "bet Dice", "threshold", "flagged %", "lesion mean", "brain mean",
           "lesion ratio", "lesion Dice")


@dataclass(frozen=True)
class Scan:
    """One real scan to benchmark.

    Attributes:
        label: its name in the table (unique).
        cohort: ``ixi``, ``mslub`` or ``glioma``.
        modality: ``t1`` or ``t2``: the runs of this modality predict it.
        path: the raw file.
        skull_strip: the skull stripper (``deepbet`` for scans with skull, ``none`` for stripped ones).
        lesion: the lesion label on the scan's grid, or None.
    """

    label: str
    cohort: str
    modality: str
    path: Path
    skull_strip: str
    lesion: Path | None = None


@dataclass(frozen=True)
class Run:
    """A trained run: its directory, method and modality (from its ``config.yaml``)."""

    path: Path
    method: str
    modality: str


@dataclass
class Row:
    """One table row: a scan predicted by one run (``run`` empty when the scan failed before)."""

    scan: Scan
    run: str = ""
    status: str = "ok"
    values: dict[str, float | str] = field(default_factory=dict)

    def record(self) -> dict[str, float | str]:
        """Column -> value (numbers unrounded; empty where a column does not apply)."""
        return {"scan": self.scan.label, "cohort": self.scan.cohort, "modality": self.scan.modality,
                "skull strip": self.scan.skull_strip, "run": self.run, "status": self.status,
                **{column: self.values.get(column, "") for column in COLUMNS[6:]}}

    def cells(self) -> dict[str, str]:
        """Column -> formatted text."""
        return {column: value if isinstance(value, str) else _format(column, value)
                for column, value in self.record().items()}


def _format(column: str, value: float) -> str:
    """A number as the table shows it."""
    if not np.isfinite(value):
        return "n/a"
    if column == "brain ml":
        low, high = BRAIN_ML_RANGE
        return f"{value:.0f}" + ("" if low <= value <= high else " !")
    if column in ("prep s", "predict s", "flagged %", "lesion ratio"):
        return f"{value:.1f}"
    if column in ("lesion mean", "brain mean", "threshold"):
        return f"{value:.3g}"
    return f"{value:.3f}"


# --------------------------------------------------------------------------------------------
# Scans and runs
# --------------------------------------------------------------------------------------------


def find_scans(data: Path, limit: int | None) -> list[Scan]:
    """The real scans under ``data``: the IXI T1 scans (the first ``limit``, sorted by name), the T2
    and T1 of each MSLUB patient, the glioma T2 and T1. Missing folders are reported and skipped."""
    scans: list[Scan] = []
    ixi = sorted((data / "ixi-t1-2mm").glob("*.nii.gz"))[:limit]
    scans += [Scan(path.name.split("_")[0], "ixi", "t1", path, "deepbet") for path in ixi]
    for patient in sorted((data / "mslub-mni").glob("patient*")):
        for modality in ("t2", "t1"):
            scans.append(Scan(f"{patient.name} {modality.upper()}", "mslub", modality,
                              patient / f"{modality.upper()}.nii.gz", "none", patient / "lesion.nii.gz"))
    glioma = sorted((data / "tcia-glioma-raw").glob("*_t2.nii.gz"))
    for path in glioma:
        subject = path.name[: -len("_t2.nii.gz")]
        scans += [Scan(f"{subject} {modality.upper()}", "glioma", modality,
                       path.with_name(f"{subject}_{modality}.nii.gz"), "deepbet") for modality in ("t2", "t1")]
    for folder in ("ixi-t1-2mm", "mslub-mni", "tcia-glioma-raw"):
        if not (data / folder).is_dir():
            print(f"note: {data / folder} not found, its scans are left out")
    return scans


def read_runs(paths: list[Path], threshold: float | None) -> list[Run]:
    """The runs named on the command line, with their method and modality; each needs its stored
    thresholds unless ``threshold`` is given."""
    runs = []
    for path in paths:
        if not (path / CONFIG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise SystemExit(f"{path}: not a trained run (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
        if threshold is None and not (path / RUN_THRESHOLDS_FILE).is_file():
            raise SystemExit(f"{path}: no {RUN_THRESHOLDS_FILE}; run 'brainuad evaluate {path} --data DATA' "
                             "first, or give --threshold T")
        config = load_config(path / CONFIG_FILE)
        runs.append(Run(path, config.method, config.data.modality))
    return runs


def _brainuad(*arguments: str) -> float:
    """Run ``brainuad ARGUMENTS`` (the command line, in this interpreter); its seconds. Exits with the
    command's output tail when it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "brainuad", *arguments], check=False, capture_output=True,
                          text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"brainuad {' '.join(arguments)} failed (exit {done.returncode}):\n{tail}")
    return time.perf_counter() - started


def train_runs(work: Path, minutes: float) -> list[Run]:
    """Tiny cDDPM (``minutes`` each) and Thresh runs on T1 and T2 of a tiny synthetic cohort in
    ``work``, each evaluated (``--limit 2``) so that it stores its thresholds. Finished steps are
    reused."""
    data = work / "synthetic"
    if not (data / "splits").is_dir():
        seconds = _brainuad("synth", str(data), "--size", "tiny", "--workers", "1")
        print(f"synthetic tiny cohort in {data}: {seconds:.0f} s", flush=True)
    runs = []
    for method in ("cddpm", "thresh"):
        for modality in ("t1", "t2"):
            run = work / "runs" / f"{method}-{modality}"
            runs.append(Run(run, method, modality))
            if (run / RUN_THRESHOLDS_FILE).is_file():
                print(f"{run.name}: trained and evaluated run found", flush=True)
                continue
            budget = [] if method == "thresh" else [f"train.max_minutes={minutes}", "train.max_epochs=100000",
                                                    "train.lr_schedule=cosine", "train.check_val_every_n_epoch=10"]
            trained = _brainuad("train", str(packaged_config(f"tiny/{method}")), "--data", str(data), "--out", str(run),
                                f"data.modality={modality}", "data.fold=0", *budget)
            evaluated = _brainuad("evaluate", str(run), "--data", str(data), "--limit", str(EVALUATE_LIMIT),
                                  "--no-ablation", "--out", str(work / "evaluation" / run.name))
            print(f"{run.name}: trained in {trained:.0f} s, evaluated (--limit {EVALUATE_LIMIT}) in {evaluated:.0f} s",
                  flush=True)
    return runs


def detector_for(run: Run, scan: Scan, threshold: float | None, cache: dict) -> Detector:
    """The run's detector for ``scan`` (cached): raw scans preprocessed with the scan's skull
    stripper and the run's training atlas; binarised with ``threshold`` when given, else with the
    run's stored threshold of the scan's set (:data:`THRESHOLD_SETS`), else of its first set."""
    wanted = None if threshold is not None else THRESHOLD_SETS.get((scan.cohort, scan.modality))
    key = (run.path, scan.skull_strip, wanted)
    if key not in cache:
        atlas, _ = training_atlas(run.path)
        pipeline = default_pipeline(atlas=atlas, skull_strip=scan.skull_strip)
        try:
            cache[key] = load_detector(run.path, threshold=threshold, dataset=wanted, preprocessing=pipeline)
        except InputError:  # the run was evaluated without that set: its first set's threshold
            if wanted is None:
                raise
            cache[key] = load_detector(run.path, preprocessing=pipeline)
    return cache[key]


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (nan when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else float("nan")


def registration_dice(prepared: PreparedScan, atlas: Atlas) -> float:
    """Dice of the registered brain mask and the atlas brain mask, on the prepared grid."""
    preprocessed = prepared.preprocessed
    template = atlas.load()
    on_grid = resample(template.mask.astype(np.float32), template.grid, preprocessed.grid,
                       interpolation="nearest") > 0.5
    return dice(preprocessed.mask, on_grid)


def deepbet_dice(scan: Scan) -> float:
    """Dice of deepbet's brain mask on an already stripped scan against the scan's nonzero voxels."""
    image = nib.load(scan.path)
    array = np.asarray(image.dataobj, dtype=np.float32)
    found = skull_stripper("deepbet").brain_mask(array, Grid(array.shape, image.affine), None)
    return dice(found, array != 0)


def geometry_check(scan: Scan, files: list[Path]) -> str:
    """``yes`` when every written map has the input's shape and affine (nibabel), else what differs."""
    reference = nib.load(scan.path)
    problems = []
    for path in files:
        written = nib.load(path)
        if written.shape != reference.shape:
            problems.append(f"{path.name} shape {written.shape} != {reference.shape}")
        elif not np.allclose(written.affine, reference.affine, atol=1e-4):
            problems.append(f"{path.name} affine differs")
    return "yes" if not problems else "no: " + "; ".join(problems)


def lesion_values(scan: Scan, anomaly: np.ndarray, binary: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Mean anomaly inside the lesion and in the rest of the brain, their ratio and the binary mask's
    Dice against the lesion, on the raw grid."""
    label = nib.load(scan.lesion)
    if label.shape != anomaly.shape or not np.allclose(label.affine, nib.load(scan.path).affine, atol=1e-4):
        raise InputError(scan.lesion, "lesion label is not on the scan's grid")
    lesion = (np.asarray(label.dataobj) > 0) & brain
    rest = brain & ~lesion
    inside, outside = float(anomaly[lesion].mean()), float(anomaly[rest].mean())
    return {"lesion mean": inside, "brain mean": outside,
            "lesion ratio": inside / outside if outside > 0 else float("nan"), "lesion Dice": dice(binary, lesion)}


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def benchmark_scan(scan: Scan, runs: list[Run], threshold: float | None, out: Path, cache: dict) -> list[Row]:
    """Preprocess one scan once (all runs share one training atlas), predict it with each run of its
    modality; one row per run (one row with the error when preprocessing fails)."""
    matching = [run for run in runs if run.modality == scan.modality]
    if not matching:
        return [Row(scan, status=f"skipped: no {scan.modality} run")]
    detectors = [detector_for(run, scan, threshold, cache) for run in matching]
    started = time.perf_counter()
    try:
        prepared = detectors[0].prepare(scan.path)
    except Exception as error:  # noqa: BLE001 - a benchmark reports every failure and goes on
        return [Row(scan, status=f"failed: {type(error).__name__}: {error}")]
    shared: dict[str, float | str] = {"prep s": time.perf_counter() - started}
    raw_voxel_ml = abs(float(np.linalg.det(prepared.affine[:3, :3]))) / 1000.0
    shared["brain ml"] = float(prepared.brain_mask.sum()) * raw_voxel_ml
    shared["reg Dice"] = registration_dice(prepared, training_atlas(matching[0].path)[0])
    if scan.cohort == "mslub":
        shared["bet Dice"] = deepbet_dice(scan)
    rows = []
    for run, detector in zip(matching, detectors):
        row = Row(scan, run.path.name, values=dict(shared))
        started = time.perf_counter()
        try:
            result = detector.predict_prepared(prepared)
            files = write_prediction(result, out / scan.label.replace(" ", "_") / run.path.name)
        except Exception as error:  # noqa: BLE001
            row.status = f"failed: {type(error).__name__}: {error}"
            rows.append(row)
            continue
        row.values["predict s"] = time.perf_counter() - started
        maps = [files.anomaly_map, files.binary_mask] + ([files.reconstruction] if files.reconstruction else [])
        row.values["geometry"] = geometry_check(scan, maps)
        brain = result.brain_mask
        row.values["threshold"] = result.threshold.value
        row.values["flagged %"] = 100.0 * int((result.binary_mask & brain).sum()) / max(int(brain.sum()), 1)
        if scan.lesion is not None:
            row.values.update(lesion_values(scan, result.anomaly_map, result.binary_mask, brain))
        rows.append(row)
    return rows


def markdown(header: list[str], lines: list[list[str]]) -> str:
    """A Markdown table."""
    text = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(text + ["| " + " | ".join(line) + " |" for line in lines])


def summary(rows: list[Row]) -> str:
    """Per cohort and run: scans done / tried, then the mean (min-max) of each numeric column."""
    numeric = ("prep s", "predict s", "brain ml", "reg Dice", "flagged %", "lesion ratio", "lesion Dice")
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scan.cohort, row.scan.modality, row.run), []).append(row)
    lines = []
    for (cohort, modality, run), members in groups.items():
        done = [row for row in members if row.status == "ok"]
        line = [cohort, modality, run or "-", f"{len(done)}/{len(members)}",
                f"{sum(row.values.get('geometry') == 'yes' for row in done)}/{len(done)}"]
        for column in numeric:
            values = np.array([row.values[column] for row in done if column in row.values], dtype=float)
            values = values[np.isfinite(values)]
            if values.size == 0:
                line.append("")
            elif values.size == 1:
                line.append(_format(column, values[0]).rstrip(" !"))
            else:
                cells = [_format(column, value).rstrip(" !") for value in (values.mean(), values.min(), values.max())]
                line.append(f"{cells[0]} ({cells[1]}-{cells[2]})")
        lines.append(line)
    return markdown(["cohort", "modality", "run", "ok", "geometry ok", *numeric], lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA,
                        help="the real-scan folder (default: ../shared/data beside the repository)")
    parser.add_argument("--run", type=Path, action="append", default=[],
                        help="a trained run to use (repeat; its modality decides which scans it predicts); "
                             "default: train tiny cDDPM and Thresh runs on a synthetic cohort")
    parser.add_argument("--threshold", type=float, default=None,
                        help="binarise every run's map at this value instead of its stored threshold")
    parser.add_argument("--limit", type=int, default=None, help="take only the first N IXI scans (default all 40)")
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget per cDDPM run (default 2)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the synthetic cohort, runs and predictions here (default: a temporary folder)")
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-scan table as CSV")
    arguments = parser.parse_args()
    data = arguments.data.resolve()
    if not data.is_dir():
        raise SystemExit(f"{data}: real-scan folder not found (give it as the first argument)")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="brainuad-real-") as temporary:
        work = arguments.work or Path(temporary)
        print(f"{os.cpu_count()} CPU cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
              f"data {data}; work {work}", flush=True)
        runs = read_runs(arguments.run, arguments.threshold) if arguments.run else train_runs(work, arguments.minutes)
        if len({training_atlas(run.path)[0].name for run in runs}) > 1:  # a scan is preprocessed once for all
            raise SystemExit("the runs were trained in different atlas spaces: benchmark them separately")
        origin = (f"--threshold {arguments.threshold:g} for every run" if arguments.threshold is not None else
                  f"each run's stored validation-Dice threshold ({RUN_THRESHOLDS_FILE}, written by "
                  f"'brainuad evaluate --limit {EVALUATE_LIMIT}' on the synthetic cohort)")
        print(f"runs: {', '.join(f'{run.path.name} ({run.method}, {run.modality})' for run in runs)}\n"
              f"thresholds: {origin}", flush=True)
        scans = find_scans(data, arguments.limit)
        rows: list[Row] = []
        cache: dict = {}
        for index, scan in enumerate(scans, start=1):
            scan_rows = benchmark_scan(scan, runs, arguments.threshold, work / "predictions", cache)
            rows += scan_rows
            status = "; ".join(f"{row.run or '-'} {row.status}" for row in scan_rows)
            print(f"[{index}/{len(scans)}] {scan.label}: {scan_rows[0].values.get('prep s', float('nan')):.1f} s "
                  f"preprocessing; {status}", flush=True)
        print("\nthresholds used:")
        for detector in cache.values():
            print(f"  {detector.name}: {detector.threshold.value:.4g}, {detector.threshold.origin}")
        table = [[row.cells()[column] for column in COLUMNS] for row in rows]
        print("\n" + markdown(list(COLUMNS), table) + "\n\n" + summary(rows))
        print(f"\n{len(scans)} scans in {(time.perf_counter() - started) / 60:.1f} min")
    if arguments.csv is not None:
        arguments.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(arguments.csv, "w", newline="") as stream:
            writer = csv.DictWriter(stream, COLUMNS)
            writer.writeheader()
            writer.writerows(row.record() for row in rows)
        print(f"CSV: {arguments.csv}")


if __name__ == "__main__":
    main()
