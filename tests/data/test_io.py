
import nibabel as nib
import numpy as np
import pytest

from brainuad.data.io import image_stem, read_image, voxel_spacing, write_image
from brainuad.data.volume import Volume
from brainuad.errors import InputError

OBLIQUE = np.array([[0.0, -1.2, 0.1, 10.0], [0.9, 0.0, 0.0, -3.0], [0.0, 0.05, 2.5, 4.0], [0, 0, 0, 1]])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_array_and_affine(tmp_path, suffix):
    rng = np.random.default_rng(0)
    array = rng.random((5, 6, 7), dtype=np.float32)
    path = write_image(tmp_path / f"image{suffix}", array, OBLIQUE)
    back, affine = read_image(path)
    np.testing.assert_allclose(back, array)
    np.testing.assert_allclose(affine, OBLIQUE, atol=1e-5)
    assert voxel_spacing(affine) == pytest.approx(np.linalg.norm(OBLIQUE[:3, :3], axis=0))


def test_nifti_written_with_sform_and_qform_readable_by_nibabel(tmp_path):
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-96, -120, -70)
    path = write_image(tmp_path / "x.nii.gz", np.ones((3, 3, 3), bool), affine)
    image = nib.load(path)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.get_sform(), affine)
    np.testing.assert_allclose(image.get_qform(), affine)


def test_write_leaves_no_temporary_files(tmp_path):
    write_image(tmp_path / "x.nii.gz", np.zeros((2, 2, 2)), np.eye(4))
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        read_image(tmp_path / "none.nii.gz")
    assert "none.nii.gz" in str(info.value)


def test_truncated_file(tmp_path):
    path = write_image(tmp_path / "x.nii.gz", np.random.rand(20, 20, 20), np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot be read") as info:
        read_image(path)
    assert "x.nii.gz" in str(info.value)


def test_not_gzip_but_named_gz(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="cannot be read"):
        read_image(path)


def test_four_d_image(tmp_path):
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match="3-D"):
        read_image(path)


def test_single_volume_4d_is_squeezed(tmp_path):
    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 1), np.float32), np.eye(4)), path)
    assert read_image(path)[0].shape == (4, 4, 4)


def test_nan_voxels(tmp_path):
    array = np.zeros((4, 4, 4), np.float32)
    array[1, 2, 3] = np.nan
    path = write_image(tmp_path / "x.nii.gz", array, np.eye(4))
    with pytest.raises(InputError, match="1 NaN"):
        read_image(path)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"x")
    with pytest.raises(InputError, match="not a supported image file"):
        read_image(path)


def test_image_stem():
    assert image_stem("a/sub-01_t1.nii.gz") == "sub-01_t1"
    assert image_stem("b.mha") == "b"


def test_volume_load_checks_mask(tmp_path):
    image = write_image(tmp_path / "img.nii.gz", np.random.rand(6, 6, 6), np.eye(4))
    wrong_shape = write_image(tmp_path / "m1.nii.gz", np.ones((6, 6, 5)), np.eye(4))
    shifted = np.eye(4)
    shifted[0, 3] = 2
    wrong_affine = write_image(tmp_path / "m2.nii.gz", np.ones((6, 6, 6)), shifted)
    empty = write_image(tmp_path / "m3.nii.gz", np.zeros((6, 6, 6)), np.eye(4))
    with pytest.raises(InputError, match="m1.nii.gz.*shape"):
        Volume.load(image, wrong_shape)
    with pytest.raises(InputError, match="m2.nii.gz.*affine"):
        Volume.load(image, wrong_affine)
    with pytest.raises(InputError, match="m3.nii.gz.*empty"):
        Volume.load(image, empty)
    good = write_image(tmp_path / "m.nii.gz", np.ones((6, 6, 6)), np.eye(4))
    volume = Volume.load(image, good, good)
    assert volume.mask.dtype == bool and volume.name == "img" and volume.spacing == (1.0, 1.0, 1.0)
