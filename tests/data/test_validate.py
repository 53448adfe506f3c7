import csv

import nibabel as nib
import numpy as np
import pytest
from helpers import replace_file
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.data.io import read_image, write_image
from brainuad.data.layout import read_split_csv, write_split_csv
from brainuad.data.validate import validate_data_dir


def first_row(root, csv_name):
    return read_split_csv(root / "splits" / csv_name)[0]


def file_of(root, relative):
    return root / relative.lstrip("/")


def findings_for(report, path):
    return [finding for finding in report.findings if finding.path == path]


def test_synthetic_cohort_is_clean(tiny_cohort):
    report = validate_data_dir(tiny_cohort)
    assert report.findings == []
    assert report.ok
    assert report.datasets_present == ["ixi", "brats21", "mslub", "atlas", "wmh"]
    assert report.files_checked > 0


def test_missing_t2_file(cohort_copy):
    t2 = file_of(cohort_copy, first_row(cohort_copy, "IXI_test.csv").with_modality("t2").img_path)
    t2.unlink()
    report = validate_data_dir(cohort_copy, datasets=["ixi"])
    assert not report.ok
    assert any("file not found" in f.message for f in findings_for(report, t2))


def test_an_optional_modality_is_checked_where_its_folder_exists(cohort_copy):
    row = first_row(cohort_copy, "MSLUB_test.csv")
    t1 = file_of(cohort_copy, row.with_modality("t1").img_path)
    t1.unlink()
    report = validate_data_dir(cohort_copy, datasets=["mslub"])
    assert not report.ok and any("file not found" in f.message for f in findings_for(report, t1))
    for path in t1.parent.iterdir():  # a data set prepared without T1 (the authors' archive): fine
        path.unlink()
    t1.parent.rmdir()
    assert validate_data_dir(cohort_copy, datasets=["mslub"]).ok


