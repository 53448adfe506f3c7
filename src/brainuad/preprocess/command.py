"""The ``brainuad prepare`` command (registered in :mod:`brainuad.cli` with ``app.command()(prepare)``).

Heavy modules are imported inside the function, so ``brainuad --help`` stays fast and
:mod:`brainuad.cli` can import this module without a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["check_pipeline_options", "load_atlas", "prepare"]


def check_pipeline_options(atlas: Path | None, atlas_mask: Path | None, skull_strip: str | None) -> None:
    """Check the preprocessing options ``prepare`` and ``predict --raw`` share (--atlas, --atlas-mask,
    --skull-strip); a usage error names the option."""
    from brainuad.preprocess.skullstrip import SKULL_STRIPPERS

    if skull_strip is not None and skull_strip not in SKULL_STRIPPERS:
        raise typer.BadParameter(f"choose one of {', '.join(SKULL_STRIPPERS)}, got {skull_strip!r}",
                                 param_hint="--skull-strip")
    if atlas_mask is not None and atlas is None:
        raise typer.BadParameter("--atlas-mask needs --atlas", param_hint="--atlas-mask")


def load_atlas(atlas: Path | None, atlas_mask: Path | None):
    """The template given with --atlas (and --atlas-mask), read now so that a bad file is reported
    once, before any scan; None without --atlas.

    Raises:
        InputError: an atlas or mask file is missing or unusable.
    """
    from brainuad.preprocess.register import Atlas

    if atlas is None:
        return None
    template = Atlas.from_path(atlas, atlas_mask)
    template.load()
    return template


def prepare(
    dataset: str = typer.Argument(..., help="The data set: ixi, brats21, mslub, atlas or wmh."),
    src: Path = typer.Argument(..., help="Its download folder, unpacked (the layouts are in docs/preprocessing.md)."),
    out: Path = typer.Argument(..., help="The data directory to write into (created; other data sets in it are "
                                         "kept, and they must share one atlas space)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Subjects prepared in parallel processes."),
    atlas: Optional[Path] = typer.Option(None, "--atlas", help="Template to register to (e.g. the SRI24 T1 brain the "
                                                                "paper used); default: nilearn's MNI152 T1 template."),
    atlas_mask: Optional[Path] = typer.Option(None, "--atlas-mask", help="The template's brain mask (default: its "
                                                                         "non-zero voxels)."),
    skull_strip: Optional[str] = typer.Option(None, "--skull-strip", help="deepbet, none (already stripped), "
                                                                          "atlas-mask or hd-bet (your own install); "
                                                                          "default: none for brats21, else deepbet."),
    splits: str = typer.Option("paper", "--splits", help="Split sizes: paper (Table 1: IXI 358/44/158 per fold) or "
                                                         "authors (the authors' CSVs: IXI 387/44/160); scaled to the "
                                                         "subjects found."),
) -> None:
    """Preprocess a data set from its download into the data layout, with its split CSVs.

    Per subject: 1 mm resampling, affine registration to the atlas, skull stripping, crop to the brain,
    N4 bias-field correction, 192 x 192 x 160. Subjects run in parallel processes; a subject that fails
    is reported with its reason and the others go on; a re-run skips finished subjects.

    Writes OUT/prepare-DATASET.log and .json (done, skipped, failed) and validates the result.
    Exits 0 when every subject was prepared and the data set validates, 1 otherwise.
    """
    from brainuad.cli import console, err_console, user_errors
    from brainuad.data.layout import DATASETS
    from brainuad.preprocess.prepare import default_pipeline, prepare_dataset

    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}",
                                 param_hint="DATASET")
    check_pipeline_options(atlas, atlas_mask, skull_strip)
    if splits not in ("paper", "authors"):
        raise typer.BadParameter(f"choose paper or authors, got {splits!r}", param_hint="--splits")
    with user_errors():
        pipeline = default_pipeline(dataset, atlas=load_atlas(atlas, atlas_mask), skull_strip=skull_strip)
        summary = prepare_dataset(dataset, src, out, pipeline=pipeline, workers=workers, splits=splits, progress=True)
    (console if summary.ok else err_console).print(summary.describe(), markup=False, highlight=False)
    raise typer.Exit(0 if summary.ok else 1)
