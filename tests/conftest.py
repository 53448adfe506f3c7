"""Shared fixtures: a tiny synthetic cohort generated once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import shared_folder

# with pytest-xdist (make test runs 3 workers: one more than the 2 cores, since many tests wait on
# subprocesses and files) each worker gets one torch thread
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // _WORKERS))
if _WORKERS > 1:  # the processes the tests start (CLI runs, spawned workers, ranks) share the cores too
    os.environ.setdefault("OMP_NUM_THREADS", "1")

LONGEST_FIRST = ("experiment/test_experiment_command.py", "test_demo.py", "evaluate/test_inference.py",
                 "methods/test_registry.py", "methods/test_cddpm_mc.py",
                 "reliability/test_kill_resume.py", "test_predict.py", "preprocess/test_prepare.py",
                 "cli/test_calibrate.py")
"""Modules that take minutes, collected first: pytest-xdist hands modules out in collection order,
so the longest start at once instead of leaving one worker busy at the end."""


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((index for index, name in enumerate(LONGEST_FIRST) if path == f"tests/{name}"), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: every other module keeps its order


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A `tiny` synthetic data directory (seed 0). Treat it as read-only: use `cohort_copy` to modify."""
    from brainuad.data.synth import synthesize_cohort

    return shared_folder(tmp_path_factory, "tiny-cohort",
                         lambda root: synthesize_cohort(root, size="tiny", seed=0, workers=2, progress=False))


def _link_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=os.link)
    return target


@pytest.fixture(scope="session")
def grid_cache(tmp_path_factory) -> Path:
    """An on-disk model-grid cache (``data.cache_dir``) that the tests training or scoring the tiny
    cohort share, so that each of its volumes is brought to the model grid once per session (its
    entries are written atomically: the xdist workers fill it together)."""
    return shared_folder(tmp_path_factory, "grid-cache", lambda folder: None)


@pytest.fixture
def cohort_copy(tiny_cohort, tmp_path) -> Path:
    """A hard-linked copy of the tiny cohort. Replace files (helpers.replace_file), never write in place."""
    return _link_tree(tiny_cohort, tmp_path / "data")


# --------------------------------------------------------------------------------------------
# A briefly trained DDPM and preprocessed scans in other geometries (brainuad predict, the API)
# --------------------------------------------------------------------------------------------

from typing import NamedTuple  # noqa: E402  (appended section)

import numpy as np  # noqa: E402

TRAINED_DDPM_STEPS = 20
"""Optimiser steps of :func:`trained_ddpm_run` (one batch of 6 slices per epoch)."""


@pytest.fixture(scope="session")
def trained_ddpm_run(tiny_cohort, grid_cache, tmp_path_factory) -> Path:
    """The tiny DDPM config trained for TRAINED_DDPM_STEPS steps of 6 healthy T2 slices (lr 2e-3,
    about 45 CPU-seconds).

    Its reconstructions follow the healthy anatomy only coarsely (correlation with the input about
    0.5 on healthy tissue), but the bright tumour of BraTS-SYN-0004 stands out: post-processed
    anomaly 3.6 times higher in the lesion than in the rest of the brain, 84 % of the lesion and
    8 % of the healthy brain above a threshold of 0.2 (measured once; after 40 steps the figures
    were 2.3, 52 % and 5 %: so few steps of a tiny model are noisy). Read-only.
    """
    from brainuad.methods.registry import load_config
    from brainuad.train import train_run

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny" / "ddpm.yaml", [
        f"data.root={tiny_cohort}", f"data.cache_dir={grid_cache}", "data.batch_size=6", "data.augment=false",
        "data.val_slices_per_volume=1", "train.lr=2e-3", f"train.max_epochs={TRAINED_DDPM_STEPS}",
        f"train.check_val_every_n_epoch={TRAINED_DDPM_STEPS}"])
    return shared_folder(tmp_path_factory, "trained", lambda folder: train_run(config, folder / "ddpm-t2",
                                                                             progress=False)) / "ddpm-t2"


class PreprocessedScan(NamedTuple):
    """A scan written for prediction, with its ground truth in the scan's own voxel order."""

    image: Path
    lesion: np.ndarray
    brain: np.ndarray


