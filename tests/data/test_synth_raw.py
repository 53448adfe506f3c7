"""Raw synthetic scans: the cohort's subjects with a head, a pose, raw grids and a bias field, in
each data set's download layout (``brainuad synth --raw``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.data.io import read_image
from brainuad.data.synth import cohort_subject
from brainuad.data.synth.raw import (
    DOWNLOAD_FOLDERS,
    MARKER,
    Acquisition,
    raw_files,
    raw_name,
    raw_subject,
    synthesize_raw,
)
from brainuad.errors import InputError
from brainuad.preprocess.resample import Grid, resample


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def mslub():
    """MSLUB subject 0 at its download's resolution: 1 x 1 x 5 mm axial slices, posed, with a skull."""
    return raw_subject("mslub", 0, seed=0)


def test_a_clinical_grid_anisotropic_oblique_and_flipped(mslub):
    scan = mslub.scans["t2"]
    spacing = np.linalg.norm(scan.affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, (1.0, 1.0, 5.0), atol=1e-9)
    directions = scan.affine[:3, :3] / spacing
    assert np.linalg.det(directions) < 0  # a flipped (LAS) axis, as most DICOM conversions give
    assert np.abs(directions - np.diag(np.diag(directions))).max() > 0.01  # oblique: not diagonal
    assert scan.image.dtype == np.float32 and np.all(scan.image == np.rint(scan.image))


def test_the_same_subject_moved_by_its_pose(mslub):
    subject, scan = mslub.subject, mslub.scans["t2"]
    np.testing.assert_array_equal(subject.images["t2"], cohort_subject("mslub", 0, 0).images["t2"])
    carried = resample(subject.mask.astype(np.float32), Grid(subject.mask.shape, subject.affine),
                       Grid(scan.image.shape, scan.affine), world=np.linalg.inv(scan.pose),
                       interpolation="linear") > 0.5
    assert dice(carried, mslub.brain) > 0.95
    rotation = scan.pose[:3, :3]
    assert np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))) > 2.0  # a real rotation
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)  # rigid


def test_a_head_around_the_brain_and_a_skull_stripped_brats(mslub):
    image, brain = mslub.scans["t2"].image, mslub.brain
    noise = np.median(image[:5, :5, :])  # a corner of air
    head = image > 10 * max(noise, 1.0)
    assert head.sum() > 1.3 * brain.sum()  # scalp and CSF rim around the brain
    brats = raw_subject("brats21", 0, seed=0, coarsen=3.0)
    assert np.all(brats.scans["t2"].image[~brats.brain] == 0)


def test_label_codings_of_the_downloads():
    brats = raw_subject("brats21", 1, seed=0, coarsen=3.0)
    assert set(np.unique(brats.labels)) == {0, 1, 2, 4}
    np.testing.assert_array_equal(brats.lesion, brats.labels > 0)
    wmh = raw_subject("wmh", 0, seed=0, coarsen=3.0)
    assert set(np.unique(wmh.labels)) == {0, 1, 2}
    np.testing.assert_array_equal(wmh.lesion, wmh.labels == 1)
    assert list(wmh.scans) == ["t1", "flair"]
    np.testing.assert_allclose(wmh.scans["flair"].affine, wmh.scans["t1"].affine)
    assert raw_subject("ixi", 0, seed=0, coarsen=3.0).labels is None


def test_raw_subjects_repeat_exactly():
    first, second = (raw_subject("ixi", 2, seed=3, coarsen=3.0) for _ in range(2))
    for modality in ("t1", "t2"):
        np.testing.assert_array_equal(first.scans[modality].image, second.scans[modality].image)
        np.testing.assert_array_equal(first.scans[modality].affine, second.scans[modality].affine)
    assert not np.allclose(first.scans["t1"].pose, first.scans["t2"].pose)  # the subject moved in between


def test_synthesize_raw_writes_the_download_layouts(tmp_path):
    summary = synthesize_raw(tmp_path, size="tiny", seed=0, workers=2, datasets=("ixi", "atlas"), limit=2,
                             coarsen=3.0, progress=False)
    assert summary.subjects == {"ixi": 2, "atlas": 2}
    for dataset_id in ("ixi", "atlas"):
        for index in range(2):
            for path in raw_files(dataset_id, raw_name(dataset_id, index)).values():
                image, _ = read_image(tmp_path / path)
                assert image.ndim == 3
    assert (tmp_path / "IXI" / "IXI.csv").read_text().startswith("IXI_ID,AGE\n1,")
    assert json.loads((tmp_path / MARKER).read_text())["limit"] == 2
    assert not (tmp_path / DOWNLOAD_FOLDERS["wmh"]).exists()
    synthesize_raw(tmp_path, size="tiny", datasets=("brats21",), limit=1, coarsen=3.0, progress=False)
    assert not (tmp_path / "IXI").exists() and (tmp_path / "BraTS21").is_dir()  # an earlier set is replaced


def test_synthesize_raw_refuses_foreign_folders_and_bad_arguments(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds no raw synthetic scans"):
        synthesize_raw(tmp_path, size="tiny", progress=False)
    for arguments, match in ((dict(size="huge"), "size"), (dict(seed=-1), "seed"), (dict(workers=0), "workers"),
                             (dict(datasets=("oasis",)), "datasets"), (dict(limit=0), "limit"),
                             (dict(coarsen=0.5), "coarsen")):
        with pytest.raises(ValueError, match=match):
            synthesize_raw(tmp_path / "new", progress=False, **arguments)
    with pytest.raises(ValueError, match="coarsen"):
        raw_subject("ixi", 0, coarsen=0.9)
    assert Acquisition((1.0, 1.0, 5.0), ((1, 0, 0), (0, 1, 0), (0, 0, 1)), (10.0, 10.0, 10.0)).coarsened(2.0).spacing \
        == (2.0, 2.0, 5.0)


def test_the_synth_command_writes_raw_scans(tmp_path, monkeypatch):
    import brainuad.data.synth.raw as raw

    real = raw.synthesize_raw
    monkeypatch.setattr(raw, "synthesize_raw", lambda out, **options: real(
        out, **options, datasets=("mslub",), limit=1, coarsen=3.0))  # one small subject: the wiring is tested
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "raw"), "--raw", "--size", "tiny", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "raw synthetic scans" in result.output
    assert (tmp_path / "raw" / "MSLUB" / "patient01" / "T2W.nii.gz").is_file()
