"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import shared_folder


@pytest.fixture(scope="session")
def wmh_download(tmp_path_factory) -> Path:
    """Two raw synthetic WMH subjects with 3 mm voxels, in the download layout (read-only)."""
    from brainuad.data.synth.raw import synthesize_raw

    return shared_folder(tmp_path_factory, "raw-wmh", lambda root: synthesize_raw(
        root, size="tiny", seed=0, datasets=("wmh",), limit=2, coarsen=3.0, progress=False)) / "WMH"
