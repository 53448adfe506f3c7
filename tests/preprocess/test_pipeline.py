"""The pipeline on raw synthetic subjects: outputs, labels that stay binary and aligned, other
modalities, switchable steps, and the map back into the raw scan's grid."""

from dataclasses import replace

import numpy as np
import pytest

from brainuad.data.io import read_image, write_image
from brainuad.data.synth.raw import raw_files, raw_name, raw_subject
from brainuad.errors import InputError
from brainuad.preprocess.pipeline import OtherScan, Pipeline, ScanInputs
from brainuad.preprocess.record import PreparationRecord
from brainuad.preprocess.resample import Grid
from brainuad.preprocess.skullstrip import NoStrip


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def centroid_mm(mask: np.ndarray, grid: Grid) -> np.ndarray:
    """World coordinates (mm) of the centre of mass of ``mask``."""
    return grid.world_points(np.argwhere(mask).mean(axis=0)[None])[0]


def inputs_of(root, dataset_id: str, index: int = 0, **changes) -> ScanInputs:
    """The ScanInputs of one raw synthetic subject in the downloads under ``root``."""
    name = raw_name(dataset_id, index)
    files = {kind: root / path for kind, path in raw_files(dataset_id, name).items()}
    if dataset_id == "brats21":
        inputs = ScanInputs(name, "t2", files["t2"], seg=files["labels"], lesion_labels=(1, 2, 4))
    elif dataset_id == "wmh":
        inputs = ScanInputs(name, "t1", files["t1"], seg=files["labels"], lesion_labels=(1,),
                            others=(OtherScan("flair", files["flair"], coregistered=True),))
    else:
        inputs = ScanInputs(name, "t1", files["t1"], others=(OtherScan("t2", files["t2"]),))
    return replace(inputs, **changes)


@pytest.fixture(scope="module")
def brats(raw_downloads, coarse_pipeline):
    """(inputs, prepared) of BraTS subject 0: skull-stripped, in an SRI24-like world, labels 1/2/4."""
    inputs = inputs_of(raw_downloads, "brats21")
    return inputs, coarse_pipeline("none").run(inputs)


def test_outputs_have_the_box_shape_and_are_zero_outside_the_brain(brats, coarse_pipeline):
    _, prepared = brats
    shape = coarse_pipeline().shape
    assert prepared.grid.shape == shape
    assert prepared.image.shape == prepared.mask.shape == prepared.seg.shape == shape
    assert prepared.image.dtype == np.float32 and prepared.mask.dtype == bool and prepared.seg.dtype == bool
    assert np.all(prepared.image[~prepared.mask] == 0) and np.mean(prepared.image[prepared.mask] > 0) > 0.99
    record = prepared.record
    assert record.steps == ("resample", "skull_strip", "register", "crop", "bias", "pad")
    assert record.skull_strip == "none" and record.cut_brain_voxels == 0
    assert set(record.seconds) == set(record.steps)


def test_the_lesion_stays_binary_and_moves_with_the_image(brats):
    inputs, prepared = brats
    labels, affine = read_image(inputs.seg)
    lesion = np.isin(labels, (1, 2, 4))
    assert set(np.unique(labels)) == {0, 1, 2, 4}  # the download's coding
    assert prepared.seg.any()
    record = prepared.record.records["t2"]
    # The raw lesion's centroid, carried by the recorded map, lands on the prepared lesion's centroid.
    raw_centre = centroid_mm(lesion, Grid(labels.shape, affine))
    carried = np.linalg.inv(record.world) @ np.append(raw_centre, 1.0)
    assert np.linalg.norm(carried[:3] - centroid_mm(prepared.seg, prepared.grid)) < 2.0  # mm; voxels are 3 mm


def test_a_prepared_space_lesion_map_lands_on_the_raw_lesion(brats):
    inputs, prepared = brats
    labels, affine = read_image(inputs.seg)
    lesion = np.isin(labels, (1, 2, 4))
    back = prepared.to_raw(prepared.seg, interpolation="nearest")
    assert back.shape == labels.shape and back.dtype == bool
    assert dice(back, lesion) > 0.8
    soft = prepared.to_raw(prepared.seg.astype(np.float32))  # an anomaly map: linear
    assert dice(soft > 0.5, lesion) > 0.8
    assert np.linalg.norm(centroid_mm(back, Grid(labels.shape, affine))
                          - centroid_mm(lesion, Grid(labels.shape, affine))) < 2.0


def test_the_record_survives_json(brats, tmp_path):
    _, prepared = brats
    path = prepared.record.save(tmp_path / "record.json")
    loaded = PreparationRecord.load(path)
    assert loaded.steps == prepared.record.steps and loaded.subject == prepared.record.subject
    original, copy = prepared.record.records["t2"], loaded.records["t2"]
    np.testing.assert_allclose(copy.world, original.world)
    np.testing.assert_array_equal(copy.to_raw(prepared.seg, "nearest"), original.to_raw(prepared.seg, "nearest"))


def test_a_raw_grid_array_carried_into_prepared_space_lands_on_the_prepared_lesion(brats):
    inputs, prepared = brats
    labels, _ = read_image(inputs.seg)
    carried = prepared.record.records["t2"].to_prepared(np.isin(labels, (1, 2, 4)), interpolation="nearest")
    assert carried.shape == prepared.seg.shape
    np.testing.assert_array_equal(carried, prepared.seg)  # the very map the pipeline applied


