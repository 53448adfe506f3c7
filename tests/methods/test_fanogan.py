import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from brainuad.errors import ConfigError
from brainuad.methods.fanogan import WGAN_BETAS, FAnoGAN
from brainuad.methods.registry import parse_config
from brainuad.methods.spec import OptimizerSettings
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder
from brainuad.nn.discriminators import Critic
from brainuad.train import AdversarialTrainingModule

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SIZE = 16
LATENT = 8


def make(**options):
    torch.manual_seed(0)
    return FAnoGAN(ConvDecoder(LATENT, (4, 8), image_size=SIZE, groups=2), Critic((4, 8), image_size=SIZE),
                   ConvEncoder(LATENT, (4, 8), image_size=SIZE, groups=2), **{"gan_epochs": 1, **options})


def images(n=4, seed=0):
    return torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_critic_loss_is_wgan_gp():
    method = make(gradient_penalty=10.0)
    real = images()
    loss = method.critic_loss(real, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    fake = method.image_generator(torch.randn((4, LATENT), generator=generator)).detach()
    weight = torch.rand((4, 1, 1, 1), generator=generator)
    mixed = (weight * real + (1 - weight) * fake).requires_grad_(True)
    gradient, = torch.autograd.grad(method.critic(mixed).sum(), mixed)
    penalty = ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()
    expected = method.critic(fake).mean() - method.critic(real).mean() + 10.0 * penalty
    torch.testing.assert_close(loss, expected)
    loss.backward()  # the penalty is differentiable (double backward)
    assert all(parameter.grad is None for parameter in method.image_generator.parameters())


def test_generator_and_encoder_losses():
    method = make(feature_weight=0.5)
    z = torch.randn((3, LATENT), generator=torch.Generator().manual_seed(2))
    generator_loss = method.generator_loss(3, torch.device("cpu"), torch.Generator().manual_seed(2))
    torch.testing.assert_close(generator_loss, -method.critic(method.image_generator(z)).mean())
    x = images(3)
    rebuilt = method.image_generator(method.encoder(x))
    features = method.critic.features(x) - method.critic.features(rebuilt)
    expected = ((x - rebuilt) ** 2).mean() + 0.5 * (features**2).mean()
    torch.testing.assert_close(method.training_loss(x), expected)
    torch.testing.assert_close(method.reconstruct_slices(x), rebuilt)


def test_stages_and_parameter_partition():
    method = make(gan_epochs=3)
    assert [method.in_gan_stage(epoch) for epoch in range(5)] == [True, True, True, False, False]
    groups = [set(map(id, module.parameters())) for module in method.stage_modules()]
    assert sum(len(group) for group in groups) == len(set().union(*groups)) == len(list(method.parameters()))


def test_volume_reconstruction():
    method = make()
    volume = np.random.default_rng(0).random((SIZE, SIZE, 9)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == (SIZE, SIZE, 9) and 0 <= reconstruction.min() and reconstruction.max() <= 1
    np.testing.assert_allclose(method.anomaly_map(volume), np.abs(volume - reconstruction), atol=1e-6)


class _Recorder(L.Callback):
    """Weights of each part and the validation loss at the end of every epoch."""

    def __init__(self):
        self.states, self.val_losses = [], []

    def on_train_epoch_end(self, trainer, module):
        self.states.append([{k: v.clone() for k, v in part.state_dict().items()}
                            for part in module.method.stage_modules()])

    def on_validation_epoch_end(self, trainer, module):
        self.val_losses.append(float(trainer.callback_metrics["val/loss"]))


def _changed(before, after):
    return any(not torch.equal(before[key], after[key]) for key in before)


def test_adversarial_module_trains_one_stage_at_a_time():
    method = make(gan_epochs=2, n_critic=2)
    data = [{"image": image} for image in images(8)]
    recorder = _Recorder()
    initial = [{k: v.clone() for k, v in part.state_dict().items()} for part in method.stage_modules()]
    trainer = L.Trainer(max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[recorder], accelerator="cpu", num_sanity_val_steps=0)
    module = AdversarialTrainingModule(method, OptimizerSettings("adam", betas=WGAN_BETAS), 1e-3)
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data[:4], batch_size=4))
    states = [initial, *recorder.states]
    for epoch in range(4):
        critic, generator, encoder = (_changed(states[epoch][part], states[epoch + 1][part]) for part in range(3))
        # GAN epochs: 2 critic updates and (n_critic = 2) one generator update each; then only the encoder
        assert (critic, generator, encoder) == ((True, True, False) if epoch < 2 else (False, False, True)), epoch
    assert recorder.val_losses[:2] == [math.inf, math.inf] and all(map(math.isfinite, recorder.val_losses[2:]))
    assert recorder.val_losses[3] < recorder.val_losses[2]  # the encoder learns


def test_errors():
    with pytest.raises(ValueError, match="latent_dim"):
        FAnoGAN(ConvDecoder(LATENT, (4,), image_size=SIZE, groups=2), Critic((4,), image_size=SIZE),
                ConvEncoder(LATENT + 1, (4,), image_size=SIZE, groups=2), gan_epochs=1)
    with pytest.raises(ValueError, match="gan_epochs"):
        make(gan_epochs=0)
    with pytest.raises(ValueError, match="gradient_penalty"):
        make(gradient_penalty=-1.0)
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        make().critic_loss(torch.rand(2, 1, 8, 8))


def test_paper_values_are_the_defaults():
    config = parse_config({"method": "fanogan"})
    assert config.model.latent_dim == 128 and config.train.lr == 1e-4
    assert config.fanogan.n_critic == 5 and config.fanogan.gradient_penalty == 10.0
    assert config.train.max_epochs > config.fanogan.gan_epochs
    with pytest.raises(ConfigError, match="must exceed fanogan.gan_epochs"):
        parse_config({"method": "fanogan", "train": {"max_epochs": 10}, "fanogan": {"gan_epochs": 10}})
