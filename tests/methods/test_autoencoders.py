from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from brainuad.methods.autoencoders import Autoencoder, DeterministicLatent, GaussianLatent, gaussian_kl
from brainuad.methods.registry import parse_config
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SIZE = 32


def smooth_slices(n, size=SIZE, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def make(latent, latent_dim=8):
    encoder = ConvEncoder(latent.encoder_width(latent_dim), (4, 8, 8), image_size=SIZE, groups=2)
    return Autoencoder(encoder, ConvDecoder(latent_dim, (4, 8, 8), image_size=SIZE, groups=2), latent,
                       inference_batch_size=16)


def test_gaussian_kl_matches_torch_distributions():
    mu, log_variance = torch.randn(5, 7), torch.randn(5, 7)
    expected = kl_divergence(Normal(mu, (0.5 * log_variance).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, log_variance), expected)
    assert torch.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_latent_strategies():
    h = torch.randn(4, 6)
    z, penalty = DeterministicLatent()(h, sample=True)
    assert z is h and torch.all(penalty == 0)
    latent = GaussianLatent(beta=0.5)
    mean, mean_penalty = latent(h, sample=False)
    torch.testing.assert_close(mean, h[:, :3])
    torch.testing.assert_close(mean_penalty, 0.5 * gaussian_kl(h[:, :3], h[:, 3:]))
    first, _ = latent(h, sample=True, generator=torch.Generator().manual_seed(1))
    again, _ = latent(h, sample=True, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, again)
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, h[:, :3] + (0.5 * h[:, 3:]).exp() * eps)
    with pytest.raises(ValueError, match="beta"):
        GaussianLatent(beta=-1.0)


@pytest.mark.parametrize("latent", [DeterministicLatent(), GaussianLatent(0.001)], ids=["ae", "vae"])
def test_loss_falls_by_half_when_overfitting(latent):
    torch.manual_seed(0)
    method = make(latent)
    images = smooth_slices(4)
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)

    def fixed_loss():
        with torch.no_grad():
            return method.training_loss(images, torch.Generator().manual_seed(1)).item()

    start = fixed_loss()
    for _ in range(150):
        optimizer.zero_grad()
        method.training_loss(images).backward()
        optimizer.step()
    assert fixed_loss() < 0.5 * start, (start, fixed_loss())


def test_vae_loss_is_per_pixel_l1_plus_beta_kl():
    torch.manual_seed(0)
    method = make(GaussianLatent(0.25))
    images = smooth_slices(3)
    loss = method.training_loss(images, torch.Generator().manual_seed(4))
    mu, log_variance = method.encoder(images).chunk(2, dim=1)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(4))
    reconstructions = method.decoder(mu + (0.5 * log_variance).exp() * eps)
    per_slice = (images - reconstructions).abs().sum((1, 2, 3)) + 0.25 * gaussian_kl(mu, log_variance)
    torch.testing.assert_close(loss, (per_slice / SIZE**2).mean())


def test_reconstruction_is_the_decoded_mean_code():
    method = make(GaussianLatent(0.001))
    volume = np.random.default_rng(0).random((SIZE, SIZE, 20)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == (SIZE, SIZE, 20) and reconstruction.dtype == np.float32
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    np.testing.assert_array_equal(reconstruction, method.reconstruct(volume))  # no sampling at test time
    slices = torch.from_numpy(volume).permute(2, 0, 1)[:, None]
    with torch.no_grad():
        expected = method.decoder(method.encoder(slices).chunk(2, dim=1)[0])[:, 0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(reconstruction, expected, atol=1e-6)
    np.testing.assert_allclose(method.anomaly_map(volume), np.abs(volume - reconstruction), atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="out_dim"):
        Autoencoder(ConvEncoder(8, (4,), image_size=SIZE, groups=2), ConvDecoder(8, (4,), image_size=SIZE, groups=2),
                    GaussianLatent())
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        make(DeterministicLatent()).training_loss(torch.rand(2, 1, 16, 16))


def test_paper_values_are_the_defaults():
    assert parse_config({"method": "vae"}).vae.beta == 0.001
    assert parse_config({"method": "svae", "data": {"augment": False}}).vae.beta == 0.001
