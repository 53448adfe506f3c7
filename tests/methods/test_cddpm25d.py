"""The 2.5-D cDDPM: stacks of neighbouring slices for the encoder, the centre slice for the UNet."""

import numpy as np
import pytest
import torch
from helpers import small_conditioned_unet
from safetensors.torch import save_file

from brainuad.errors import ConfigError
from brainuad.methods.base import volume_noise_seed, volume_slices
from brainuad.methods.cddpm25d import CDDPM25D, neighbour_stacks
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.registry import SPECS, build_detector, parse_config
from brainuad.methods.spark import load_body_weights
from brainuad.nn.encoders import ImageEncoder, ResNetBody
from brainuad.nn.unet import UNet
from brainuad.noise import GaussianNoise


def make(neighbours=1):
    unet = small_conditioned_unet()
    encoder = ImageEncoder(18, 16, in_channels=2 * neighbours + 1)
    return CDDPM25D(unet, encoder, GaussianNoise(), DiffusionSchedule(1000), neighbours=neighbours, t_test=500)


def numbered_slices(depth, size=4):
    """(depth, 1, size, size) slices whose pixels hold the slice index."""
    return torch.arange(depth, dtype=torch.float32)[:, None, None, None].expand(depth, 1, size, size).clone()


def test_neighbour_stacks_replicate_the_nearest_slice_at_the_edges():
    stacks = neighbour_stacks(numbered_slices(4), 1)
    assert stacks.shape == (4, 3, 4, 4)
    assert stacks[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]
    assert neighbour_stacks(numbered_slices(3), 2)[:, :, 0, 0].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 2],
                                                                            [0, 1, 2, 2, 2]]
    assert neighbour_stacks(numbered_slices(1), 1)[:, :, 0, 0].tolist() == [[0, 0, 0]]
    assert torch.equal(neighbour_stacks(numbered_slices(5), 0), numbered_slices(5))
    with pytest.raises(ValueError, match="shape"):
        neighbour_stacks(torch.zeros(4, 2, 4, 4), 1)
    with pytest.raises(ValueError, match="neighbours"):
        neighbour_stacks(numbered_slices(4), -1)


def test_the_encoder_sees_the_neighbours_and_only_them():
    method = make().eval()
    volume = np.random.default_rng(0).random((32, 32, 6)).astype(np.float32)

    def contexts(array):
        with torch.no_grad():
            return method.context(method.condition_slices(array) * 2 - 1)

    before = contexts(volume)
    neighbour, far = volume.copy(), volume.copy()
    neighbour[:, :, 1] = 0.0
    far[:, :, 4] = 0.0
    assert not torch.allclose(contexts(neighbour)[2], before[2])  # slice 1 is a neighbour of slice 2
    assert torch.equal(contexts(far)[2], before[2])  # slice 4 is not
    assert not torch.allclose(contexts(far)[3], before[3])
    # and the reconstruction of the centre slice follows (same noise)
    slices = volume_slices(volume)
    with torch.no_grad():
        rec = [method.reconstruct_at(slices[2:3], (500,), torch.Generator().manual_seed(0),
                                     method.condition_slices(array)[2:3]) for array in (volume, neighbour)]
    assert not torch.allclose(rec[0], rec[1])


