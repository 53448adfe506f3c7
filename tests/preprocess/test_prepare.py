"""``brainuad prepare`` end to end: every recipe on raw synthetic downloads, output that validates,
splits of the paper's sizes, resuming, a truncated file in the middle of a batch, the space check."""

import json
import shutil

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from brainuad.cli.prepare import prepare
from brainuad.data.io import read_image, write_image
from brainuad.data.layout import DATASETS, NUM_FOLDS, read_split_csv, split_subjects
from brainuad.data.synth.raw import DOWNLOAD_FOLDERS
from brainuad.data.validate import validate_data_dir
from brainuad.errors import InputError
from brainuad.preprocess.prepare import assign_splits, prepare_dataset, record_path, space_atlas, split_sizes
from brainuad.preprocess.record import PreparationRecord
from brainuad.preprocess.register import Atlas


@pytest.fixture(scope="module")
def prepared_root(raw_downloads, coarse_pipeline, tmp_path_factory):
    """One data directory with all five sets prepared from their raw downloads; dataset -> summary."""
    root = tmp_path_factory.mktemp("prepared")
    summaries = {}
    for dataset_id in DATASETS:
        strip = "none" if dataset_id == "brats21" else "atlas-mask"
        summaries[dataset_id] = prepare_dataset(dataset_id, raw_downloads / DOWNLOAD_FOLDERS[dataset_id], root,
                                                pipeline=coarse_pipeline(strip), workers=2, progress=False)
    return root, summaries


@pytest.mark.parametrize("dataset_id", list(DATASETS))
def test_each_recipe_prepares_its_raw_download_into_a_valid_data_directory(prepared_root, dataset_id):
    root, summaries = prepared_root
    summary = summaries[dataset_id]
    assert summary.ok, summary.describe()
    assert summary.count("done") == summary.found == (3 if dataset_id in ("ixi", "brats21") else 2)
    report = validate_data_dir(root, datasets=[dataset_id])
    assert report.ok and dataset_id in report.datasets_present
    spec = DATASETS[dataset_id]
    split = "test"
    modality = "t1" if spec.healthy else None
    subjects = split_subjects(root, dataset_id, split, modality=modality)
    assert subjects
    for subject in subjects:
        image, affine = read_image(subject.image)
        mask, _ = read_image(subject.mask)
        assert image.shape == (64, 72, 60) and set(np.unique(mask)) == {0.0, 1.0}
        assert np.all(image[mask == 0] == 0)
        if not spec.healthy:
            seg, seg_affine = read_image(subject.seg)
            assert set(np.unique(seg)) == {0.0, 1.0}
            np.testing.assert_allclose(seg_affine, affine)
        record = PreparationRecord.load(record_path(root, spec, subject.name))
        assert record.subject == subject.name and record.atlas == Atlas.mni152().name


def test_other_modalities_are_written_beside_the_reference(prepared_root):
    root, _ = prepared_root
    for dataset_id, extra in (("ixi", "t2"), ("wmh", "flair")):
        spec = DATASETS[dataset_id]
        for subject in split_subjects(root, dataset_id, "test", modality="t1"):
            other = root / spec.stage / spec.folder / extra / f"{subject.name}_{extra}.nii.gz"
            first, affine = read_image(subject.image)
            second, other_affine = read_image(other)
            assert second.shape == first.shape and np.allclose(other_affine, affine)


def test_ixi_splits_are_a_test_set_and_five_folds(prepared_root):
    root, summaries = prepared_root
    test = {record.img_name for record in read_split_csv(root / "splits" / "IXI_test.csv")}
    ages = [record.age for record in read_split_csv(root / "splits" / "IXI_test.csv")]
    assert len(test) == 1 and all(age is not None for age in ages)
    for fold in range(NUM_FOLDS):
        train = {r.img_name for r in read_split_csv(root / "splits" / f"IXI_train_fold{fold}.csv")}
        val = {r.img_name for r in read_split_csv(root / "splits" / f"IXI_val_fold{fold}.csv")}
        assert len(train) == len(val) == 1 and not (train & val) and not (train | val) & test
    assert json.loads((root / "prepare-ixi.json").read_text())["done"]


