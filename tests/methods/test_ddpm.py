import numpy as np
import pytest
import torch

from brainuad.methods.base import volume_noise_seed
from brainuad.methods.cddpm import CDDPM
from brainuad.methods.ddpm import DDPM
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.pddpm import PDDPM, patch_masks
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import GaussianNoise, SimplexNoise


def tiny_unet(context_dim=None):
    return UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4,
                context_dim=context_dim)


def smooth_slices(n, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def make(kind="ddpm", **options):
    schedule = DiffusionSchedule(1000)
    if kind == "cddpm":
        return CDDPM(tiny_unet(16), ImageEncoder(18, 16), GaussianNoise(), schedule, **options)
    if kind == "pddpm":
        return PDDPM(tiny_unet(), GaussianNoise(), schedule, patch_size=16, **options)
    return DDPM(tiny_unet(), SimplexNoise(feature_size=16.0), schedule, **options)


@pytest.mark.parametrize(("kind", "steps"), [("ddpm", 150), ("cddpm", 40), ("pddpm", 80)])
def test_x0_loss_falls_by_half_when_overfitting(kind, steps):
    """Adam on four slices; measured once: the loss falls to 0.47 (DDPM, 150 steps), 0.36 (cDDPM, 40)
    and 0.31 (pDDPM, 80) of its start."""
    torch.manual_seed(0)
    method = make(kind)
    images = smooth_slices(4)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)

    def fixed_loss():
        with torch.no_grad():
            return method.training_loss(images, torch.Generator().manual_seed(1)).item()

    start = fixed_loss()
    for _ in range(steps):
        optimizer.zero_grad()
        method.training_loss(images).backward()
        optimizer.step()
    assert fixed_loss() < 0.5 * start, (start, fixed_loss())


def test_volume_reconstruction_shape_and_ensemble_is_mean_of_passes():
    method = make("ddpm", ensemble=(250, 500, 750), inference_batch_size=64)
    with torch.no_grad():
        for parameter in method.unet.output_conv.parameters():
            parameter.normal_(0, 0.1)
    volume = np.random.default_rng(0).random((32, 32, 50)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == (32, 32, 50) and reconstruction.dtype == np.float32
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    # the three passes with the same generator stream, one by one
    slices = torch.from_numpy(volume).permute(2, 0, 1)[:, None]
    generator = torch.Generator().manual_seed(volume_noise_seed(method.seed, volume))
    with torch.no_grad():
        passes = [method.reconstruct_at(slices, (level,), generator) for level in (250, 500, 750)]
    expected = torch.stack(passes).mean(0)[:, 0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(reconstruction, expected, atol=1e-6)
    # explicit t_test overrides the default ensemble; results are reproducible
    single = method.reconstruct(volume, t_test=500)
    np.testing.assert_array_equal(single, method.reconstruct(volume, t_test=500))
    assert not np.allclose(single, reconstruction)
    residual = method.anomaly_map(volume)
    np.testing.assert_allclose(residual, np.abs(volume - reconstruction), atol=1e-6)


def test_levels_defaults_and_overrides():
    assert make("ddpm").levels() == (500,)
    assert make("ddpm", ensemble=(250, 500, 750)).levels() == (250, 500, 750)
    assert make("ddpm", ensemble=(250, 500, 750)).levels(t_test=100) == (100,)
    assert make("ddpm").levels(ensemble=[10, 20]) == (10, 20)
    with pytest.raises(ValueError, match="noise level"):
        make("ddpm", t_test=0)


def test_cddpm_context_changes_the_reconstruction():
    method = make("cddpm")
    with torch.no_grad():
        for parameter in method.unet.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.1)
    images = smooth_slices(2)
    context = method.context(images * 2 - 1)
    assert context.shape == (2, 16)
    t = torch.full((2,), 500)
    x_t = torch.zeros_like(images)
    out_a = method.unet(x_t, t, context)
    out_b = method.unet(x_t, t, context.flip(0))
    assert not torch.allclose(out_a, out_b)


def test_cddpm_dimension_mismatch():
    with pytest.raises(ValueError, match="context_dim"):
        CDDPM(tiny_unet(16), ImageEncoder(18, 8), GaussianNoise(), DiffusionSchedule(1000))


def test_patch_masks_tile_the_slice():
    masks = patch_masks(96, 96, 48)
    assert masks.shape == (4, 1, 96, 96)
    assert torch.all(masks.sum(0) == 1)
    with pytest.raises(ValueError, match="patch_size"):
        patch_masks(96, 96, 40)


def test_pddpm_reconstruction_keeps_nothing_of_the_noised_patch_input():
    method = make("pddpm")
    images = smooth_slices(3)
    with torch.no_grad():
        out = method.reconstruct_at(images, (500,), torch.Generator().manual_seed(0))
    # the untrained UNet outputs exactly 0 (-> 0.5 in image range) everywhere: every patch was reconstructed
    torch.testing.assert_close(out, torch.full_like(images, 0.5))


def test_pddpm_loss_uses_only_the_noised_patch():
    method = make("pddpm")
    images = smooth_slices(2)
    generator_state = 3
    loss = method.training_loss(images, torch.Generator().manual_seed(generator_state))
    # recompute by hand: same draws (patch choice, t, noise) from the same seed
    generator = torch.Generator().manual_seed(generator_state)
    masks = patch_masks(32, 32, 16)
    chosen = masks[torch.randint(len(masks), (2,), generator=generator)]
    x0 = images * 2 - 1
    error = (0 - x0).abs()  # the untrained UNet predicts 0
    torch.testing.assert_close(loss, error[chosen].mean())


def _grid_volume(image, name):
    from brainuad.data.grid import GridTransform, GridVolume

    transform = GridTransform.for_shape((64, 64, 100), np.eye(4), crop_shape=(64, 64, 100))
    return GridVolume(image=image, mask=image > 0, seg=None, name=name, transform=transform)


def test_test_time_noise_is_drawn_per_volume_and_reproducible():
    method = make("ddpm", inference_batch_size=64, seed=3)
    with torch.no_grad():
        for parameter in method.unet.output_conv.parameters():
            parameter.normal_(0, 0.1)
    image = np.random.default_rng(0).random((32, 32, 50)).astype(np.float32)
    other_image = np.random.default_rng(1).random((32, 32, 50)).astype(np.float32)
    first = method.reconstruct(_grid_volume(image, "IXI002"))
    np.testing.assert_array_equal(first, method.reconstruct(_grid_volume(image, "IXI002")))
    # the noise follows the voxels, not the name: a copy of the scan under another name gets the same maps
    np.testing.assert_array_equal(first, method.reconstruct(_grid_volume(image.copy(), "copy of IXI002")))
    np.testing.assert_array_equal(first, method.reconstruct(image))
    # each volume its own noise: the same slice of two volumes is noised differently
    noise = []
    for array in (image, other_image):
        generator = torch.Generator().manual_seed(volume_noise_seed(method.seed, array))
        noise.append(method._noise_like(torch.zeros(50, 1, 32, 32), generator))
    assert not torch.allclose(noise[0], noise[1])
    # another run seed: other noise for the same volume
    method.seed = 4
    assert np.abs(method.reconstruct(_grid_volume(image, "IXI002")) - first).mean() > 1e-3


def test_volume_noise_seed_depends_on_seed_and_voxels():
    images = [np.zeros((4, 4, 2), np.float32), np.ones((4, 4, 2), np.float32)]
    seeds = {volume_noise_seed(seed, _grid_volume(image, "a")) for seed in (0, 1) for image in images}
    assert len(seeds) == 4 and all(0 <= seed < 2 ** 63 for seed in seeds)
    assert volume_noise_seed(0, _grid_volume(images[0], "a")) == volume_noise_seed(0, _grid_volume(images[0], "b"))


def _visible(method):
    """Random weights where the UNet starts at zero: its output and conditioning would hide any mix-up."""
    with torch.no_grad():
        for parameter in method.unet.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.1)
    return method


