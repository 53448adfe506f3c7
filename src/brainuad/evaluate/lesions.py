"""Lesion-level detection: how many lesions a binary prediction finds, not only how many voxels.

A lesion is a 26-connected component of the ground truth. It is *detected* when the prediction
covers more than ``min_overlap`` of its voxels (default 0: at least one voxel). A *false-positive
component* is a 26-connected component of the prediction that touches no lesion voxel. Per
volume: lesion recall = detected / lesions, lesion-wise F1 = 2 TP / (2 TP + FP + FN) with TP the
detected lesions, FN the missed ones and FP the false-positive components. Sizes are in ml
(voxel count times the voxel volume); size bins are half-open ``[low, high)`` in ml.

Pure functions of numpy arrays; the counts of one volume come from two labellings and
``np.bincount``, not a loop over components (:class:`LesionMap` labels a ground truth once for
several predictions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brainuad.checks import check_fraction, check_number
from brainuad.evaluate.metrics import check_mask, check_same_shape
from brainuad.evaluate.results import LesionCounts

__all__ = ["FROC_FACTORS", "LESION_SIZE_BINS_ML", "MODEL_GRID_VOXEL_ML", "LesionDetection", "LesionMap",
           "lesion_detection"]

LESION_SIZE_BINS_ML = (0.0, 0.1, 1.0, 10.0, float("inf"))
"""Default lesion-size bin edges in ml: < 0.1 ml, 0.1-1 ml, 1-10 ml, >= 10 ml."""

FROC_FACTORS = (0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0, 2.828, 4.0)
"""Multiples of the headline threshold at which the FROC curve is measured (steps of about sqrt 2)."""

MODEL_GRID_VOXEL_ML = 0.008
"""The volume of one model-grid voxel (2 mm isotropic) in ml."""

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class LesionDetection:
    """The lesions of one volume and which of them a prediction found.

    Attributes:
        sizes_ml: (L,) each ground-truth lesion's volume in ml.
        detected: (L,) bool, whether the prediction found it.
        false_positives: predicted components touching no lesion.
    """

    sizes_ml: np.ndarray
    detected: np.ndarray
    false_positives: int

    @property
    def counts(self) -> LesionCounts:
        """The numbers the evaluation keeps: lesions, detected, false-positive components."""
        return LesionCounts(int(self.sizes_ml.size), int(np.count_nonzero(self.detected)), self.false_positives)

    @property
    def lesions(self) -> int:
        return self.counts.lesions

    @property
    def true_positives(self) -> int:
        return self.counts.detected

    @property
    def recall(self) -> float:
        """Detected / lesions; nan without a lesion (:attr:`LesionCounts.recall`)."""
        return self.counts.recall

    @property
    def f1(self) -> float:
        """Lesion-wise F1 (:attr:`LesionCounts.f1`)."""
        return self.counts.f1

    def recall_by_size(self, edges_ml: Sequence[float] = LESION_SIZE_BINS_ML) -> tuple[tuple[int, int], ...]:
        """Per size bin ``[edges[i], edges[i+1])``: (detected, lesions)."""
        edges = _check_edges(edges_ml)
        bins = np.digitize(self.sizes_ml, edges[1:-1], right=False)
        lesions = np.bincount(bins, minlength=len(edges) - 1)
        found = np.bincount(bins, weights=self.detected.astype(float), minlength=len(edges) - 1)
        return tuple((int(f), int(n)) for f, n in zip(found, lesions))


def _check_edges(edges_ml: Sequence[float]) -> np.ndarray:
    edges = np.asarray(edges_ml, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.isnan(edges).any() or not (np.diff(edges) > 0).all() \
            or edges[0] < 0:
        raise ValueError(f"size bin edges must be >= 0 and increasing, at least two, got {list(edges_ml)!r}")
    return edges


class LesionMap:
    """The lesions of one ground truth, labelled once, to score several predictions against.

    Args:
        target: (X, Y, Z) bool ground truth.
        voxel_volume_ml: one voxel's volume in ml (model grid: :data:`MODEL_GRID_VOXEL_ML`).
    """

    def __init__(self, target: np.ndarray, voxel_volume_ml: float = MODEL_GRID_VOXEL_ML) -> None:
        check_mask("target", target)
        self.volume_ml = check_number("voxel_volume_ml", voxel_volume_ml, 0.0, open_low=True)
        self.target = target
        self.labels, count = ndimage.label(target, structure=_STRUCTURE)
        self.sizes = np.bincount(self.labels.ravel(), minlength=count + 1)[1:]

    def detect(self, prediction: np.ndarray, min_overlap: float = 0.0) -> LesionDetection:
        """Which lesions ``prediction`` ((X, Y, Z) bool) finds: a lesion is detected when more than
        ``min_overlap`` (in [0, 1); 0: any voxel) of its voxels are predicted."""
        check_mask("prediction", prediction)
        check_same_shape(prediction=prediction, target=self.target)
        check_fraction("min_overlap", min_overlap, open_high=True)
        covered = np.bincount(self.labels[prediction], minlength=self.sizes.size + 1)[1:]
        detected = covered > min_overlap * self.sizes if min_overlap > 0 else covered > 0
        predicted, count = ndimage.label(prediction, structure=_STRUCTURE)
        touching = np.bincount(predicted[self.target], minlength=count + 1)[1:]
        return LesionDetection(self.sizes * self.volume_ml, detected, int(np.count_nonzero(touching == 0)))


def lesion_detection(prediction: np.ndarray, target: np.ndarray, *, voxel_volume_ml: float = MODEL_GRID_VOXEL_ML,
                     min_overlap: float = 0.0) -> LesionDetection:
    """The lesions of ``target`` ((X, Y, Z) bool) and which of them ``prediction`` ((X, Y, Z) bool,
    the binarised post-processed map) found; see :class:`LesionMap`."""
    return LesionMap(target, voxel_volume_ml).detect(prediction, min_overlap)
