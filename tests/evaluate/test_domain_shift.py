"""The domain-shift study's pieces: the contrast change, the cropped conditioning image, its settings,
and a conditioned model given another conditioning image than its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainuad.evaluate.domain_shift import DomainShiftSettings, shift_contrast
from brainuad.evaluate.scoring import ResidualScorer, crop_width


def _volume(image):
    from brainuad.data.grid import GridVolume

    return GridVolume(image=image.astype(np.float32), mask=np.ones(image.shape, bool), seg=None, name="v",
                      transform=None)  # type: ignore[arg-type]


def test_shift_contrast_is_the_power_of_the_clipped_image():
    image = np.array([-0.5, 0.0, 0.25, 0.5, 1.0, 1.5], dtype=np.float32).reshape(6, 1, 1)
    shifted = shift_contrast(_volume(image), 2.0)
    np.testing.assert_allclose(shifted.image.ravel(), [0.0, 0.0, 0.0625, 0.25, 1.0, 1.0])
    np.testing.assert_allclose(shift_contrast(_volume(image), 1.0).image.ravel(), np.clip(image.ravel(), 0, 1))
    assert shifted.image.dtype == np.float32
    for bad in (0, -1.0, True, "2"):
        with pytest.raises(ValueError, match="contrast level"):
            shift_contrast(_volume(image), bad)


def test_crop_width_keeps_the_first_fraction_of_the_x_axis():
    image = np.ones((10, 3, 2), dtype=np.float32)
    cropped = crop_width(image, 0.5)
    assert cropped[:5].min() == 1.0 and cropped[5:].max() == 0.0
    np.testing.assert_array_equal(crop_width(image, 1.0), image)
    assert image.min() == 1.0  # the input is left as it was
    with pytest.raises(ValueError):
        crop_width(image, 0.0)
    with pytest.raises(ValueError):
        crop_width(image, 1.5)


@pytest.mark.parametrize(("options", "match"), [
    ({"contrasts": ()}, "at least one"), ({"contrasts": (0.0,)}, "contrasts"), ({"t_tests": (0,)}, "t_tests"),
    ({"t_tests": ()}, "t_tests"), ({"widths": (0.0,)}, "width"), ({"widths": ()}, "widths"),
    ({"histogram_contrasts": (-1.0,)}, "histogram_contrasts")])
def test_settings_are_checked(options, match):
    with pytest.raises(ValueError, match=match):
        DomainShiftSettings(**options)


def test_default_settings_are_the_papers():
    settings = DomainShiftSettings()
    assert settings.contrasts == (0.3, 0.7, 1.0, 1.5, 2.0)
    assert settings.t_tests == (500, 1000) and settings.widths == (1.0, 0.5)
    assert settings.histogram_contrasts == (0.5, 1.0, 2.0)


class _Recorder:
    """A conditioned method that records what it was given."""

    conditioned = True

    def __init__(self):
        self.calls = []

    def reconstruct(self, volume, *, t_test=None, ensemble=None, condition=None):
        self.calls.append((t_test, None if condition is None else np.array(condition)))
        return np.zeros_like(volume.image)

    def levels(self, t_test=None):
        return (500,) if t_test is None else (t_test,)


def test_residual_scorer_hands_the_cropped_input_as_condition():
    method = _Recorder()
    image = np.full((8, 4, 2), 0.5, dtype=np.float32)
    ResidualScorer(method, t_test=500, conditioning_width=0.25).score(_volume(image))
    t_test, condition = method.calls[0]
    assert t_test == 500
    assert condition[:2].min() == 0.5 and condition[2:].max() == 0.0
    ResidualScorer(method).score(_volume(image))
    assert method.calls[1] == (None, None)


def test_cropped_conditioning_needs_a_conditioned_method():
    class Unconditioned:
        def reconstruct(self, volume):
            return volume.image

    with pytest.raises(ValueError, match="conditioned diffusion method"):
        ResidualScorer(Unconditioned(), conditioning_width=0.5)


def test_cddpm_reconstruction_follows_its_conditioning_image():
    """The same input with another conditioning image gives another reconstruction; the input
    itself as condition gives the default one."""
    from brainuad.config import packaged_config
    from brainuad.methods.registry import build_detector, load_config

    torch.manual_seed(0)
    config = load_config(packaged_config("tiny/cddpm"), [
        "model.base_channels=8", "model.groups=4", "model.attention_head_channels=8", "model.channel_mult=[1,2,2]",
        "encoder.dim=8", "diffusion.ensemble=null", "diffusion.inference_batch_size=4"])
    method = build_detector(config)
    with torch.no_grad():  # the UNet's zero-initialised output layers would make every output the same
        for parameter in method.parameters():
            if not parameter.any():
                parameter.normal_(0.0, 0.05)
    method.eval()
    rng = np.random.default_rng(0)
    image = rng.random((96, 96, 4)).astype(np.float32)
    volume = _volume(image)
    plain = method.reconstruct(volume, t_test=500)
    same = method.reconstruct(volume, t_test=500, condition=image)
    other = method.reconstruct(volume, t_test=500, condition=crop_width(image, 0.5))
    np.testing.assert_allclose(plain, same, atol=1e-6)
    assert np.abs(plain - other).max() > 1e-4
