"""``kill -9`` in the middle of train, prepare and evaluate, then the same command again: the result
equals an uninterrupted run's, and no temporary or half-written file is left."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from helpers import kill_when
from safetensors.numpy import load_file

from brainuad.atomic import TEMPORARY_PREFIX

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRAIN = ["train", str(CONFIGS / "tiny" / "ddpm.yaml"), "train.max_epochs=4", "train.check_val_every_n_epoch=1",
         "train.log_every_n_steps=1", "data.num_workers=0", "data.val_slices_per_volume=2", "model.base_channels=8",
         "model.groups=4", "model.attention_head_channels=8", "model.channel_mult=[1,2,2]"]
PREPARE = """
import os
import sys
sys.path.insert(0, {tests!r})
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # one core: SimpleITK's registration repeats exactly
from preprocess.conftest import make_coarse_pipeline
from brainuad.preprocess.prepare import prepare_dataset

if __name__ == "__main__":
    prepare_dataset("wmh", sys.argv[1], sys.argv[2], pipeline=make_coarse_pipeline(), progress=False)
"""


def _command(arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "brainuad", *arguments]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def _no_temporaries(root: Path) -> None:
    left = [path for path in root.rglob(f"{TEMPORARY_PREFIX}*")]
    assert not left, left


def test_train_killed_after_an_epoch_resumes_to_the_same_weights(tiny_cohort, grid_cache, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train = [*TRAIN, f"data.cache_dir={grid_cache}"]
    _run(_command([*train, "--data", str(tiny_cohort), "--out", str(whole)]))
    last = resumed / "checkpoints" / "last.ckpt"
    saves: set[int] = set()

    def two_epochs_saved() -> bool:  # last.ckpt written twice: killed in epoch 3 or later
        if last.is_file():
            saves.add(last.stat().st_mtime_ns)
        return len(saves) >= 2

    kill_when(_command([*train, "--data", str(tiny_cohort), "--out", str(resumed)]), two_epochs_saved)
    assert not (resumed / "model.safetensors").exists()
    _run(_command([*train, "--data", str(tiny_cohort), "--out", str(resumed)]))
    first, second = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    summaries = [json.loads((run / "training.json").read_text()) for run in (whole, resumed)]
    for key in ("steps", "best_val_loss"):
        assert summaries[0][key] == summaries[1][key], key
    _no_temporaries(resumed)


def test_prepare_killed_mid_batch_resumes_to_the_same_files(wmh_download, tmp_path):
    download = wmh_download
    script = tmp_path / "prepare.py"
    script.write_text(PREPARE.format(tests=str(Path(__file__).resolve().parents[1])))
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _run([sys.executable, str(script), str(download), str(whole)])
    transforms = resumed / "Test" / "WMH" / "transforms"
    kill_when([sys.executable, str(script), str(download), str(resumed)],
               lambda: transforms.is_dir() and any(transforms.glob("*.json")))
    assert not (resumed / "prepare-wmh.json").exists()
    _run([sys.executable, str(script), str(download), str(resumed)])
    summary = json.loads((resumed / "prepare-wmh.json").read_text())
    assert summary["skipped"] and summary["done"] and not summary["failed"] and not summary["validation_errors"]
    _same_tree(whole, resumed, skip={"prepare-wmh.json", "prepare-wmh.log", ".brainuad.lock"})
    _no_temporaries(resumed)


def test_evaluate_killed_mid_split_gives_the_same_outputs_when_run_again(thresh_run, tiny_cohort, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(thresh_run, run)
    arguments = ["evaluate", str(run), "--data", str(tiny_cohort), "--sets", "brats21", "--no-ablation",
                 "--cache-dir", str(tmp_path / "cache")]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _run(_command([*arguments, "--out", str(whole)]))
    expected = (run / "thresholds.json").read_text().replace(str(whole), "OUT")
    (run / "thresholds.json").unlink()
    cache = tmp_path / "cache"
    shutil.rmtree(cache)
    kill_when(_command([*arguments, "--out", str(resumed)]),
               lambda: cache.is_dir() and len(list(cache.glob("*.npz"))) >= 2)
    assert not (resumed / "summary.json").exists() and not (run / "thresholds.json").exists()
    _run(_command([*arguments, "--out", str(resumed)]))
    assert (run / "thresholds.json").read_text().replace(str(resumed), "OUT") == expected
    for name in ("summary.json", "per_volume.csv", "tables.md"):
        assert (whole / name).read_text().replace(str(whole), "OUT") == \
            (resumed / name).read_text().replace(str(resumed), "OUT"), name
    _no_temporaries(resumed)
    # a volume cache may keep the temporary file of the write the kill cut short (nothing can remove
    # it when a process is killed); it is never read, so the outputs above are equal all the same


def _same_tree(first: Path, second: Path, skip: set[str]) -> None:
    """The same files; JSON records equal but for timings; images equal up to the run-to-run
    spread of SimpleITK's multi-threaded registration (float sums in another order)."""
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file() and path.name not in skip)
    assert files == sorted(path.relative_to(second) for path in second.rglob("*")
                           if path.is_file() and path.name not in skip)
    for relative in files:
        a, b = first / relative, second / relative
        if relative.suffix == ".json":
            record_a, record_b = json.loads(a.read_text()), json.loads(b.read_text())
            record_a.pop("seconds", None), record_b.pop("seconds", None)
            assert _close(record_a, record_b), relative
        elif relative.name.endswith(".nii.gz"):
            image_a, image_b = (np.asarray(nib.load(str(path)).dataobj, dtype=np.float64) for path in (a, b))
            assert image_a.shape == image_b.shape, relative
            if relative.parent.name in ("mask", "seg"):
                overlap = 2 * np.sum((image_a > 0) & (image_b > 0)) / max(np.sum(image_a > 0) + np.sum(image_b > 0), 1)
                assert overlap >= 0.995, (relative, overlap)
            else:
                difference = np.abs(image_a - image_b).mean() / max(np.abs(image_a).max(), 1e-9)
                assert difference <= 2e-3, (relative, difference)
        else:
            assert a.read_bytes() == b.read_bytes(), relative


def _close(a, b) -> bool:
    """Equal structures, numbers within 1 % (registration transforms vary slightly between runs)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return isinstance(b, (int, float)) and bool(np.isclose(a, b, rtol=1e-2, atol=1e-2))
    return a == b
