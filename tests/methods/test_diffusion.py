import math

import pytest
import torch

from brainuad.image_range import to_image_range, to_model_range
from brainuad.methods.diffusion import DiffusionSchedule, cosine_betas


def test_cosine_schedule_matches_closed_form():
    T, s = 1000, 0.008
    schedule = DiffusionSchedule(T)

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (1, 10, 250, 500, 750, 900):
        assert schedule.alpha_bar(torch.tensor([t])).item() == pytest.approx(f(t) / f(0), rel=1e-5)
    # beta is clipped at 0.999 near t = T only
    betas = cosine_betas(T)
    assert betas.max().item() == pytest.approx(0.999)
    assert (betas[:-10] < 0.999).all()
    assert torch.all(schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1])


def test_q_sample_formula():
    schedule = DiffusionSchedule(1000)
    x0 = torch.randn(3, 1, 4, 4)
    noise = torch.randn(3, 1, 4, 4)
    t = torch.tensor([1, 500, 1000])
    x_t = schedule.q_sample(x0, t, noise)
    for i in range(3):
        a = schedule.alphas_cumprod[t[i] - 1]
        torch.testing.assert_close(x_t[i], a.sqrt() * x0[i] + (1 - a).sqrt() * noise[i])


def test_timesteps_are_uniform_in_one_to_T():
    schedule = DiffusionSchedule(10)
    t = schedule.sample_timesteps(5000, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert t.min() == 1 and t.max() == 10
    counts = torch.bincount(t)[1:].float()
    assert counts.std() / counts.mean() < 0.1


def test_ranges():
    x = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(to_model_range(x), torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(to_image_range(torch.tensor([-2.0, 0.0, 3.0])), torch.tensor([0.0, 0.5, 1.0]))


@pytest.mark.parametrize("level", [0, 1001, 2.5])
def test_bad_levels(level):
    with pytest.raises(ValueError, match="noise level"):
        DiffusionSchedule(1000).check_level(level)
