"""``OUT/manifest.json``: what an experiment was made from and what each stage cost.

- ``brainuad``: the package version and the git commit of its source when it runs from a git
  checkout (None otherwise);
- ``experiment``: its name, file and the digest of its validated settings;
- ``data``: the data directory, the digest of its split CSVs and of its file list with sizes;
- ``machine``: CPU model and cores, GPU, torch and CUDA versions;
- ``runs``: per run its model, modality, fold, config hash (SHA-256 of every value but the
  execution fields), state, and the seconds of training (per epoch and per step), of evaluation
  (per volume read) and of the domain-shift study;
- ``stages``: wall seconds per stage of the latest call.

The file is rewritten (atomically) after every run, so it also says how far an interrupted
experiment got. Records of earlier calls are kept for runs this call did not touch.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from brainuad.atomic import write_text
from brainuad.data.layout import data_files_digest, splits_digest
from brainuad.digest import json_digest
from brainuad.experiment.plan import Plan
from brainuad.version import __version__

__all__ = ["MANIFEST_FILE", "Manifest", "RunRecord", "estimate_seconds", "machine_description", "read_records",
           "source_commit"]

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1

RunState = Literal["planned", "finished", "failed", "skipped"]


def source_commit() -> str | None:
    """The git commit of the package's source when it runs from a git checkout, else None."""
    folder = Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def machine_description() -> dict[str, Any]:
    """CPU, cores, GPU, torch and CUDA of this machine."""
    gpus = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "gpus": gpus, "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "system": platform.platform()}


@dataclass
class RunRecord:
    """What the manifest says of one run (seconds are wall time; None: not measured)."""

    label: str
    kind: str
    modality: str
    fold: int
    config_hash: str
    state: RunState = "planned"
    message: str | None = None
    training_seconds: float | None = None
    epochs: int | None = None
    steps: int | None = None
    evaluation_seconds: float | None = None
    evaluation_volumes: int | None = None
    evaluation_reused: bool | None = None
    domain_shift_seconds: float | None = None
    domain_shift_reused: bool | None = None

    @property
    def seconds_per_epoch(self) -> float | None:
        if self.training_seconds is None or not self.epochs:
            return None
        return self.training_seconds / self.epochs

    @property
    def seconds_per_step(self) -> float | None:
        if self.training_seconds is None or not self.steps:
            return None
        return self.training_seconds / self.steps

    @property
    def seconds_per_volume(self) -> float | None:
        if self.evaluation_seconds is None or not self.evaluation_volumes or self.evaluation_reused:
            return None
        return self.evaluation_seconds / self.evaluation_volumes


def read_records(path: Path) -> dict[str, Any]:
    """The ``runs`` of an existing manifest as JSON (empty when there is none or it is unreadable:
    the records are then rebuilt from the run folders)."""
    if not path.is_file():
        return {}
    try:
        runs = json.loads(path.read_text()).get("runs", {})
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}
    return runs if isinstance(runs, dict) else {}


def _rate(records: list[dict[str, Any]], name: str) -> float | None:
    values = sorted(value for record in records if isinstance(value := record.get(name), (int, float)))
    return values[len(values) // 2] if values else None


def estimate_seconds(plan: Plan, records: dict[str, Any]) -> dict[str, float | None]:
    """Per run of ``plan``, the seconds its training and evaluation should take, from the measured
    seconds per step and per volume of earlier runs of the same model (label) and kind in
    ``records`` (the median); None where nothing comparable was measured."""
    estimates: dict[str, float | None] = {}
    for run in plan.runs:
        alike = [record for record in records.values() if isinstance(record, dict)
                 and record.get("label") == run.label and record.get("kind") == run.kind]
        per_step, per_volume = _rate(alike, "seconds_per_step"), _rate(alike, "seconds_per_volume")
        parts = [None if per_step is None else per_step * run.steps,
                 None if per_volume is None or not run.test_volumes else per_volume * run.test_volumes]
        known = [part for part in parts if part is not None]
        estimates[run.key] = sum(known) if known else None
    return estimates


@dataclass
class Manifest:
    """The manifest of one experiment folder (see the module docstring)."""

    path: Path
    header: dict[str, Any]
    runs: dict[str, RunRecord]
    stages: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, plan: Plan) -> "Manifest":
        """A manifest for ``plan``, keeping the records of an earlier call in ``plan.out`` for runs
        whose config is unchanged (a run of another config starts a new record)."""
        path = plan.out / MANIFEST_FILE
        earlier = read_records(path)
        digest, files, size = data_files_digest(plan.data_root)
        header = {
            "format_version": FORMAT_VERSION,
            "brainuad": {"version": __version__, "commit": source_commit()},
            "experiment": {"name": plan.experiment.name, "file": str(plan.source),
                           "digest": json_digest(plan.experiment.model_dump(mode="json"))},
            "data": {"root": str(plan.data_root), "splits_digest": splits_digest(plan.data_root),
                     "files_digest": digest, "files": files, "bytes": size},
            "machine": machine_description(),
        }
        runs = {}
        for run in plan.runs:
            record = RunRecord(run.label, run.kind, run.modality, run.fold, run.config_hash)
            old = earlier.get(run.key)
            if isinstance(old, dict) and old.get("config_hash") == run.config_hash:
                known = {name: old[name] for name in asdict(record) if name in old}
                try:
                    record = RunRecord(**{**known, "label": run.label, "kind": run.kind})
                except TypeError:
                    pass
            runs[run.key] = record
        return cls(path, header, runs)

    def to_json(self) -> dict[str, Any]:
        runs = {key: {**asdict(record), "seconds_per_epoch": record.seconds_per_epoch,
                      "seconds_per_step": record.seconds_per_step, "seconds_per_volume": record.seconds_per_volume}
                for key, record in self.runs.items()}
        return {**self.header, "runs": runs, "stages": self.stages,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def write(self) -> Path:
        return write_text(self.path, json.dumps(self.to_json(), indent=2) + "\n")
