"""Fixtures of the preprocessing tests: raw synthetic downloads and a fast, coarse pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import shared_folder

COARSE_SPACING_MM = 3.0
COARSE_SHAPE = (64, 72, 60)  # 192 x 216 x 180 mm at 3 mm: the MNI brain with room to spare
RAW_SUBJECTS = {"ixi": 3, "brats21": 3}  # per data set (IXI needs 3 for a test split and a fold); others 2


def make_coarse_pipeline(skull_strip: str = "atlas-mask", atlas=None):
    """The paper's steps on 3 mm grids with a short N4: seconds per subject instead of minutes."""
    from brainuad.preprocess.bias import N4Correction
    from brainuad.preprocess.pipeline import Pipeline
    from brainuad.preprocess.register import Atlas, AtlasRegistration, RegistrationSettings, RigidAlignment, Stage
    from brainuad.preprocess.resample import IsotropicResampling
    from brainuad.preprocess.skullstrip import skull_stripper

    registration = AtlasRegistration(atlas or Atlas.mni152(),
                                     RegistrationSettings(working_spacing_mm=COARSE_SPACING_MM))
    alignment = RigidAlignment(RegistrationSettings(stages=(Stage("rigid", (2, 1), (2.0, 0.0), 2.0),),
                                                    working_spacing_mm=COARSE_SPACING_MM))
    return Pipeline(resampling=IsotropicResampling(COARSE_SPACING_MM), registration=registration, alignment=alignment,
                    skull_strip=skull_stripper(skull_strip), bias=N4Correction(levels=1, iterations=5, shrink=2),
                    shape=COARSE_SHAPE)


@pytest.fixture(scope="session")
def coarse_pipeline():
    """Factory: ``coarse_pipeline(skull_strip="atlas-mask", atlas=None)`` -> a fast Pipeline."""
    return make_coarse_pipeline


@pytest.fixture(scope="session")
def raw_downloads(tmp_path_factory) -> Path:
    """The first subjects of every data set (RAW_SUBJECTS, else 2) as raw scans with 3 mm voxels in
    their download layouts: ROOT/IXI, ROOT/BraTS21, ROOT/MSLUB, ROOT/ATLAS_2, ROOT/WMH. Read-only."""
    from brainuad.data.synth.raw import DOWNLOAD_FOLDERS, synthesize_raw

    def build(root: Path) -> None:
        for dataset_id, folder in DOWNLOAD_FOLDERS.items():  # one call per set: each has its own count
            part = root / f".part-{dataset_id}"
            synthesize_raw(part, size="tiny", seed=0, workers=2, datasets=(dataset_id,),
                           limit=RAW_SUBJECTS.get(dataset_id, 2), coarsen=3.0, progress=False)
            (part / folder).rename(root / folder)
            shutil.rmtree(part)

    return shared_folder(tmp_path_factory, "raw-downloads", build)
