from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.transform import resize

from brainuad.methods.dae import CoarseNoise, DenoisingAutoencoder
from brainuad.nn.unet import UNet

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny_unet(context_dim=None):
    return UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4,
                context_dim=context_dim)


def brain_slices(n, size=32, seed=0):
    """Smooth slices in [0.2, 1] on a disc of 'brain', 0 outside (like model-grid slices)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=generator)
    images = 0.2 + 0.8 * torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2) < (0.4 * size) ** 2
    return images * disc


def test_coarse_noise_is_upsampled_gaussian_grid():
    noise = CoarseNoise(resolution=4, std=0.2)
    sample = noise.sample((3, 1, 16, 16), device="cpu", generator=torch.Generator().manual_seed(5))
    grid = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(5)) * 0.2
    assert sample.shape == (3, 1, 16, 16)
    for index in range(3):  # bilinear upsampling with half-pixel centres, as scikit-image's order-1 resize
        expected = resize(grid[index, 0].numpy(), (16, 16), order=1, mode="edge", anti_aliasing=False)
        np.testing.assert_allclose(sample[index, 0].numpy(), expected, atol=1e-6)
    big = CoarseNoise(resolution=64, std=0.2).sample((8, 1, 64, 64), device="cpu")
    assert abs(big.std().item() - 0.2) < 0.01 and abs(big.mean().item()) < 0.01


def test_loss_is_mse_of_denoised_brain_noise():
    torch.manual_seed(0)
    method = DenoisingAutoencoder(tiny_unet(), CoarseNoise(4, 0.2))
    with torch.no_grad():
        for parameter in method.unet.output_conv.parameters():
            parameter.normal_(0, 0.1)
    images = brain_slices(2)
    loss = method.training_loss(images, torch.Generator().manual_seed(3))
    noise = CoarseNoise(4, 0.2).sample((2, 1, 32, 32), device="cpu", generator=torch.Generator().manual_seed(3))
    noisy = torch.where(images > 0, images + noise, images)  # the background stays 0
    torch.testing.assert_close(loss, (method.denoise(noisy) - images).square().mean())


def test_loss_falls_by_half_when_overfitting():
    torch.manual_seed(0)
    method = DenoisingAutoencoder(tiny_unet(), CoarseNoise(4, 0.2))
    images = brain_slices(4)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)

    def fixed_loss():
        with torch.no_grad():
            return method.training_loss(images, torch.Generator().manual_seed(1)).item()

    start = fixed_loss()
    for _ in range(60):
        optimizer.zero_grad()
        method.training_loss(images).backward()
        optimizer.step()
    assert fixed_loss() < 0.5 * start, (start, fixed_loss())


def test_reconstruction_denoises_the_clean_input():
    method = DenoisingAutoencoder(tiny_unet(), CoarseNoise(4, 0.2), inference_batch_size=7)
    with torch.no_grad():
        for parameter in method.unet.output_conv.parameters():
            parameter.normal_(0, 0.5)
    volume = brain_slices(20)[:, 0].permute(1, 2, 0).numpy()
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == (32, 32, 20) and reconstruction.dtype == np.float32
    np.testing.assert_array_equal(reconstruction, method.reconstruct(volume))  # no noise at test time
    with torch.no_grad():
        expected = method.denoise(torch.from_numpy(volume).permute(2, 0, 1)[:, None]).clamp(0, 1)
    np.testing.assert_allclose(reconstruction, expected[:, 0].permute(1, 2, 0).numpy(), atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="resolution"):
        CoarseNoise(resolution=0)
    with pytest.raises(ValueError, match="std"):
        CoarseNoise(std=0.0)
    with pytest.raises(ValueError, match="shape"):
        CoarseNoise().sample((2, 32, 32), device="cpu")
    with pytest.raises(ValueError, match="without context"):
        DenoisingAutoencoder(tiny_unet(context_dim=8), CoarseNoise())
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        DenoisingAutoencoder(tiny_unet(), CoarseNoise()).training_loss(torch.rand(2, 3, 32, 32))