def test_truncated_image(cohort_copy):
    path = file_of(cohort_copy, first_row(cohort_copy, "Brats21_test.csv").img_path)
    data = path.read_bytes()
    replace_file(path, data[: len(data) // 3])
    report = validate_data_dir(cohort_copy, datasets=["brats21"])
    assert [f.severity for f in findings_for(report, path)] == ["error"]
    assert "cannot be read" in findings_for(report, path)[0].message


def test_four_d_image_and_nan_voxels(cohort_copy):
    row = first_row(cohort_copy, "MSLUB_val.csv")
    image_path = file_of(cohort_copy, row.img_path)
    array, affine = read_image(image_path)
    image_path.unlink()
    nib.save(nib.Nifti1Image(np.stack([array, array], -1), affine), image_path)
    other = file_of(cohort_copy, read_split_csv(cohort_copy / "splits" / "MSLUB_test.csv")[0].img_path)
    array, affine = read_image(other)
    array[10, 10, 10] = np.nan
    write_image(other, array, affine)
    report = validate_data_dir(cohort_copy, datasets=["mslub"])
    assert "3-D" in findings_for(report, image_path)[0].message
    assert "NaN" in findings_for(report, other)[0].message


def test_mask_shape_and_affine_mismatch_and_empty_mask(cohort_copy):
    rows = read_split_csv(cohort_copy / "splits" / "ATLAS_v2_test.csv")
    mask_a, mask_b, mask_c = (file_of(cohort_copy, row.mask_path) for row in rows[:3])
    array, affine = read_image(mask_a)
    write_image(mask_a, array[:-1], affine)
    array, affine = read_image(mask_b)
    shifted = affine.copy()
    shifted[0, 3] += 3.0
    write_image(mask_b, array, shifted)
    write_image(mask_c, np.zeros_like(read_image(mask_c)[0]), read_image(mask_c)[1])
    report = validate_data_dir(cohort_copy, datasets=["atlas"])
    assert "shape" in findings_for(report, mask_a)[0].message
    assert "affine" in findings_for(report, mask_b)[0].message
    assert "empty" in findings_for(report, mask_c)[0].message
    assert all(f.severity == "error" for path in (mask_a, mask_b, mask_c) for f in findings_for(report, path))


def test_seg_mismatch_and_empty_seg(cohort_copy):
    rows = read_split_csv(cohort_copy / "splits" / "WMH_val.csv")
    seg_a, seg_b = (file_of(cohort_copy, row.seg_path) for row in rows[:2])
    array, affine = read_image(seg_a)
    write_image(seg_a, np.zeros((5, 5, 5)), affine)
    write_image(seg_b, np.zeros_like(read_image(seg_b)[0]), affine)
    report = validate_data_dir(cohort_copy, datasets=["wmh"])
    assert "shape" in findings_for(report, seg_a)[0].message
    assert [f.severity for f in findings_for(report, seg_b)] == ["warning"]
    assert "empty" in findings_for(report, seg_b)[0].message


def _rewrite_csv(path, records):
    path.unlink()
    write_split_csv(path, records)


def test_duplicate_rows_are_a_warning(cohort_copy):
    path = cohort_copy / "splits" / "IXI_train_fold0.csv"
    records = read_split_csv(path)
    _rewrite_csv(path, records + records[:1])
    report = validate_data_dir(cohort_copy, datasets=["ixi"])
    assert report.ok
    assert [f.severity for f in findings_for(report, path)] == ["warning"]
    assert "duplicate" in findings_for(report, path)[0].message


def test_train_test_overlap_is_an_error_unless_allowed(cohort_copy):
    train = cohort_copy / "splits" / "IXI_train_fold0.csv"
    test = read_split_csv(cohort_copy / "splits" / "IXI_test.csv")
    _rewrite_csv(train, read_split_csv(train) + test[:1])
    report = validate_data_dir(cohort_copy, datasets=["ixi"])
    assert not report.ok
    (finding,) = findings_for(report, train)
    assert finding.severity == "error" and test[0].img_name in finding.message and "IXI_test.csv" in finding.message
    relaxed = validate_data_dir(cohort_copy, allow_overlap=True, datasets=["ixi"])
    assert relaxed.ok
    assert [f.severity for f in findings_for(relaxed, train)] == ["warning"]


def test_train_val_overlap_within_a_fold_is_an_error(cohort_copy):
    train = cohort_copy / "splits" / "IXI_train_fold2.csv"
    val = read_split_csv(cohort_copy / "splits" / "IXI_val_fold2.csv")
    _rewrite_csv(train, read_split_csv(train) + val[:1])
    report = validate_data_dir(cohort_copy, allow_overlap=True, datasets=["ixi"])
    assert not report.ok
    assert "IXI_val_fold2.csv" in findings_for(report, train)[0].message


def test_csv_without_needed_columns(cohort_copy):
    path = cohort_copy / "splits" / "WMH_test.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    replace_file(path, ("img_name,img_path\n" + "".join(f"{r['img_name']},{r['img_path']}\n" for r in rows)).encode())
    report = validate_data_dir(cohort_copy, datasets=["wmh"])
    (finding,) = findings_for(report, path)
    assert finding.severity == "error" and "missing column" in finding.message and "mask_path" in finding.message


def test_missing_split_csv_and_missing_seg_path(cohort_copy):
    (cohort_copy / "splits" / "IXI_val_fold3.csv").unlink()
    path = cohort_copy / "splits" / "Brats21_val.csv"
    records = read_split_csv(path)
    _rewrite_csv(path, [records[0].__class__(**{**records[0].__dict__, "seg_path": None})] + records[1:])
    report = validate_data_dir(cohort_copy, datasets=["ixi", "brats21"])
    assert "missing" in findings_for(report, cohort_copy / "splits" / "IXI_val_fold3.csv")[0].message
    assert "no seg_path" in findings_for(report, path)[0].message


def test_not_a_data_directory(tmp_path):
    from brainuad.errors import InputError

    with pytest.raises(InputError, match="not a brainuad data directory"):
        validate_data_dir(tmp_path)


def test_cli_exit_codes(cohort_copy, tmp_path):
    runner = CliRunner()
    clean = runner.invoke(app, ["validate", str(cohort_copy), "--set", "ixi"])
    assert clean.exit_code == 0, clean.output
    assert "0 error(s)" in clean.output
    mask = file_of(cohort_copy, first_row(cohort_copy, "IXI_test.csv").mask_path)
    mask.unlink()
    broken = runner.invoke(app, ["validate", str(cohort_copy), "--set", "ixi"])
    assert broken.exit_code == 1
    assert f"error {mask}: file not found" in broken.output
    missing = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not found" in missing.output