def test_training_denoises_the_centre_slice_and_trains_the_encoder_on_the_whole_stack():
    method = make()
    stacks = torch.rand(2, 3, 32, 32)
    loss = method.training_loss(stacks, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    expected = method.denoising_loss(stacks[:, 1:2], torch.Generator().manual_seed(0), condition=stacks)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    gradient = method.encoder.body.conv1.weight.grad
    assert all(gradient[:, channel].abs().sum() > 0 for channel in range(3))
    with pytest.raises(ValueError, match=r"stacks of shape \(N, 3, H, W\)"):
        method.training_loss(torch.rand(2, 1, 32, 32))


def test_volume_reconstruction_uses_the_volume_stacks_and_single_slices_are_their_own_neighbours():
    method = make()
    volume = np.random.default_rng(1).random((32, 32, 5)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == volume.shape and reconstruction.dtype == np.float32
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    np.testing.assert_array_equal(reconstruction, method.reconstruct(volume, condition=volume))
    slices = volume_slices(volume)
    generator = torch.Generator().manual_seed(volume_noise_seed(method.seed, volume))
    method.eval()
    with torch.no_grad():
        expected = method.reconstruct_at(slices, (500,), generator, neighbour_stacks(slices, 1))
        np.testing.assert_allclose(reconstruction, expected[:, 0].permute(1, 2, 0).numpy(), atol=1e-5)
        alone = method.reconstruct_at(slices, (500,), torch.Generator().manual_seed(0))
        replicated = method.reconstruct_at(slices, (500,), torch.Generator().manual_seed(0),
                                           slices.expand(-1, 3, -1, -1))
    torch.testing.assert_close(alone, replicated)
    with pytest.raises(ValueError, match="conditioning"):
        method.reconstruct_at(slices, (500,), None, torch.zeros(5, 2, 32, 32))


def test_the_encoder_must_take_2k_plus_1_channels():
    unet = UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4,
                context_dim=16)
    with pytest.raises(ValueError, match="need 5"):
        CDDPM25D(unet, ImageEncoder(18, 16, in_channels=3), GaussianNoise(), DiffusionSchedule(1000), neighbours=2)
    with pytest.raises(ValueError, match="neighbours"):
        CDDPM25D(unet, ImageEncoder(18, 16), GaussianNoise(), DiffusionSchedule(1000), neighbours=0)


def test_config_spec_and_builder():
    config = parse_config({"method": "cddpm25d"})
    assert config.encoder.neighbours == 1 and config.diffusion.ensemble == (250, 500, 750)
    assert config.encoder.depth == 50 and config.encoder.dim == 128 and not config.data.augment
    assert SPECS["cddpm25d"].stack_size(config) == 3
    wide = parse_config({"method": "cddpm25d", "encoder": {"neighbours": 2, "depth": 18, "dim": 8},
                         "model": {"base_channels": 8, "groups": 4, "attention_head_channels": 8}})
    assert SPECS["cddpm25d"].stack_size(wide) == 5
    method = build_detector(wide)
    assert isinstance(method, CDDPM25D) and method.encoder.in_channels == 5 and method.stack_size == 5
    with pytest.raises(ConfigError, match="data.augment must be false for cddpm25d"):
        parse_config({"method": "cddpm25d", "data": {"augment": True}})
    for encoder in ({"neighbours": 0}, {"neighbors": 1}):
        with pytest.raises(ConfigError, match="neighbo"):
            parse_config({"method": "cddpm25d", "encoder": encoder})


def test_spark_weights_are_inflated_over_the_stack(tmp_path):
    torch.manual_seed(0)
    single = ResNetBody(18).eval()
    path = tmp_path / "encoder.safetensors"
    save_file(single.state_dict(), str(path))
    stacked = ResNetBody(18, in_channels=3).eval()
    load_body_weights(stacked, path)
    torch.testing.assert_close(stacked.conv1.weight, single.conv1.weight.repeat(1, 3, 1, 1) / 3)
    image = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(stacked(image.expand(-1, 3, -1, -1)), single(image), rtol=1e-4, atol=1e-5)
    config = parse_config({"method": "cddpm25d", "encoder": {"depth": 18, "dim": 8, "pretrained": str(path)},
                           "model": {"base_channels": 8, "groups": 4, "attention_head_channels": 8}})
    built = build_detector(config)
    torch.testing.assert_close(built.encoder.body.layer4[0].conv1.weight, single.layer4[0].conv1.weight)
    torch.testing.assert_close(built.encoder.body.conv1.weight, stacked.conv1.weight)


def test_stack_volumes_reconstructed_together_equal_each_alone():
    method = make()
    rng = np.random.default_rng(2)
    volumes = [rng.random((32, 32, 5)).astype(np.float32) for _ in range(2)]
    alone = [method.reconstruct(volume) for volume in volumes]
    method.inference_batch_size = 1000
    for expected, actual in zip(alone, method.reconstruct_many(volumes), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)
