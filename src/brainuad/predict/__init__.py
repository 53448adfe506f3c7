"""Anomaly maps of preprocessed scans, written in each scan's own geometry (``brainuad predict``).

- :mod:`~brainuad.predict.inputs`: the scans named on the command line, the brain mask beside a
  scan, reading a scan with its mask.
- :mod:`~brainuad.predict.thresholds`: the threshold a detector binarises with and where it comes
  from (a value, an evaluation's ``summary.json``, the run's stored validation threshold).
- :mod:`~brainuad.predict.detector`: the :class:`Detector` (steps of a prediction, raw scans, many
  scans), :func:`load_detector` and the types a prediction returns.
- :mod:`~brainuad.predict.outputs`: the NIfTI maps and PNG overview written for one scan.

The axis-order helpers (:class:`~brainuad.data.orientation.Reorientation`,
:func:`~brainuad.data.orientation.check_orientation`) live in the data layer and are re-exported
here, as are the public names of the submodules.
"""

from __future__ import annotations

from brainuad.data.orientation import (
    TRAINING_ORIENTATION,
    Reorientation,
    check_orientation,
)
from brainuad.predict.detector import (
    SPACING_TOLERANCE_MM,
    Detector,
    GridMaps,
    PredictionResult,
    PreparedScan,
    ScanLike,
    load_detector,
    training_atlas,
)
from brainuad.predict.inputs import (
    LABEL_SUFFIXES,
    MODALITY_SUFFIXES,
    OUTPUT_SUFFIXES,
    InputDiscovery,
    LoadedScan,
    discover_inputs,
    find_contrast,
    find_mask,
    load_scan,
)
from brainuad.predict.outputs import PredictionFiles, write_overview, write_prediction
from brainuad.predict.thresholds import ThresholdChoice, resolve_threshold

__all__ = [
    "Detector",
    "GridMaps",
    "InputDiscovery",
    "LABEL_SUFFIXES",
    "LoadedScan",
    "MODALITY_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "PredictionFiles",
    "PredictionResult",
    "PreparedScan",
    "Reorientation",
    "SPACING_TOLERANCE_MM",
    "ScanLike",
    "TRAINING_ORIENTATION",
    "ThresholdChoice",
    "check_orientation",
    "discover_inputs",
    "find_contrast",
    "find_mask",
    "load_detector",
    "load_scan",
    "resolve_threshold",
    "training_atlas",
    "write_overview",
    "write_prediction",
]
