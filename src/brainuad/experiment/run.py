"""Running a planned experiment: train what is missing, evaluate, run the studies, write the report.

Resumable at every level:

- a run whose folder holds ``training.json`` and the planned config is finished and kept; one
  with a checkpoint but no ``training.json`` was interrupted and resumes from its last
  checkpoint; a folder holding another config is refused (that run fails, the rest go on);
- each run's evaluation and domain-shift study are stored in ``OUT/results/`` with a key of
  everything they depend on, and read back instead of recomputed when the key is unchanged;
- a failure (of a training, an evaluation or a study) is recorded in the manifest and the report
  and the rest go on; the command then exits non-zero.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brainuad.digest import file_digest
from brainuad.errors import BrainUADError, InputError
from brainuad.evaluate.domain_shift import DomainShiftRun, evaluate_domain_shift
from brainuad.evaluate.inference import Inference
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.result_store import load_result, save_result
from brainuad.evaluate.results import EvaluationSummary, RunResult, to_jsonable
from brainuad.evaluate.runs import evaluate_runs
from brainuad.evaluate.scoring import NoiseLevelReconstructor
from brainuad.experiment.manifest import Manifest
from brainuad.experiment.plan import CACHE, Plan, PlannedRun, config_identity
from brainuad.experiment.report import write_experiment_report
from brainuad.lock import FolderLock
from brainuad.methods.registry import load_config, spec_of
from brainuad.run_directory import CONFIG_FILE, load_run
from brainuad.train import CHECKPOINT_DIR, LAST_CHECKPOINT, SUMMARY_FILE, quiet_lightning, train_run
from brainuad.version import __version__

__all__ = ["EVALUATION", "ExperimentOutcome", "RESULTS", "run_experiment", "run_state"]

EVALUATION = "evaluation"
RESULTS = "results"
"""Folders under OUT: the evaluation's outputs (its own report with the example slices); each
run's stored results."""

Say = Callable[[str], None]


@dataclass
class ExperimentOutcome:
    """What one call did.

    Attributes:
        report: ``OUT/report.html``; manifest: ``OUT/manifest.json``.
        trained: keys of the runs trained (or resumed) by this call.
        failures: ``{what: message}`` for every failed training, evaluation or study.
        summary: the evaluation (None when no model could be evaluated).
        shifts: the domain-shift studies.
    """

    report: Path
    manifest: Path
    trained: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    summary: EvaluationSummary | None = None
    shifts: list[DomainShiftRun] = field(default_factory=list)