def test_another_modality_on_the_same_grid_and_lesion_labels(raw_downloads, coarse_pipeline):
    inputs = inputs_of(raw_downloads, "wmh")
    prepared = coarse_pipeline().run(inputs)
    assert list(prepared.images) == ["t1", "flair"]
    assert np.all(prepared.images["flair"][~prepared.mask] == 0)
    np.testing.assert_allclose(prepared.record.records["flair"].world, prepared.record.records["t1"].world)
    labels, affine = read_image(inputs.seg)
    assert (labels == 2).any()  # "other pathology" is in the download, and is not lesion:
    back = prepared.to_raw(prepared.seg, interpolation="nearest")
    assert (back & (labels == 1)).sum() > 0.5 * back.sum()
    assert not (back & (labels == 2)).any()


def test_t2_is_aligned_rigidly_to_t1_with_the_default_skull_stripper(raw_downloads, coarse_pipeline):
    prepared = coarse_pipeline("deepbet").run(inputs_of(raw_downloads, "ixi"))
    records = prepared.record.records
    found = records["t2"].world @ np.linalg.inv(records["t1"].world)  # T1 world -> T2 world
    truth = raw_subject("ixi", 0, seed=0, coarsen=3.0)
    expected = truth.scans["t2"].pose @ np.linalg.inv(truth.scans["t1"].pose)
    brain = prepared.grid.world_points(np.argwhere(prepared.mask)[::20])
    brain = brain @ records["t1"].world[:3, :3].T + records["t1"].world[:3, 3]
    error = np.linalg.norm((brain @ found[:3, :3].T + found[:3, 3]) - (brain @ expected[:3, :3].T + expected[:3, 3]),
                           axis=1)
    assert error.max() < 2.5
    assert "align" in prepared.record.steps and prepared.record.skull_strip == "deepbet"
    assert prepared.images["t2"].shape == prepared.images["t1"].shape
    brain_cm3 = prepared.mask.sum() * np.prod(prepared.grid.spacing) / 1000
    assert 1200 < brain_cm3 < 2200  # a brain in MNI space (the template's is 1.86 l)


def test_every_step_can_be_switched_off(tmp_path):
    image = np.zeros((20, 22, 18), np.float32)
    image[5:15, 4:18, 3:14] = np.random.default_rng(0).uniform(50, 100, (10, 14, 11))
    affine = np.array([[0, -1.2, 0, 10], [1.1, 0, 0, -4], [0, 0, 2.5, 7], [0, 0, 0, 1.0]])
    path = write_image(tmp_path / "stripped.nii.gz", image, affine)
    pipeline = Pipeline(resampling=None, registration=None, skull_strip=NoStrip(), crop=None, bias=None, shape=None)
    prepared = pipeline.run(ScanInputs("s", "t1", path))
    np.testing.assert_allclose(prepared.image, image, atol=1e-3)
    np.testing.assert_allclose(prepared.grid.affine, affine)
    np.testing.assert_allclose(prepared.record.records["t1"].world, np.eye(4))
    assert prepared.record.steps == ("skull_strip",) and prepared.record.atlas is None


def test_a_given_brain_mask_replaces_skull_stripping(tmp_path):
    image = np.full((16, 16, 16), 80.0, np.float32)
    mask = np.zeros((16, 16, 16), np.uint8)
    mask[4:12, 3:13, 5:11] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    inputs = ScanInputs("s", "t2", write_image(tmp_path / "i.nii.gz", image, affine),
                        mask=write_image(tmp_path / "m.nii.gz", mask, affine))
    pipeline = Pipeline(registration=None, crop=None, bias=None, shape=None)  # 1 mm: twice the voxels per axis
    prepared = pipeline.run(inputs)
    assert prepared.record.skull_strip == "given"
    assert prepared.mask.shape == (32, 32, 32)
    assert abs(int(prepared.mask.sum()) - 8 * int(mask.sum())) < 0.1 * 8 * int(mask.sum())


def test_bad_inputs_are_reported_with_their_file(tmp_path):
    image = np.full((8, 8, 8), 10.0, np.float32)
    path = write_image(tmp_path / "i.nii.gz", image, np.eye(4))
    seg = write_image(tmp_path / "seg.nii.gz", np.full((8, 8, 8), 2, np.uint8), np.eye(4))
    plain = Pipeline(resampling=None, registration=None, skull_strip=NoStrip(), crop=None, bias=None, shape=None)
    with pytest.raises(InputError, match="no lesion voxel"):
        plain.run(ScanInputs("s", "t1", path, seg=seg, lesion_labels=(1,)))
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputError, match="broken.nii.gz"):
        plain.run(ScanInputs("s", "t1", broken))
    with pytest.raises(ValueError, match="modalities must differ"):
        ScanInputs("s", "t1", path, others=(OtherScan("t1", path),))
    with pytest.raises(ValueError, match="shape"):
        Pipeline(shape=(10, 10))
    prepared = plain.run(ScanInputs("s", "t1", path))
    with pytest.raises(ValueError, match="no modality"):
        prepared.to_raw(prepared.image, modality="flair")
