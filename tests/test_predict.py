import itertools
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.data.grid import CROP_SHAPE
from brainuad.data.io import read_image, write_image
from brainuad.data.volume import Volume
from brainuad.errors import InputError
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.run_thresholds import RunThreshold, write_run_thresholds
from brainuad.predict import (
    Detector,
    Reorientation,
    ThresholdChoice,
    discover_inputs,
    find_contrast,
    find_mask,
    resolve_threshold,
    write_prediction,
)

THRESHOLD = 0.2
OUTPUTS = ("anomaly.nii.gz", "mask.nii.gz", "reconstruction.nii.gz", "overview.png")


def field_of_view(reorientation):
    """Voxels of a scan inside the model's centred box, in the scan's own voxel order."""
    box = np.zeros(reorientation.shape, dtype=bool)
    box[tuple(slice(max((size - crop) // 2, 0), (size - crop) // 2 + crop)
              for size, crop in zip(reorientation.shape, CROP_SHAPE))] = True
    return reorientation.revert(box)


@pytest.fixture(scope="module")
def cli_prediction(trained_ddpm_run, preprocessed_scans, tmp_path_factory):
    """`brainuad predict` on the scans' folder: two good scans, a broken one, a mask beside them."""
    out = tmp_path_factory.mktemp("predicted")
    result = CliRunner().invoke(app, ["predict", str(trained_ddpm_run), str(preprocessed_scans.folder), "--out",
                                      str(out), "--threshold", str(THRESHOLD)])
    return result, out


def test_every_output_has_the_geometry_of_its_scan(cli_prediction, preprocessed_scans):
    result, out = cli_prediction
    for scan in (preprocessed_scans.plain, preprocessed_scans.reoriented):
        image, affine = read_image(scan.image)
        name = scan.image.name.split(".")[0]
        for suffix in OUTPUTS[:3]:
            written = nib.load(out / f"{name}_{suffix}")
            assert written.shape == image.shape, suffix
            np.testing.assert_allclose(written.affine, affine, atol=1e-4)
        assert (out / f"{name}_overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        mask = np.asanyarray(nib.load(out / f"{name}_mask.nii.gz").dataobj)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        reconstruction = nib.load(out / f"{name}_reconstruction.nii.gz").get_fdata()
        assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert {path.name for path in out.iterdir()} == {f"{name}_{suffix}" for name in ("plain_t2", "reoriented_t2")
                                                    for suffix in OUTPUTS}
    assert f"threshold {THRESHOLD:g}: given explicitly" in result.output
    assert "found beside the scan" in result.output and "outside the model's centred" in result.output


def test_a_broken_file_is_reported_and_skipped(cli_prediction, preprocessed_scans):
    result, _ = cli_prediction
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"failed: {preprocessed_scans.broken}: cannot be read" in output
    assert "2 of 3 scan(s) predicted" in output
    assert "skipped 1 mask, segmentation, output or other-contrast file(s)" in output  # plain_mask.nii.gz


def test_the_anomaly_map_singles_out_the_lesion(cli_prediction, preprocessed_scans):
    _, out = cli_prediction
    scan = preprocessed_scans.reoriented
    anomaly = nib.load(out / "reoriented_t2_anomaly.nii.gz").get_fdata()
    binary = np.asanyarray(nib.load(out / "reoriented_t2_mask.nii.gz").dataobj) > 0
    reconstruction = nib.load(out / "reoriented_t2_reconstruction.nii.gz").get_fdata()
    image = read_image(scan.image)[0]
    seen = field_of_view(Reorientation.to_axes(image.shape, read_image(scan.image)[1]))
    lesion, healthy = scan.lesion & seen, scan.brain & ~scan.lesion & seen
    assert anomaly[lesion].mean() >= 2 * anomaly[healthy].mean()
    assert not anomaly[~seen].any()
    assert binary[~scan.brain].sum() < 0.01 * binary.sum()  # the 2 mm grid's mask differs at the brain's rim
    assert binary[lesion].mean() > 0.5 and binary[healthy].mean() < 0.15
    # the (coarse) reconstruction follows the healthy anatomy: a constant or empty output would not
    assert np.corrcoef(image[healthy], reconstruction[healthy])[0, 1] > 0.3


def test_a_reoriented_scan_gets_the_same_maps(cli_prediction, preprocessed_scans):
    """The reoriented file stores the plain scan's voxels in another axis order: once put back in
    the plain order, its maps equal the plain scan's exactly (reconstructions are seeded per scan)."""
    _, out = cli_prediction
    image, affine = read_image(preprocessed_scans.reoriented.image)
    reorientation = Reorientation.to_axes(image.shape, affine)
    for suffix in OUTPUTS[:3]:
        plain = np.asanyarray(nib.load(out / f"plain_t2_{suffix}").dataobj)
        reoriented = np.asanyarray(nib.load(out / f"reoriented_t2_{suffix}").dataobj)
        np.testing.assert_array_equal(reorientation.apply(reoriented), plain)


# --------------------------------------------------------------------------------------------
# Thresholds
# --------------------------------------------------------------------------------------------


def stored(dataset, value, order="paper", evaluation="eval/summary.json"):
    return RunThreshold(dataset, "val-dice", "lesion-val", value, PostProcessing(order=order), 3, Path(evaluation))


@pytest.fixture
def run_copy(trained_ddpm_run, tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    for name in ("config.yaml", "model.safetensors"):
        shutil.copy(trained_ddpm_run / name, target / name)
    return target


def summary_file(path, run_name, values):
    """A summary.json as brainuad evaluate writes it, reduced to what thresholds are read from."""
    sets = [{"dataset": dataset, "n_val": 2, "thresholded": [
        {"postprocessing": "without MF", "source": "lesion-val", "threshold": {"strategy": "val-dice", "value": 9.0}},
        {"postprocessing": "full", "source": "lesion-val", "threshold": {"strategy": "val-dice", "value": value}}]}
            for dataset, value in values.items()]
    run = {"name": run_name, "thresholds": ["val-dice", "oracle"], "sets": sets,
           "postprocessing": {"median_size": 3, "erosion_iterations": 3, "order": "authors_code",
                              "min_component_size": 7, "component_rule": "at_most", "median": True, "erosion": True,
                              "components": True}}
    path.write_text(json.dumps({"summary": {"groups": [{"label": "ddpm", "runs": [run]}]}}))
    return path


def test_threshold_precedence(run_copy, tmp_path):
    with pytest.raises(InputError, match="no threshold stored.*brainuad evaluate"):
        resolve_threshold(run_copy)
    write_run_thresholds(run_copy, [stored("mslub", 0.3, "authors_code"), stored("brats21", 0.2)])
    first = resolve_threshold(run_copy)
    assert (first.value, first.postprocessing) == (0.2, PostProcessing())  # brats21 comes first
    assert "val-dice threshold of brats21" in first.origin and "thresholds.json" in first.origin
    chosen = resolve_threshold(run_copy, dataset="mslub")
    assert (chosen.value, chosen.postprocessing.order) == (0.3, "authors_code")
    with pytest.raises(InputError, match="no threshold for set 'wmh' \\(sets: brats21, mslub\\)"):
        resolve_threshold(run_copy, dataset="wmh")
    summary = summary_file(tmp_path / "summary.json", run_copy.name, {"brats21": 0.125, "mslub": 0.5})
    from_summary = resolve_threshold(run_copy, threshold_from=summary, dataset="mslub")
    assert from_summary.value == 0.5 and from_summary.postprocessing == PostProcessing(
        median_size=3, order="authors_code", component_rule="at_most")
    assert resolve_threshold(run_copy, threshold_from=summary).value == 0.125
    assert resolve_threshold(run_copy, threshold=0.05) == ThresholdChoice(0.05, PostProcessing(),
                                                                          "given explicitly; paper post-processing")
    other = summary_file(tmp_path / "other.json", "another-run", {"brats21": 0.1})
    with pytest.raises(InputError, match="holds no run named 'run' \\(runs: another-run\\)"):
        resolve_threshold(run_copy, threshold_from=other)


@pytest.mark.parametrize("options, message", [({"threshold": -0.1}, "finite number >= 0"),
                                              ({"threshold": float("nan")}, "finite number >= 0"),
                                              ({"threshold": 0.1, "dataset": "brats21"}, "without threshold_from")])
def test_bad_thresholds(run_copy, options, message):
    with pytest.raises(ValueError, match=message):
        resolve_threshold(run_copy, **options)


def run_command(*arguments):
    result = CliRunner().invoke(app, ["predict", *map(str, arguments)])
    return result, " ".join(result.output.split())


def test_command_refuses_without_a_threshold(run_copy, preprocessed_scans, tmp_path):
    result, output = run_command(run_copy, preprocessed_scans.plain.image, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert f"{run_copy}: no threshold stored for this run (no thresholds.json)" in output
    assert "--threshold-from" in output and not (tmp_path / "out").exists()


def test_command_takes_the_stored_or_the_evaluated_threshold(run_copy, preprocessed_scans, tmp_path):
    """Both print the threshold before predicting (a broken scan keeps the test fast)."""
    write_run_thresholds(run_copy, [stored("brats21", 0.25), stored("mslub", 0.375)])
    result, output = run_command(run_copy, preprocessed_scans.broken, "--out", tmp_path / "out", "--set", "mslub")
    assert result.exit_code == 1 and "threshold 0.375: val-dice threshold of mslub" in output
    summary = summary_file(tmp_path / "summary.json", run_copy.name, {"brats21": 0.0625})
    result, output = run_command(run_copy, preprocessed_scans.broken, "--out", tmp_path / "out", "--threshold-from",
                                 summary)
    assert result.exit_code == 1 and f"threshold 0.0625: val-dice threshold of brats21 (from {summary}" in output


@pytest.mark.parametrize("arguments, message", [(["--threshold", "0.1", "--set", "brats21"], "not both"),
                                                (["--set", "brats"], "unknown lesion set 'brats'"),
                                                (["--mask", "no-such-mask.nii.gz"], "file not found"),
                                                (["--orientation", "RAR"], "got 'RAR'")])
def test_command_rejects_bad_options(run_copy, tmp_path, arguments, message):
    result, output = run_command(run_copy, tmp_path, "--out", tmp_path / "out", *arguments)
    assert result.exit_code == 2 and message in output


# --------------------------------------------------------------------------------------------
# Inputs, masks, voxel order
# --------------------------------------------------------------------------------------------


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_masks_are_found_beside_the_scan(tmp_path):
    scan = touch(tmp_path / "a" / "sub-01.nii.gz")
    assert find_mask(scan) is None
    own = touch(tmp_path / "a" / "sub-01_mask.nii")
    assert find_mask(scan) == own
    modality = touch(tmp_path / "b" / "sub-02_t2.nii.gz")
    beside = touch(tmp_path / "b" / "sub-02_mask.nrrd")
    assert find_mask(modality) == beside
    layout = touch(tmp_path / "Test" / "Brats21" / "t2" / "X_t2.mha")
    sibling = touch(tmp_path / "Test" / "Brats21" / "mask" / "X_mask.nii.gz")
    assert find_mask(layout) == sibling
    preferred = touch(tmp_path / "Test" / "Brats21" / "mask" / "X_mask.mha")
    assert find_mask(layout) == preferred  # the scan's own suffix first


def test_other_contrasts_are_found_beside_the_scan_and_not_taken_as_scans(tmp_path):
    scan = touch(tmp_path / "b" / "sub-02_t2.nii.gz")
    assert find_contrast(scan, "t1") is None
    beside = touch(tmp_path / "b" / "sub-02_t1.nii.gz")
    assert find_contrast(scan, "t1") == beside
    layout = touch(tmp_path / "Test" / "MSLUB" / "t2" / "X_t2.nii.gz")
    sibling = touch(tmp_path / "Test" / "MSLUB" / "t1" / "X_t1.nii.gz")
    assert find_contrast(layout, "t1") == sibling and find_contrast(layout, "flair") is None
    discovery = discover_inputs([tmp_path / "b"], contrasts=("t1",))
    assert discovery.scans == (scan,) and discovery.ignored == (beside,)
    assert discover_inputs([tmp_path / "b"]).scans == (beside, scan)  # a single-contrast model predicts both


def test_inputs_are_discovered_and_problems_named(tmp_path):
    folder = tmp_path / "scans"
    scans = [touch(folder / name) for name in ("b_t2.nii.gz", "a_t2.nrrd")]
    ignored = [touch(folder / name) for name in ("a_mask.nii.gz", "a_seg.nii.gz", "a_t2_anomaly.nii.gz")]
    touch(folder / "notes.txt")
    (tmp_path / "empty").mkdir()
    twin = touch(tmp_path / "other" / "b_t2.mha")
    text = touch(tmp_path / "x.txt")
    discovery = discover_inputs([folder, scans[0], tmp_path / "missing.nii.gz", tmp_path / "empty", twin, text])
    assert discovery.scans == (scans[1], scans[0])  # sorted within the folder, the repeat kept once
    assert sorted(discovery.ignored) == sorted(ignored)
    problems = [str(problem) for problem in discovery.problems]
    assert problems[0] == f"{tmp_path / 'missing.nii.gz'}: file not found"
    assert problems[1].startswith(f"{tmp_path / 'empty'}: folder holds no scan")
    assert problems[2].startswith(f"{text}: not a supported image file")
    assert problems[3].startswith(f"{twin}: has the same name as {scans[0]}")
    with pytest.raises(ValueError, match="single path"):
        discover_inputs(folder)


def test_reorientation_round_trips_every_axis_order():
    array = np.random.default_rng(0).random((3, 4, 5))
    for order in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            affine = np.eye(4)
            affine[:3, :3] = 0
            for axis, (world, flip) in enumerate(zip(order, flips)):
                affine[world, axis] = flip
            affine[:3, 3] = (5, -3, 2)
            reorientation = Reorientation.to_axes(array.shape, affine)
            ras = reorientation.apply(array)
            # each voxel keeps its world position: the reoriented affine is diagonal and positive
            assert np.allclose(reorientation.affine[:3, :3], np.eye(3))
            for voxel in ((0, 1, 2), (2, 0, 1)):
                world = reorientation.affine @ np.array([*voxel, 1])
                source = np.linalg.solve(affine, world).round().astype(int)
                assert ras[voxel] == array[tuple(source[:3])]
            assert np.array_equal(reorientation.revert(ras), array) and ras.shape == reorientation.shape
    with pytest.raises(ValueError, match="orientation must be three letters"):
        Reorientation.to_axes(array.shape, np.eye(4), "RAA")


class BrightVoxels:
    """A map-only method (no reconstruct): the normalised intensity is the anomaly score."""

    def anomaly_map(self, volume):
        return volume.image.copy()


def test_map_only_method_unmasked_coarse_scan(tmp_path):
    """No mask: the nonzero voxels stand in, with a warning, as does a 2 mm voxel size."""
    image = np.zeros((100, 96, 60), dtype=np.float32)
    image[20:80, 20:76, 10:50] = 0.3
    image[40:60, 40:60, 20:40] = 1.0  # 6 % of the brain: above its 99th percentile
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    write_image(tmp_path / "coarse.nii.gz", image, affine)
    detector = Detector(BrightVoxels(), ThresholdChoice(0.5, PostProcessing(), "test"))
    result = detector.predict(tmp_path / "coarse.nii.gz")
    assert result.mask_source == "the scan's nonzero voxels"
    assert any("no brain mask found" in warning for warning in result.warnings)
    assert any("voxel spacing 2 x 2 x 2 mm is not 1 mm" in warning for warning in result.warnings)
    assert result.reconstruction is None and result.binary_mask.shape == image.shape
    bright = np.zeros(image.shape, dtype=bool)
    bright[40:60, 40:60, 20:40] = True
    assert result.binary_mask[bright].mean() > 0.5 and not result.binary_mask[~bright].any()
    assert result.anomaly_volume_ml == pytest.approx(result.binary_mask.sum() * 8 / 1000)
    files = write_prediction(result, tmp_path / "out")
    assert files.reconstruction is None and files.overview.is_file()
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "coarse_anomaly.nii.gz", "coarse_mask.nii.gz", "coarse_overview.png"]
    with pytest.raises(ValueError, match="has no reconstruct"):
        detector.reconstruct(tmp_path / "coarse.nii.gz")


def test_unusable_scans_name_their_file(tmp_path):
    detector = Detector(BrightVoxels(), ThresholdChoice(0.5, PostProcessing(), "test"))
    write_image(tmp_path / "empty.nii.gz", np.zeros((8, 8, 8), dtype=np.float32), np.eye(4))
    with pytest.raises(InputError, match="empty.nii.gz: has no nonzero voxel"):
        detector.predict(tmp_path / "empty.nii.gz")
    write_image(tmp_path / "m.nii.gz", np.ones((8, 8, 9), dtype=np.uint8), np.eye(4))
    with pytest.raises(InputError, match="mask shape"):
        detector.predict(tmp_path / "empty.nii.gz", mask=tmp_path / "m.nii.gz")
    volume = Volume(np.ones((8, 8, 8)), np.eye(4), name="in-memory")
    with pytest.raises(ValueError, match="cannot be given with a Volume"):
        detector.prepare(volume, mask=tmp_path / "m.nii.gz")
    results = list(detector.predict_files([tmp_path / "missing.nii.gz", tmp_path / "empty.nii.gz"]))
    assert [str(outcome) for _, outcome in results] == [f"{tmp_path / 'missing.nii.gz'}: file not found",
                                                        f"{tmp_path / 'empty.nii.gz'}: has no nonzero voxel "
                                                        "(is the file empty?)"]


# --------------------------------------------------------------------------------------------
# Raw scans (--raw)
# --------------------------------------------------------------------------------------------


def fast_raw_pipeline(atlas, skull_strip):
    """The paper's steps at 1 mm with a coarse registration and a short N4: seconds instead of a
    minute (the pipeline's own tests cover the full settings)."""
    from brainuad.preprocess.bias import N4Correction
    from brainuad.preprocess.pipeline import Pipeline
    from brainuad.preprocess.register import AtlasRegistration, RegistrationSettings
    from brainuad.preprocess.skullstrip import skull_stripper

    return Pipeline(registration=AtlasRegistration(atlas, RegistrationSettings(working_spacing_mm=3.0)),
                    skull_strip=skull_stripper(skull_strip), bias=N4Correction(levels=1, iterations=5, shrink=2))


@pytest.fixture(scope="module")
def raw_tumour_scan(tmp_path_factory):
    """The tiny cohort's largest tumour (BraTS-SYN-0004) as a raw clinical scan: skull, 1 x 1 x 5 mm
    axial voxels, a random rigid pose, an oblique affine, a bias field."""
    from brainuad.data.synth.raw import PROFILES, raw_subject

    raw = raw_subject("brats21", 3, seed=0, profile=PROFILES["mslub"])
    scan = raw.scans["t2"]
    path = write_image(tmp_path_factory.mktemp("raw-scan") / "clinical_t2.nii.gz", scan.image, scan.affine)
    return path, raw


def test_raw_scans_are_preprocessed_and_mapped_back_onto_their_grid(trained_ddpm_run, raw_tumour_scan, tmp_path,
                                                                    monkeypatch):
    import brainuad.preprocess.prepare as preparation
    from brainuad.preprocess.register import MNI152_NAME

    path, raw = raw_tumour_scan
    chosen = {}

    def pipeline(dataset_id=None, *, atlas=None, skull_strip=None):
        chosen.update(dataset=dataset_id, atlas=atlas.name, skull_strip=skull_strip)
        return fast_raw_pipeline(atlas, skull_strip)

    monkeypatch.setattr(preparation, "default_pipeline", pipeline)
    result, output = run_command(trained_ddpm_run, path, "--out", tmp_path, "--threshold", THRESHOLD, "--raw")
    assert result.exit_code == 0, output
    assert chosen == {"dataset": None, "atlas": MNI152_NAME, "skull_strip": "deepbet"}
    assert "registered to MNI152" in output and "maps carried back to the raw scan's grid" in output

    image = nib.load(path)
    assert image.header.get_zooms() == pytest.approx((1.0, 1.0, 5.0), abs=1e-4)
    maps = {}
    for name in ("anomaly", "mask", "reconstruction"):
        written = nib.load(tmp_path / f"clinical_t2_{name}.nii.gz")
        assert written.shape == image.shape
        np.testing.assert_allclose(written.affine, image.affine, atol=1e-5)
        maps[name] = np.asarray(written.dataobj)
    assert set(np.unique(maps["mask"])) <= {0, 1}
    # the maps lie on the raw head, in the raw scan's own voxels (the brain and tumour truths are
    # drawn on the raw grid): scored voxels are mostly brain (deepbet keeps some skull on 5 mm
    # slices) and cover the part of it in the model's 100 mm axial slab; the tumour stands out
    lesion, brain = raw.lesion, raw.brain
    scored = maps["anomaly"] > 0
    assert (scored & brain).sum() >= 0.85 * scored.sum() and (scored & brain).sum() >= 0.4 * brain.sum()
    inside, rest = maps["anomaly"][lesion].mean(), maps["anomaly"][brain & ~lesion].mean()
    assert inside >= 1.5 * rest, (inside, rest)
    assert (tmp_path / "clinical_t2_overview.png").stat().st_size > 0


@pytest.mark.parametrize("arguments, message", [
    (["--atlas", "atlas.nii.gz"], "add --raw"), (["--raw", "--skull-strip", "bet"], "got 'bet'"),
    (["--raw", "--atlas-mask", "mask.nii.gz"], "--atlas-mask needs --atlas")])
def test_raw_options_are_checked(run_copy, tmp_path, arguments, message):
    result, output = run_command(run_copy, tmp_path, "--out", tmp_path / "out", "--threshold", 0.1, *arguments)
    assert result.exit_code == 2 and message in output


def test_the_training_space_is_read_from_the_run_data(run_copy, tmp_path):
    from brainuad.methods.registry import load_config
    from brainuad.predict import training_atlas

    atlas, where = training_atlas(run_copy)
    assert atlas.name.startswith("MNI152") and "no space.json" in where
    root = load_config(run_copy / "config.yaml").data.root
    data = tmp_path / "data"
    data.mkdir()
    (data / "space.json").write_text(json.dumps({"atlas": None, "spacing_mm": 1.0, "shape": [192, 192, 160]}))
    config = (run_copy / "config.yaml").read_text().replace(str(root), str(data))
    (run_copy / "config.yaml").write_text(config)
    with pytest.raises(InputError, match="prepared without registration"):
        training_atlas(run_copy)


def test_a_multi_contrast_model_registers_the_raw_t1_beside_a_raw_scan(raw_tumour_scan, tiny_cohort, tmp_path):
    """The T1 of a raw scan is aligned to it rigidly and brought onto the model grid with it: the
    raw T1 shares the T2's grid, so the alignment found is the identity (within half a mm), and on
    the grid the tumour (the cohort's truth, in the atlas space) is bright in T2 and dark in T1."""
    from dataclasses import replace

    from brainuad.data.cache import GridCache
    from brainuad.data.layout import split_subjects
    from brainuad.methods.registry import build_detector, parse_config
    from brainuad.preprocess.register import Atlas

    path, raw = raw_tumour_scan
    folder = tmp_path / "scans"
    folder.mkdir()
    scan = folder / path.name
    scan.write_bytes(path.read_bytes())
    t1 = raw.scans["t1"]
    write_image(folder / "clinical_t1.nii.gz", t1.image, t1.affine)
    method = build_detector(parse_config({"method": "cddpm_mc", "encoder": {"depth": 18, "dim": 8},
                                          "model": {"base_channels": 8, "groups": 4, "attention_head_channels": 8}}))
    without_n4 = replace(fast_raw_pipeline(Atlas.mni152(), "atlas-mask"), bias=None)  # N4 is not tested here
    detector = Detector(method, ThresholdChoice(THRESHOLD, PostProcessing(), "test"), preprocessing=without_n4)
    assert detector.contrasts == ("t1",) and discover_inputs([folder], detector.contrasts).scans == (scan,)
    prepared = detector.prepare(scan)
    assert f"read with its t1 image {folder / 'clinical_t1.nii.gz'}" in prepared.notes
    subject = next(s for s in split_subjects(tiny_cohort, "brats21", "test", contrasts=("t1",))
                   if s.name == "BraTS-SYN-0004")
    truth = GridCache().load(subject)
    grid = prepared.grid
    tumour, rest = grid.mask & truth.seg, grid.mask & ~truth.seg
    assert grid.image[tumour].mean() > 1.1 * grid.image[rest].mean()
    assert grid.contrasts["t1"][tumour].mean() < 0.8 * grid.contrasts["t1"][rest].mean()
    records = prepared.preprocessed.record.records
    corners = np.array([[x, y, z, 1.0] for x in (-60, 60) for y in (-80, 60) for z in (-40, 70)]).T
    assert np.abs((records["t1"].world @ corners - records["scan"].world @ corners)[:3]).max() < 1.0
    with pytest.raises(ValueError, match="reads t1; it cannot use the flair image"):
        detector.prepare(scan, contrasts={"flair": folder / "clinical_t1.nii.gz"})
    with pytest.raises(ValueError, match="give the scan as a file"):
        detector.prepare(Volume.load(scan))
