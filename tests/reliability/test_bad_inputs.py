"""The reliability matrix: bad input files and CSVs against every entry point that reads them.

Each case damages one file of a hard-linked copy of the tiny cohort (an IXI training image for
``train``, the first BraTS21 validation subject for ``validate``, ``evaluate`` and ``predict``) and
runs the command in-process. Every (case, entry point) has an expected outcome: an exit code and
a phrase of the message, which must name the damaged file. No outcome may be a traceback.

``EXPECTED`` is the matrix; :func:`render_matrix` prints it as the table in docs/reliability.md,
which a test keeps equal to it.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brainuad.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENTRIES = ("validate", "train", "evaluate", "predict")
TRAIN_SUBJECT = ("Train/ixi", "IXI-SYN-0003", "t2")  # first subject of IXI fold 0's training split
LESION_SUBJECT = ("Test/Brats21", "BraTS-SYN-0001", "t2")  # first subject of the BraTS21 validation split
KEPT_ROWS = {"IXI_train_fold0.csv": 2, "IXI_val_fold0.csv": 1, "Brats21_val.csv": 1, "Brats21_test.csv": 1}
"""The split rows the matrix's cohort keeps (the damaged subjects come first), so each run is short."""


# --------------------------------------------------------------------------------------------
# Damage done to one file
# --------------------------------------------------------------------------------------------


def _load(path: Path) -> nib.Nifti1Image:
    image = nib.load(str(path))
    return nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine)


