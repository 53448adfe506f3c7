"""A threshold calibrated on healthy scans of the user's own site (``brainuad calibrate``).

A threshold chosen on one domain (the IXI validation volumes, a lesion set's validation split)
can flag most of a brain scanned elsewhere. With healthy scans of the new site, the conformal
thresholds of :mod:`brainuad.evaluate.conformal` bound what a new healthy scan of that site will
have flagged: the expected voxel false-positive rate (``fpr``) or the probability of more than a
given volume (``volume``). The scans are scored exactly as ``brainuad predict`` scores them (same
reading, grid, post-processing), so the stored threshold is the one predict applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from brainuad.errors import BrainUADError
from brainuad.evaluate.conformal import ConformalFPR, ConformalVolume
from brainuad.evaluate.run_thresholds import CalibratedThreshold
from brainuad.predict.detector import Detector

__all__ = ["Bound", "CalibrationScores", "calibrate", "score_healthy_scans"]

Bound = Literal["fpr", "volume"]


@dataclass(frozen=True)
class CalibrationScores:
    """The post-processed brain scores of the healthy scans a threshold is calibrated on.

    Attributes:
        names: the scans' names.
        volumes: one (B_i,) float32 array per scan: its post-processed map inside its brain mask
            on the model grid (zeros included).
        failures: the scans that could not be read or used, each with its error.
    """

    names: tuple[str, ...]
    volumes: tuple[np.ndarray, ...]
    failures: tuple[BrainUADError, ...]


def score_healthy_scans(detector: Detector, scans: Sequence[str | Path], mask: str | Path | None = None,
                        progress: Callable[[int], None] | None = None) -> CalibrationScores:
    """Score healthy scans as ``brainuad predict`` would (the detector's post-processing), keeping
    each scan's brain scores; a scan that fails is kept among the failures and the rest go on.

    Args:
        detector: the run's detector; its threshold's post-processing is applied, its value unused.
        scans: healthy scan files (preprocessed, or raw when the detector has a pipeline).
        mask: one brain mask for every scan (default: each scan's own).
        progress: called with the number of scans done after each one.
    """
    names, volumes, failures = [], [], []
    for done, (_, outcome) in enumerate(detector.predict_files(scans, mask), start=1):
        if isinstance(outcome, BrainUADError):
            failures.append(outcome)
        else:
            names.append(outcome.name)
            volumes.append(outcome.grid.anomaly_map[outcome.grid.brain_mask].astype(np.float32))
        if progress is not None:
            progress(done)
    return CalibrationScores(tuple(names), tuple(volumes), tuple(failures))


def calibrate(scores: CalibrationScores, detector: Detector, *, bound: Bound, alpha: float,
              max_false_ml: float = 1.0) -> CalibratedThreshold:
    """The conformal threshold of the healthy scans' scores, and its leave-one-out false-positive
    rate (each scan measured at the threshold calibrated on the others).

    Args:
        scores: the healthy scans' brain scores (:func:`score_healthy_scans`).
        detector: the detector they were scored with (its post-processing is stored).
        bound: ``fpr`` (expected voxel false-positive rate <= alpha) or ``volume`` (more than
            ``max_false_ml`` ml flagged with probability <= alpha).
        alpha: the bound, in (0, 1).
        max_false_ml: the tolerated false-lesion volume of ``volume``, in ml.

    Raises:
        BrainUADError: fewer than two healthy scans could be scored.
        ValueError: a bad ``bound``, ``alpha`` or ``max_false_ml``.
    """
    strategy: ConformalFPR | ConformalVolume
    if bound == "fpr":
        strategy = ConformalFPR(alpha)
    elif bound == "volume":
        strategy = ConformalVolume(alpha, max_false_ml)
    else:
        raise ValueError(f"bound must be 'fpr' or 'volume', got {bound!r}")
    if len(scores.volumes) < 2:
        raise BrainUADError(f"calibration needs at least 2 healthy scans, {len(scores.volumes)} could be scored: "
                            "give more healthy scans of the site")
    choice = strategy.choose(scores.volumes)
    held_out = []
    for index, volume in enumerate(scores.volumes):
        others = [other for position, other in enumerate(scores.volumes) if position != index]
        held_out.append(float(np.mean(volume > strategy.choose(others).value)))
    return CalibratedThreshold(strategy.label, choice.value, detector.threshold.postprocessing, alpha,
                               choice.feasible, scores.names, float(np.mean(held_out)))
