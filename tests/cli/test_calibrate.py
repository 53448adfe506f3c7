"""`brainuad calibrate`: a conformal threshold from healthy scans, stored in the run, used by predict."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.evaluate.conformal import conformal_fpr_threshold, conformal_volume_threshold
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.run_thresholds import RunThreshold, read_calibration, write_run_thresholds
from brainuad.predict import Detector, ThresholdChoice, resolve_threshold
from brainuad.predict.calibrate import score_healthy_scans
from brainuad.run_directory import load_run


@pytest.fixture
def run_copy(thresh_run, tmp_path) -> Path:
    target = tmp_path / "thresh"
    shutil.copytree(thresh_run, target)
    (target / "thresholds.json").unlink(missing_ok=True)
    return target


def healthy_scans(cohort: Path) -> list[Path]:
    """The tiny cohort's healthy T2 scans (their masks lie in ../mask, where predict finds them)."""
    return sorted((cohort / "Train" / "ixi" / "t2").glob("*_t2.nii.gz"))


def invoke(*arguments):
    result = CliRunner().invoke(app, ["calibrate", *map(str, arguments)])
    return result, " ".join(result.output.split())


def test_calibrated_threshold_is_stored_and_predict_uses_it(run_copy, tiny_cohort, tmp_path):
    scans = healthy_scans(tiny_cohort)[:4]
    write_run_thresholds(run_copy, [RunThreshold("brats21", "val-dice", "lesion-val", 0.5, PostProcessing(), 3,
                                                 tmp_path / "summary.json")])
    result, output = invoke(run_copy, *scans, "--alpha", "0.25")
    assert result.exit_code == 0, output
    assert "conformal-fpr-25% threshold" in output and "from 4 healthy scan(s)" in output
    assert "leave-one-out false-positive rate" in output
    calibration = read_calibration(run_copy)
    assert calibration is not None and calibration.feasible and calibration.alpha == 0.25
    assert len(calibration.scans) == len(scans)
    # the value is the conformal threshold of the scans' post-processed brain scores, as predict scores them
    config, method = load_run(run_copy)
    detector = Detector(method, ThresholdChoice(0.0, PostProcessing(), "test"), normalise_on=config.data.normalise_on)
    scores = score_healthy_scans(detector, scans)
    assert calibration.value == pytest.approx(conformal_fpr_threshold(scores.volumes, 0.25).value)
    # predict takes it by default, the set's evaluation threshold with --set; the set threshold was kept
    chosen = resolve_threshold(run_copy)
    assert chosen.value == calibration.value and "calibrated on" in chosen.origin
    assert resolve_threshold(run_copy, dataset="brats21").value == 0.5
    # an evaluation writing its thresholds again keeps the calibration
    write_run_thresholds(run_copy, [RunThreshold("mslub", "val-dice", "lesion-val", 0.25, PostProcessing(), 3,
                                                 tmp_path / "summary.json")])
    assert read_calibration(run_copy) == calibration
    assert json.loads((run_copy / "thresholds.json").read_text())["format_version"] == 2

    result, output = invoke(run_copy, *scans[:3], "--alpha", "0.1", "--bound", "volume", "--max-false-ml", "0.5")
    assert result.exit_code == 0, output
    assert "cannot guarantee alpha=0.1" in output and "at least 9 scans" in output
    calibration = read_calibration(run_copy)
    assert calibration.strategy == "conformal-volume-10%-0.5ml" and not calibration.feasible
    assert calibration.value == pytest.approx(conformal_volume_threshold(scores.volumes[:3], 0.1, 0.5).value)
    assert all(not (volume > calibration.value).any() for volume in scores.volumes[:3])


def test_a_broken_scan_is_reported_and_the_others_are_used(run_copy, tiny_cohort, tmp_path):
    broken = tmp_path / "broken_t2.nii.gz"
    broken.write_bytes(healthy_scans(tiny_cohort)[0].read_bytes()[:2000])
    result, output = invoke(run_copy, broken, *healthy_scans(tiny_cohort)[:2], "--alpha", "0.4")
    assert result.exit_code == 1
    assert f"failed: {broken}" in output and "from 2 healthy scan(s)" in output
    assert read_calibration(run_copy) is not None


@pytest.mark.parametrize("arguments, message", [(["--alpha", "0"], "strictly between 0 and 1"),
                                                (["--alpha", "1.5"], "strictly between 0 and 1"),
                                                (["--alpha", "0.1", "--bound", "dice"], "'fpr' or 'volume'"),
                                                (["--alpha", "0.1", "--atlas", "a.nii.gz"], "add --raw")])
def test_bad_options_are_usage_errors(run_copy, tiny_cohort, arguments, message):
    result, output = invoke(run_copy, *healthy_scans(tiny_cohort)[:2], *arguments)
    assert result.exit_code == 2 and message in output
    assert not (run_copy / "thresholds.json").exists()


def test_too_few_scans_is_an_error_naming_the_count(run_copy, tiny_cohort):
    result, output = invoke(run_copy, healthy_scans(tiny_cohort)[0], "--alpha", "0.3")
    assert result.exit_code == 2 and "at least 2 healthy scans, 1 could be scored" in output
    assert not (run_copy / "thresholds.json").exists()
