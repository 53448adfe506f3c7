"""How trained models score volumes in an evaluation: where, in which batches, by how many
processes. None of these settings changes a number the evaluation reports (tested)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from brainuad.checks import check_int, check_optional_int
from brainuad.methods.base import AnomalyDetector, ReconstructionMethod

__all__ = ["Inference"]


@dataclass(frozen=True)
class Inference:
    """The execution settings of scoring.

    Attributes:
        device: where the models run: "cpu", "cuda" or "cuda:N" (with several processes, process
            r of a "cuda" evaluation uses GPU r).
        batch_slices: slices per forward pass, the slices and noise levels of several volumes
            together (``--batch-slices``), or None: each run config's
            ``inference_batch_size``, else the device's default
            (:data:`~brainuad.methods.base.DEFAULT_FORWARD_BATCH`).
        workers: DataLoader worker processes reading volumes ahead of the model (0: none).
        devices: processes the volumes of every split are shared out to, one device each (GPUs
            0..N-1 for "cuda"; CPU processes sharing the cores for "cpu"); their results are
            merged exactly (:mod:`brainuad.evaluate.stream`).
    """

    device: str = "cpu"
    batch_slices: int | None = None
    workers: int = 0
    devices: int = 1

    def __post_init__(self) -> None:
        check_optional_int("batch_slices", self.batch_slices)
        check_int("workers", self.workers, 0)
        check_int("devices", self.devices, 1)
        kind = torch.device(self.device).type
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if kind == "cuda" and self.devices > 1 and torch.device(self.device).index not in (None, 0):
            raise ValueError(f"with {self.devices} devices give device 'cuda' (process r uses GPU r), "
                             f"not {self.device!r}")

    def device_of(self, rank: int) -> str:
        """The device of process ``rank``: GPU ``rank`` for a CUDA evaluation, else the device itself."""
        if torch.device(self.device).type == "cuda" and self.devices > 1:
            return f"cuda:{rank}"
        return self.device

    def apply(self, method: AnomalyDetector) -> AnomalyDetector:
        """``method`` with ``batch_slices`` rows per forward pass, when set and the method reconstructs."""
        if self.batch_slices is not None and isinstance(method, ReconstructionMethod):
            method.inference_batch_size = self.batch_slices
        return method
