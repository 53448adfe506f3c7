"""The thresholds an evaluation keeps in each run directory, for ``brainuad predict``.

``RUN/thresholds.json`` is a contract between ``brainuad evaluate`` and ``brainuad calibrate``
(which write it) and ``brainuad predict`` (which reads it, importing this module alone: no
protocol, no plotting). It holds the headline threshold of every evaluated lesion set and, after
``brainuad calibrate``, one threshold calibrated on the user's own healthy scans
(:class:`CalibratedThreshold`); each writer keeps what the other wrote. Its format is versioned
(:data:`FORMAT_VERSION`); a file of a newer version is refused with a message, one without a
version is the first format (identical fields; version 2 added ``calibration``). The thresholds of
an evaluation's ``summary.json`` are read here too (``predict --threshold-from``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainuad.atomic import write_text
from brainuad.data.layout import LESION_SETS
from brainuad.errors import InputError
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.results import FULL, PoolSource, RunResult, to_jsonable

__all__ = [
    "CalibratedThreshold",
    "FORMAT_VERSION",
    "RUN_THRESHOLDS_FILE",
    "RunThreshold",
    "read_calibration",
    "read_run_thresholds",
    "run_thresholds",
    "summary_thresholds",
    "write_calibration",
    "write_run_thresholds",
]

RUN_THRESHOLDS_FILE = "thresholds.json"
FORMAT_VERSION = 2
"""Version of ``thresholds.json``; raise it when a field changes meaning or is removed."""


@dataclass(frozen=True)
class RunThreshold:
    """The headline threshold an evaluation chose for one lesion set of a run.

    ``brainuad predict`` binarises a scan's residual with it, after the same post-processing.

    Attributes:
        dataset: the lesion set (``brats21``, ...).
        strategy: the threshold's label (``val-dice``, ``healthy-fpr-5%``, ...); never the oracle.
        source: what it was chosen on: "lesion-val" (the set's validation split) or "healthy-val".
        value: binarise the post-processed residual with ``R > value`` (residual units, [0, 1]).
        postprocessing: the post-processing the residuals had before thresholding.
        n_val: volumes of the set's validation split pooled (0 for a healthy-val threshold).
        evaluation: the ``summary.json`` of the evaluation it comes from.
    """

    dataset: str
    strategy: str
    source: PoolSource
    value: float
    postprocessing: PostProcessing
    n_val: int
    evaluation: Path


@dataclass(frozen=True)
class CalibratedThreshold:
    """A threshold calibrated on healthy scans of the user's own site (``brainuad calibrate``).

    Attributes:
        strategy: its label (``conformal-fpr-5%``, ``conformal-volume-10%-1ml``).
        value: binarise the post-processed residual with ``R > value``.
        postprocessing: the post-processing the calibration maps had.
        alpha: the bound asked for.
        feasible: False when the scans were too few to meet it (the value then flags none of them).
        scans: the names of the healthy scans calibrated on.
        leave_one_out_rate: the mean voxel false-positive rate of each scan at the threshold
            calibrated on the others (an honest estimate of the rate on a new healthy scan).
    """

    strategy: str
    value: float
    postprocessing: PostProcessing
    alpha: float
    feasible: bool
    scans: tuple[str, ...]
    leave_one_out_rate: float


def run_thresholds(run: RunResult, evaluation: Path) -> tuple[RunThreshold, ...]:
    """The headline threshold (full post-processing) of every lesion set of an evaluated run.

    Args:
        run: the evaluated run.
        evaluation: the ``summary.json`` the run was written to.
    """
    records = []
    for result in run.sets:
        scores = result.scores(run.thresholds[0], FULL)
        records.append(RunThreshold(result.dataset, scores.threshold.strategy, scores.source,
                                    float(scores.threshold.value), run.postprocessing, result.n_val,
                                    Path(evaluation)))
    return tuple(records)


def _ordered_by_set(records: Iterable[RunThreshold]) -> tuple[RunThreshold, ...]:
    by_set = {record.dataset: record for record in records}
    return tuple(by_set[name] for name in LESION_SETS if name in by_set)


def _write(run_dir: Path, records: Sequence[RunThreshold], calibration: CalibratedThreshold | None,
           writer: str) -> Path:
    payload = {"format_version": FORMAT_VERSION, "written_by": writer, "thresholds": to_jsonable(records),
               "calibration": None if calibration is None else to_jsonable(calibration)}
    return write_text(run_dir / RUN_THRESHOLDS_FILE, json.dumps(payload, indent=2, allow_nan=False) + "\n")


def _stored(run_dir: Path) -> tuple[tuple[RunThreshold, ...], CalibratedThreshold | None]:
    """What the run stores now; nothing when the stored file cannot be read (it is replaced)."""
    try:
        return read_run_thresholds(run_dir), read_calibration(run_dir)
    except InputError:
        return (), None


def write_run_thresholds(run_dir: str | Path, records: Sequence[RunThreshold]) -> Path:
    """Store ``records`` in ``RUN/thresholds.json``, atomically.

    Sets already stored and not in ``records`` are kept (an evaluation of some sets only does not
    drop the others), and so is a calibration; the file lists the sets in the protocol's order
    (:data:`LESION_SETS`), so the first one is the run's first set. A stored file that cannot be
    read is replaced.
    """
    run_dir = Path(run_dir)
    kept, calibration = _stored(run_dir)
    return _write(run_dir, _ordered_by_set([*kept, *records]), calibration, "brainuad evaluate")


def write_calibration(run_dir: str | Path, calibration: CalibratedThreshold) -> Path:
    """Store ``calibration`` in ``RUN/thresholds.json`` (replacing an earlier one; the lesion-set
    thresholds are kept), atomically."""
    run_dir = Path(run_dir)
    kept, _ = _stored(run_dir)
    return _write(run_dir, kept, calibration, "brainuad calibrate")


def _threshold_record(entry: Any) -> RunThreshold:
    postprocessing = PostProcessing(**entry["postprocessing"])
    value = float(entry["value"])
    if not math.isfinite(value) or entry["source"] not in ("lesion-val", "healthy-val"):
        raise ValueError(f"value {entry['value']!r} or source {entry['source']!r} is not a validation threshold")
    return RunThreshold(str(entry["dataset"]), str(entry["strategy"]), entry["source"], value, postprocessing,
                        int(entry["n_val"]), Path(entry["evaluation"]))


def _payload(run_dir: str | Path) -> tuple[Path, Any]:
    """The parsed ``RUN/thresholds.json`` (None when there is none).

    Raises:
        InputError: the file exists but is not a thresholds file this brainuad reads.
    """
    path = Path(run_dir) / RUN_THRESHOLDS_FILE
    if not path.is_file():
        return path, None
    try:
        payload = json.loads(path.read_text())
        version = payload.get("format_version", 1)
    except (OSError, ValueError, AttributeError) as error:
        raise InputError(path, f"is not a readable thresholds file ({type(error).__name__}: {error})",
                         "run brainuad evaluate on the run again to rewrite it") from None
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(path, f"has format version {version!r}; this brainuad reads versions up to "
                               f"{FORMAT_VERSION}", "update brainuad, or run brainuad evaluate on the run again")
    return path, payload


def read_run_thresholds(run_dir: str | Path) -> tuple[RunThreshold, ...]:
    """The lesion-set thresholds stored in ``RUN/thresholds.json`` in the protocol's set order;
    empty when the run was never evaluated.

    Raises:
        InputError: the file exists but is not a thresholds file brainuad wrote.
    """
    path, payload = _payload(run_dir)
    if payload is None:
        return ()
    try:
        return _ordered_by_set(_threshold_record(entry) for entry in payload["thresholds"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(path, f"is not a readable thresholds file ({type(error).__name__}: {error})",
                         "run brainuad evaluate on the run again to rewrite it") from None


def read_calibration(run_dir: str | Path) -> CalibratedThreshold | None:
    """The threshold ``brainuad calibrate`` stored in the run, or None.

    Raises:
        InputError: the file exists but its calibration cannot be read.
    """
    path, payload = _payload(run_dir)
    entry = None if payload is None else payload.get("calibration")
    if entry is None:
        return None
    try:
        value = float(entry["value"])
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"value {entry['value']!r} is not a threshold")
        return CalibratedThreshold(str(entry["strategy"]), value, PostProcessing(**entry["postprocessing"]),
                                   float(entry["alpha"]), bool(entry["feasible"]),
                                   tuple(str(name) for name in entry["scans"]), float(entry["leave_one_out_rate"]))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InputError(path, f"holds no readable calibration ({type(error).__name__}: {error})",
                         "run brainuad calibrate on the run again") from None


def summary_thresholds(summary_path: str | Path, run_dir: str | Path) -> tuple[RunThreshold, ...]:
    """The headline thresholds of one run in an evaluation's ``summary.json``.

    The run is found by its name in the summary: its directory name (or its full path, where two
    evaluated runs shared a directory name).

    Raises:
        InputError: the file is not an evaluation summary, or it holds no run of that name.
    """
    summary_path, run_dir = Path(summary_path), Path(run_dir)
    if not summary_path.is_file():
        raise InputError(summary_path, "evaluation summary not found", "give the summary.json brainuad evaluate wrote")
    try:
        runs = [run for group in json.loads(summary_path.read_text())["summary"]["groups"] for run in group["runs"]]
        names = [run["name"] for run in runs]
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InputError(summary_path, f"is not a brainuad evaluation summary ({type(error).__name__}: {error})") \
            from None
    matches = [run for run in runs if run["name"] == run_dir.name
               or (os.sep in run["name"] and Path(run["name"]).resolve() == run_dir.resolve())]
    if not matches:
        raise InputError(summary_path, f"holds no run named {run_dir.name!r} (runs: {', '.join(names)})",
                         "a threshold belongs to the model it was chosen for")
    run = matches[0]
    try:
        headline = run["thresholds"][0]
        records = []
        for result in run["sets"]:
            scores = next(entry for entry in result["thresholded"]
                          if entry["postprocessing"] == FULL and entry["threshold"]["strategy"] == headline)
            records.append(_threshold_record({
                "dataset": result["dataset"], "strategy": headline, "source": scores["source"],
                "value": scores["threshold"]["value"], "postprocessing": run["postprocessing"],
                "n_val": result["n_val"], "evaluation": str(summary_path.resolve())}))
    except (ValueError, TypeError, KeyError, StopIteration) as error:
        raise InputError(summary_path, f"run {run['name']!r}: no readable headline threshold "
                                       f"({type(error).__name__}: {error})") from None
    return _ordered_by_set(records)
