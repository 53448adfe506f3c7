"""The threshold a detector binarises its anomaly maps with (:class:`ThresholdChoice`) and where it
comes from (:func:`resolve_threshold`): a value given, an evaluation's ``summary.json``, the
threshold ``brainuad calibrate`` stored in the run from healthy scans of the user's site, or the
validation threshold ``brainuad evaluate`` stored in the run (read through
:mod:`brainuad.evaluate.run_thresholds` only, so predicting does not load the reporting code)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brainuad.checks import check_number
from brainuad.errors import InputError
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.run_thresholds import (
    RUN_THRESHOLDS_FILE,
    RunThreshold,
    read_calibration,
    read_run_thresholds,
    summary_thresholds,
)

__all__ = ["ThresholdChoice", "resolve_threshold"]


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a detector binarises with and the post-processing it belongs to.

    Attributes:
        value: binarise the post-processed residual with ``R > value`` (residual units, >= 0).
        postprocessing: applied to the residual before binarising (and the components after).
        origin: where the value comes from, in words (printed with every prediction).
    """

    value: float
    postprocessing: PostProcessing
    origin: str

    def __post_init__(self) -> None:
        check_number("ThresholdChoice value", self.value, 0)
        if not isinstance(self.postprocessing, PostProcessing):
            raise ValueError(f"ThresholdChoice postprocessing must be a PostProcessing, got "
                             f"{type(self.postprocessing).__name__}")


def _stored_choice(records: Sequence[RunThreshold], dataset: str | None, where: Path, how: str) -> ThresholdChoice:
    """The record of ``dataset`` (default: the first) among evaluation thresholds."""
    record: RunThreshold | None
    if dataset is None:
        record = records[0]
    else:
        record = next((record for record in records if record.dataset == dataset), None)
        if record is None:
            raise InputError(where, f"holds no threshold for set {dataset!r} "
                                    f"(sets: {', '.join(record.dataset for record in records)})")
    origin = (f"{record.strategy} threshold of {record.dataset} ({how}; chosen on {record.source} with "
              f"{record.postprocessing.order} post-processing, evaluation {record.evaluation})")
    return ThresholdChoice(record.value, record.postprocessing, origin)


def resolve_threshold(run_dir: str | Path, *, threshold: float | None = None,
                      threshold_from: str | Path | None = None, dataset: str | None = None) -> ThresholdChoice:
    """The threshold to predict with, in this order of precedence:

    1. ``threshold``: the value given, with the paper's post-processing (:class:`PostProcessing`
       defaults);
    2. ``threshold_from``: the headline threshold of ``dataset`` (default: the run's first set) in
       an evaluation's ``summary.json``, with that evaluation's post-processing;
    3. with ``dataset``: the threshold ``brainuad evaluate`` stored in ``RUN/thresholds.json`` for
       that lesion set;
    4. otherwise the threshold ``brainuad calibrate`` stored there (healthy scans of the user's
       site), else the one ``brainuad evaluate`` stored for the run's first set.

    Raises:
        ValueError: ``threshold`` is negative or not finite, or given with ``threshold_from`` or
            ``dataset``.
        InputError: no threshold is stored for the run (never evaluated), or the named evaluation
            or set has none.
    """
    run_dir = Path(run_dir)
    if threshold is not None:
        if threshold_from is not None or dataset is not None:
            raise ValueError(f"threshold={threshold!r} is a value: give it without threshold_from "
                             f"({threshold_from!r}) and dataset ({dataset!r})")
        return ThresholdChoice(check_number("threshold", threshold, 0), PostProcessing(),
                               "given explicitly; paper post-processing")
    if threshold_from is not None:
        records = summary_thresholds(threshold_from, run_dir)
        if not records:
            raise InputError(threshold_from, f"holds no lesion-set threshold for run {run_dir.name!r}")
        return _stored_choice(records, dataset, Path(threshold_from), f"from {threshold_from}")
    stored = run_dir / RUN_THRESHOLDS_FILE
    calibration = read_calibration(run_dir) if dataset is None else None
    if calibration is not None:
        bound = "" if calibration.feasible else "; too few scans for the bound: it flags none of them"
        return ThresholdChoice(calibration.value, calibration.postprocessing,
                               f"{calibration.strategy} threshold calibrated on {len(calibration.scans)} healthy "
                               f"scan(s) by brainuad calibrate (stored in {stored}; {calibration.postprocessing.order} "
                               f"post-processing{bound})")
    records = read_run_thresholds(run_dir)
    if not records:
        raise InputError(run_dir, f"no threshold stored for this run (no {RUN_THRESHOLDS_FILE})",
                         "run 'brainuad evaluate RUN --data DATA' or 'brainuad calibrate RUN HEALTHY_SCAN...' first, "
                         "or give --threshold T or --threshold-from EVAL/summary.json")
    return _stored_choice(records, dataset, stored, f"stored in {stored}")
