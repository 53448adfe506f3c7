"""Usage and data errors reach a user as one clear line and an exit code, never a traceback."""

from typer.testing import CliRunner

from brainuad.cli import app


def _flat(result) -> str:
    return " ".join(result.output.split())


def test_a_library_value_error_is_a_message_and_exit_2(thresh_run, tiny_cohort, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(thresh_run), str(thresh_run), "--data", str(tiny_cohort),
                                      "--out", str(tmp_path / "evaluation")])
    assert result.exit_code == 2, result.output
    assert "error: run_dirs names a run directory twice" in _flat(result)
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)


def test_an_unwritable_output_is_a_message_naming_the_file_and_exit_1(thresh_run, tiny_cohort, tmp_path):
    blocker = tmp_path / "evaluation"
    blocker.write_text("a file where a folder should go")
    result = CliRunner().invoke(app, ["evaluate", str(thresh_run), "--data", str(tiny_cohort), "--out",
                                      str(blocker / "inside"),
                                      "--sets", "brats21", "--limit", "1", "--no-ablation"])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and str(blocker) in _flat(result) and "Traceback" not in result.output


def test_t_test_sweep_skips_runs_without_a_diffusion_process(thresh_run, tiny_cohort, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(thresh_run), "--data", str(tiny_cohort), "--out",
                                      str(tmp_path / "evaluation"), "--sets", "brats21", "--limit", "1",
                                      "--no-ablation", "--t-test", "250,500"])
    assert result.exit_code == 0, result.output
    assert "not a diffusion method: t_test sweep skipped" in _flat(result)


def test_error_text_with_brackets_is_printed_as_is(tmp_path):
    missing = tmp_path / "config[red].yaml"  # rich would take [red] for markup
    result = CliRunner().invoke(app, ["train", str(missing), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"error: {missing}: config file not found" in _flat(result)


def test_a_zero_threshold_is_warned_about(thresh_run, tiny_cohort, tmp_path):
    scan = next((tiny_cohort / "Test" / "Brats21" / "t2").iterdir())
    result = CliRunner().invoke(app, ["predict", str(thresh_run), str(scan), "--out", str(tmp_path / "out"),
                                      "--threshold", "0"])
    assert result.exit_code == 0 and "warning: the threshold is 0" in _flat(result), _flat(result)
