import pytest

from brainuad.data.layout import (
    DATASETS,
    SplitRecord,
    dataset,
    modality_path,
    read_split_csv,
    resolve_data_root,
    sets_for_modality,
    write_split_csv,
)
from brainuad.errors import InputError


def test_t1_to_t2_changes_folder_and_suffix_only():
    assert modality_path("/Train/ixi/t1/IXI012-HH-1211_t1.nii.gz", "t2") == "/Train/ixi/t2/IXI012-HH-1211_t2.nii.gz"
    # a "t1" inside the subject name or a parent folder is left alone
    assert modality_path("/Train/t1cohort/t1/subt1_x_t1.nii.gz", "t2") == "/Train/t1cohort/t2/subt1_x_t2.nii.gz"
    assert modality_path("/Test/WMH/t1/WMH_3_t1.nii", "flair") == "/Test/WMH/flair/WMH_3_flair.nii"
    assert modality_path("/Train/ixi/t1/a_t1.nii.gz", "t1") == "/Train/ixi/t1/a_t1.nii.gz"


@pytest.mark.parametrize("path", ["/Train/ixi/images/a_t1.nii.gz", "/Train/ixi/t1/a.nii.gz"])
def test_modality_path_refuses_paths_without_modality(path):
    with pytest.raises(ValueError, match=path):
        modality_path(path, "t2")


def test_modality_path_refuses_unknown_modality():
    with pytest.raises(ValueError, match="modality"):
        modality_path("/Train/ixi/t1/a_t1.nii.gz", "pd")


def test_dataset_registry():
    assert set(DATASETS) == {"ixi", "brats21", "mslub", "atlas", "wmh"}
    assert sets_for_modality("t2") == ("brats21", "mslub")
    assert sets_for_modality("t1") == ("atlas", "wmh")
    assert dataset("BraTS21").split_file("val") == "Brats21_val.csv"
    assert dataset("atlas").split_file("test") == "ATLAS_v2_test.csv"
    assert dataset("ixi").split_file("train", 3) == "IXI_train_fold3.csv"
    with pytest.raises(ValueError, match="fold"):
        dataset("ixi").split_file("val")
    with pytest.raises(ValueError, match="no train split"):
        dataset("wmh").split_file("train")
    with pytest.raises(ValueError, match="unknown data set"):
        dataset("oasis")


def test_split_csv_round_trip(tmp_path):
    records = [SplitRecord("IXI-1", 35.5, 0, "/Train/ixi/t1/IXI-1_t1.nii.gz", "/Train/ixi/mask/IXI-1_mask.nii.gz",
                           None),
               SplitRecord("B-1", None, 1, "/Test/Brats21/t2/B-1_t2.nii.gz", "/Test/Brats21/mask/B-1_mask.nii.gz",
                           "/Test/Brats21/seg/B-1_seg.nii.gz")]
    path = write_split_csv(tmp_path / "s.csv", records)
    assert read_split_csv(path) == records


def test_authors_csv_with_index_column(tmp_path):
    path = tmp_path / "IXI_test.csv"
    path.write_text(",img_name,age,label,img_path,mask_path,seg_path\n"
                    "0,IXI002-Guys-0828,35.8,0,/Train/ixi/t1/IXI002-Guys-0828_t1.nii.gz,"
                    "/Train/ixi/mask/IXI002-Guys-0828_mask.nii.gz,\n")
    (record,) = read_split_csv(path)
    assert record.img_name == "IXI002-Guys-0828" and record.seg_path is None and record.age == 35.8
    assert record.with_modality("t2").img_path == "/Train/ixi/t2/IXI002-Guys-0828_t2.nii.gz"


def test_csv_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("img_name,img_path\nA,/Train/a_t1.nii.gz\n")
    with pytest.raises(InputError, match="bad.csv.*missing column.*age"):
        read_split_csv(path)


def test_csv_bad_value(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("img_name,age,label,img_path,mask_path,seg_path\nA,x,0,/a,/b,\n")
    with pytest.raises(InputError, match="line 2"):
        read_split_csv(path)


def test_resolve_data_root(tmp_path):
    (tmp_path / "Data" / "splits").mkdir(parents=True)
    assert resolve_data_root(tmp_path) == tmp_path / "Data"
    assert resolve_data_root(tmp_path / "Data") == tmp_path / "Data"
    with pytest.raises(InputError, match="not a brainuad data directory"):
        resolve_data_root(tmp_path / "Data" / "splits")
    with pytest.raises(InputError, match="not found"):
        resolve_data_root(tmp_path / "missing")