def test_rerunning_skips_finished_subjects(prepared_root, raw_downloads, coarse_pipeline):
    root, _ = prepared_root
    summary = prepare_dataset("mslub", raw_downloads / "MSLUB", root, pipeline=coarse_pipeline(), progress=False)
    assert summary.count("skipped") == 2 and summary.count("done") == 0 and summary.ok


def test_a_truncated_file_in_the_middle_of_a_batch_is_reported_and_the_rest_finish(
        raw_downloads, coarse_pipeline, tmp_path):
    source = tmp_path / "BraTS21"
    shutil.copytree(raw_downloads / "BraTS21", source)
    broken = source / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    root = tmp_path / "data"
    summary = prepare_dataset("brats21", source, root, pipeline=coarse_pipeline("none"), workers=2, progress=False)
    assert summary.count("done") == 2 and [result.name for result in summary.failed] == ["BraTS2021_00001"]
    assert "BraTS2021_00001_t2.nii.gz" in summary.failed[0].reason
    assert "failed BraTS2021_00001" in summary.log.read_text()
    assert not summary.validation_errors  # the splits are drawn among the prepared subjects
    assert summary.splits == {"Brats21_val.csv": 1, "Brats21_test.csv": 1}
    assert len(list((root / "Test" / "Brats21" / "t1").glob("*_t1.nii.gz"))) == 2  # the T1 came along
    again = prepare_dataset("brats21", source, root, pipeline=coarse_pipeline("none"), progress=False)
    assert again.count("skipped") == 2 and again.count("failed") == 1


def test_a_data_directory_keeps_one_space(prepared_root, raw_downloads, coarse_pipeline, tmp_path):
    root, _ = prepared_root
    assert json.loads((root / "space.json").read_text())["atlas"]["name"] == Atlas.mni152().name
    other = np.zeros((20, 20, 20), np.float32)
    other[5:15, 5:15, 5:15] = 1.0
    other_atlas = write_image(tmp_path / "other_atlas.nii.gz", other, np.eye(4))
    with pytest.raises(InputError, match="another space"):
        prepare_dataset("wmh", raw_downloads / "WMH", root,
                        pipeline=coarse_pipeline(atlas=Atlas.from_path(other_atlas)), progress=False)
    assert space_atlas(root) == Atlas.mni152()


