"""Recipes find complete subjects in each download layout and say what is incomplete."""

from pathlib import Path

import pytest

from brainuad.preprocess.recipes import RECIPES, recipe


def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def test_ixi_pairs_t1_with_t2_and_reads_ages(tmp_path):
    touch(tmp_path, "IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI-T2/IXI002-Guys-0828-T2.nii.gz",
          "IXI-T1/IXI012-HH-1211-T1.nii.gz", "IXI-T2/IXI013-HH-1212-T2.nii.gz", "IXI-T1/notes.txt")
    (tmp_path / "IXI.csv").write_text("IXI_ID,SEX_ID,AGE\n2,1,35.8\n12,2,\n")
    found = recipe("ixi").find(tmp_path)
    assert [subject.name for subject in found.subjects] == ["IXI002-Guys-0828"]
    subject = found.subjects[0]
    assert subject.age == 35.8 and subject.inputs.modality == "t1"
    assert [(other.modality, other.coregistered) for other in subject.inputs.others] == [("t2", False)]
    assert found.incomplete == {"IXI012-HH-1211": "no T2 scan in the download",
                                "IXI013-HH-1212": "no T1 scan in the download"}


def test_ixi_without_an_age_table_says_so(tmp_path):
    touch(tmp_path, "IXI002-Guys-0828-T1.nii.gz", "IXI002-Guys-0828-T2.nii.gz")
    found = recipe("ixi").find(tmp_path)
    assert found.subjects[0].age is None and "ages left empty" in found.notes[0]


def test_brats_needs_the_label_map(tmp_path):
    touch(tmp_path, "Training/BraTS2021_00000/BraTS2021_00000_t2.nii.gz",
          "Training/BraTS2021_00000/BraTS2021_00000_seg.nii.gz",
          "Training/BraTS2021_00000/BraTS2021_00000_t1.nii.gz",
          "Validation/BraTS2021_00800/BraTS2021_00800_t2.nii.gz")
    found = recipe("brats21").find(tmp_path)
    assert [subject.name for subject in found.subjects] == ["BraTS2021_00000"]
    assert found.subjects[0].inputs.lesion_labels == (1, 2, 4)
    assert [(other.modality, other.path.name, other.coregistered) for other in found.subjects[0].inputs.others] == [
        ("t1", "BraTS2021_00000_t1.nii.gz", True)]  # optional: brought along where the download has it
    assert list(found.incomplete) == ["BraTS2021_00800"]


def test_mslub_prefers_the_coregistered_images(tmp_path):
    touch(tmp_path, "raw/patient01/T2W.nii.gz", "raw/patient01/consensus_gt.nii.gz",
          "coregistered/patient01/T2W.nii.gz", "coregistered/patient01/consensus_gt.nii.gz",
          "coregistered_resampled/patient01/T2W.nii.gz", "coregistered/patient02/T2W.nii.gz")
    found = recipe("mslub").find(tmp_path)
    assert [subject.inputs.image.parent.parent.name for subject in found.subjects] == ["coregistered"]
    assert found.subjects[0].inputs.others == ()
    assert list(found.incomplete) == ["patient02"]
    touch(tmp_path, "coregistered/patient01/T1W.nii.gz")
    others = recipe("mslub").find(tmp_path).subjects[0].inputs.others
    assert [(other.modality, other.path.name, other.coregistered) for other in others] == [("t1", "T1W.nii.gz", True)]


def test_atlas_takes_labelled_training_images(tmp_path):
    folder = "ATLAS_2/Training/R001/sub-r001s001/ses-1/anat"
    touch(tmp_path, f"{folder}/sub-r001s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz",
          f"{folder}/sub-r001s001_ses-1_space-MNI152NLin2009aSym_label-L_desc-T1lesion_mask.nii.gz",
          "ATLAS_2/Testing/R009/sub-r009s001/ses-1/anat/sub-r009s001_ses-1_space-MNI152NLin2009aSym_T1w.nii.gz")
    found = recipe("atlas").find(tmp_path)
    assert [subject.name for subject in found.subjects] == ["sub-r001s001_ses-1"]
    assert found.subjects[0].inputs.seg.name.endswith("T1lesion_mask.nii.gz")
    assert "unlabelled" in found.incomplete["sub-r009s001_ses-1"]


def test_wmh_takes_t1_and_flair_from_pre(tmp_path):
    touch(tmp_path, "training/Utrecht/0/wmh.nii.gz", "training/Utrecht/0/pre/T1.nii.gz",
          "training/Utrecht/0/pre/FLAIR.nii.gz", "training/Singapore/50/wmh.nii.gz",
          "training/Singapore/50/pre/FLAIR.nii.gz")
    found = recipe("wmh").find(tmp_path)
    subject = found.subjects[0]
    assert subject.name == "Utrecht_0" and subject.inputs.lesion_labels == (1,)
    assert [(other.modality, other.coregistered) for other in subject.inputs.others] == [("flair", True)]
    assert list(found.incomplete) == ["Singapore_50"]


def test_every_data_set_has_a_recipe():
    assert set(RECIPES) == {"ixi", "brats21", "mslub", "atlas", "wmh"}
    assert recipe("brats21").skull_strip == "none" and recipe("wmh").skull_strip == "deepbet"
    with pytest.raises(ValueError, match="unknown data set"):
        recipe("oasis")
