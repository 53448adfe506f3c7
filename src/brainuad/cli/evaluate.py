"""The ``brainuad evaluate`` command.

Heavy modules (torch, the protocol) are imported inside the function, so ``brainuad --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

import typer

from brainuad.cli.console import user_errors
from brainuad.cli.inference_options import BATCH_SLICES, LOADER_WORKERS

__all__ = ["evaluate", "split_list"]


def split_list(values: Optional[list[str]]) -> list[str]:
    """Values given repeatedly and/or comma-separated, in order: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def _levels(text: Optional[str]) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        levels = [int(item) for item in split_list([text])]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise typer.BadParameter(f"give comma-separated integer levels >= 1, e.g. 100,250,500,750; got {text!r}",
                                 param_hint="--t-test")
    return levels


def evaluate(
    runs: list[Path] = typer.Argument(..., help="Training run directories (each with config.yaml and "
                                                "model.safetensors). Runs whose configs differ only in data.fold "
                                                "are folds of one model: reported as mean ± std over folds. "
                                                "Different models are compared side by side."),
    data: Path = typer.Option(..., "--data", help="Data directory (holding splits/, Train/, Test/) or its parent."),
    sets: Optional[list[str]] = typer.Option(
        None, "--sets", help="Lesion sets to evaluate, comma-separated or repeated (brats21, mslub, atlas, wmh). "
                             "Default: the sets of each run's modality (t2: brats21, mslub; t1: atlas, wmh)."),
    threshold: Optional[list[str]] = typer.Option(
        None, "--threshold", help="Threshold rules, comma-separated or repeated; the first that is not 'oracle' is "
                                  "the headline. val-dice (default): exact Dice optimum on the set's validation "
                                  "split; val-dice-bisection: the authors' 10-step search; healthy-fpr: 1/5/10 % "
                                  "false-positive rate on healthy IXI validation volumes of the run's fold; "
                                  "conformal-fpr[:A]: expected voxel false-positive rate of a healthy scan <= A "
                                  "(default 0.05); conformal-volume[:A[:V]]: P(more than V ml flagged in a healthy "
                                  "scan) <= A (defaults 0.1, 1 ml), both chosen on those volumes (docs/metrics.md); "
                                  "oracle: the optimum on the test split itself (an upper bound, never the headline)."),
    out: Path = typer.Option(Path("evaluation"), "--out", help="Output folder: summary.json, per_volume.csv, "
                                                               "tables/ (Markdown, CSV, LaTeX), tables.md and "
                                                               "report.html."),
    lpips_weights: Optional[Path] = typer.Option(
        None, "--lpips-weights", help="Weights of a Med3D 3-D ResNet-10 (.pth or .safetensors) for LPIPS on the "
                                      "healthy IXI test split; without it LPIPS is skipped (noted in the outputs)."),
    t_test: Optional[str] = typer.Option(
        None, "--t-test", help="Also evaluate diffusion models at each of these single noise levels, "
                               "comma-separated (e.g. 100,250,500,750): Dice against t_test, figure and table."),
    no_ablation: bool = typer.Option(False, "--no-ablation", help="Skip Table 4, the post-processing ablation "
                                                                  "(without CC / MF / BE)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N volumes of every split "
                                                                     "(a quick look, not a result)."),
    device: str = typer.Option("cpu", "--device", help="Device the models run on: cpu, cuda, cuda:1, ..."),
    devices: int = typer.Option(1, "--devices", min=1,
                                help="Processes sharing out the volumes of every split, one device each (with "
                                     "--device cuda: GPUs 0..N-1; with cpu: processes sharing the cores). The "
                                     "results equal those of one process."),
    batch_slices: Optional[int] = BATCH_SLICES,
    workers: int = LOADER_WORKERS,
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Keep model-grid copies of the volumes here "
                                                                       "to load them faster next time."),
    postprocess_order: str = typer.Option("paper", "--postprocess-order",
                                          help="paper: median filter, then the eroded brain mask (default); "
                                               "authors_code: mask first, then median (the authors' code)."),
) -> None:
    """Evaluate trained runs with the paper's protocol and write its tables and an HTML report.

    Per lesion set, the validation split chooses the threshold and the test split is scored volume by volume.

    Metrics: Dice, AUPRC and AUROC (per volume and pooled), l1-ratio and intensity-histogram KLD per set.

    Reconstruction quality on the healthy IXI test split: SSIM, PSNR, l1 error and LPIPS.

    Lesion level: recall, false-positive components, FROC and recall by lesion size; 95 % bootstrap intervals over
    volumes and paired bootstrap differences beside the permutation tests.

    Writes Tables 2, 3 and 4 (Markdown, CSV, LaTeX), per_volume.csv, summary.json and report.html.
    """
    from rich.console import Console
    from rich.table import Table as RichTable

    from brainuad.data.layout import LESION_SETS
    from brainuad.evaluate.inference import Inference
    from brainuad.evaluate.outputs import REPORT_FILE
    from brainuad.evaluate.postprocess import PostProcessing, PostProcessingOrder
    from brainuad.evaluate.rules import threshold_rules
    from brainuad.evaluate.runs import evaluate_runs
    from brainuad.evaluate.tables import segmentation_table

    if postprocess_order not in ("paper", "authors_code"):
        raise typer.BadParameter(f"must be 'paper' or 'authors_code', got {postprocess_order!r}",
                                 param_hint="--postprocess-order")
    order = cast(PostProcessingOrder, postprocess_order)
    levels = _levels(t_test)
    thresholds = split_list(threshold) or ["val-dice"]
    try:
        threshold_rules(thresholds)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--threshold") from None
    chosen_sets = split_list(sets) or None
    for name in chosen_sets or []:
        if name not in LESION_SETS:
            raise typer.BadParameter(f"unknown lesion set {name!r}; choose from {', '.join(LESION_SETS)}",
                                     param_hint="--sets")
    console = Console()
    with user_errors():
        summary = evaluate_runs(
            runs, data, out, sets=chosen_sets, thresholds=thresholds,
            postprocessing=PostProcessing(order=order), lpips_weights=lpips_weights, t_sweep=levels,
            ablation=not no_ablation, limit=limit, inference=Inference(device, batch_slices, workers, devices),
            cache_dir=cache_dir, progress=True)
    table = segmentation_table(summary, summary.headline)
    shown = RichTable(*table.row_headers, *(column.name for column in table.columns), title=table.title)
    for row in table.rows:
        shown.add_row(*row.labels, *(cell.text(column) + ("*" if cell.significant else "")
                                     for cell, column in zip(row.cells, table.columns)))
    console.print(shown)
    for note in summary.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"report: {out / REPORT_FILE}")
