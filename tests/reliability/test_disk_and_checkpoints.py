"""A full disk during a write, and checkpoints that carry a pickle: a clear refusal, nothing half-written."""

from __future__ import annotations

import errno
import pickle
import shutil
from pathlib import Path

import torch
from typer.testing import CliRunner

import brainuad.atomic
from brainuad.atomic import TEMPORARY_PREFIX
from brainuad.cli import app

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _flat(result) -> str:
    return " ".join(result.output.split())


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(args[-1]) if args else None)


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_evaluate_on_a_full_disk_reports_it_and_leaves_no_file(thresh_run, tiny_cohort, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(thresh_run, run)
    monkeypatch.setattr(brainuad.atomic.os, "replace", _disk_full)
    out = tmp_path / "evaluation"
    result = CliRunner().invoke(app, ["evaluate", str(run), "--data", str(tiny_cohort), "--out", str(out),
                                      "--sets", "brats21", "--limit", "1", "--no-ablation"])
    assert result.exit_code == 1, _flat(result)
    assert "No space left on device" in _flat(result) and "Traceback" not in result.output
    assert _files(out) == []  # no table, no summary, no temporary file, no lock left


def test_predict_on_a_full_disk_fails_each_scan_cleanly(thresh_run, tiny_cohort, tmp_path, monkeypatch):
    import nibabel

    monkeypatch.setattr(nibabel, "save", _disk_full)
    scan = next((tiny_cohort / "Test" / "Brats21" / "t2").iterdir())
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(thresh_run), str(scan), "--out", str(out), "--threshold", "0.5"])
    assert result.exit_code == 1 and "No space left on device" in _flat(result), _flat(result)
    assert not [name for name in _files(out) if name.startswith(TEMPORARY_PREFIX) or name.endswith(".nii.gz")]


def test_train_on_a_full_disk_keeps_no_weights(tiny_cohort, tmp_path, monkeypatch):
    import brainuad.weights

    monkeypatch.setattr(brainuad.weights, "save_file", _disk_full)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "tiny" / "thresh.yaml"), "--data", str(tiny_cohort),
                                      "--out", str(run)])
    assert result.exit_code == 1 and "No space left on device" in _flat(result), _flat(result)
    assert not (run / "model.safetensors").exists()
    assert not [name for name in _files(run) if Path(name).name.startswith(TEMPORARY_PREFIX)]


def test_weights_that_are_a_pickle_are_refused(thresh_run, tiny_cohort, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(thresh_run, run)
    (run / "model.safetensors").unlink()
    torch.save({"cdf": torch.zeros(3)}, run / "model.safetensors")
    scan = next((tiny_cohort / "Test" / "Brats21" / "t2").iterdir())
    result = CliRunner().invoke(app, ["predict", str(run), str(scan), "--out", str(tmp_path / "out"),
                                      "--threshold", "0.5"])
    assert result.exit_code == 2 and "is not a readable safetensors file" in _flat(result), _flat(result)


class _Payload:
    """Unpickling this would create a file: the proof that a pickle was run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_resume_checkpoint_with_a_pickle_payload_is_refused_unrun(tiny_cohort, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    marker = tmp_path / "the-pickle-ran"
    with open(run / "checkpoints" / "last.ckpt", "wb") as stream:
        pickle.dump({"state_dict": {}, "payload": _Payload(marker)}, stream)
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "tiny" / "ddpm.yaml"), "--data", str(tiny_cohort),
                                      "--out", str(run), "train.max_epochs=1"])
    assert result.exit_code == 2, _flat(result)
    assert "last.ckpt: holds objects other than tensors and plain values, so it is not loaded" in _flat(result)
    assert not marker.exists()
