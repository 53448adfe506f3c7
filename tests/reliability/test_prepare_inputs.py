"""``prepare`` with a damaged file in a raw download: that subject fails with its reason (file
named), the others are prepared, the CSVs hold the prepared ones only, and the exit code is 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from preprocess.conftest import make_coarse_pipeline
from typer.testing import CliRunner

import brainuad.preprocess.prepare as preparation
from brainuad.cli import app


def _rewrite(path: Path, transform) -> None:
    image = nib.load(str(path))
    array, affine = transform(np.asarray(image.dataobj, dtype=np.float32), image.affine.copy())
    path.unlink()
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 3])


def _with_nan(array, affine):
    array[tuple(s // 2 for s in array.shape)] = np.nan
    return array, affine


CASES = {
    "truncated": (_truncate, "cannot be read"),
    "2-d": (lambda path: _rewrite(path, lambda a, m: (a[:, :, a.shape[2] // 2], m)), "expected a 3-D image"),
    "nan": (lambda path: _rewrite(path, _with_nan), "NaN or infinite voxels"),
    "missing": (lambda path: path.unlink(), "incomplete"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_raw_scan_fails_alone(case, wmh_download, tmp_path, monkeypatch):
    download = tmp_path / "WMH"
    shutil.copytree(wmh_download, download)
    t1 = sorted(download.rglob("T1.nii.gz"))[0]
    damage, phrase = CASES[case]
    damage(t1)
    monkeypatch.setattr(preparation, "default_pipeline", lambda dataset, atlas=None, skull_strip=None:
                        make_coarse_pipeline(skull_strip or "atlas-mask", atlas))
    result = CliRunner().invoke(app, ["prepare", "wmh", str(download), str(tmp_path / "data")])
    output = " ".join(result.output.split())
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if case == "missing":  # found incomplete, left out; only one subject is left, too few for the splits
        assert result.exit_code == 2 and "needs at least 2 subjects" in output, output
        return
    assert result.exit_code == 1 and "1 done" in output and "1 failed" in output, output
    assert phrase in output and t1.name in output, output
    assert not list((tmp_path / "data").rglob(".tmp-*"))
