"""`brainuad demo` end to end on the tiny cohort with a few seconds of training per model."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.demo import DEMO_METHODS, DEMO_SETS, run_demo


@pytest.fixture(scope="module")
def demo_folder(tiny_cohort, tmp_path_factory):
    """A demo folder whose data/ is a hard-linked copy of the tiny cohort (the demo keeps it)."""
    out = tmp_path_factory.mktemp("demo")
    (out / "data").mkdir()
    for source in tiny_cohort.rglob("*"):
        target = out / "data" / source.relative_to(tiny_cohort)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.hardlink_to(source)
    return out


@pytest.fixture(scope="module")
def demo_run(demo_folder):
    result = CliRunner().invoke(app, ["demo", "--out", str(demo_folder), "--size", "tiny", "--steps", "7",
                                      "--limit", "1"])
    return result, " ".join(result.output.split())


def test_the_demo_trains_evaluates_and_reports(demo_folder, demo_run):
    result, output = demo_run
    assert result.exit_code == 0, output
    assert f"[1/4] synthetic cohort already in {demo_folder / 'data'}" in output
    for method in DEMO_METHODS:
        assert (demo_folder / "runs" / method / "model.safetensors").is_file()
        stored = json.loads((demo_folder / "runs" / method / "thresholds.json").read_text())
        assert {record["dataset"] for record in stored["thresholds"]} == set(DEMO_SETS)
    assert "(7 steps budget)" in output and output.count("7 steps in") == 2
    assert "the first 1 volume(s) of each split" in output
    for method in ("cddpm", "ddpm"):
        assert json.loads((demo_folder / "runs" / method / "training.json").read_text())["steps"] == 7
    report = demo_folder / "evaluation" / "report.html"
    assert f"report: {report.resolve()}" in output
    page = report.read_text()
    assert "cddpm" in page and "ddpm" in page and page.count("data:image/png;base64,") >= 4
    # the summary table: every method on every set, and the Dice ratio against Thresh
    summary = json.loads((demo_folder / "evaluation" / "summary.json").read_text())
    runs = [run for group in summary["summary"]["groups"] for run in group["runs"]]
    assert {run["name"] for run in runs} == set(DEMO_METHODS)
    assert {(result["n_val"], result["n_test"]) for run in runs for result in run["sets"]} == {(1, 1)}  # --limit 1
    for dataset in DEMO_SETS:
        assert f"{dataset}: cDDPM Dice is" in output and "that of intensity thresholding" in output
    assert output.count("brats21") >= 3 and output.count("mslub") >= 3


class EvaluationReached(Exception):
    """Raised in place of the evaluation: the test stops there."""


def test_a_second_run_keeps_the_finished_steps(demo_folder, demo_run, monkeypatch):
    import brainuad.demo

    def evaluate_runs(run_dirs, data, out, **options):
        raise EvaluationReached([Path(run_dir).name for run_dir in run_dirs])

    monkeypatch.setattr(brainuad.demo, "evaluate_runs", evaluate_runs)
    weights = {method: (demo_folder / "runs" / method / "model.safetensors").stat().st_mtime_ns
               for method in DEMO_METHODS}
    said = []
    with pytest.raises(EvaluationReached) as reached:
        run_demo(demo_folder, steps=7, size="tiny", say=said.append, progress=False)
    assert reached.value.args[0] == list(DEMO_METHODS)
    assert said[0] == f"[1/4] synthetic cohort already in {demo_folder / 'data'}"
    for method in DEMO_METHODS:
        assert f"[2/4] {method}: finished run found in {demo_folder / 'runs' / method}" in said
        assert (demo_folder / "runs" / method / "model.safetensors").stat().st_mtime_ns == weights[method]


def test_bad_arguments_are_refused(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--size", "huge"])
    assert result.exit_code == 2 and "size must be tiny, small or medium" in " ".join(result.output.split())
    with pytest.raises(ValueError, match="minutes must be > 0"):
        run_demo(tmp_path, minutes=0)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run_demo(tmp_path, steps=0)
    with pytest.raises(ValueError, match="give a training budget"):
        run_demo(tmp_path, steps=None)


def test_the_cli_default_budget_is_the_demos():
    import inspect

    from brainuad.cli.demo import demo
    from brainuad.demo import DEMO_STEPS

    assert inspect.signature(demo).parameters["steps"].default.default == DEMO_STEPS
