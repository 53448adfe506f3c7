"""Every file brainuad writes is readable as the umask allows, and a failed write leaves nothing."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from brainuad.atomic import TEMPORARY_PREFIX, atomic_path, write_bytes, write_text
from brainuad.cli import app
from brainuad.data.io import write_image

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def umask():
    """Set a umask for one test, and restore the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_modes_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    written = [write_text(tmp_path / "a.json", "{}"), write_bytes(tmp_path / "b.bin", b"x"),
               write_image(tmp_path / "c.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))]
    for path in written:
        assert _mode(path) == 0o666 & ~mask, (path, oct(_mode(path)))


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    target = tmp_path / "out" / "summary.json"
    with pytest.raises(OSError, match="No space left"):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise OSError(28, "No space left on device")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("new, but broken")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_a_whole_run_writes_group_readable_files(tiny_cohort, tmp_path, umask):
    """Training, evaluation and prediction outputs: 0644 under umask 022 (mkstemp made them 0600)."""
    umask(0o022)
    run = tmp_path / "run"  # its own run: every file of it is checked
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(tiny_cohort),
                               "--out", str(run)]).exit_code == 0
    evaluation = tmp_path / "evaluation"
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(tiny_cohort), "--out", str(evaluation),
                                 "--sets", "brats21", "--limit", "1", "--no-ablation"])
    assert result.exit_code == 0, result.output
    scan = next((tiny_cohort / "Test" / "Brats21" / "t2").iterdir())
    result = runner.invoke(app, ["predict", str(run), str(scan), "--out", str(tmp_path / "predictions")])
    assert result.exit_code == 0, result.output
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) > 10
    for path in files:
        assert not path.name.startswith(TEMPORARY_PREFIX), path
        assert _mode(path) & 0o044 == 0o044, (path, oct(_mode(path)))
