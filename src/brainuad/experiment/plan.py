"""An experiment expanded into runs: one per model, modality and fold, SparK pre-trainings first.

Run folders: ``OUT/runs/<key>-<modality>-fold<k>`` (a model) and
``OUT/runs/pretrain-<name>-<modality>-fold<k>`` (a SparK pre-training, shared by every model with
the same SparK config). Every run config is built and validated here, before anything trains.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from brainuad.config import execution_keys, packaged_config
from brainuad.data.layout import SplitName, dataset, resolve_data_root, sets_for_modality, split_subjects
from brainuad.digest import json_digest
from brainuad.errors import ConfigError, InputError
from brainuad.experiment.spec import Experiment, MethodEntry
from brainuad.methods.registry import load_config, spec_of

__all__ = ["Plan", "PlannedRun", "config_identity", "plan_experiment"]

RUNS = "runs"
CACHE = "cache"
"""Folders under OUT: the run directories; the model-grid copies of the volumes."""


def config_identity(config: Any) -> dict[str, Any]:
    """The config values that make a run what it is: every value but the execution fields (where
    and how it runs: data.root, devices, workers, ...), as JSON."""
    values = config.model_dump(mode="json")
    for key in execution_keys(type(config)):
        *parents, name = key.split(".")
        section = values
        for parent in parents:
            section = section.get(parent, {})
        section.pop(name, None)
    return dict(values)


@dataclass(frozen=True)
class PlannedRun:
    """One training of the experiment.

    Attributes:
        key: the run folder's name, e.g. ``cddpm-t2-fold0``.
        kind: ``model`` (a row of the tables) or ``pretrain`` (a SparK encoder for models).
        label: the model's label (a pre-training: the labels of the models that use it, joined).
        entry: the experiment's method entry (None for a pre-training).
        modality, fold: what it trains on.
        config: the validated run config.
        run_dir: its folder.
        needs: the key of the pre-training it starts from, or None.
        steps: optimiser steps it will take at most (0 for a one-pass fit).
        test_volumes: test and validation volumes its evaluation reads (0 for a pre-training).
    """

    key: str
    kind: Literal["model", "pretrain"]
    label: str
    entry: MethodEntry | None
    modality: str
    fold: int
    config: Any
    run_dir: Path
    needs: str | None
    steps: int
    test_volumes: int

    @property
    def config_hash(self) -> str:
        return json_digest(config_identity(self.config))


@dataclass(frozen=True)
class Plan:
    """The runs of an experiment in training order (each pre-training before its models).

    Attributes:
        experiment: the experiment; source: its file.
        out: the output folder; data_root: the data directory.
        runs: every run.
        selected: keys of the runs this call works on (``--only``), in order.
    """

    experiment: Experiment
    source: Path
    out: Path
    data_root: Path
    runs: tuple[PlannedRun, ...]
    selected: tuple[str, ...]

    def run(self, key: str) -> PlannedRun:
        return next(run for run in self.runs if run.key == key)

    @property
    def chosen(self) -> list[PlannedRun]:
        return [run for run in self.runs if run.key in self.selected]


def _config_path(name: str, base: Path) -> Path:
    """A packaged config name or a file relative to the experiment file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml"):
        path = candidate if candidate.is_absolute() else base / candidate
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        return path
    return packaged_config(name)


def _steps(config: Any, train_volumes: int) -> int:
    """At most how many optimiser steps the run takes (an epoch: one slice of each training
    volume, in batches)."""
    if spec_of(config).training == "fit":
        return 0
    per_epoch = max(1, math.ceil(train_volumes / config.data.batch_size))
    steps = config.train.max_epochs * per_epoch
    return steps if config.train.max_steps is None else min(steps, config.train.max_steps)


def _evaluation_splits(modality: str, fold: int) -> list[tuple[str, SplitName, int | None]]:
    """The splits one evaluation of a model reads: IXI validation (its fold) and test, and each of
    the modality's lesion sets' validation and test splits, as (data set, split, fold)."""
    splits: list[tuple[str, SplitName, int | None]] = [("ixi", "val", fold), ("ixi", "test", None)]
    return splits + [(name, split, None) for name in sets_for_modality(modality) for split in ("val", "test")]


def _evaluation_volumes(root: Path, modality: str, fold: int, limit: int | None) -> int:
    """Volumes one evaluation of a model reads (:func:`_evaluation_splits`)."""
    total = 0
    for name, split, split_fold in _evaluation_splits(modality, fold):
        count = len(split_subjects(root, name, split, split_fold, modality if dataset(name).healthy else None))
        total += count if limit is None else min(count, limit)
    return total


