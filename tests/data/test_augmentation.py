"""The batched augmentation against torchio: equal transforms given the same parameters, and the
same distributions of what the random draws do (two-sample Kolmogorov-Smirnov tests)."""

import numpy as np
import pytest
import torch
import torchio as tio
from scipy import ndimage, stats

from brainuad.data import augmentation as augmentation_module
from brainuad.data.augmentation import BIAS_TERMS, SliceAugmentation

HEIGHT, WIDTH = 40, 34  # not square: an axis swapped shows


def smooth_slice(seed: int = 0) -> torch.Tensor:
    """(1, H, W) float32 in [0, 1], a blob with texture, zero at the borders as a brain slice."""
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.random((HEIGHT, WIDTH)), 2.0)
    h, w = np.meshgrid(np.linspace(-1, 1, HEIGHT), np.linspace(-1, 1, WIDTH), indexing="ij")
    blob = np.clip(1.2 - (h / 0.8) ** 2 - (w / 0.7) ** 2, 0, 1)
    image = blob * (texture - texture.min()) / np.ptp(texture)
    return torch.from_numpy((image / image.max()).astype(np.float32))[None]


def torchio_coefficients(coefficients: list[float]) -> list[float]:
    """torchio's 20 order-3 coefficients: ours where the third axis's exponent is 0, 0.3 elsewhere
    (those terms vanish on a slice)."""
    ours = iter(coefficients)
    return [next(ours) if z == 0 else 0.3
            for x in range(4) for y in range(4 - x) for z in range(4 - x - y)]


def torchio_chain(image: torch.Tensor, draw, row: int, only: str | None) -> torch.Tensor:
    """torchio's deterministic transforms of one (1, H, W) slice with the parameters of ``draw``'s row."""
    transforms = {
        "blur": tio.Blur(std=(*draw.blur_std[row].tolist(), 0.0)),
        "bias": tio.BiasField(coefficients=torchio_coefficients(draw.bias_coefficients[row].tolist()), order=3),
        "gamma": tio.Gamma(gamma=float(draw.gamma[row])),
        "ghosting": tio.Ghosting(num_ghosts=int(draw.ghosts[row]), axis=int(draw.ghost_axis[row]),
                                 intensity=float(draw.ghost_intensity[row]), restore=None),
    }
    chain = tio.Compose([transform for name, transform in transforms.items() if only in (None, name)])
    return chain(tio.ScalarImage(tensor=image[..., None].clone())).data[..., 0]


PROBABILITIES = {"blur": (1, 0, 0, 0), "bias": (0, 1, 0, 0), "gamma": (0, 0, 1, 0), "ghosting": (0, 0, 0, 1),
                 None: (1, 1, 1, 1)}


@pytest.mark.parametrize("only", ["blur", "bias", "gamma", "ghosting", None])
def test_apply_batch_equals_torchio_with_the_same_parameters(only):
    augmentation = SliceAugmentation(*PROBABILITIES[only])
    images = torch.cat([smooth_slice(seed) for seed in range(8)])[:, None]
    draw = augmentation.sample_batch(8, generator=torch.Generator().manual_seed(3))
    assert set(draw.ghost_axis.tolist()) == {0, 1} or only not in ("ghosting", None)
    out = augmentation.apply_batch(images, draw)
    assert out.shape == images.shape and out.dtype == torch.float32
    for row in range(8):
        torch.testing.assert_close(out[row], torchio_chain(images[row], draw, row, only), atol=2e-5, rtol=1e-5)
    changed = (out - images).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert changed.sum() >= 6, changed  # the transforms did something (a blur of std ~0 may not)


def test_skipped_transforms_leave_the_slice_exactly():
    images = torch.cat([smooth_slice(seed) for seed in range(4)])[:, None]
    assert torch.equal(SliceAugmentation(0, 0, 0, 0).augment_batch(images), images)
    draw = SliceAugmentation(0.5, 0.5, 0.5, 0.5).sample_batch(400, generator=torch.Generator().manual_seed(0))
    applied = torch.stack([draw.blur_std.amax(1) > 0, draw.bias_coefficients.ne(0).any(1), draw.gamma != 1,
                           draw.ghosts > 0], dim=1).float().mean(0)
    assert torch.all((applied - 0.5).abs() < 0.08), applied  # 4 sd of a fraction of 400


