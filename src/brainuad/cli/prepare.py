"""The ``brainuad prepare`` command.

Heavy modules are imported inside the function, so ``brainuad --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, cast

import typer

from brainuad.cli.console import console, err_console, user_errors

if TYPE_CHECKING:
    from brainuad.preprocess.prepare import SplitScheme

__all__ = ["prepare"]


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
    from brainuad.data.layout import DATASETS
    from brainuad.preprocess.options import OptionError, check_pipeline_options, load_atlas
    from brainuad.preprocess.prepare import default_pipeline, prepare_dataset

    dataset = dataset.lower()
    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}",
                                 param_hint="DATASET")
    try:
        check_pipeline_options(atlas, atlas_mask, skull_strip)
    except OptionError as error:
        raise typer.BadParameter(str(error), param_hint=error.option) from None
    if splits not in ("paper", "authors"):
        raise typer.BadParameter(f"choose paper or authors, got {splits!r}", param_hint="--splits")
    scheme = cast("SplitScheme", splits)
    with user_errors():
        pipeline = default_pipeline(dataset, atlas=load_atlas(atlas, atlas_mask), skull_strip=skull_strip)
        summary = prepare_dataset(dataset, src, out, pipeline=pipeline, workers=workers, splits=scheme, progress=True)
    (console if summary.ok else err_console).print(summary.describe(), markup=False, highlight=False)
    raise typer.Exit(0 if summary.ok else 1)
