import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from skimage.exposure import equalize_hist
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.data.cache import GridCache
from brainuad.data.layout import split_subjects
from brainuad.evaluate.runs import evaluate_runs
from brainuad.methods.registry import build_detector, parse_config
from brainuad.methods.thresh import IntensityThreshold
from brainuad.run_directory import load_run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def volumes(tiny_cohort):
    cache = GridCache()
    return [cache.load(subject) for subject in split_subjects(tiny_cohort, "ixi", "train", 0, "t2")]


@pytest.fixture(scope="module")
def fitted(volumes):
    method = IntensityThreshold("hyper", bins=4096, equalisation="healthy_fit")
    method.fit(volumes)
    return method


@pytest.mark.parametrize("equalisation", ["per_scan", "healthy_fit"])
def test_equalisation_matches_scikit_image_on_the_reference_volume(volumes, equalisation):
    volume = volumes[0]
    method = IntensityThreshold("hyper", bins=4096, equalisation=equalisation)
    method.fit([volume])
    ours = method.anomaly_map(volume)
    reference = equalize_hist(volume.image, nbins=4096, mask=volume.mask)
    # both are the brain's empirical CDF; they differ by where in a bin the CDF is read (< 1 bin's mass)
    assert np.abs(ours[volume.mask] - reference[volume.mask]).max() < 0.02
    assert np.abs(ours[volume.mask] - reference[volume.mask]).mean() < 2e-3


def test_per_scan_equalisation_uses_each_scans_own_histogram_and_no_training_data(volumes):
    """Meissen et al.: every scan is equalised on its own brain voxels, so a global change of
    contrast leaves the map as it is, and a fit on other data changes nothing."""
    method = IntensityThreshold("hyper", bins=4096)
    assert method.fitted and method.state_dict() == {}
    volume = volumes[1]
    before = method.anomaly_map(volume)
    method.fit(volumes[:1])
    np.testing.assert_array_equal(method.anomaly_map(volume), before)
    reference = equalize_hist(volume.image, nbins=4096, mask=volume.mask)
    assert np.abs(before[volume.mask] - reference[volume.mask]).mean() < 2e-3
    # a monotone change of contrast keeps the ranks, hence the equalised map (up to binning)
    darker = replace(volume, image=(volume.image ** 2).astype(np.float32))
    assert np.abs(method.anomaly_map(darker)[volume.mask] - before[volume.mask]).mean() < 0.01
    # the healthy-fitted variant reads the darker scan with the healthy histogram: far lower scores
    healthy = IntensityThreshold("hyper", bins=4096, equalisation="healthy_fit")
    healthy.fit(volumes)
    assert healthy.anomaly_map(darker)[volume.mask].mean() < before[volume.mask].mean() - 0.1


