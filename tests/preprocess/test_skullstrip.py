"""Skull strippers recover the brain of a synthetic head (deepbet, the atlas-mask fallback) or of a
stripped scan (none); an hd-bet command on the PATH is called the way HD-BET 2 expects."""

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from brainuad.data.synth.raw import raw_subject
from brainuad.preprocess.register import Atlas, AtlasRegistration, RegistrationSettings
from brainuad.preprocess.resample import Grid, resample
from brainuad.preprocess.skullstrip import (
    AtlasMask,
    DeepBet,
    HdBet,
    NoStrip,
    SkullStripError,
    largest_component,
    skull_stripper,
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def head():
    """A raw synthetic T1 head (IXI subject 1: sagittal, oblique, posed, skull, bias), 2 mm voxels."""
    return raw_subject("ixi", 1, seed=0, coarsen=2.0)


def test_deepbet_recovers_the_brain_of_a_synthetic_head(head):
    scan = head.scans["t1"]
    mask = DeepBet().brain_mask(scan.image, Grid(scan.image.shape, scan.affine), None)
    assert mask.dtype == bool and mask.shape == scan.image.shape
    assert dice(mask, head.brain) > 0.9


def test_atlas_mask_carried_through_the_registration_recovers_the_brain(head):
    scan = head.scans["t1"]
    grid = Grid(scan.image.shape, scan.affine)
    world = AtlasRegistration(Atlas.mni152(), RegistrationSettings(working_spacing_mm=3.0)).estimate(scan.image, grid)
    atlas = Atlas.mni152().load()
    # The atlas mask in the scan's own grid: the inverse of the registration carries it back.
    carried = resample(atlas.mask.astype(np.float32), atlas.grid, grid, world=np.linalg.inv(world),
                       interpolation="linear") > 0.5
    assert dice(AtlasMask().brain_mask(scan.image, grid, carried), head.brain) > 0.9


def test_atlas_mask_needs_the_registration():
    with pytest.raises(ValueError, match="registration"):
        AtlasMask().brain_mask(np.ones((4, 4, 4)), Grid((4, 4, 4), np.eye(4)), None)


def test_no_strip_takes_the_nonzero_brain_with_holes_filled():
    image = np.zeros((20, 20, 20), np.float32)
    image[4:16, 4:16, 4:16] = 500.0
    image[8:10, 8:10, 8:10] = 0.0  # dark inside: still brain
    image[0, 0, 0] = 0.5  # interpolation residue far away: not brain
    mask = NoStrip().brain_mask(image, Grid(image.shape, np.eye(4)), None)
    assert mask.sum() == 12 ** 3
    with pytest.raises(SkullStripError, match="no voxel"):
        NoStrip().brain_mask(np.zeros((4, 4, 4)), Grid((4, 4, 4), np.eye(4)), None)


def test_largest_component():
    mask = np.zeros((10, 10, 10), bool)
    mask[1:3, 1:3, 1:3] = True
    mask[5:9, 5:9, 5:9] = True
    assert largest_component(mask).sum() == 64
    assert not largest_component(np.zeros((3, 3, 3), bool)).any()


def _fake_hd_bet(folder: Path) -> None:
    """An ``hd-bet`` stand-in that checks HD-BET 2's arguments and writes ``<output>_bet.nii.gz``
    (the voxels above 100)."""
    script = folder / "hd-bet"
    script.write_text(f"""#!{sys.executable}
import sys
import nibabel as nib
import numpy as np
arguments = sys.argv[1:]
assert "--save_bet_mask" in arguments and "--no_bet_image" in arguments and "--disable_tta" in arguments
source, target = arguments[arguments.index("-i") + 1], arguments[arguments.index("-o") + 1]
image = nib.load(source)
mask = (np.asarray(image.dataobj) > 100).astype(np.uint8)
nib.save(nib.Nifti1Image(mask, image.affine), target.replace(".nii.gz", "_bet.nii.gz"))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_hd_bet_is_called_when_found_on_the_path(tmp_path, monkeypatch):
    _fake_hd_bet(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    image = np.zeros((10, 12, 8), np.float32)
    image[2:7, 3:9, 2:6] = 300.0
    affine = np.diag([1.5, -1.0, 2.0, 1.0])
    mask = HdBet().brain_mask(image, Grid(image.shape, affine), None)
    np.testing.assert_array_equal(mask, image > 100)


def test_hd_bet_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SkullStripError, match="not found on the PATH"):
        HdBet().brain_mask(np.ones((4, 4, 4)), Grid((4, 4, 4), np.eye(4)), None)


def test_strategies_by_name_and_their_checks():
    assert [skull_stripper(name).name for name in ("deepbet", "none", "atlas-mask", "hd-bet")] == \
        ["deepbet", "none", "atlas-mask", "hd-bet"]
    with pytest.raises(ValueError, match="skull stripper"):
        skull_stripper("bet2")
    with pytest.raises(ValueError, match="threshold"):
        DeepBet(threshold=1.0)
    with pytest.raises(ValueError, match="device"):
        HdBet(device="tpu")
    with pytest.raises(ValueError, match="relative_threshold"):
        NoStrip(relative_threshold=1.0)