def run_state(run: PlannedRun) -> str:
    """``finished``, ``interrupted`` (resumes from a checkpoint), ``new`` or ``conflict`` (the folder
    holds another config).

    Raises:
        BrainUADError: the folder's config.yaml cannot be read.
    """
    config_file = run.run_dir / CONFIG_FILE
    if not config_file.is_file():
        return "new"
    existing = load_config(config_file)
    if config_identity(existing) != config_identity(run.config):
        return "conflict"
    if (run.run_dir / SUMMARY_FILE).is_file() and (run.run_dir / spec_of(run.config).weights_file).is_file():
        return "finished"
    return "interrupted" if (run.run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file() else "new"


def _message(error: BaseException) -> str:
    if isinstance(error, (BrainUADError, ValueError)):
        return str(error)
    return f"{type(error).__name__}: {error} ({traceback.format_exception(error)[-2].strip()})"


def _train(plan: Plan, manifest: Manifest, outcome: ExperimentOutcome, say: Say, progress: bool) -> None:
    chosen = plan.chosen
    for number, run in enumerate(chosen, 1):
        record = manifest.runs[run.key]
        prefix = f"[train {number}/{len(chosen)}] {run.key}"
        if run.needs is not None and manifest.runs[run.needs].state != "finished":
            record.state, record.message = "skipped", f"its pre-training {run.needs} did not finish"
            say(f"{prefix}: skipped ({record.message})")
            manifest.write()
            continue
        try:
            state = run_state(run)
            if state == "conflict":
                raise InputError(run.run_dir, "holds a run of other settings than the experiment plans",
                                 "delete the folder to train it afresh, or choose another --out")
            if state == "finished":
                record.state, record.message = "finished", None
                say(f"{prefix}: finished earlier, kept")
            else:
                say(f"{prefix}: {'resuming from its last checkpoint' if state == 'interrupted' else 'training'}"
                    f" ({run.label}, {run.config.method}, at most {run.steps} steps)")
                with quiet_lightning():
                    summary = train_run(run.config, run.run_dir, progress=progress)
                outcome.trained.append(run.key)
                record.state, record.message = "finished", None
                record.training_seconds, record.epochs, record.steps = summary.seconds, summary.epochs, summary.steps
                say(f"      {summary.steps} steps, {summary.epochs} epochs in {summary.seconds / 60:.1f} min")
        except Exception as error:  # a failed run is reported and the others go on
            record.state, record.message = "failed", _message(error)
            outcome.failures[f"training {run.key}"] = record.message
            say(f"{prefix}: FAILED: {record.message}")
        manifest.write()


def _evaluate(plan: Plan, manifest: Manifest, outcome: ExperimentOutcome, inference: Inference, say: Say,
              progress: bool) -> None:
    runs = [run for run in plan.chosen if run.kind == "model" and manifest.runs[run.key].state == "finished"]
    if not runs:
        say("[evaluate] no finished model to evaluate")
        return
    settings = plan.experiment.evaluation
    say(f"[evaluate] {len(runs)} run(s): Tables 2, 3" + (", 4" if plan.experiment.studies.ablation else "")
        + (" and the t_test sweep" if plan.experiment.studies.t_test else "")
        + (f" (the first {settings.limit} volume(s) of each split)" if settings.limit else ""))
    names = {run.run_dir.name: run for run in runs}

    def timed(name: str, result: RunResult, seconds: float, reused: bool) -> None:
        record = manifest.runs[names[name].key]
        record.evaluation_reused = reused
        if not reused:
            record.evaluation_seconds = round(seconds, 2)
            record.evaluation_volumes = names[name].test_volumes
        say(f"      {name}: " + ("stored result kept" if reused else f"evaluated in {seconds / 60:.1f} min"))
        manifest.write()

    lpips = settings.lpips_weights
    if lpips is not None and not lpips.is_absolute():
        lpips = plan.source.resolve().parent / lpips
    try:
        outcome.summary = evaluate_runs(
            [run.run_dir for run in runs], plan.data_root, plan.out / EVALUATION, thresholds=settings.thresholds,
            postprocessing=PostProcessing(order=settings.postprocess_order), lpips_weights=lpips,
            t_sweep=plan.experiment.studies.t_test, ablation=plan.experiment.studies.ablation, limit=settings.limit,
            inference=inference, cache_dir=plan.out / CACHE, labels=[run.label for run in runs],
            results_dir=plan.out / RESULTS, on_run=timed, progress=progress)
    except Exception as error:  # reported; the studies and the report still run
        outcome.failures["evaluation"] = _message(error)
        say(f"[evaluate] FAILED: {outcome.failures['evaluation']}")


def _shift_key(plan: Plan, manifest: Manifest, run: PlannedRun) -> dict[str, Any]:
    study = plan.experiment.studies.domain_shift
    assert study is not None
    return {"settings": to_jsonable(study.settings()), "limit": plan.experiment.evaluation.limit,
            "postprocess_order": plan.experiment.evaluation.postprocess_order,
            "config": config_identity(run.config),
            "weights": file_digest(run.run_dir / spec_of(run.config).weights_file),
            "data": manifest.header["data"]["splits_digest"], "version": __version__, "group": run.label}


def _domain_shift(plan: Plan, manifest: Manifest, outcome: ExperimentOutcome, inference: Inference, say: Say,
                  progress: bool) -> None:
    study = plan.experiment.studies.domain_shift
    if study is None:
        return
    labels = study.methods
    folds = study.folds or plan.experiment.folds
    runs = [run for run in plan.chosen if run.kind == "model" and run.fold in folds
            and spec_of(run.config).noise_levels(run.config) is not None
            and (labels is None or run.label in labels)]
    for number, run in enumerate(runs, 1):
        record = manifest.runs[run.key]
        prefix = f"[domain shift {number}/{len(runs)}] {run.key}"
        if record.state != "finished":
            say(f"{prefix}: skipped (not trained)")
            continue
        started = time.perf_counter()
        try:
            stored = plan.out / RESULTS / f"domain-shift-{run.key}.json"
            key = _shift_key(plan, manifest, run)
            result = load_result(stored, DomainShiftRun, key)
            record.domain_shift_reused = result is not None
            if result is None:
                say(f"{prefix}: {len(study.contrasts)} contrast levels x {len(study.t_tests)} noise levels")
                _, loaded = load_run(run.run_dir, inference.device)
                method = inference.apply(loaded)
                if not isinstance(method, NoiseLevelReconstructor):
                    raise TypeError(f"{run.key} is not a diffusion model")
                result = evaluate_domain_shift(
                    method, plan.data_root, name=run.key, modality=run.modality, fold=run.fold, group=run.label,
                    method_name=run.config.method, settings=study.settings(),
                    postprocessing=PostProcessing(order=plan.experiment.evaluation.postprocess_order),
                    limit=plan.experiment.evaluation.limit, cache_dir=plan.out / CACHE,
                    normalise_on=run.config.data.normalise_on, workers=inference.workers, progress=progress)
                save_result(stored, result, key)
                record.domain_shift_seconds = round(time.perf_counter() - started, 2)
                say(f"      done in {record.domain_shift_seconds / 60:.1f} min")
            else:
                say(f"{prefix}: stored result kept")
            outcome.shifts.append(result)
        except Exception as error:  # reported; the other runs go on
            outcome.failures[f"domain shift {run.key}"] = _message(error)
            say(f"{prefix}: FAILED: {outcome.failures[f'domain shift {run.key}']}")
        manifest.write()


def run_experiment(plan: Plan, *, inference: Inference = Inference(), say: Say = print,
                   progress: bool = True) -> ExperimentOutcome:
    """Train, evaluate, study and report the selected runs of ``plan`` (see the module docstring).

    Args:
        plan: the plan (:func:`~brainuad.experiment.plan.plan_experiment`).
        inference: where and how evaluation and the studies score volumes (training follows each
            config's accelerator); the domain-shift study runs in one process.
        say: where progress lines go.
        progress: show progress bars.

    Raises:
        InputError: another process works in the output folder.
    """
    with FolderLock(plan.out, "running an experiment"):
        manifest = Manifest.start(plan)
        outcome = ExperimentOutcome(plan.out / "report.html", manifest.path)
        stages: list[tuple[str, Callable[[], None]]] = [
            ("training", lambda: _train(plan, manifest, outcome, say, progress)),
            ("evaluation", lambda: _evaluate(plan, manifest, outcome, inference, say, progress)),
            ("domain_shift", lambda: _domain_shift(plan, manifest, outcome, inference, say, progress)),
        ]
        for stage, work in stages:
            started = time.perf_counter()
            work()
            manifest.stages[stage] = round(time.perf_counter() - started, 2)
            manifest.write()
        started = time.perf_counter()
        write_experiment_report(plan, manifest, outcome.summary, outcome.shifts, outcome.failures)
        manifest.stages["report"] = round(time.perf_counter() - started, 2)
        manifest.write()
        return outcome
