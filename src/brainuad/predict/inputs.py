"""The scans to predict: expanding files and folders into scan files (:func:`discover_inputs`,
leaving out label and output files by their name endings), finding the brain mask and the other
contrasts stored beside a scan (:func:`find_mask`, :func:`find_contrast`) and reading a scan with
its mask (:func:`load_scan`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from brainuad.data.io import IMAGE_SUFFIXES, image_stem, image_suffix, is_image_file
from brainuad.data.volume import Volume
from brainuad.errors import InputError

__all__ = [
    "InputDiscovery",
    "LABEL_SUFFIXES",
    "LoadedScan",
    "MODALITY_SUFFIXES",
    "OUTPUT_SUFFIXES",
    "discover_inputs",
    "find_contrast",
    "find_mask",
    "load_scan",
]

OUTPUT_SUFFIXES = ("_anomaly", "_mask", "_reconstruction")
"""File-name endings (before the image suffix) of the maps :func:`~brainuad.predict.outputs.write_prediction` writes."""
LABEL_SUFFIXES = ("_mask", "_seg")
"""File-name endings of label images (brain masks, segmentations): never taken as scans."""
MODALITY_SUFFIXES = ("_t1", "_t2", "_flair")
"""File-name endings naming a scan's modality (``sub-01_t2``: subject ``sub-01``)."""


def _is_label_or_output(path: Path, companions: tuple[str, ...] = ()) -> bool:
    stem = image_stem(path)
    return stem.endswith(LABEL_SUFFIXES + OUTPUT_SUFFIXES + companions)


@dataclass(frozen=True)
class InputDiscovery:
    """The scans named on the command line.

    Attributes:
        scans: image files to predict, in the order given (folders: sorted by name), each once.
        problems: one error per argument or file that cannot be predicted (missing, not an image,
            a folder without scans, a name another scan already gives its outputs).
        ignored: label and output files found in the given folders (``*_mask``, ``*_seg``,
            ``*_anomaly``, ``*_reconstruction``), and the other contrasts read with a scan
            (``*_t1`` for a multi-contrast model).
    """

    scans: tuple[Path, ...]
    problems: tuple[InputError, ...]
    ignored: tuple[Path, ...]


def discover_inputs(paths: Sequence[str | Path], contrasts: Sequence[str] = ()) -> InputDiscovery:
    """Expand files and folders (not recursively) into the scans to predict.

    A file is taken as given (unless its suffix is not an image's); a folder contributes its image
    files that are not label or output files, nor one of the ``contrasts`` a multi-contrast model
    reads beside each scan (``X_t1`` beside ``X_t2``). Two scans with the same file stem would
    write the same outputs: the second is a problem.
    """
    if isinstance(paths, (str, Path)):
        raise ValueError(f"paths must be a list of files or folders, got the single path {paths!r}")
    companions = tuple(f"_{contrast}" for contrast in contrasts)
    scans: dict[Path, None] = {}
    problems: list[InputError] = []
    ignored: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            images = sorted(child for child in path.iterdir() if is_image_file(child))
            found = [image for image in images if not _is_label_or_output(image, companions)]
            ignored.extend(image for image in images if _is_label_or_output(image, companions))
            if not found:
                problems.append(InputError(path, "folder holds no scan",
                                           f"scans are {', '.join(IMAGE_SUFFIXES)} files not named *_mask or *_seg"))
            scans.update(dict.fromkeys(found))
        elif not path.exists():
            problems.append(InputError(path, "file not found"))
        else:
            try:
                image_suffix(path)
            except InputError as error:
                problems.append(error)
                continue
            scans[path] = None
    names: dict[str, Path] = {}
    unique = []
    for scan in scans:
        name = image_stem(scan)
        if name in names and names[name].resolve() != scan.resolve():
            problems.append(InputError(scan, f"has the same name as {names[name]}, so their outputs would collide",
                                       "predict them into separate --out folders"))
        elif name not in names:
            names[name] = scan
            unique.append(scan)
    return InputDiscovery(tuple(unique), tuple(problems), tuple(ignored))


def _find_beside(image_path: str | Path, kind: str) -> Path | None:
    """The first of ``X_<kind>.*``, ``<subject>_<kind>.*`` and ``../<kind>/<subject>_<kind>.*``
    beside a scan ``DIR/X.*`` that exists (see :func:`find_mask`), or None."""
    path = Path(image_path)
    stem = image_stem(path)
    subject = next((stem[: -len(suffix)] for suffix in MODALITY_SUFFIXES if stem.endswith(suffix)), stem)
    own = image_suffix(path)
    suffixes = (own, *(suffix for suffix in IMAGE_SUFFIXES if suffix != own))
    candidates = [path.parent / f"{stem}_{kind}{suffix}" for suffix in suffixes]
    candidates += [path.parent / f"{subject}_{kind}{suffix}" for suffix in suffixes]
    candidates += [path.parent.parent / kind / f"{subject}_{kind}{suffix}" for suffix in suffixes]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def find_mask(image_path: str | Path) -> Path | None:
    """The brain mask stored beside a scan, or None.

    Looked for, in this order (each with the scan's own suffix first, then any image suffix), for
    a scan ``DIR/X.nii.gz`` and, when its name ends in a modality (``X_t2``), the subject ``X``:

    - ``DIR/X_mask.*`` (e.g. ``sub-01_mask.nii.gz`` beside ``sub-01.nii.gz``);
    - ``DIR/<subject>_mask.*`` (``sub-01_mask.nii.gz`` beside ``sub-01_t2.nii.gz``);
    - ``DIR/../mask/<subject>_mask.*`` (the data layout: ``t2/`` and ``mask/`` are sibling folders).
    """
    return _find_beside(image_path, "mask")


def find_contrast(image_path: str | Path, contrast: str) -> Path | None:
    """Another contrast of a scan's subject stored beside it (``contrast``: ``t1``, ...), or None.

    Looked for as :func:`find_mask` looks for the mask: ``DIR/X_t1.*``, ``DIR/<subject>_t1.*``
    (``sub-01_t1.nii.gz`` beside ``sub-01_t2.nii.gz``), ``DIR/../t1/<subject>_t1.*`` (the data layout).
    """
    return _find_beside(image_path, contrast)


@dataclass(frozen=True)
class LoadedScan:
    """A scan read from disk, with its brain mask and how the mask was obtained."""

    volume: Volume
    mask_source: str


def load_scan(image: str | Path, mask: str | Path | None = None) -> LoadedScan:
    """Read a scan and its brain mask: ``mask`` if given, else :func:`find_mask`, else none (the
    detector then uses the scan's nonzero voxels).

    Raises:
        InputError: a file is missing or unreadable, or the mask does not match the scan.
    """
    image = Path(image)
    if mask is not None:
        source = f"given: {mask}"
    else:
        mask = find_mask(image)
        source = "none found beside the scan" if mask is None else f"found beside the scan: {mask}"
    return LoadedScan(Volume.load(image, mask), source)
