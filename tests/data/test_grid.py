import numpy as np
import pytest

from brainuad.data.grid import GridTransform, normalise_intensity, to_model_grid
from brainuad.data.volume import Volume


def _volume(shape=(192, 192, 160), affine=None, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    centre = np.array(shape) // 2
    mask[tuple(slice(c - 40, c + 40) for c in centre)] = True
    image = np.where(mask, rng.normal(500, 100, shape), 0).astype(np.float32)
    seg = np.zeros(shape, bool)
    seg[tuple(slice(c - 6, c + 6) for c in centre)] = True
    return Volume(image, np.eye(4) if affine is None else affine, mask, seg, name="v")


def test_model_grid_shapes_and_range():
    grid = to_model_grid(_volume())
    assert grid.image.shape == grid.mask.shape == grid.seg.shape == (96, 96, 50)
    assert grid.image.dtype == np.float32 and grid.mask.dtype == bool and grid.seg.dtype == bool
    assert grid.image.min() == 0.0 and grid.image.max() == 1.0
    assert np.all(grid.image[~grid.mask] == 0)
    # 12^3 voxels of lesion at 1 mm -> 6^3 on the 2 mm grid
    assert grid.seg.sum() == 6 ** 3


def test_percentiles_use_brain_voxels_only():
    image = np.zeros((10, 10, 10), np.float32)
    mask = np.zeros_like(image, bool)
    mask[2:8, 2:8, 2:8] = True
    image[mask] = np.linspace(100, 200, mask.sum())
    out = normalise_intensity(image, mask)
    low, high = np.percentile(image[mask], (1, 99))
    expected = np.clip((image[mask] - low) / (high - low), 0, 1)
    np.testing.assert_allclose(out[mask], expected, rtol=1e-5)
    # adding bright background outside the mask must not change the scaling
    image[0, 0, 0] = 1e6
    np.testing.assert_allclose(normalise_intensity(image, mask)[mask], expected, rtol=1e-5)


def test_normalise_rejects_empty_mask():
    with pytest.raises(ValueError, match="empty"):
        normalise_intensity(np.ones((3, 3, 3)), np.zeros((3, 3, 3), bool))


def test_crop_removes_equal_slabs_and_pads_small_inputs():
    transform = GridTransform.for_shape((192, 192, 160), np.eye(4))
    assert transform.offsets == (0, 0, 30)
    small = GridTransform.for_shape((150, 200, 90), np.eye(4))
    assert small.offsets == (-21, 4, -5)
    array = np.arange(150 * 200 * 90, dtype=np.float32).reshape(150, 200, 90)
    cropped = small.crop(array)
    assert cropped.shape == (192, 192, 100)
    np.testing.assert_array_equal(small.uncrop(cropped)[:, 4:196, :], array[:, 4:196, :])


@pytest.mark.parametrize("shape", [(192, 192, 160), (181, 217, 181), (160, 170, 120)])
def test_labels_map_back_onto_the_input_grid(shape):
    affine = np.array([[0, -1.0, 0, 90], [1.0, 0, 0, -100], [0, 0, 1.0, -60], [0, 0, 0, 1]])
    volume = _volume(shape, affine)
    grid = to_model_grid(volume)
    back = grid.to_input(grid.seg, label=True)
    assert back.shape == shape
    np.testing.assert_array_equal(back, volume.seg)


def test_grid_affine_places_voxels_in_world_space():
    volume = _volume()
    grid = to_model_grid(volume)
    # the centre of the lesion has the same world position in both grids
    lesion_grid = np.argwhere(grid.seg).mean(axis=0)
    lesion_input = np.argwhere(volume.seg).mean(axis=0)
    world_grid = grid.transform.grid_affine @ np.append(lesion_grid, 1)
    world_input = volume.affine @ np.append(lesion_input, 1)
    np.testing.assert_allclose(world_grid[:3], world_input[:3], atol=1e-6)


def test_volume_without_mask_is_refused():
    volume = _volume()
    with pytest.raises(ValueError, match="no brain mask"):
        to_model_grid(Volume(volume.image, volume.affine, name="x"))


def test_authors_order_normalises_at_1mm_then_downsamples():
    """normalise_on="input_grid": clip and rescale with the 1 mm brain's percentiles, then the
    B-spline downsampling, which overshoots [0, 1] at the brain edge (the authors' order)."""
    volume = _volume()
    paper = to_model_grid(volume)
    authors = to_model_grid(volume, normalise_on="input_grid")
    transform = GridTransform.for_shape(volume.shape, volume.affine)
    expected = transform.to_grid(normalise_intensity(volume.image, volume.mask), label=False)
    np.testing.assert_array_equal(authors.image, expected)
    np.testing.assert_array_equal(authors.mask, paper.mask)
    assert authors.image.min() < 0 or authors.image.max() > 1  # overshoot near edges
    assert not np.allclose(authors.image, paper.image, atol=1e-3)
    with pytest.raises(ValueError, match="normalise_on"):
        to_model_grid(volume, normalise_on="1mm")


@pytest.mark.parametrize("normalise_on", ["model_grid", "input_grid"])
def test_other_contrasts_come_onto_the_grid_as_the_image(normalise_on):
    volume = _volume()
    other = 3.0 * volume.image + 50.0 * volume.mask  # another contrast of the same brain, in its own units
    grid = to_model_grid(volume, normalise_on=normalise_on, contrasts={"t1": other})
    alone = to_model_grid(volume.with_arrays(image=other), normalise_on=normalise_on)
    np.testing.assert_array_equal(grid.contrasts["t1"], alone.image)  # as if it were the image
    np.testing.assert_array_equal(grid.image, to_model_grid(volume, normalise_on=normalise_on).image)
    channels = grid.channels(["t1"])
    assert channels.shape == (2, 96, 96, 50) and channels.dtype == np.float32
    np.testing.assert_array_equal(channels[1], grid.contrasts["t1"])
    assert grid.channels([]).shape == (1, 96, 96, 50)
    with pytest.raises(ValueError, match="'v' was loaded without its flair image .*held: t1"):
        grid.channels(["t1", "flair"])
    with pytest.raises(ValueError, match="its t1 image has shape \\(10, 10, 10\\)"):
        to_model_grid(volume, contrasts={"t1": np.zeros((10, 10, 10))})
