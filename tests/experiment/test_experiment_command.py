"""`brainuad experiment experiments/tiny.yaml` end to end on the test cohort: two folds of two
models, the report's tables over both folds, the domain-shift table with its contrast level
and conditioning widths; a second call trains and evaluates nothing; a run killed half way resumes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import kill_when
from typer.testing import CliRunner

from brainuad.cli import app

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
RUNS = ("cddpm-t2-fold0", "cddpm-t2-fold1", "ddpm-t2-fold0", "ddpm-t2-fold1")


def _invoke(*arguments: str):
    result = CliRunner().invoke(app, ["experiment", *arguments])
    return result, " ".join(result.output.split())


@pytest.fixture(scope="module")
def tiny_experiment(tiny_cohort, tmp_path_factory):
    """The tiny experiment run once (about 3 CPU-minutes), then a second time into the same folder."""
    out = tmp_path_factory.mktemp("experiment") / "tiny"
    arguments = (str(EXPERIMENTS / "tiny.yaml"), "--data", str(tiny_cohort), "--out", str(out), "--device", "cpu")
    first = _invoke(*arguments)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else None
    second = _invoke(*arguments)
    return out, arguments, first, manifest, second


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def test_first_call_trains_evaluates_and_reports(tiny_experiment):
    out, _, (result, output), manifest, _ = tiny_experiment
    assert result.exit_code == 0, output
    assert manifest is not None
    for key in RUNS:
        record = manifest["runs"][key]
        assert record["state"] == "finished", record
        assert record["steps"] == 8 and record["training_seconds"] > 0 and record["seconds_per_step"] > 0
        assert record["evaluation_seconds"] > 0 and record["evaluation_volumes"] == 6
        assert (out / "runs" / key / "model.safetensors").is_file()
    assert manifest["runs"]["cddpm-t2-fold0"]["domain_shift_seconds"] > 0
    assert manifest["runs"]["cddpm-t2-fold1"]["domain_shift_seconds"] is None  # the study is on fold 0 only
    assert manifest["brainuad"]["version"] and len(manifest["data"]["splits_digest"]) == 64
    assert manifest["data"]["files"] > 0 and manifest["machine"]["cores"] >= 1
    assert set(manifest["stages"]) == {"training", "evaluation", "domain_shift", "report"}
    assert "training cddpm-t2-fold0" in output or "cddpm-t2-fold0: training" in output


def test_table3_is_mean_and_std_over_the_two_folds(tiny_experiment):
    out = tiny_experiment[0]
    rows = {row["Model"]: row for row in _rows(out / "tables" / "table3-val-dice.csv")}
    assert set(rows) == {"cDDPM", "DDPM"}
    for row in rows.values():
        assert row["Folds"] == "2" and row["BraTS21 (T2) Dice [%] ↑ n"] == "2"
        assert row["BraTS21 (T2) Dice [%] ↑ std"] != ""
        assert 0.0 <= float(row["BraTS21 (T2) Dice [%] ↑ mean"]) <= 100.0
    beside = _rows(out / "tables" / "table3-val-dice-beside-paper.csv")
    assert [(row["Model"], row["Source"]) for row in beside] == [
        ("cDDPM", "measured, 2 fold(s)"), ("cDDPM", "paper: cDDPM"), ("DDPM", "measured, 2 fold(s)"),
        ("DDPM", "paper: DDPM")]
    assert float(beside[1]["BraTS21 (T2) Dice [%] ↑ mean"]) == 51.34
    assert (out / "tables" / "table2.csv").is_file()


def test_domain_shift_has_every_contrast_level(tiny_experiment):
    out = tiny_experiment[0]
    rows = _rows(out / "tables" / "domain-shift.csv")
    for model, widths in (("cDDPM", {"100%", "50%"}), ("DDPM", {"100%"})):
        mine = [row for row in rows if row["Model"] == model]
        assert {row["Contrast"] for row in mine} == {"2"}
        assert {row["Conditioning"] for row in mine} == widths
        assert all(row["IXI (T2) KLD ↓ mean"] != "" and row["BraTS21 (T2) Dice [%] ↑ mean"] != "" for row in mine)
    points = _rows(out / "domain_shift.csv")
    assert {row["set"] for row in points} == {"ixi", "brats21", "mslub"}
    assert {row["run"] for row in points} == {"cddpm-t2-fold0", "ddpm-t2-fold0"}
    histograms = _rows(out / "tables" / "domain-shift-histograms.csv")
    assert {(row["Model"], row["Contrast"]) for row in histograms} == {
        (model, "2") for model in ("cDDPM", "DDPM")}


def test_report_holds_every_part(tiny_experiment):
    report = (tiny_experiment[0] / "report.html").read_text()
    for part in ("Provenance", "Table 3: Segmentation", "measured beside the paper", "Domain shift",
                 "Fig. 2: cDDPM", "Fig. 3", "Cost", 'href="evaluation/report.html"'):
        assert part in report, part
    assert report.count("data:image/png;base64,") == 5  # 2 metric panels (widths), Fig. 3, Fig. 2 per model


def test_second_call_trains_and_evaluates_nothing(tiny_experiment):
    out, _, _, manifest, (result, output) = tiny_experiment
    assert result.exit_code == 0, output
    assert output.count("finished earlier, kept") == 4
    assert output.count("stored result kept") == 4 + 2  # four evaluations, two domain-shift studies
    again = json.loads((out / "manifest.json").read_text())
    for key in RUNS:  # the first call's measurements stay
        assert again["runs"][key]["training_seconds"] == manifest["runs"][key]["training_seconds"]
        assert again["runs"][key]["evaluation_reused"] is True


def test_dry_run_prints_the_plan_with_estimates(tiny_experiment):
    _, arguments, *_ = tiny_experiment
    result, output = _invoke(*arguments, "--dry-run", "--only", "ddpm-*")
    assert result.exit_code == 0, output
    assert "2 of 4 runs selected" in output and "ddpm-t2-fold1" in output and "cddpm-t2-fold0" not in output
    assert output.count(" finished ") == 2 and "to train: 0 run(s)" in output
    assert " min" in output.split("ddpm-t2-fold0", 1)[1].split("ddpm-t2-fold1")[0]  # measured estimate


def test_a_folder_of_another_config_fails_that_run_and_the_rest_go_on(tiny_cohort, tmp_path):
    source = tmp_path / "one.yaml"
    body = ("name: one\nfolds: [0]\nmodalities: [t2]\nmethods:\n  - {label: Thresh, key: thresh, config: tiny/thresh}\n"
            "  - {label: Other, key: other, config: tiny/thresh, overrides: [OVERRIDE]}\n"
            "evaluation: {limit: 1}\nstudies: {ablation: false}\n")
    source.write_text(body.replace("OVERRIDE", "thresh.bins=512"))
    out = tmp_path / "out"
    result, output = _invoke(str(source), "--data", str(tiny_cohort), "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, output
    source.write_text(body.replace("OVERRIDE", "thresh.bins=256"))
    result, output = _invoke(str(source), "--data", str(tiny_cohort), "--out", str(out), "--device", "cpu")
    assert result.exit_code == 1
    assert "training other-t2-fold0" in output and "holds a run of other settings" in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"]["other-t2-fold0"]["state"] == "failed"
    assert manifest["runs"]["thresh-t2-fold0"]["state"] == "finished"
    assert "FAILED" in (out / "report.html").read_text()


def test_a_training_killed_half_way_resumes(tiny_cohort, tmp_path):
    source = tmp_path / "kill.yaml"
    source.write_text("name: kill\nfolds: [0]\nmodalities: [t2]\nmethods:\n  - {label: DDPM, config: tiny/ddpm}\n"
                      "training: [train.max_steps=16, train.max_epochs=1000, train.check_val_every_n_epoch=1, "
                      "data.batch_size=4, data.val_slices_per_volume=1, model.base_channels=8, model.groups=4, "
                      "model.attention_head_channels=8, 'model.channel_mult=[1,2,2]']\n"
                      "evaluation: {limit: 1}\nstudies: {ablation: false}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "brainuad", "experiment", str(source), "--data", str(tiny_cohort), "--out",
               str(out), "--device", "cpu"]
    checkpoint = out / "runs" / "ddpm-t2-fold0" / "checkpoints" / "last.ckpt"
    kill_when(command, checkpoint.is_file)
    assert not (out / "runs" / "ddpm-t2-fold0" / "training.json").exists()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    output = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming from its last checkpoint" in output
    summary = json.loads((out / "runs" / "ddpm-t2-fold0" / "training.json").read_text())
    assert summary["steps"] == 16
    assert (out / "tables" / "table3-val-dice.csv").is_file()
