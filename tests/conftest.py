"""Shared fixtures: a tiny synthetic cohort generated once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A `tiny` synthetic data directory (seed 0). Treat it as read-only: use `cohort_copy` to modify."""
    from brainuad.data.synth import synthesize_cohort

    root = tmp_path_factory.mktemp("tiny-cohort")
    synthesize_cohort(root, size="tiny", seed=0, workers=2, progress=False)
    return root


def _link_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=os.link)
    return target


@pytest.fixture
def cohort_copy(tiny_cohort, tmp_path) -> Path:
    """A hard-linked copy of the tiny cohort. Replace files (helpers.replace_file), never write in place."""
    return _link_tree(tiny_cohort, tmp_path / "data")
