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


def test_other_contrasts_are_read_cached_and_checked(tiny_cohort, cohort_copy, tmp_path):
    subject = split_subjects(tiny_cohort, "mslub", "test", contrasts=("t1",))[0]
    first = GridCache(tmp_path / "cache").load(subject)
    t1 = first.contrasts["t1"]
    seg, brain = first.seg, first.mask & ~first.seg
    assert first.image[seg].mean() > first.image[brain].mean()  # the lesion is bright in T2
    assert t1[seg].mean() < t1[brain].mean()  # and dark in T1
    again = GridCache(tmp_path / "cache").load(subject)
    np.testing.assert_array_equal(again.contrasts["t1"], t1)
    assert list(again.channels(["t1"]).shape) == [2, 96, 96, 50]
    single = GridCache(tmp_path / "cache").load(split_subjects(tiny_cohort, "mslub", "test")[0])
    assert dict(single.contrasts) == {} and len(list((tmp_path / "cache").glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="loaded without its t1 image"):
        single.channels(["t1"])
    # a missing or misaligned T1 is named, with what to do
    lost = split_subjects(cohort_copy, "mslub", "test", contrasts=("t1",))[0]
    t1_file = lost.contrasts[0][1]
    t1_file.unlink()
    with pytest.raises(InputError, match=f"{t1_file.name}.*the t1 image of subject {lost.name} not found"):
        GridCache().load(lost)
    write_image(t1_file, np.zeros((10, 10, 10), np.float32), np.eye(4))
    with pytest.raises(InputError, match=f"{t1_file.name}.*has shape \\(10, 10, 10\\)"):
        GridCache().load(lost)
