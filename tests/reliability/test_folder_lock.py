"""One writer per output folder: a second process is refused, a killed holder frees the folder."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.errors import InputError
from brainuad.lock import LOCK_FILE, FolderLock

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HOLD = ("import sys, time\nfrom brainuad.lock import FolderLock\n"
        "with FolderLock(sys.argv[1], 'a test holding it'):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock of tmp_path / 'out'."""
    folder = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_process_is_refused_naming_the_holder(holder):
    folder, process = holder
    with pytest.raises(InputError, match=rf"another brainuad process is writing here \(pid {process.pid}, a test"):
        with FolderLock(folder, "second"):
            pass


def test_the_kernel_frees_the_lock_of_a_killed_process(holder):
    folder, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (folder / LOCK_FILE).is_file()  # left by the killed holder, but not locked
    with FolderLock(folder, "after the kill"):
        assert (folder / LOCK_FILE).is_file()
    assert not (folder / LOCK_FILE).exists()  # a holder that ends removes it


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "synth", "prepare"])
def test_every_writing_command_refuses_a_folder_in_use(holder, tiny_cohort, thresh_run, wmh_download, tmp_path,
                                                       command):
    folder, process = holder
    scan = next((tiny_cohort / "Test" / "Brats21" / "t2").iterdir())
    arguments = {
        "train": ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(tiny_cohort), "--out", str(folder)],
        "evaluate": ["evaluate", str(thresh_run), "--data", str(tiny_cohort), "--out", str(folder)],
        "predict": ["predict", str(thresh_run), str(scan), "--out", str(folder), "--threshold", "0.5"],
        "synth": ["synth", str(folder), "--size", "tiny"],
        "prepare": ["prepare", "wmh", str(wmh_download), str(folder)],
    }[command]
    result = CliRunner().invoke(app, arguments)
    flat = " ".join(result.output.split())
    assert result.exit_code == 2, flat
    assert f"another brainuad process is writing here (pid {process.pid}" in flat


def test_evaluating_a_run_that_is_training_is_refused(tmp_path, tiny_cohort, thresh_run):
    run = thresh_run
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(tiny_cohort), "--out",
                                          str(tmp_path / "evaluation")])
        assert result.exit_code == 2 and "another brainuad process is writing here" in " ".join(result.output.split())
    finally:
        process.kill()
        process.wait()
