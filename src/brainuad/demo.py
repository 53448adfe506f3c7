"""The main job on a synthetic cohort (``brainuad demo``, what ``make demo`` runs).

1. Synthesise a cohort (``small`` by default) and validate it.
2. Train a cDDPM and an unconditioned DDPM with the tiny configs on T2 slices of IXI fold 0,
   each for a budget of optimiser steps (so one seed gives the same tables on any machine; a
   wall-time budget is an option), and fit the intensity-threshold baseline (Thresh).
3. Evaluate all three on the synthetic ``brats21`` and ``mslub`` sets with the paper's protocol
   (validation-Dice threshold, test Dice and AUPRC; no ablation) and write one HTML report.

Run again into the same folder, the demo keeps a finished cohort and finished training runs, and
resumes an interrupted training run from its last checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from brainuad.checks import check_optional_int
from brainuad.config import packaged_config
from brainuad.data.synth import synthesize_cohort
from brainuad.data.synth.cohort import MARKER, SizeName
from brainuad.data.validate import validate_data_dir
from brainuad.errors import BrainUADError
from brainuad.evaluate.results import EvaluationSummary
from brainuad.evaluate.runs import evaluate_runs
from brainuad.lock import FolderLock
from brainuad.methods.registry import load_config, spec_of
from brainuad.train import SUMMARY_FILE, quiet_lightning, train_run

DEMO_METHODS = ("cddpm", "ddpm", "thresh")
DEMO_SETS = ("brats21", "mslub")
DEMO_STEPS = 500
"""Default training budget per diffusion model (``brainuad demo --steps``): optimiser steps, not
minutes, so a slower or busier machine trains the same models (a 4-minute budget gave 531 cDDPM
steps on an idle 2-core CPU and 105 on a busy one). About 3.8 min (cDDPM) and 2.7 min (DDPM) on an
idle 2-core CPU (docs/performance.md)."""
CACHE = "cache"
"""The folder under OUT where the model-grid copies of the volumes are kept for the trainings and the
evaluation (each volume is resampled once instead of once per run)."""
VALIDATE_EVERY_N_EPOCHS = 10
"""An epoch of the small cohort is 3 steps (one random slice of each of 40 volumes, batch 16):
validating every 10th epoch leaves more of the budget to training. The learning rate decays over
the budget (``train.lr_schedule=cosine``): at a constant rate the weights, and the Dice of the
checkpoint the validation loss picks, still jumped from run to run (cDDPM 38-46 % on BraTS21)."""


@dataclass(frozen=True)
class DemoRow:
    """One method on one set: test Dice at the validation threshold and the two AUPRC figures."""

    method: str
    dataset: str
    threshold: float
    dice: float
    dice_std: float
    auprc_per_volume: float
    auprc_pooled: float


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    data: Path
    report: Path
    rows: tuple[DemoRow, ...]
    seconds: float

    def dice(self, method: str, dataset: str) -> float:
        return next(row.dice for row in self.rows if row.method == method and row.dataset == dataset)


def _cohort_ready(data: Path, size: str, seed: int) -> bool:
    marker = data / MARKER
    if not marker.is_file() or not (data / "preview.png").is_file():
        return False
    recorded = json.loads(marker.read_text())
    return recorded.get("size") == size and recorded.get("seed") == seed


def _rows(summary: EvaluationSummary) -> tuple[DemoRow, ...]:
    rows = []
    for run in summary.runs:
        for result in run.sets:
            scores = result.scores(summary.headline)
            rows.append(DemoRow(run.method, result.dataset, scores.threshold.value, scores.dice.mean,
                                scores.dice.std, result.average_precision.mean, result.pooled_average_precision))
    return tuple(rows)


def _budget_words(steps: int | None, minutes: float | None) -> str:
    parts = ([] if steps is None else [f"{steps} steps"]) + ([] if minutes is None else [f"{minutes:g} min"])
    return " or ".join(parts) + " budget"


def run_demo(out: str | Path, *, steps: int | None = DEMO_STEPS, minutes: float | None = None, size: SizeName = "small",
             seed: int = 0, limit: int | None = None, say: Callable[[str], None] = print,
             progress: bool = True) -> DemoResult:
    """Run the whole demo into ``out`` (see the module docstring).

    Args:
        out: folder for ``data/``, ``runs/`` and ``evaluation/``.
        steps: training budget per diffusion model in optimiser steps (None: no step limit).
        minutes: training wall-time budget per diffusion model (None: no time limit); with both,
            training stops at whichever comes first.
        size: synthetic cohort size (tiny, small or medium).
        seed: cohort and training seed.
        limit: evaluate on the first ``limit`` volumes of every split only (a quick look), or all.
        say: where progress messages go.
        progress: show progress bars.
    """
    if steps is None and minutes is None:
        raise ValueError("give a training budget: steps, minutes or both")
    check_optional_int("steps", steps)
    check_optional_int("limit", limit)
    if minutes is not None and not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    started = time.perf_counter()
    out = Path(out)
    with FolderLock(out, "running the demo"):
        data = out / "data"
        if _cohort_ready(data, size, seed):
            say(f"[1/4] synthetic cohort already in {data}")
        else:
            say(f"[1/4] synthesising the '{size}' cohort into {data}")
            say(synthesize_cohort(data, size=size, seed=seed, workers=2, progress=progress).describe())
        report = validate_data_dir(data)
        if not report.ok:
            problems = "; ".join(f"{finding.path}: {finding.message}" for finding in report.errors[:5])
            raise BrainUADError(f"the synthetic cohort in {data} does not validate: {problems}")
        say(f"      validated: {report.rows_checked} split rows, {report.files_checked} files")
        run_dirs = []
        for method in DEMO_METHODS:
            run_dir = out / "runs" / method
            run_dirs.append(run_dir)
            if (run_dir / SUMMARY_FILE).is_file():
                say(f"[2/4] {method}: finished run found in {run_dir}")
                continue
            budget = [f"train.max_steps={'null' if steps is None else steps}",
                      f"train.max_minutes={'null' if minutes is None else minutes}", "train.max_epochs=100000",
                      "train.lr_schedule=cosine",
                      f"train.check_val_every_n_epoch={VALIDATE_EVERY_N_EPOCHS}"] if spec_of(method).training != "fit" \
                else []
            config = load_config(packaged_config(f"tiny/{method}"), [
                f"data.root={data}", "data.modality=t2", "data.fold=0", f"data.cache_dir={out / CACHE}",
                f"train.seed={seed}", *budget])
            say(f"[2/4] training {method} into {run_dir}" + (f" ({_budget_words(steps, minutes)})" if budget else ""))
            with quiet_lightning():
                summary = train_run(config, run_dir, progress=progress)
            if budget:
                say(f"      {summary.steps} steps in {summary.seconds / 60:.1f} min")
            if summary.psnr_noised_db is not None:
                say(f"      PSNR at t=500 on healthy validation slices: noised {summary.psnr_noised_db:.1f} dB -> "
                    f"reconstruction {summary.psnr_reconstruction_db:.1f} dB")
        say(f"[3/4] evaluating {', '.join(DEMO_METHODS)} on {', '.join(DEMO_SETS)} (validation-Dice threshold"
            + (f"; the first {limit} volume(s) of each split)" if limit else ")"))
        evaluation = evaluate_runs(run_dirs, data, out / "evaluation", sets=DEMO_SETS, thresholds=("val-dice",),
                                   ablation=False, limit=limit, cache_dir=out / CACHE, progress=progress)
        result = DemoResult(data, out / "evaluation" / "report.html", _rows(evaluation), time.perf_counter() - started)
        say(f"[4/4] report: {result.report}")
        return result
