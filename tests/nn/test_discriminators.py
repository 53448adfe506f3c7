import pytest
import torch

from brainuad.nn.discriminators import Critic


def test_critic_scores_and_features():
    critic = Critic((4, 8), image_size=16)
    x = torch.rand(3, 1, 16, 16)
    assert critic(x).shape == (3,)
    assert critic.features(x).shape == (3, 8 * 4 * 4)


def test_critic_treats_samples_independently():
    """Per-sample normalisation: a sample's score does not depend on the rest of the batch (the
    gradient penalty needs this; BatchNorm would break it)."""
    torch.manual_seed(0)
    critic = Critic((4, 8), image_size=16)
    x = torch.rand(4, 1, 16, 16)
    torch.testing.assert_close(critic(x)[:1], critic(x[:1]))
    assert all(isinstance(module, torch.nn.GroupNorm) and module.num_groups == 1
               for module in critic.modules() if "Norm" in type(module).__name__)


def test_critic_errors():
    with pytest.raises(ValueError, match="image_size"):
        Critic((4, 8), image_size=18)
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        Critic((4,), image_size=16)(torch.rand(1, 2, 16, 16))
