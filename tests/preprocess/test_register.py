"""Registration: a randomly posed synthetic head comes back; a subject's T2 aligns with its T1."""

from dataclasses import replace

import numpy as np
import pytest

from brainuad.data.io import write_image
from brainuad.data.synth.raw import PROFILES, raw_subject
from brainuad.errors import InputError
from brainuad.preprocess.register import (
    Atlas,
    AtlasRegistration,
    RegistrationSettings,
    RigidAlignment,
    Stage,
    head_region,
)
from brainuad.preprocess.resample import Grid, resample


@pytest.fixture(scope="module")
def posed_ixi():
    """IXI subject 0 as raw T1 (sagittal, oblique, randomly posed, skull) and T2 (own grid and pose),
    2 mm voxels, no bias field (so that intensities compare directly)."""
    return raw_subject("ixi", 0, seed=0, coarsen=2.0, profile=replace(PROFILES["ixi"], bias=0.0))


def _displacement_mm(first: np.ndarray, second: np.ndarray, points: np.ndarray) -> float:
    """Largest distance between where two (4, 4) maps send ``points`` (N, 3)."""
    a = points @ first[:3, :3].T + first[:3, 3]
    b = points @ second[:3, :3].T + second[:3, 3]
    return float(np.linalg.norm(a - b, axis=1).max())


def test_a_posed_head_comes_back_to_its_unposed_image(posed_ixi, tmp_path):
    # The atlas is the subject's own unposed brain (an atlas by path), so the only difference left
    # is the pose; against MNI152 the subject's own anatomy would differ from the template too.
    subject, scan = posed_ixi.subject, posed_ixi.scans["t1"]
    template = write_image(tmp_path / "unposed_t1.nii.gz", subject.images["t1"], subject.affine)
    mask = write_image(tmp_path / "unposed_mask.nii.gz", subject.mask, subject.affine)
    registration = AtlasRegistration(Atlas.from_path(template, mask), RegistrationSettings(working_spacing_mm=3.0))
    raw_grid = Grid(scan.image.shape, scan.affine)
    world = registration.estimate(scan.image, raw_grid)

    template_grid = Grid(subject.mask.shape, subject.affine)
    brain = subject.mask > 0
    back = resample(scan.image, raw_grid, template_grid, world=world)
    posed = resample(scan.image, raw_grid, template_grid)
    assert np.corrcoef(back[brain], subject.images["t1"][brain])[0, 1] > 0.95
    assert np.corrcoef(posed[brain], subject.images["t1"][brain])[0, 1] < 0.8  # the pose was not trivial
    points = template_grid.world_points(np.argwhere(brain)[::50])
    assert _displacement_mm(world, scan.pose, points) < 1.5


def test_rigid_alignment_finds_the_motion_between_two_modalities(posed_ixi):
    t1, t2 = posed_ixi.scans["t1"], posed_ixi.scans["t2"]
    estimate = RigidAlignment(RegistrationSettings(stages=(Stage("rigid", (2, 1), (2.0, 0.0), 2.0),),
                                                   working_spacing_mm=3.0)).estimate(
        t1.image, Grid(t1.image.shape, t1.affine), t2.image, Grid(t2.image.shape, t2.affine))
    truth = t2.pose @ np.linalg.inv(t1.pose)  # T1 world -> template world -> T2 world
    subject = posed_ixi.subject
    points = Grid(subject.mask.shape, subject.affine).world_points(np.argwhere(subject.mask > 0)[::50])
    points = points @ t1.pose[:3, :3].T + t1.pose[:3, 3]  # the brain, in T1 world
    assert _displacement_mm(estimate, truth, points) < 1.5
    np.testing.assert_allclose(np.linalg.det(estimate[:3, :3]), 1.0, atol=1e-6)  # rigid


def test_registration_repeats_exactly(posed_ixi):
    scan = posed_ixi.scans["t1"]
    registration = AtlasRegistration(Atlas.mni152(), RegistrationSettings(working_spacing_mm=4.0, iterations=20))
    grid = Grid(scan.image.shape, scan.affine)
    np.testing.assert_allclose(registration.estimate(scan.image, grid), registration.estimate(scan.image, grid),
                               atol=1e-3)


def test_mni152_atlas_loads_offline_and_fingerprints():
    atlas = Atlas.mni152()
    images = atlas.load()
    assert images.image.shape == images.mask.shape == images.grid.shape
    assert images.mask.sum() > 1_000_000  # cm3 of a brain at 1 mm
    assert atlas.fingerprint()["image_sha256"] == "bundled"
    assert atlas.grid_at(2.0).spacing == pytest.approx((2.0, 2.0, 2.0))
    assert atlas.grid_at(1.0).shape == images.grid.shape and atlas.grid_at(None) is images.grid


def test_atlas_by_path_takes_its_mask_or_its_nonzero_voxels(tmp_path):
    image = np.zeros((12, 12, 12), np.float32)
    image[3:9, 3:9, 3:9] = 5.0
    image[5, 5, 5] = 0.0  # a hole: filled
    path = write_image(tmp_path / "atlas.nii.gz", image, np.eye(4))
    loaded = Atlas.from_path(path).load()
    assert loaded.mask.sum() == 6 ** 3
    bad_mask = write_image(tmp_path / "mask.nii.gz", np.ones((12, 12, 11), np.uint8), np.eye(4))
    with pytest.raises(InputError, match="atlas mask grid"):
        Atlas.from_path(path, bad_mask).load()
    assert len(Atlas.from_path(path).fingerprint()["image_sha256"]) == 64


def test_head_region_ignores_faint_background():
    image = np.random.default_rng(0).random((20, 20, 20)).astype(np.float32)  # noise up to 1
    image[5:15, 5:15, 5:15] = 100.0
    assert head_region(image).sum() == 1000


@pytest.mark.parametrize("arguments, match", [
    (dict(seed=0), "seed"), (dict(sampling=0.0), "sampling"), (dict(bins=2), "bins"), (dict(stages=()), "stages"),
    (dict(working_spacing_mm=0.0), "working_spacing_mm"), (dict(iterations=0), "iterations"),
    (dict(mask_margin_mm=-1.0), "mask_margin_mm")])
def test_settings_reject_bad_values(arguments, match):
    with pytest.raises(ValueError, match=match):
        RegistrationSettings(**arguments)


@pytest.mark.parametrize("arguments, match", [
    (("shear", (1,), (0.0,), 1.0), "transform"), (("rigid", (), (), 1.0), "shrink_factors"),
    (("rigid", (2, 1), (1.0,), 1.0), "smoothing_mm"), (("rigid", (1,), (0.0,), 0.0), "step_mm")])
def test_stage_rejects_bad_values(arguments, match):
    with pytest.raises(ValueError, match=match):
        Stage(*arguments)