@pytest.mark.parametrize("kind", ["ddpm", "cddpm", "pddpm"])
def test_volumes_reconstructed_together_equal_each_alone_at_any_batch_size(kind):
    """Batched inference: the slices of several volumes and all ensemble levels share forward
    batches; each volume keeps its own noise, so the result equals reconstructing it alone."""
    rng = np.random.default_rng(1)
    volumes = [rng.random((32, 32, 6)).astype(np.float32) for _ in range(3)]
    torch.manual_seed(0)
    method = _visible(make(kind, ensemble=(250, 500, 750), inference_batch_size=6))
    alone = [method.reconstruct(volume) for volume in volumes]
    for batch in (5, 18, 1000):  # within a level, across levels, and every pass of the three volumes in one
        method.inference_batch_size = batch
        together = method.reconstruct_many(volumes)
        for expected, actual in zip(alone, together, strict=True):
            np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert not np.allclose(alone[0], alone[1])
    crops = [volume * (np.arange(32) < 16)[:, None, None] for volume in volumes]
    if kind == "cddpm":  # each volume's own conditioning image is used
        conditioned = method.reconstruct_many(volumes, conditions=crops)
        np.testing.assert_allclose(conditioned[1], method.reconstruct(volumes[1], condition=crops[1]), atol=1e-5)
        assert not np.allclose(conditioned[1], alone[1])
    with pytest.raises(ValueError, match="2 conditions for 3 volumes"):
        method.reconstruct_many(volumes, conditions=crops[:2])


def test_passes_per_slice_count_levels_and_patches():
    assert make("ddpm").passes_per_slice((250, 500, 750), 96, 96) == 3
    assert make("pddpm").passes_per_slice((250, 500), 96, 96) == 2 * 36  # 16 px patches: 6 x 6