def _check_contrasts(root: Path, label: str, modality: str, fold: int, contrasts: Sequence[str]) -> None:
    """Before anything trains: every subject a multi-contrast model trains or is evaluated on has
    its other contrasts.

    Raises:
        InputError: naming the first missing file and how many are missing.
    """
    splits = [("ixi", "train", fold), *_evaluation_splits(modality, fold)]
    missing = [path for name, split, split_fold in splits
               for subject in split_subjects(root, name, split, split_fold, modality, contrasts)
               for _, path in subject.contrasts if not path.is_file()]
    if missing:
        raise InputError(missing[0], f"{label} reads the {', '.join(contrasts)} image of every subject beside its "
                                     f"{modality}, and {len(missing)} file(s) like this one are missing",
                         "prepare the data sets with those scans (brainuad prepare brings them along), or leave the "
                         "model out of the experiment")


def plan_experiment(experiment: Experiment, source: str | Path, data_root: str | Path, out: str | Path, *,
                    only: Sequence[str] = (), accelerator: str | None = None) -> Plan:
    """Every run of ``experiment`` with its validated config.

    Args:
        experiment: the experiment; source: its file (configs and paths are relative to it).
        data_root: the data directory (or its parent).
        out: the output folder.
        only: shell patterns (``cddpm-*-fold0``); the runs whose key matches one, with the
            pre-trainings they need, are the ones worked on. Empty: all.
        accelerator: ``train.accelerator`` of every run (cpu or gpu), or None (the configs').

    Raises:
        ConfigError: a config that does not validate, or a pattern that matches no run.
    """
    source, out = Path(source), Path(out)
    root = resolve_data_root(data_root)
    base = source.resolve().parent
    runs: dict[str, PlannedRun] = {}
    order: list[str] = []
    volumes = {modality: {fold: len(split_subjects(root, "ixi", "train", fold, modality))
                          for fold in experiment.folds} for modality in experiment.modalities}
    execution = [f"data.root={root}", f"data.cache_dir={out / CACHE}"]
    if accelerator is not None:
        execution.append(f"train.accelerator={accelerator}")
    for entry in experiment.methods:
        for modality in entry.modalities or experiment.modalities:
            for fold in experiment.folds:
                placement = [f"data.modality={modality}", f"data.fold={fold}", *execution]
                needs = None
                overrides = [*experiment.training, *entry.overrides, *placement]
                if entry.pretrain is not None:
                    pretrain_path = _config_path(entry.pretrain, base)
                    pretrain = load_config(pretrain_path, [*experiment.training, *entry.pretrain_overrides,
                                                           *placement])
                    if spec_of(pretrain).detector:
                        raise ConfigError(f"{entry.label}: pretrain names a {pretrain.method} config; it must be a "
                                          "SparK (method: spark) config")
                    name = Path(entry.pretrain).stem + (f"-{json_digest(list(entry.pretrain_overrides))[:6]}"
                                                        if entry.pretrain_overrides else "")
                    needs = f"pretrain-{name}-{modality}-fold{fold}"
                    run_dir = out / RUNS / needs
                    if needs in runs:
                        if runs[needs].config_hash != json_digest(config_identity(pretrain)):
                            raise ConfigError(f"two methods pre-train {needs} with different settings: give their "
                                              "SparK configs different file names")
                        runs[needs] = replace(runs[needs], label=f"{runs[needs].label}, {entry.label}")
                    else:
                        runs[needs] = PlannedRun(needs, "pretrain", entry.label, None, modality, fold, pretrain,
                                                 run_dir, None, _steps(pretrain, volumes[modality][fold]), 0)
                        order.append(needs)
                    overrides.append(f"encoder.pretrained={run_dir / spec_of(pretrain).weights_file}")
                config = load_config(_config_path(entry.config, base), overrides)
                if not spec_of(config).detector:
                    raise ConfigError(f"{entry.label}: config names the pre-trainer {config.method}; a method of "
                                      "the tables must be an anomaly detector")
                contrasts = spec_of(config).contrasts(config)
                if contrasts:
                    _check_contrasts(root, entry.label, modality, fold, contrasts)
                key = f"{entry.run_key}-{modality}-fold{fold}"
                runs[key] = PlannedRun(key, "model", entry.label, entry, modality, fold, config, out / RUNS / key,
                                       needs, _steps(config, volumes[modality][fold]),
                                       _evaluation_volumes(root, modality, fold, experiment.evaluation.limit))
                order.append(key)
    if only:
        matched = {key for key in order if any(fnmatch.fnmatchcase(key, pattern) for pattern in only)}
        unmatched = [pattern for pattern in only if not any(fnmatch.fnmatchcase(key, pattern) for key in order)]
        if unmatched:
            raise ConfigError(f"--only {', '.join(unmatched)} matches no run; the runs are {', '.join(order)}")
        matched |= {runs[key].needs for key in matched if runs[key].needs is not None}  # type: ignore[misc]
        selected = tuple(key for key in order if key in matched)
    else:
        selected = tuple(order)
    ordered = sorted(order, key=lambda key: runs[key].kind != "pretrain")  # stable: pre-trainings first
    return Plan(experiment, source, out, root, tuple(runs[key] for key in ordered),
                tuple(key for key in ordered if key in selected))