def test_equalised_value_is_the_fraction_of_darker_healthy_brain_voxels(fitted, volumes):
    values = np.concatenate([volume.image[volume.mask] for volume in volumes])
    probes = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95], dtype=np.float32)
    expected = np.array([(values <= probe).mean() for probe in probes])
    np.testing.assert_allclose(fitted.equalise(torch.from_numpy(probes)).numpy(), expected, atol=2e-3)
    assert fitted.equalise(torch.tensor([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_polarity_map_shape_and_background(fitted, volumes):
    volume = volumes[1]
    hyper = fitted.anomaly_map(volume)
    hypo = IntensityThreshold("hypo", bins=4096, equalisation="healthy_fit")
    hypo.load_state_dict(fitted.state_dict())
    dark = hypo.anomaly_map(volume)
    assert hyper.shape == dark.shape == (96, 96, 50) and hyper.dtype == dark.dtype == np.float32
    assert not hyper[~volume.mask].any() and not dark[~volume.mask].any()
    np.testing.assert_allclose(dark[volume.mask], 1 - hyper[volume.mask], atol=1e-6)
    # a plain array: its non-zero voxels are the brain
    array_map = fitted.anomaly_map(volume.image)
    np.testing.assert_array_equal(array_map[volume.image == 0], 0)
    np.testing.assert_allclose(array_map[volume.image > 0], hyper[volume.image > 0])


def test_bright_voxels_score_higher_on_t2(fitted, volumes):
    volume = volumes[0]
    image = volume.image.copy()
    bright = volume.mask & (image > 0.2) & (image < 0.4)
    image[bright] = 0.98
    scores = fitted.anomaly_map(image)
    assert scores[bright].mean() > 0.95 > np.median(scores[volume.mask & ~bright])


def test_validation_loss_is_wasserstein_distance_to_uniform(fitted, volumes):
    slices = torch.from_numpy(volumes[0].image[:, :, 20:30]).permute(2, 0, 1)[:, None]
    loss = fitted.training_loss(slices)
    equalised = fitted.equalise(slices[slices > 0]).numpy()
    reference = wasserstein_distance(equalised, (np.arange(20000) + 0.5) / 20000)
    assert loss.ndim == 0 and abs(loss.item() - reference) < 1e-3
    assert loss.item() < 0.15  # healthy slices are close to the fitted distribution
    assert fitted.training_loss(torch.zeros(2, 1, 8, 8)).item() == 0.0  # no brain voxel


def test_errors():
    with pytest.raises(ValueError, match="polarity"):
        IntensityThreshold("bright")
    with pytest.raises(ValueError, match="bins"):
        IntensityThreshold("hyper", bins=1)
    with pytest.raises(ValueError, match="equalisation"):
        IntensityThreshold("hyper", equalisation="global")
    method = IntensityThreshold("hyper", equalisation="healthy_fit")
    with pytest.raises(RuntimeError, match="not fitted"):
        method.anomaly_map(np.zeros((4, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="at least one volume"):
        method.fit([])
    with pytest.raises(ValueError, match="3-D"):
        method.anomaly_map(np.zeros((4, 4), dtype=np.float32))


@pytest.mark.parametrize(("modality", "polarity"), [("t2", "hyper"), ("t1", "hypo")])
def test_polarity_follows_the_modality(modality, polarity):
    method = build_detector(parse_config({"method": "thresh", "data": {"modality": modality}}))
    assert isinstance(method, IntensityThreshold) and method.polarity == polarity
    forced = build_detector(parse_config({"method": "thresh", "data": {"modality": modality},
                                          "thresh": {"polarity": "hyper"}}))
    assert forced.polarity == "hyper"
    assert method.equalisation == "per_scan"  # the paper's Thresh row (Meissen et al.)


@pytest.fixture(scope="module")
def thresh_run(tiny_cohort, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "thresh"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "thresh.bins=4096",
                                      "thresh.equalisation=healthy_fit",
                                      "--data", str(tiny_cohort), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir


def test_brainuad_train_fits_and_load_run_round_trip(thresh_run, fitted):
    assert sorted(path.name for path in thresh_run.iterdir()) == ["config.yaml", "model.safetensors", "training.json"]
    record = json.loads((thresh_run / "training.json").read_text())
    assert record["method"] == "thresh" and record["steps"] == 0 and 0 <= record["best_val_loss"] < 0.2
    config, method = load_run(thresh_run)
    assert config.method == "thresh" and isinstance(method, IntensityThreshold) and method.fitted
    torch.testing.assert_close(method.cdf, fitted.cdf)  # fitted on the same training volumes


def test_evaluate_scores_the_map_directly(thresh_run, tiny_cohort, tmp_path):
    summary = evaluate_runs([thresh_run], tiny_cohort, tmp_path / "evaluation", sets=["brats21"], ablation=False)
    run = summary.runs[0]
    assert run.method == "thresh" and run.healthy is None  # no reconstruction: no Table 2
    result = run.sets[0]
    assert result.dataset == "brats21" and result.pooled_average_precision > 0.05  # tumours are bright on T2
    assert (tmp_path / "evaluation" / "tables" / "table3-val-dice.md").is_file()


def test_default_per_scan_run_trains_without_weights_and_evaluates(tiny_cohort, tmp_path):
    run_dir = tmp_path / "thresh"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "tiny" / "thresh.yaml"),
                                      "--data", str(tiny_cohort), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    config, method = load_run(run_dir)
    assert config.thresh.equalisation == "per_scan" and method.equalisation == "per_scan"
    volume = GridCache().load(split_subjects(tiny_cohort, "brats21", "test", None, "t2")[0])
    reference = equalize_hist(volume.image, nbins=1024, mask=volume.mask)
    assert np.abs(method.anomaly_map(volume)[volume.mask] - reference[volume.mask]).mean() < 2e-3


def test_evaluate_and_predict_follow_the_runs_intensity_normalisation(tiny_cohort, tmp_path):
    from brainuad.data.grid import to_model_grid
    from brainuad.data.volume import Volume
    from brainuad.predict import load_detector

    run_dir = tmp_path / "thresh"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "data.normalise_on=input_grid",
                                      "--data", str(tiny_cohort), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    evaluate_runs([run_dir], tiny_cohort, tmp_path / "evaluation", sets=["brats21"], ablation=False, limit=2,
                  cache_dir=tmp_path / "cache", progress=False)
    cached = [np.load(path)["image"] for path in (tmp_path / "cache").glob("*.npz")]
    assert cached and any(image.min() < 0 or image.max() > 1 for image in cached)  # the 1 mm order overshoots
    detector = load_detector(run_dir, threshold=0.5)
    assert detector.normalise_on == "input_grid"
    subject = split_subjects(tiny_cohort, "brats21", "test", None, "t2")[0]
    prepared = detector.prepare(subject.image, mask=subject.mask)
    expected = to_model_grid(Volume.load(subject.image, subject.mask), normalise_on="input_grid")
    np.testing.assert_allclose(prepared.grid.image, expected.image, atol=1e-6)
