"""The synthetic cohort: layout, splits, volumes, lesions, contrasts, determinism, preview.

Most tests read the session's ``tiny`` cohort (conftest.tiny_cohort, seed 0); the contrast and
determinism tests regenerate single subjects in memory, which must equal the written files.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brainuad.data.io import read_image
from brainuad.data.layout import DATASETS, NUM_FOLDS, data_file, modality_path, read_split_csv
from brainuad.data.synth import (
    GRID_SHAPE,
    MODEL_SLAB,
    SIZES,
    cohort_subject,
    fold_indices,
    subject_generator,
    subject_name,
    synthesize_cohort,
    write_preview,
)
from brainuad.data.synth.cohort import MARKER, _prepare, _Task, _write_subject
from brainuad.data.synth.fields import smooth_noise
from brainuad.data.synth.lesions import TumourModel
from brainuad.data.synth.parallel import map_subjects
from brainuad.data.synth.shapes import Ellipsoid, Grown, grow, largest_component, skewed
from brainuad.data.synth.subjects import AGES
from brainuad.data.synth.template import reference_anatomy
from brainuad.errors import InputError

TINY = SIZES["tiny"]
LESION_SETS = [name for name, spec in DATASETS.items() if not spec.healthy]
# (low, high) cm3 of a subject's whole lesion load, per set (method brief)
LESION_CM3 = {"brats21": (5.0, 250.0), "mslub": (0.02 * 3, 2.0 * 30), "atlas": (1.0, 150.0), "wmh": (1.0, 60.0)}


def _records(root, dataset_id):
    """All split rows of one set, one per subject (folds share subjects)."""
    spec = DATASETS[dataset_id]
    rows = {}
    for name in spec.split_names():
        for record in read_split_csv(root / "splits" / name):
            rows[record.img_name] = record
    return [rows[name] for name in sorted(rows)]


def _components(seg):
    labels, count = ndimage.label(seg, structure=np.ones((3, 3, 3), bool))
    return count, np.bincount(labels.ravel())[1:]


# ------------------------------------------------------------------------------------------ layout
def test_every_file_of_the_layout_exists_and_nothing_else(tiny_cohort):
    expected = set()
    for dataset_id, spec in DATASETS.items():
        for record in _records(tiny_cohort, dataset_id):
            written_modalities = spec.modalities + (("t1",) if dataset_id in ("brats21", "mslub") else ())
            paths = [record.mask_path] + [modality_path(record.img_path, m) for m in written_modalities]
            paths += [] if spec.healthy else [record.seg_path]
            expected |= {data_file(tiny_cohort, path) for path in paths}
    written = {path for stage in ("Train", "Test") for path in (tiny_cohort / stage).rglob("*") if path.is_file()}
    assert written == expected
    assert all(path.name.endswith(".nii.gz") for path in written)
    assert (tiny_cohort / "preview.png").is_file()
    assert json.loads((tiny_cohort / MARKER).read_text())["size"] == "tiny"
    folders = {path.relative_to(tiny_cohort).as_posix() for path in tiny_cohort.glob("T*/*/*") if path.is_dir()}
    assert folders == {"Train/ixi/t1", "Train/ixi/t2", "Train/ixi/mask",
                       "Test/Brats21/t2", "Test/Brats21/t1", "Test/Brats21/mask", "Test/Brats21/seg",
                       "Test/MSLUB/t2", "Test/MSLUB/t1", "Test/MSLUB/mask", "Test/MSLUB/seg",
                       "Test/ATLAS_v2/t1", "Test/ATLAS_v2/mask", "Test/ATLAS_v2/seg",
                       "Test/WMH/t1", "Test/WMH/mask", "Test/WMH/seg"}


def test_split_csvs_are_consistent(tiny_cohort):
    splits = tiny_cohort / "splits"
    ixi = DATASETS["ixi"]
    test = read_split_csv(splits / ixi.split_file("test"))
    assert len(test) == TINY.healthy_test
    test_names = {record.img_name for record in test}
    pool = set()
    for fold in range(NUM_FOLDS):
        train = read_split_csv(splits / ixi.split_file("train", fold))
        val = read_split_csv(splits / ixi.split_file("val", fold))
        train_names, val_names = {r.img_name for r in train}, {r.img_name for r in val}
        assert (len(train), len(val)) == (TINY.healthy_train, TINY.healthy_val)
        assert len(train_names) == len(train) and len(val_names) == len(val)
        assert not train_names & val_names
        assert not (train_names | val_names) & test_names
        pool |= train_names | val_names
    assert len(pool) == TINY.pool
    for record in test + read_split_csv(splits / ixi.split_file("train", 0)):
        assert record.label == 0 and record.seg_path is None
        assert record.img_path == f"/Train/ixi/t1/{record.img_name}_t1.nii.gz"
        assert record.mask_path == f"/Train/ixi/mask/{record.img_name}_mask.nii.gz"
        assert AGES["ixi"].low <= record.age <= AGES["ixi"].high
    for dataset_id in LESION_SETS:
        spec = DATASETS[dataset_id]
        val = read_split_csv(splits / spec.split_file("val"))
        test = read_split_csv(splits / spec.split_file("test"))
        assert (len(val), len(test)) == (TINY.lesion_val, TINY.lesion_test)
        assert not {r.img_name for r in val} & {r.img_name for r in test}
        for record in val + test:
            folder = f"/Test/{spec.folder}"
            assert record.label == 1
            assert record.img_path == f"{folder}/{spec.eval_modality}/{record.img_name}_{spec.eval_modality}.nii.gz"
            assert record.seg_path == f"{folder}/seg/{record.img_name}_seg.nii.gz"
            assert AGES[dataset_id].low <= record.age <= AGES[dataset_id].high
    names = [r.img_name for dataset_id in DATASETS for r in _records(tiny_cohort, dataset_id)]
    assert len(names) == len(set(names))
    assert not any("_t1" in name or "_t2" in name for name in names)


# ------------------------------------------------------------------------------------------ volumes
@pytest.mark.parametrize("dataset_id", list(DATASETS))
def test_volumes(tiny_cohort, dataset_id):
    spec = DATASETS[dataset_id]
    reference_affine = None
    for record in _records(tiny_cohort, dataset_id):
        mask_path = data_file(tiny_cohort, record.mask_path)
        assert nib.load(mask_path).get_data_dtype() == np.uint8
        mask, affine = read_image(mask_path, dtype=np.uint8)
        reference_affine = affine if reference_affine is None else reference_affine
        np.testing.assert_array_equal(affine[:3, :3], np.eye(3))  # 1 mm voxels, RAS+
        np.testing.assert_array_equal(affine, reference_affine)
        assert mask.shape == GRID_SHAPE
        assert set(np.unique(mask)) == {0, 1}
        brain = mask.astype(bool)
        assert 1.2e6 < brain.sum() < 2.4e6  # a brain of 1.2-2.4 litres
        for modality in spec.modalities:
            path = data_file(tiny_cohort, modality_path(record.img_path, modality))
            assert nib.load(path).get_data_dtype() == np.float32
            image, image_affine = read_image(path)
            np.testing.assert_array_equal(image_affine, affine)
            assert image.shape == GRID_SHAPE
            assert np.all(image[~brain] == 0)
            assert image[brain].min() > 0 and 300 < np.median(image[brain]) < 1200
        if spec.healthy:
            continue
        seg_path = data_file(tiny_cohort, record.seg_path)
        assert nib.load(seg_path).get_data_dtype() == np.uint8
        seg, seg_affine = read_image(seg_path, dtype=np.uint8)
        np.testing.assert_array_equal(seg_affine, affine)
        assert set(np.unique(seg)) <= {0, 1}
        lesion = seg.astype(bool)
        assert not np.any(lesion & ~brain)
        low, high = LESION_CM3[dataset_id]
        assert low <= lesion.sum() / 1000 <= high
        slices = np.nonzero(lesion)[2]
        start, stop = MODEL_SLAB
        assert start <= slices.mean() < stop
        assert np.mean((slices >= start) & (slices < stop)) > 0.7
        count, sizes = _components(lesion)
        if dataset_id == "mslub":
            assert 3 <= count <= 30
            assert sizes.min() >= 20 and sizes.max() <= 2000  # 0.02-2 cm3 each
        elif dataset_id == "atlas":
            assert 1 <= count <= 2 and sizes.min() >= 1000
            assert _reaches_the_surface(brain, lesion, within=6)
        elif dataset_id == "brats21":
            assert count == 1


def _reaches_the_surface(brain, lesion, within):
    """True when some lesion voxel lies within ``within`` voxels (chessboard) of the outside of the brain."""
    points = np.argwhere(lesion)
    box = tuple(slice(max(low - within - 1, 0), high + within + 2)
                for low, high in zip(points.min(axis=0), points.max(axis=0)))
    # the box reaches within + 1 voxels beyond the lesion, so its own edges (eroded as outside) stay clear of it
    inner = ndimage.binary_erosion(brain[box], structure=np.ones((3, 3, 3), bool), iterations=within)
    return bool(np.any(lesion[box] & ~inner))


# ------------------------------------------------------------------------------------------ contrasts
def _median(image, where):
    assert where.sum() > 50
    return float(np.median(image[where]))


@pytest.mark.parametrize("dataset_id", list(DATASETS))
def test_contrasts_and_files_equal_the_in_memory_subject(tiny_cohort, dataset_id):
    spec = DATASETS[dataset_id]
    index = TINY.subjects(dataset_id) - 1
    subject = cohort_subject(dataset_id, index, seed=0)
    record = next(r for r in _records(tiny_cohort, dataset_id) if r.img_name == subject.name)
    assert subject.name == subject_name(dataset_id, index) and subject.age == record.age
    mask = read_image(data_file(tiny_cohort, record.mask_path), dtype=np.uint8)[0]
    np.testing.assert_array_equal(subject.mask, mask)
    anatomy = subject.anatomy
    lesion = np.zeros(len(anatomy.support), bool) if subject.seg is None else subject.seg.ravel()[anatomy.support] > 0
    classes = {name: (getattr(anatomy, name) > 0.9) & ~lesion for name in ("csf", "grey", "white")}
    for modality, image in subject.images.items():
        written = read_image(data_file(tiny_cohort, modality_path(record.img_path, modality)))[0]
        np.testing.assert_array_equal(image, written)
        values = image.ravel()[anatomy.support]
        csf, grey, white = (_median(values, classes[name]) for name in ("csf", "grey", "white"))
        if modality == "t1":
            assert white > grey > csf
        else:
            assert csf > grey > white
        if spec.healthy:
            continue
        np.testing.assert_array_equal(subject.seg, read_image(data_file(tiny_cohort, record.seg_path),
                                                              dtype=np.uint8)[0])
        inside = _median(values, lesion)  # between two tissues' means: bright in T2, dark in T1
        if dataset_id == "brats21":
            assert min(grey, csf) < inside < max(grey, csf)
        elif dataset_id == "mslub":
            assert min(white, csf) < inside < max(white, csf)
        elif dataset_id == "atlas":
            assert csf < inside < grey
        else:
            assert grey < inside < white
    lesion_images = (spec.eval_modality, *(("t1",) if dataset_id in ("brats21", "mslub") else ()))
    assert list(subject.images) == list(spec.modalities if spec.healthy else lesion_images)


def test_tumour_pushes_tissue_outward():
    reference = reference_anatomy()
    plan = TumourModel().plan(np.random.default_rng(3), reference)
    centre = plan.whole.centre[:, None]
    directions = np.random.default_rng(4).normal(size=(3, 200))
    directions /= np.linalg.norm(directions, axis=0)
    radii = np.linspace(0.5, 4.0 * plan.push_width_mm, 200)
    points = (centre + directions * radii).astype(np.float32)
    sources = plan.displacement()(points)
    source_radii = np.linalg.norm(sources - centre, axis=0)
    assert np.all(source_radii <= radii + 1e-3)  # tissue comes from nearer the centre: pushed out
    assert np.max(radii - source_radii) > 0.1 * plan.push_width_mm
    np.testing.assert_allclose(source_radii[radii > 3.5 * plan.push_width_mm],
                               radii[radii > 3.5 * plan.push_width_mm], atol=1e-3)
    along = np.linspace(0.0, 3.0 * plan.push_width_mm, 300)
    line = (centre + directions[:, :1] * along).astype(np.float32)
    assert np.all(np.diff(np.linalg.norm(plan.displacement()(line) - centre, axis=0)) > 0)  # no folding


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_subject_other_seed_or_index_other_subject():
    first = cohort_subject("atlas", 0, seed=5)
    again = cohort_subject("atlas", 0, seed=5)
    np.testing.assert_array_equal(first.images["t1"], again.images["t1"])
    np.testing.assert_array_equal(first.seg, again.seg)
    other_seed = cohort_subject("atlas", 0, seed=6)
    other_index = cohort_subject("atlas", 1, seed=5)
    for other in (other_seed, other_index):
        assert not np.array_equal(first.images["t1"], other.images["t1"])
        assert not np.array_equal(first.seg, other.seg)


def test_the_t1_of_a_lesion_subject_leaves_its_evaluation_image_as_without_it(monkeypatch):
    from brainuad.data.synth import subjects

    dataset_id = "mslub"  # BraTS21 subjects take the same path, five times slower
    both = cohort_subject(dataset_id, 0, seed=0)
    assert set(both.images) == {"t2", "t1"}
    monkeypatch.setattr(subjects, "_other_contrasts", lambda dataset_id: ())
    alone = cohort_subject(dataset_id, 0, seed=0)
    assert set(alone.images) == {"t2"}
    np.testing.assert_array_equal(both.images["t2"], alone.images["t2"])
    np.testing.assert_array_equal(both.seg, alone.seg)


def test_worker_processes_write_the_same_files(tiny_cohort, tmp_path):
    tasks = [_Task(str(tmp_path), "mslub", 1, 0), _Task(str(tmp_path), "wmh", 0, 0)]
    written = map_subjects(_write_subject, tasks, 2, progress=False, description="test")
    assert sorted((w.dataset_id, w.index) for w in written) == [("mslub", 1), ("wmh", 0)]
    files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*.nii.gz"))
    assert len(files) == 7  # MSLUB: T2, T1, mask, seg; WMH: T1, mask, seg
    for relative in files:
        np.testing.assert_array_equal(read_image(tmp_path / relative)[0], read_image(tiny_cohort / relative)[0])


def test_subject_generator_depends_on_seed_set_and_index_only():
    def draw(*key):
        return subject_generator(*key).integers(0, 2**62, size=4)

    np.testing.assert_array_equal(draw(0, "ixi", 3), draw(0, "ixi", 3))
    others = [draw(1, "ixi", 3), draw(0, "wmh", 3), draw(0, "ixi", 4)]
    assert all(not np.array_equal(draw(0, "ixi", 3), other) for other in others)


# ------------------------------------------------------------------------------------------ folds
@pytest.mark.parametrize("pool, val", [(8, 2), (48, 8), (10, 3)])
def test_fold_indices(pool, val):
    for fold in range(NUM_FOLDS):
        train, held_out = fold_indices(pool, val, fold)
        assert len(held_out) == val and len(set(held_out)) == val
        assert sorted(train + held_out) == list(range(pool))
        assert held_out == [(fold * val + offset) % pool for offset in range(val)]


@pytest.mark.parametrize("val", [0, 8])
def test_fold_indices_refuses_bad_val(val):
    with pytest.raises(ValueError, match="val"):
        fold_indices(8, val, 0)


def test_sizes_follow_the_brief():
    assert [(s.healthy_train, s.healthy_val, s.healthy_test, s.lesion_val, s.lesion_test)
            for s in (SIZES["tiny"], SIZES["small"], SIZES["medium"])] == [
        (6, 2, 2, 3, 3), (40, 8, 10, 8, 16), (150, 20, 40, 20, 60)]


# ------------------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize("kwargs, name", [({"size": "huge"}, "size"), ({"seed": -1}, "seed"),
                                          ({"seed": 1.5}, "seed"), ({"workers": 0}, "workers")])
def test_synthesize_cohort_refuses_bad_arguments(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthesize_cohort(tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arguments, name", [(("abide", 0), "dataset_id"), (("ixi", -1), "index"),
                                             (("ixi", 0, -2), "seed")])
def test_cohort_subject_refuses_bad_arguments(arguments, name):
    with pytest.raises(ValueError, match=name):
        cohort_subject(*arguments)


def test_synthesize_cohort_refuses_a_file_or_a_foreign_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        synthesize_cohort(tmp_path / "file", size="tiny", progress=False)
    (tmp_path / "data" / "Train").mkdir(parents=True)
    (tmp_path / "data" / "Train" / "mine.nii.gz").write_text("x")
    with pytest.raises(InputError, match="holds no synthetic cohort"):
        synthesize_cohort(tmp_path / "data", size="tiny", progress=False)
    assert (tmp_path / "data" / "Train" / "mine.nii.gz").is_file()


def test_an_earlier_cohort_is_cleared(tmp_path):
    for name in ("Train/ixi/t1/a_t1.nii.gz", "Test/WMH/seg/b_seg.nii.gz", "splits/IXI_test.csv", "preview.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / MARKER).write_text("{}")
    (tmp_path / "notes.txt").write_text("kept")
    _prepare(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------------ preview
def test_preview(tiny_cohort, tmp_path):
    from matplotlib.image import imread

    picture = imread(tiny_cohort / "preview.png")
    assert picture.ndim == 3 and picture.shape[0] > picture.shape[1] > 300  # six rows of three
    path = write_preview(tiny_cohort, tmp_path / "again.png", per_set=1)
    assert imread(path).shape[0] > imread(path).shape[1]
    with pytest.raises(ValueError, match="per_set"):
        write_preview(tiny_cohort, tmp_path / "x.png", per_set=0)


# ------------------------------------------------------------------------------------------ parts
def test_smooth_noise_statistics():
    rng = np.random.default_rng(0)
    scale = 3.0
    field = smooth_noise(rng, (64, 64, 48), scale)
    assert field.dtype == np.float32 and field.shape == (64, 64, 48)
    fields = np.stack([smooth_noise(rng, (64, 64, 48), scale) for _ in range(30)])
    assert abs(fields.mean()) < 0.05
    np.testing.assert_allclose(fields.std(axis=0).mean(), 1.0, atol=0.03)  # unit variance everywhere
    np.testing.assert_allclose(fields[:, 0].std(), 1.0, atol=0.1)  # edges included
    for lag in (2, 4, 8):  # Gaussian correlation exp(-r^2 / (4 scale^2))
        corr = np.mean(fields[:, :-lag] * fields[:, lag:])
        assert corr == pytest.approx(np.exp(-lag**2 / (4 * scale**2)), abs=0.05)


@pytest.mark.parametrize("shape, scale, name", [((8, 8), 2.0, "shape"), ((8, 8, 0), 2.0, "shape"),
                                                ((8, 8, 8), 0.5, "scale")])
def test_smooth_noise_refuses_bad_arguments(shape, scale, name):
    with pytest.raises(ValueError, match=name):
        smooth_noise(np.random.default_rng(0), shape, scale)


def test_grow_reaches_the_exact_size_inside_the_allowed_voxels():
    rng = np.random.default_rng(1)
    activation = rng.uniform(0, 10, 1000).astype(np.float32)
    activation[::3] = np.inf
    grown = grow(activation, np.arange(1000), 200, edge_mm=1.0)
    assert grown.voxels == 200
    assert np.all(np.isfinite(activation[grown.seg]))
    assert np.all(activation[grown.seg].max() <= activation[~grown.seg])
    assert np.all(grown.weight[grown.seg] >= 0.5) and np.all(grown.weight[~grown.seg] < 0.5 + 1e-6)
    assert grow(activation, np.arange(1000), 700, edge_mm=1.0) is None  # only 666 voxels allowed


def test_largest_component_matches_scipy_label():
    reference = reference_anatomy()
    subject = cohort_subject("ixi", 0, seed=0)
    anatomy = subject.anatomy
    centre = reference.centre
    which = anatomy.near(centre, 14.0)
    main = Ellipsoid(centre, np.eye(3), np.ones(3)).radius(anatomy.coords[:, which]) < 4.0
    satellite = Ellipsoid(centre + np.array([0.0, 0.0, 9.0]), np.eye(3), np.ones(3)).radius(
        anatomy.coords[:, which]) < 2.0
    seg = main | satellite
    lesion = Grown(which, seg, np.where(seg, 1.0, 0.0).astype(np.float32))
    kept = largest_component(anatomy, lesion)
    dense = np.zeros(GRID_SHAPE, np.uint8).ravel()
    dense[anatomy.support[which[seg]]] = 1
    labels, _ = ndimage.label(dense.reshape(GRID_SHAPE), structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    expected = labels.ravel()[anatomy.support[which]] == np.argmax(sizes) + 1
    np.testing.assert_array_equal(kept.seg, expected & seg)
    assert kept.voxels == sizes.max() < lesion.voxels
    assert np.all(kept.weight[seg & ~kept.seg] < 0.5)


def test_skewed_stays_in_range_and_refuses_a_bad_median():
    rng = np.random.default_rng(0)
    values = [skewed(rng, 10.0, 1.0, 2.0, 50.0) for _ in range(500)]
    assert 2.0 <= min(values) and max(values) <= 50.0
    assert 7.0 < np.median(values) < 13.0
    with pytest.raises(ValueError, match="median"):
        skewed(rng, 100.0, 1.0, 2.0, 50.0)
