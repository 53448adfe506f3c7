"""Evaluating run directories: configs checked first, runs grouped into folds of one model.

Runs whose configs differ only in ``data.fold`` and in how they were executed (the fields
declared with :func:`~brainuad.config.execution_field`) are folds of one model; their results are
aggregated over folds in the tables.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainuad.config import execution_keys
from brainuad.data.layout import resolve_data_root, splits_digest
from brainuad.digest import file_digest
from brainuad.errors import InputError
from brainuad.evaluate.inference import Inference
from brainuad.evaluate.outputs import write_evaluation
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.process_group import EvaluationGroup
from brainuad.evaluate.protocol import check_levels, check_sets, evaluate_method
from brainuad.evaluate.reconstruction import MedicalLpips
from brainuad.evaluate.result_store import load_result, save_result
from brainuad.evaluate.results import EvaluationSummary, GroupResult, RunResult, to_jsonable
from brainuad.evaluate.rules import threshold_rules
from brainuad.evaluate.run_thresholds import run_thresholds, write_run_thresholds
from brainuad.evaluate.stream import Shard
from brainuad.evaluate.tables import CONVENTIONS
from brainuad.lock import FolderLock
from brainuad.methods.registry import spec_of
from brainuad.run_directory import load_run, read_run_config
from brainuad.version import __version__

__all__ = ["RunTimer", "evaluate_runs", "summarise"]

RunTimer = Callable[[str, RunResult, float, bool], None]
"""``on_run(name, result, seconds, reused)`` of :func:`evaluate_runs`."""


def summarise(runs: Sequence[RunResult], notes: Sequence[str] = ()) -> EvaluationSummary:
    """Group runs into models (equal ``group``), in the order first given, folds sorted.

    Args:
        runs: evaluated runs, all with the same thresholds and post-processing.
        notes: extra notes for the outputs.

    Raises:
        ValueError: no runs, runs evaluated differently, or two runs of one group with one fold.
    """
    if not runs:
        raise ValueError("runs must hold at least one RunResult")
    first = runs[0]
    for run in runs[1:]:
        if (run.thresholds, run.postprocessing, run.variants) != (first.thresholds, first.postprocessing,
                                                                   first.variants):
            raise ValueError(f"runs {first.name!r} and {run.name!r} were evaluated with different thresholds or "
                             f"post-processing variants")
    grouped: dict[str, list[RunResult]] = {}
    for run in runs:
        members = grouped.setdefault(run.group, [])
        twin = next((member for member in members if (member.modality, member.fold) == (run.modality, run.fold)),
                    None)
        if twin is not None:
            raise ValueError(f"runs {twin.name!r} and {run.name!r} are the same model, modality and fold "
                             f"({run.modality}, fold {run.fold})")
        if members and members[0].method != run.method:
            raise ValueError(f"runs {members[0].name!r} and {run.name!r} share the label {run.group!r} but are "
                             f"different methods ({members[0].method}, {run.method})")
        members.append(run)
    groups = tuple(GroupResult(label, members[0].method, tuple(dict.fromkeys(run.modality for run in members)),
                               tuple(sorted(members, key=lambda run: (run.modality, run.fold))))
                   for label, members in grouped.items())
    all_notes = [*notes, *(note for run in runs for note in run.notes)]
    return EvaluationSummary(groups=groups, thresholds=first.thresholds, headline=first.thresholds[0],
                             postprocessing=first.postprocessing, variants=first.variants, conventions=CONVENTIONS,
                             notes=tuple(dict.fromkeys(all_notes)))


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _model_settings(config: Any) -> dict[str, Any]:
    """The config values that identify a model: all but ``data.fold`` and the execution fields."""
    flat = _flatten(config.model_dump(mode="json"))
    ignored = execution_keys(type(config)) | {"data.fold"}
    return {key: value for key, value in flat.items() if key not in ignored}


def _group_labels(configs: Sequence[Any]) -> list[str]:
    """A label per run: the method, with the settings telling apart models of one method and
    modality, and the modality when several are compared."""
    settings = [_model_settings(config) for config in configs]
    modalities = {config.data.modality for config in configs}
    labels = []
    for config, setting in zip(configs, settings):
        rivals = [other for other, cfg in zip(settings, configs)
                  if cfg.method == config.method and cfg.data.modality == config.data.modality]
        differing = sorted(key for key in setting
                           if any(json.dumps(other.get(key)) != json.dumps(setting[key]) for other in rivals))
        label = config.method
        if differing:
            label += " [" + ", ".join(f"{key}={json.dumps(setting[key])}" for key in differing) + "]"
        if len(modalities) > 1:
            label += f" ({config.data.modality.upper()})"
        labels.append(label)
    return labels


def _run_names(run_dirs: Sequence[Path]) -> list[str]:
    names = [run_dir.name for run_dir in run_dirs]
    return [name if names.count(name) == 1 else str(run_dir) for name, run_dir in zip(names, run_dirs)]


def evaluate_runs(run_dirs: Sequence[str | Path], data_root: str | Path, out_dir: str | Path, *,
                  sets: Sequence[str] | None = None, thresholds: Sequence[str] = ("val-dice",),
                  postprocessing: PostProcessing = PostProcessing(), lpips_weights: str | Path | None = None,
                  t_sweep: Sequence[int] | None = None, ablation: bool = True, limit: int | None = None,
                  inference: Inference = Inference(), cache_dir: str | Path | None = None,
                  labels: Sequence[str] | None = None,
                  results_dir: str | Path | None = None, on_run: RunTimer | None = None,
                  progress: bool = True) -> EvaluationSummary:
    """Evaluate trained run directories and write every output into ``out_dir``.

    Every run's config is read first (a bad run directory fails before any work); then the runs
    are loaded and evaluated one at a time (:func:`evaluate_method`), grouped into folds of one
    model (configs equal but for ``data.fold`` and the execution fields) and written with
    :func:`write_evaluation`. Each run directory then gets its headline thresholds in
    ``RUN/thresholds.json`` (:func:`write_run_thresholds`), for ``brainuad predict``.

    Args:
        run_dirs: training run directories (config.yaml + model.safetensors).
        data_root: the data directory (or its parent).
        out_dir: where summary.json, per_volume.csv, tables/ and report.html go (created).
        sets: lesion sets (default: those of each run's modality).
        thresholds, postprocessing, t_sweep, ablation, limit, cache_dir, progress: as
            :func:`evaluate_method`.
        lpips_weights: a Med3D weights file for LPIPS, or None (skipped, with a note).
        inference: where and how the models (and LPIPS) score volumes: device, rows per forward
            batch, loader workers and processes (:class:`~brainuad.evaluate.inference.Inference`;
            no setting changes a result).
        labels: the model each run belongs to, one per run (the tables' rows; runs of one label are
            its folds, and may be of both modalities), or None for labels made from the configs
            (the method and the settings telling models apart).
        results_dir: where each run's whole result is kept (``<run name>.json``,
            :mod:`~brainuad.evaluate.result_store`): a run already evaluated there with the same
            config, weights, data and settings is read back instead of evaluated again, so an
            interrupted evaluation of many runs resumes. None: every run is evaluated.
        on_run: called after each run with its name, result, the seconds it took and whether the
            result was read back from ``results_dir``.

    Raises:
        ValueError: a bad argument. InputError / BrainUADError: a bad run directory, missing data, or
            another process writing into ``out_dir`` or a run directory (:class:`~brainuad.lock.FolderLock`).
    """
    if isinstance(run_dirs, (str, Path)) or not run_dirs:
        raise ValueError(f"run_dirs must be a non-empty list of run directories, got {run_dirs!r}")
    paths = [Path(run_dir) for run_dir in run_dirs]
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise ValueError(f"run_dirs names a run directory twice: {[str(p) for p in paths]}")
    threshold_rules(thresholds)
    check_levels(t_sweep)
    configs = [read_run_config(path, trained=True) for path in paths]
    names = _run_names(paths)
    for path, name, config in zip(paths, names, configs):
        try:
            check_sets(sets, config.data.modality, name)
        except ValueError as error:
            raise InputError(path, str(error)) from None
        timesteps = spec_of(config).noise_levels(config)
        if timesteps is None:  # not a diffusion method: its sweep is skipped, with a note
            continue
        for level in check_levels(t_sweep):
            if not 1 <= level <= timesteps:
                raise InputError(path, f"t_test {level} lies outside the 1..{timesteps} levels of "
                                       "its diffusion schedule")
    root = resolve_data_root(data_root)
    if labels is None:
        labels = _group_labels(configs)
    elif isinstance(labels, str) or len(labels) != len(paths) or not all(
            isinstance(label, str) and label for label in labels):
        raise ValueError(f"labels must name one model per run ({len(paths)}), got {labels!r}")
    with contextlib.ExitStack() as locks:  # one writer per folder: the output and each run's thresholds.json
        locks.enter_context(FolderLock(out_dir, "writing an evaluation"))
        for path in paths:
            locks.enter_context(FolderLock(path, "being evaluated"))
        settings = {"sets": None if sets is None else list(sets), "thresholds": list(thresholds),
                    "postprocessing": to_jsonable(postprocessing), "lpips_weights": None if lpips_weights is None
                    else file_digest(lpips_weights), "t_sweep": list(check_levels(t_sweep)), "ablation": ablation,
                    "limit": limit, "data": splits_digest(root), "version": __version__}
        return _evaluate_locked(paths, names, list(labels), configs, root, Path(out_dir), sets=sets,
                                thresholds=thresholds, postprocessing=postprocessing, lpips_weights=lpips_weights,
                                t_sweep=t_sweep, ablation=ablation, limit=limit, inference=inference,
                                cache_dir=cache_dir,
                                results_dir=None if results_dir is None else Path(results_dir), settings=settings,
                                on_run=on_run, progress=progress)


@dataclass(frozen=True)
class _RunJob:
    """Evaluating one run directory in one process of the evaluation (see
    :class:`~brainuad.evaluate.process_group.EvaluationGroup`): ``job(device, shard, progress)``."""

    path: Path
    root: Path
    name: str
    label: str
    inference: Inference
    options: dict[str, Any]
    lpips_weights: str | Path | None

    def __call__(self, device: str, shard: Shard | None, progress: bool) -> RunResult:
        config, method = load_run(self.path, device)
        lpips = MedicalLpips(self.lpips_weights, device=device) if self.lpips_weights is not None else None
        return evaluate_method(
            self.inference.apply(method), self.root, name=self.name, modality=config.data.modality,
            fold=config.data.fold, group=self.label, method_name=config.method, lpips=lpips,
            normalise_on=config.data.normalise_on, workers=self.inference.workers, shard=shard, progress=progress,
            **self.options)


def _evaluate_locked(paths: list[Path], names: list[str], labels: list[str], configs: list[Any], root: Path,
                     out_dir: Path, *, sets: Sequence[str] | None, thresholds: Sequence[str],
                     postprocessing: PostProcessing,
                     lpips_weights: str | Path | None, t_sweep: Sequence[int] | None, ablation: bool,
                     limit: int | None, inference: Inference, cache_dir: str | Path | None, results_dir: Path | None,
                     settings: dict[str, Any], on_run: RunTimer | None, progress: bool) -> EvaluationSummary:
    """:func:`evaluate_runs` once its arguments are checked and its folders locked."""
    options = dict(sets=sets, thresholds=thresholds, postprocessing=postprocessing, t_sweep=t_sweep,
                   ablation=ablation, limit=limit, cache_dir=cache_dir)
    results = []
    with EvaluationGroup(inference) as group:
        for path, name, label, config in zip(paths, names, labels, configs):
            stored = None if results_dir is None else results_dir / f"{name.replace('/', '_')}.json"
            key = {**settings, "name": name, "group": label, "config": config.model_dump(mode="json"),
                   "weights": file_digest(path / spec_of(config).weights_file)}
            started = time.perf_counter()
            result = None if stored is None else load_result(stored, RunResult, key)
            reused = result is not None
            if result is None:
                result = group.run(_RunJob(path, root, name, label, inference, options, lpips_weights), progress)
                if stored is not None:
                    save_result(stored, result, key)
            if on_run is not None:
                on_run(name, result, time.perf_counter() - started, reused)
            results.append(result)
    summary = summarise(results)
    files = write_evaluation(summary, out_dir)
    for path, result in zip(paths, results):
        write_run_thresholds(path, run_thresholds(result, files.summary.resolve()))
    return summary