def test_the_space_of_a_directory_names_its_atlas_file(raw_downloads, coarse_pipeline, tmp_path):
    template = np.zeros((60, 70, 60), np.float32)
    template[10:50, 10:60, 10:50] = 1.0
    atlas = Atlas.from_path(write_image(tmp_path / "template.nii.gz", template, np.diag([3.0, 3.0, 3.0, 1.0])))
    root = tmp_path / "data"
    root.mkdir()
    from brainuad.preprocess.prepare import _check_space

    _check_space(root, coarse_pipeline(atlas=atlas))  # what prepare_dataset does first
    assert space_atlas(root).image_path == atlas.image_path.resolve()
    write_image(tmp_path / "template.nii.gz", template * 2, np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(InputError, match="differs from the atlas"):
        space_atlas(root)
    with pytest.raises(InputError, match="not found"):
        space_atlas(tmp_path)


def test_split_sizes_follow_the_paper_and_scale_down():
    assert split_sizes("brats21", 1251) == (100, 1151)
    assert split_sizes("atlas", 655) == (175, 480)
    assert split_sizes("wmh", 60) == (15, 45) and split_sizes("mslub", 30) == (10, 20)
    assert split_sizes("ixi", 560) == (44, 158) and split_sizes("ixi", 600) == (44, 158)
    assert split_sizes("wmh", 30) == (8, 22)  # 15/60 of 30, rounded
    assert split_sizes("brats21", 2) == (1, 1)
    assert split_sizes("ixi", 280) == (22, 79)
    with pytest.raises(ValueError, match="at least 3"):
        split_sizes("ixi", 2)
    with pytest.raises(ValueError, match="at least 2"):
        split_sizes("mslub", 1)


def test_split_schemes_paper_and_authors_sizes():
    """The paper's Table 1 (IXI 358 / 44 / 158 per fold) and the authors' CSVs (387 / 44 / 160)."""
    val, test = split_sizes("ixi", 560, "paper")
    assert (560 - val - test, val, test) == (358, 44, 158)
    val, test = split_sizes("ixi", 591, "authors")
    assert (591 - val - test, val, test) == (387, 44, 160)
    assert split_sizes("atlas", 655, "authors") == split_sizes("atlas", 655, "paper") == (175, 480)
    splits = assign_splits("ixi", [f"IXI{i:03d}" for i in range(591)], "authors")
    names = ("IXI_train_fold0.csv", "IXI_val_fold0.csv", "IXI_test.csv")
    assert [len(splits[name]) for name in names] == [387, 44, 160]
    with pytest.raises(ValueError, match="split scheme"):
        split_sizes("ixi", 560, "mine")


def test_splits_are_deterministic_and_disjoint():
    names = [f"IXI{i:03d}-Guys-{i:04d}" for i in range(40)]
    splits = assign_splits("ixi", names)
    assert splits == assign_splits("ixi", list(reversed(names)))
    test = set(splits["IXI_test.csv"])
    vals = [set(splits[f"IXI_val_fold{fold}.csv"]) for fold in range(NUM_FOLDS)]
    for fold in range(NUM_FOLDS):
        train = set(splits[f"IXI_train_fold{fold}.csv"])
        assert not train & test and not train & vals[fold] and len(train | vals[fold] | test) == 40
    assert all(not a & b for i, a in enumerate(vals) for b in vals[i + 1:])  # disjoint while the pool allows
    lesion = assign_splits("wmh", [f"s{i}" for i in range(12)])
    assert len(lesion["WMH_val.csv"]) == 3 and len(lesion["WMH_test.csv"]) == 9


def test_missing_or_empty_download_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        prepare_dataset("wmh", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(InputError, match="no complete wmh subject"):
        prepare_dataset("wmh", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown data set"):
        prepare_dataset("oasis", tmp_path, tmp_path / "out")


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(prepare)
    app.command("noop")(lambda: None)  # two commands: the command name is then an argument
    return app


def test_command_reports_and_exits_zero(prepared_root, raw_downloads, coarse_pipeline, monkeypatch):
    import brainuad.preprocess.prepare as preparation

    root, _ = prepared_root  # prepared already: the command resumes, skipping every subject
    monkeypatch.setattr(preparation, "default_pipeline", lambda dataset, atlas=None, skull_strip=None:
                        coarse_pipeline(skull_strip or "atlas-mask", atlas))
    result = CliRunner().invoke(_app(), ["prepare", "WMH", str(raw_downloads / "WMH"), str(root), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "2 skipped" in result.output and "validation: passed" in result.output
    assert "split sizes: paper (the paper's Table 1" in result.output
    result = CliRunner().invoke(_app(), ["prepare", "WMH", str(raw_downloads / "WMH"), str(root), "--splits",
                                         "authors"])
    assert result.exit_code == 0, result.output
    assert "split sizes: authors (the authors' split CSVs" in result.output
    assert json.loads((root / "prepare-wmh.json").read_text())["split_scheme"] == "authors"


def test_command_rejects_bad_options(tmp_path):
    runner = CliRunner()
    result = runner.invoke(_app(), ["prepare", "oasis", str(tmp_path), str(tmp_path / "d")])
    assert result.exit_code == 2 and "unknown data set" in result.output
    result = runner.invoke(_app(), ["prepare", "wmh", str(tmp_path), str(tmp_path / "d"), "--skull-strip", "bet"])
    assert result.exit_code == 2 and "--skull-strip" in result.output
    result = runner.invoke(_app(), ["prepare", "wmh", str(tmp_path / "nowhere"), str(tmp_path / "d")])
    assert result.exit_code == 2 and "download folder not found" in result.output
    result = runner.invoke(_app(), ["prepare", "wmh", str(tmp_path), str(tmp_path / "d"), "--splits", "mine"])
    assert result.exit_code == 2 and "--splits" in result.output
