"""Grids and resampling, checked against scipy.ndimage."""

import numpy as np
import pytest
from scipy import ndimage

from brainuad.preprocess.resample import Grid, IsotropicResampling, isotropic_grid, resample, voxel_map


def _sheared_grid(shape=(20, 24, 12)) -> Grid:
    affine = np.array([[0.0, -0.9, 0.1, 30.0], [1.1, 0.0, 0.0, -20.0], [0.0, 0.2, 5.0, -10.0], [0, 0, 0, 1]])
    return Grid(shape, affine)


def _smooth(shape, seed=0) -> np.ndarray:
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 2).astype(np.float32) * 100


def test_linear_matches_scipy_affine_transform_on_a_sheared_grid():
    source = _sheared_grid()
    array = _smooth(source.shape)
    target = isotropic_grid(source, 1.0)
    world = np.eye(4)
    world[:3, 3] = [0.5, -0.3, 1.0]
    ours = resample(array, source, target, world=world, interpolation="linear")
    matrix = voxel_map(source, target, world)
    theirs = ndimage.affine_transform(array, matrix[:3, :3], matrix[:3, 3], output_shape=target.shape, order=1,
                                      mode="constant", cval=0.0)
    inside = theirs != 0
    assert inside.sum() > 1000
    np.testing.assert_allclose(ours[inside], theirs[inside], rtol=1e-4, atol=1e-3)


def test_cubic_is_interpolating_and_stays_in_range():
    grid = Grid((16, 16, 16), np.diag([2.0, 2.0, 2.0, 1.0]))
    array = _smooth(grid.shape)
    array[4:8, 4:8, 4:8] = 500.0  # a sharp edge: the spline overshoots there
    same = resample(array, grid, grid, interpolation="cubic")
    np.testing.assert_allclose(same, array, atol=1e-2)
    finer = resample(array, grid, isotropic_grid(grid, 0.7), interpolation="cubic")
    assert finer.min() >= 0.0 and finer.max() <= array.max()


def test_nearest_keeps_label_values_and_dtype():
    grid = _sheared_grid()
    labels = np.zeros(grid.shape, np.uint8)
    labels[5:12, 6:15, 3:8] = 4
    labels[8:10, 8:10, 4:6] = 1
    out = resample(labels, grid, isotropic_grid(grid, 1.0), interpolation="nearest")
    assert out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 1, 4}


def test_isotropic_grid_keeps_centre_and_extent_with_orthonormal_axes():
    source = _sheared_grid()
    target = isotropic_grid(source, 1.5)
    np.testing.assert_allclose(target.centre, source.centre, atol=1e-9)
    np.testing.assert_allclose(target.spacing, (1.5, 1.5, 1.5))
    axes = target.affine[:3, :3] / 1.5
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-12)
    extent = np.asarray(source.shape) * np.asarray(source.spacing)
    np.testing.assert_allclose(np.asarray(target.shape) * 1.5, extent, atol=1.5)
    assert IsotropicResampling(1.5).grid(source).shape == target.shape


def test_grid_window_and_points_round_trip():
    grid = _sheared_grid()
    window = grid.window((-2, 3, 1), (5, 5, 5))
    np.testing.assert_allclose(window.world_points(np.zeros((1, 3))), grid.world_points(np.array([[-2, 3, 1]])))
    points = np.random.default_rng(1).random((7, 3)) * 10
    np.testing.assert_allclose(grid.voxel_points(grid.world_points(points)), points, atol=1e-9)
    assert Grid.from_dict(grid.to_dict()).shape == grid.shape


@pytest.mark.parametrize("shape, affine", [((0, 2, 2), np.eye(4)), ((2, 2), np.eye(4)),
                                           ((2, 2, 2), np.zeros((4, 4))), ((2, 2, 2), np.eye(3))])
def test_grid_rejects_bad_geometry(shape, affine):
    with pytest.raises(ValueError, match="Grid"):
        Grid(shape, affine)


def test_resample_rejects_bad_arguments():
    grid = Grid((4, 4, 4), np.eye(4))
    with pytest.raises(ValueError, match="interpolation"):
        resample(np.zeros((4, 4, 4)), grid, grid, interpolation="quintic")
    with pytest.raises(ValueError, match="shape"):
        resample(np.zeros((3, 4, 4)), grid, grid)
    with pytest.raises(ValueError, match="spacing_mm"):
        isotropic_grid(grid, 0.0)
    with pytest.raises(ValueError, match="spacing_mm"):
        IsotropicResampling(-1.0)
