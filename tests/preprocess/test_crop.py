"""Brain box, centred window, extraction with padding."""

import numpy as np
import pytest

from brainuad.preprocess.crop import BrainCrop, Window, bounding_box, centred_window


def test_bounding_box_matches_argwhere_and_grows_by_the_margin():
    mask = np.zeros((30, 40, 20), bool)
    mask[4:9, 10:31, 2:3] = True
    mask[12, 5, 7] = True
    points = np.argwhere(mask)
    box = bounding_box(mask)
    assert box.start == tuple(points.min(axis=0)) and box.shape == tuple(np.ptp(points, axis=0) + 1)
    grown = BrainCrop(margin=3).window(mask)
    assert grown.start == tuple(points.min(axis=0) - 3) and grown.shape == tuple(np.ptp(points, axis=0) + 7)


def test_centred_window_pads_and_crops_around_the_box():
    box = Window((10, 20, 5), (4, 7, 6))
    padded = centred_window(box, (9, 7, 2))
    assert padded.start == (8, 20, 7)  # 5 extra voxels: 2 before, 3 after; 4 too many: 2 cut each side
    assert padded.shape == (9, 7, 2)


def test_extract_pads_with_zeros_and_counts_cut_voxels():
    array = np.arange(1, 5 * 6 * 7 + 1, dtype=np.int32).reshape(5, 6, 7)
    window = Window((-2, 1, 3), (4, 4, 10))
    out = window.extract(array)
    assert out.shape == (4, 4, 10)
    np.testing.assert_array_equal(out[2:, :, :4], array[:2, 1:5, 3:7])
    assert out[:2].sum() == 0 and out[:, :, 4:].sum() == 0
    mask = np.ones((5, 6, 7), bool)
    assert window.cut_voxels(mask) == mask.size - 2 * 4 * 4
    assert Window((10, 10, 10), (2, 2, 2)).extract(array).sum() == 0


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((3, 3, 3), bool))
    with pytest.raises(ValueError, match="margin"):
        bounding_box(np.ones((3, 3, 3), bool), margin=-1)
    with pytest.raises(ValueError, match="margin"):
        BrainCrop(margin=1.5)
    with pytest.raises(ValueError, match="Window"):
        Window((0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="shape"):
        centred_window(Window((0, 0, 0), (2, 2, 2)), (2, 0, 2))