def test_batch_draws_are_reproducible_and_checked():
    images = torch.cat([smooth_slice(seed) for seed in range(3)])[:, None]
    augmentation = SliceAugmentation(1, 1, 1, 1)
    first = augmentation.augment_batch(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, augmentation.augment_batch(images, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augmentation.augment_batch(images, torch.Generator().manual_seed(8)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augmentation.augment_batch(images[:, 0])
    with pytest.raises(ValueError, match="3 slices"):
        augmentation.apply_batch(images[:2], augmentation.sample_batch(3))


def summaries(outputs: torch.Tensor, image: torch.Tensor) -> dict[str, np.ndarray]:
    """Per augmented slice: mean absolute change, mean intensity, and the change's spread."""
    change = outputs - image
    return {"mean |change|": change.abs().mean(dim=(-2, -1)).flatten().numpy(),
            "mean": outputs.mean(dim=(-2, -1)).flatten().numpy(),
            "sd of change": change.std(dim=(-2, -1)).flatten().numpy()}


def torchio_outputs(augmentation: SliceAugmentation, image: torch.Tensor, count: int) -> torch.Tensor:
    torch.manual_seed(11)
    return torch.stack([augmentation(image) for _ in range(count)])


def batch_outputs(augmentation: SliceAugmentation, image: torch.Tensor, count: int) -> torch.Tensor:
    return augmentation.augment_batch(image.expand(count, 1, -1, -1).contiguous(), torch.Generator().manual_seed(12))


def smallest_p(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> float:
    return min(stats.ks_2samp(first[name], second[name], method="asymp").pvalue for name in first)


COUNT = 1000


@pytest.mark.parametrize("only", ["blur", "bias", "gamma", "ghosting", None])
def test_batch_draws_follow_torchios_distributions(only):
    """Each transform at the paper's probability (alone, then all four): what it does to a slice is
    distributed as torchio's random transform's (KS p > 0.01 for three summaries)."""
    paper = SliceAugmentation()
    probabilities = [p if flag else 0.0 for p, flag in zip(
        (paper.blur_p, paper.bias_field_p, paper.gamma_p, paper.ghosting_p), PROBABILITIES[only])]
    augmentation = SliceAugmentation(*probabilities)
    image = smooth_slice()
    reference = summaries(torchio_outputs(augmentation, image, COUNT), image)
    assert smallest_p(summaries(batch_outputs(augmentation, image, COUNT), image), reference) > 0.01


@pytest.mark.parametrize(("constant", "value"), [("BLUR_STD_MAX", 2.5), ("LOG_GAMMA_MAX", 0.375),
                                                 ("GHOSTS", (3, 8))])
def test_the_distribution_check_sees_a_wrong_range(monkeypatch, constant, value):
    """The same check rejects a batched draw a quarter off torchio's (blur and gamma ranges 25 % wider,
    3..8 ghosts instead of 4..10)."""
    name = {"BLUR_STD_MAX": "blur", "LOG_GAMMA_MAX": "gamma", "GHOSTS": "ghosting"}[constant]
    augmentation = SliceAugmentation(*PROBABILITIES[name])
    image = smooth_slice()
    reference = summaries(torchio_outputs(augmentation, image, COUNT), image)
    monkeypatch.setattr(augmentation_module, constant, value)
    assert smallest_p(summaries(batch_outputs(augmentation, image, COUNT), image), reference) < 1e-3


def test_bias_terms_are_torchios_order_3():
    assert len(BIAS_TERMS) == 10 and BIAS_TERMS[:4] == ((0, 0), (0, 1), (0, 2), (0, 3))


def test_a_slice_with_other_contrasts_gets_one_draw_for_every_channel():
    """A multi-contrast slice (T2, T1): each channel as torchio transforms the slice alone with the
    same parameters, in a batch and when one slice is augmented (where torchio's RandomGamma alone
    would draw a gamma per channel)."""
    augmentation = SliceAugmentation(1, 1, 1, 1)
    images = torch.stack([torch.cat([smooth_slice(seed), smooth_slice(seed + 10)]) for seed in range(4)])
    draw = augmentation.sample_batch(4, generator=torch.Generator().manual_seed(5))
    out = augmentation.apply_batch(images, draw)
    assert out.shape == (4, 2, HEIGHT, WIDTH)
    for row in range(4):
        for channel in range(2):
            torch.testing.assert_close(out[row, channel:channel + 1],
                                       torchio_chain(images[row, channel:channel + 1], draw, row, None),
                                       atol=2e-5, rtol=1e-5)
    torch.manual_seed(2)
    twin = augmentation(smooth_slice(1).expand(2, -1, -1).clone())  # the same slice twice: one draw for both
    assert twin.shape == (2, HEIGHT, WIDTH) and torch.equal(twin[0], twin[1])
    assert not torch.allclose(twin[0], smooth_slice(1)[0], atol=1e-3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        augmentation(torch.zeros(HEIGHT, WIDTH))