def _save(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    path.unlink()  # never write through a hard link into the session cohort
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _array(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        image = _load(path)
        _save(path, transform(np.asarray(image.dataobj)), image.affine)
    return damage


def _affine(transform: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        image = _load(path)
        _save(path, np.asarray(image.dataobj), transform(image.affine.copy()))
    return damage


def _singular_affine(path: Path) -> None:
    """A header whose sform is singular and whose qform is unset (nibabel refuses to write such an
    affine itself, so the header bytes are edited)."""
    data = gzip.decompress(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(data))
    header["qform_code"], header["sform_code"] = 0, 1
    header["srow_z"] = [0.0, 0.0, 0.0, float(header["srow_z"][3])]
    path.unlink()
    path.write_bytes(gzip.compress(header.binaryblock + data[len(header.binaryblock):]))


def _missing(path: Path) -> None:
    path.unlink()


def _empty(path: Path) -> None:
    path.unlink()
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])


def _not_gzip(path: Path) -> None:
    data = gzip.decompress(path.read_bytes())
    path.unlink()
    path.write_bytes(b"\x1f\x8b" + data[2:4000])


def _with_nan(array: np.ndarray) -> np.ndarray:
    out = array.astype(np.float32)
    out[tuple(s // 2 for s in out.shape)] = np.nan
    return out


def _with_inf(array: np.ndarray) -> np.ndarray:
    out = array.astype(np.float32)
    out[tuple(s // 2 for s in out.shape)] = np.inf
    return out


def _rgb(array: np.ndarray) -> np.ndarray:
    grey = np.clip(array / max(float(array.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
    rgb = np.zeros(array.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = rgb["G"] = rgb["B"] = grey
    return rgb


def _sheared(affine: np.ndarray) -> np.ndarray:
    affine[0, 1] = 0.5  # a valid, non-orthogonal voxel grid
    return affine


def _shifted(affine: np.ndarray) -> np.ndarray:
    affine[:3, 3] += 5.0
    return affine


def _crop(array: np.ndarray) -> np.ndarray:
    return array[:-4]


def _empty_mask(array: np.ndarray) -> np.ndarray:
    return np.zeros_like(array)


@dataclass(frozen=True)
class Case:
    """One kind of damage: which file of the subject (image, mask or seg) and how."""

    name: str
    description: str
    kind: str  # "image", "mask", "seg" or "all" (every file of the subject alike)
    damage: Callable[[Path], None]


CASES = (
    Case("missing", "image file missing", "image", _missing),
    Case("empty", "image file of 0 bytes", "image", _empty),
    Case("truncated", "image file cut in half", "image", _truncated),
    Case("bad-gzip", "gzip header, then garbage", "image", _not_gzip),
    Case("2-d", "a 2-D image", "image", _array(lambda a: a[:, :, a.shape[2] // 2])),
    Case("4-d", "a 4-D image of 2 volumes", "image", _array(lambda a: np.stack([a, a], axis=-1))),
    Case("nan", "one NaN voxel", "image", _array(_with_nan)),
    Case("inf", "one infinite voxel", "image", _array(_with_inf)),
    Case("complex", "complex64 voxels", "image", _array(lambda a: a.astype(np.complex64))),
    Case("rgb", "RGB24 voxels", "image", _array(_rgb)),
    Case("int16", "int16 voxels (another dtype)", "image", _array(lambda a: (a * 1000).astype(np.int16))),
    Case("huge", "values near 1e30 (finite)", "image", _array(lambda a: a.astype(np.float32) * np.float32(1e30))),
    Case("singular", "singular affine", "image", _singular_affine),
    Case("sheared", "non-orthogonal (sheared) affine, all files", "all", _affine(_sheared)),
    Case("mask-shape", "mask of another shape", "mask", _array(_crop)),
    Case("mask-affine", "mask shifted 5 mm", "mask", _affine(_shifted)),
    Case("mask-empty", "empty brain mask", "mask", _array(_empty_mask)),
    Case("seg-shape", "segmentation of another shape", "seg", _array(_crop)),
    Case("seg-outside", "lesion voxels outside the brain mask", "seg",
         _array(lambda a: np.where(np.arange(a.shape[0])[:, None, None] < 3, 1, a).astype(a.dtype))),
)


@dataclass(frozen=True)
class Outcome:
    """What an entry point does: its exit code and a phrase of its message."""

    code: int
    phrase: str


ERROR_READ = "cannot be read"
EXPECTED: dict[tuple[str, str], Outcome] = {}
ERROR_CODE = {"validate": 1, "train": 2, "evaluate": 2, "predict": 1}
"""Exit codes of a refused input: validate and predict 1 (findings reported, others go on), train
and evaluate 2 (the run cannot start)."""


def _expect(case: str, phrase: str, *, runs: bool = False, **per_entry: str) -> None:
    """The outcome of ``case`` at every entry point: refused with ``phrase`` (or the entry's own
    phrase), or run (exit 0) when ``runs``."""
    for entry in ENTRIES:
        EXPECTED[case, entry] = (Outcome(0, per_entry.get(entry, "")) if runs else
                                 Outcome(ERROR_CODE[entry], per_entry.get(entry, phrase)))


_expect("missing", "not found")
_expect("empty", ERROR_READ)
_expect("truncated", ERROR_READ)
_expect("bad-gzip", ERROR_READ)
_expect("2-d", "expected a 3-D image")
_expect("4-d", "expected a 3-D image")
_expect("nan", "NaN or infinite voxels")
_expect("inf", "NaN or infinite voxels")
_expect("complex", "has complex voxels")
_expect("rgb", "is not a scalar voxel type")
_expect("int16", "", runs=True)
_expect("huge", "", runs=True)
_expect("singular", "singular or non-finite")
_expect("sheared", "", runs=True)
_expect("mask-shape", "mask shape", validate="differs from")
_expect("mask-affine", "mask affine differs", validate="affine differs from that of")
_expect("mask-empty", "brain mask is empty")
_expect("seg-shape", "seg shape", validate="differs from")
EXPECTED["seg-shape", "train"] = EXPECTED["seg-shape", "predict"] = Outcome(0, "")  # neither reads a segmentation
_expect("seg-outside", "", runs=True, validate="lesion voxels outside the brain mask")


# --------------------------------------------------------------------------------------------
# Running one case
# --------------------------------------------------------------------------------------------


def _subject_file(root: Path, subject: tuple[str, str, str], kind: str) -> Path:
    folder, name, modality = subject
    sub = {"image": modality, "mask": "mask", "seg": "seg"}[kind]
    return root / folder / sub / f"{name}_{sub}.nii.gz"


@pytest.fixture(scope="module")
def matrix_cohort(tiny_cohort, tmp_path_factory) -> Path:
    """The tiny cohort (hard links) with only the split rows of :data:`KEPT_ROWS`."""
    root = tmp_path_factory.mktemp("matrix") / "data"
    shutil.copytree(tiny_cohort, root, copy_function=os.link)
    for name, rows in KEPT_ROWS.items():
        path = root / "splits" / name
        lines = path.read_text().splitlines(keepends=True)
        path.unlink()
        path.write_text("".join(lines[: rows + 1]))
    return root


def run_entry(entry: str, case: Case, cohort: Path, thresh_run: Path, tmp_path: Path) -> tuple[int, str, Path]:
    """Damage the file of ``case`` in a cohort copy, run ``entry``; (exit code, output, file)."""
    data = tmp_path / "data"
    shutil.copytree(cohort, data, copy_function=os.link)
    subject = TRAIN_SUBJECT if entry == "train" else LESION_SUBJECT
    kinds = ("image", "mask", "seg") if case.kind == "all" else (case.kind,)
    if entry == "train":
        kinds = tuple(kind for kind in kinds if kind != "seg")  # IXI has no segmentation
        if not kinds:
            return 0, "", _subject_file(data, subject, "image")
    for kind in kinds:
        case.damage(_subject_file(data, subject, kind))
    if case.kind == "all":  # the subject's other contrasts too (BraTS21's T1)
        folder, name, modality = subject
        for other in ("t1", "t2", "flair"):
            path = data / folder / other / f"{name}_{other}.nii.gz"
            if other != modality and path.is_file():
                case.damage(path)
    damaged = _subject_file(data, subject, kinds[0])
    runner = CliRunner()
    if entry == "validate":
        arguments = ["validate", str(data), "--set", "brats21"]
    elif entry == "train":
        arguments = ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(data),
                     "--out", str(tmp_path / "run")]
    elif entry == "evaluate":
        arguments = ["evaluate", str(thresh_run), "--data", str(data), "--out", str(tmp_path / "evaluation"),
                     "--sets", "brats21", "--limit", "1", "--no-ablation"]
    else:
        image = _subject_file(data, subject, "image")
        mask = _subject_file(data, subject, "mask")
        arguments = ["predict", str(thresh_run), str(image), "--mask", str(mask), "--out", str(tmp_path / "out"),
                     "--threshold", "0.5"]
    result = runner.invoke(app, arguments)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{entry} {case.name}: {type(result.exception).__name__}: {result.exception}"
    return result.exit_code, " ".join(result.output.split()), damaged


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(entry, case, matrix_cohort, thresh_run, tmp_path):
    expected = EXPECTED[case.name, entry]
    code, output, damaged = run_entry(entry, case, matrix_cohort, thresh_run, tmp_path)
    assert "Traceback" not in output
    assert code == expected.code, output
    assert expected.phrase in output, output
    if expected.code != 0:
        assert damaged.name in output, output  # the message names the file at fault


# --------------------------------------------------------------------------------------------
# The table in docs/reliability.md
# --------------------------------------------------------------------------------------------


def _cell(outcome: Outcome) -> str:
    if outcome.code == 0:
        return "runs" + (f" (warns: {outcome.phrase})" if outcome.phrase else "")
    return f"exit {outcome.code}: {outcome.phrase}"


def render_matrix() -> str:
    """The matrix as a Markdown table (what docs/reliability.md shows)."""
    lines = ["| case | file | " + " | ".join(ENTRIES) + " |", "|---|---|" + "---|" * len(ENTRIES)]
    for case in CASES:
        cells = [_cell(EXPECTED[case.name, entry]) for entry in ENTRIES]
        lines.append(f"| {case.description} | {case.kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_documented_matrix_is_the_tested_one():
    assert render_matrix() in DOCS.read_text(), "docs/reliability.md differs; paste:\n" + render_matrix()
