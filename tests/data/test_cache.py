"""The grid cache: model-grid copies of volumes in memory and on disk, keyed by file and normalisation."""

import os
import time

import numpy as np
import pytest

from brainuad.data.cache import GridCache
from brainuad.data.grid import to_model_grid
from brainuad.data.io import write_image
from brainuad.data.layout import Subject, split_subjects
from brainuad.data.volume import Volume
from brainuad.errors import InputError


def _volume(shape=(192, 192, 160), seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    centre = np.array(shape) // 2
    mask[tuple(slice(c - 40, c + 40) for c in centre)] = True
    image = np.where(mask, rng.normal(500, 100, shape), 0).astype(np.float32)
    return Volume(image, np.eye(4), mask, None, name="v")


def test_cache_loads_once_and_survives_runs(tiny_cohort, tmp_path):
    subject = split_subjects(tiny_cohort, "brats21", "val")[0]
    cache = GridCache(tmp_path / "cache")
    first = cache.load(subject)
    assert cache.load(subject) is first  # memory
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    fresh = GridCache(tmp_path / "cache")
    start = time.perf_counter()
    again = fresh.load(subject)
    assert time.perf_counter() - start < 0.5  # from disk: no NIfTI read, no resampling
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.seg, first.seg)
    np.testing.assert_array_equal(again.transform.grid_affine, first.transform.grid_affine)
    assert again.image.shape == (96, 96, 50)


def test_a_cache_out_of_memory_keeps_only_disk_copies(tiny_cohort, tmp_path):
    subject = split_subjects(tiny_cohort, "brats21", "val")[0]
    cache = GridCache(tmp_path / "cache", in_memory=False)
    first = cache.load(subject)
    second = cache.load(subject)
    assert second is not first and not cache._memory
    np.testing.assert_array_equal(second.image, first.image)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert GridCache(in_memory=False).load(subject).image.shape == (96, 96, 50)  # neither memory nor disk


def test_cache_notices_a_changed_file(tiny_cohort, tmp_path):
    import shutil

    subject = split_subjects(tiny_cohort, "wmh", "val")[0]
    copy = tmp_path / subject.image.name
    shutil.copy(subject.image, copy)
    moved = subject.__class__(subject.name, copy, subject.mask, subject.seg, subject.label)
    cache = GridCache(tmp_path / "cache")
    cache.load(moved)
    later = time.time() + 10
    os.utime(copy, (later, later))
    cache.load(moved)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_missing_file_is_named(tiny_cohort, tmp_path):
    subject = split_subjects(tiny_cohort, "wmh", "val")[0]
    gone = subject.__class__(subject.name, tmp_path / "gone_t1.nii.gz", subject.mask, subject.seg, subject.label)
    with pytest.raises(InputError, match="gone_t1.nii.gz"):
        GridCache().load(gone)


def test_cache_keys_the_normalisation(tmp_path):
    volume = _volume()
    image = write_image(tmp_path / "v.nii.gz", volume.image, volume.affine)
    mask = write_image(tmp_path / "v_mask.nii.gz", volume.mask.astype(np.uint8), volume.affine)
    subject = Subject(name="v", image=image, mask=mask, seg=None, label=0)
    grids = {order: GridCache(tmp_path / "cache", normalise_on=order).load(subject).image
             for order in ("model_grid", "input_grid")}
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    np.testing.assert_array_equal(grids["input_grid"], to_model_grid(volume, normalise_on="input_grid").image)