class PreprocessedScans(NamedTuple):
    """Scans of one BraTS-like subject in ``folder`` (a data-layout ``t2/`` folder).

    ``plain``: cropped/padded to 180 x 200 x 150 (RAS voxel order, shifted affine), its mask
    beside it (``plain_mask.nii.gz``). ``reoriented``: the same voxels stored in another axis order
    (k, -i, j) as MetaImage with a further shifted affine, its mask in the sibling ``mask/`` folder.
    ``broken``: a truncated copy of the plain scan.
    """

    folder: Path
    plain: PreprocessedScan
    reoriented: PreprocessedScan
    broken: Path


def _crop_pad(array: np.ndarray) -> np.ndarray:
    """(192, 192, 160) -> (180, 200, 150): crop 6 voxels from the start of i, pad j by 4 on both
    sides, crop 5 from the start of k."""
    return np.pad(array[6:186], ((0, 0), (4, 4), (0, 0)))[:, :, 5:155]


def _reorder(array: np.ndarray) -> np.ndarray:
    """new[a, b, c] = old[I - 1 - b, c, a]."""
    return np.ascontiguousarray(np.flip(array, axis=0).transpose(2, 0, 1))


@pytest.fixture(scope="session")
def preprocessed_scans(tiny_cohort, tmp_path_factory) -> PreprocessedScans:
    from brainuad.data.io import read_image, write_image

    subject = "BraTS-SYN-0004"  # the tiny cohort's largest tumour
    brats = tiny_cohort / "Test" / "Brats21"
    image, affine = read_image(brats / "t2" / f"{subject}_t2.nii.gz")
    brain = read_image(brats / "mask" / f"{subject}_mask.nii.gz")[0] > 0.5
    lesion = read_image(brats / "seg" / f"{subject}_seg.nii.gz")[0] > 0.5
    root = tmp_path_factory.mktemp("preprocessed")
    folder = root / "t2"
    shift = np.eye(4)
    shift[:3, 3] = (6, -4, 5)  # input voxel of the crop's first voxel
    plain_affine = affine @ shift
    plain_affine[:3, 3] += (3.5, -12.0, 20.0)
    arrays = {"image": _crop_pad(image), "brain": _crop_pad(brain), "lesion": _crop_pad(lesion)}
    write_image(folder / "plain_t2.nii.gz", arrays["image"], plain_affine)
    write_image(folder / "plain_mask.nii.gz", arrays["brain"].astype(np.uint8), plain_affine)
    size = arrays["image"].shape[0]
    old_from_new = np.array([[0, -1, 0, size - 1], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    reoriented_affine = plain_affine @ old_from_new
    reoriented_affine[:3, 3] += (10.0, -20.0, 7.0)
    write_image(folder / "reoriented_t2.mha", _reorder(arrays["image"]), reoriented_affine)
    write_image(root / "mask" / "reoriented_mask.nii.gz", _reorder(arrays["brain"]).astype(np.uint8),
                reoriented_affine)
    broken = folder / "broken_t2.nii.gz"
    broken.write_bytes((folder / "plain_t2.nii.gz").read_bytes()[:3000])
    return PreprocessedScans(
        folder, PreprocessedScan(folder / "plain_t2.nii.gz", arrays["lesion"], arrays["brain"]),
        PreprocessedScan(folder / "reoriented_t2.mha", _reorder(arrays["lesion"]), _reorder(arrays["brain"])), broken)


@pytest.fixture(scope="session")
def thresh_run(tiny_cohort, tmp_path_factory) -> Path:
    """A Thresh run (per-scan equalisation, T2) on the tiny cohort, made with ``brainuad train``:
    the cheapest real run directory for command-line tests. Evaluations may add thresholds.json."""
    from typer.testing import CliRunner

    from brainuad.cli import app

    run_dir = tmp_path_factory.mktemp("thresh-run") / "thresh"
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "thresh.yaml"
    result = CliRunner().invoke(app, ["train", str(config), "--data", str(tiny_cohort), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    return run_dir
