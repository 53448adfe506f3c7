"""Tests of brainuad.noise: Gaussian and simplex noise (method.md §3 "Noise").

The simplex fields are checked against a brute-force sum over every lattice vertex and,
statistically, against the `opensimplex` package (the generator of the authors' code).
"""

import math

import numba
import numpy as np
import pytest
import torch
from opensimplex import OpenSimplex

from brainuad.noise import (
    GaussianNoise,
    NoiseSampler,
    SimplexNoise,
    SimplexOctave,
    make_noise,
    simplex_amplitude_sum,
)

GRADIENT_LENGTH = math.sqrt(29.0) / 47.0


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def opensimplex_fields(
    count: int, size: int, feature_size: float, octaves: int = 1, persistence: float = 0.8
) -> np.ndarray:
    """(count, size, size) octave sums from opensimplex, one seed per field (authors' scheme).

    numba runs single-threaded here: its parallel loops slow down badly on a busy machine.
    """
    pixels = np.arange(size, dtype=np.float64)
    fields = np.zeros((count, size, size))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for index in range(count):
            generator = OpenSimplex(seed=1000 + index)
            for k in range(octaves):
                scale = feature_size / 2**k
                octave = generator.noise2array(pixels / scale, pixels / scale)
                fields[index] += persistence**k * octave
    finally:
        numba.set_num_threads(threads)
    return fields


def radial_power(fields: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of (count, S, S) fields, normalised to sum 1."""
    _, size, _ = fields.shape
    centred = fields - fields.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(centred)) ** 2).mean(axis=0)
    freq = np.fft.fftfreq(size)
    radius = np.hypot(freq[:, None], freq[None, :]) * size
    bins = np.minimum(np.rint(radius).astype(int), size // 2).ravel()
    spectrum = np.bincount(bins, power.ravel()) / np.bincount(bins)
    return spectrum / spectrum.sum()


def lag_correlation(fields: np.ndarray, lag: int) -> float:
    """Correlation of pixel values ``lag`` columns apart, pooled over (count, H, W) fields."""
    return float(np.corrcoef(fields[:, :, :-lag].ravel(), fields[:, :, lag:].ravel())[0, 1])


def unskew(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plane position of lattice point (i, j): sqrt(3) * ((i, j) - G (i + j) (1, 1))."""
    g = (3.0 - math.sqrt(3.0)) / 6.0
    return math.sqrt(3.0) * (i - g * (i + j)), math.sqrt(3.0) * (j - g * (i + j))


def octave_bound(steps: int = 301) -> float:
    """Bound of one octave: max over a lattice cell of sum_v |d_v| max(2 - |d_v|^2, 0)^4 times
    the gradient length (all gradients pointing along their d_v), by a dense grid search."""
    fx, fy = np.meshgrid(np.linspace(0, 1, steps), np.linspace(0, 1, steps))
    px, py = unskew(fx, fy)
    total = np.zeros_like(fx)
    for i in range(-2, 4):
        for j in range(-2, 4):
            vx, vy = unskew(np.float64(i), np.float64(j))
            dist_sq = (px - vx) ** 2 + (py - vy) ** 2
            total += np.sqrt(dist_sq) * np.clip(2.0 - dist_sq, 0.0, None) ** 4
    return float(total.max()) * GRADIENT_LENGTH


def brute_force_octave(
    octave: SimplexOctave, offset: np.ndarray, shifts: np.ndarray, gradients: np.ndarray
) -> np.ndarray:
    """Sum of max(2 - |d|^2, 0)^4 (g . d) over every vertex, also a ring outside the table.

    Pixel (y, x) of field b sits at plane point
    ((x + shifts[b, 1]), (y + shifts[b, 0])) / feature_size + unskew(offset); vertices outside
    the table get random gradients, which must not matter.
    """
    rng = np.random.default_rng(0)
    count, size_x, size_y, _ = gradients.shape
    ys, xs = np.mgrid[0 : octave.height, 0 : octave.width].astype(np.float64)
    shift_x, shift_y = unskew(offset[0], offset[1])
    out = np.zeros((count, octave.height, octave.width))
    for b in range(count):
        qx = (xs + shifts[b, 1]) / octave.feature_size + shift_x
        qy = (ys + shifts[b, 0]) / octave.feature_size + shift_y
        for i in range(-4, size_x + 2):
            for j in range(-4, size_y + 2):
                inside = 0 <= i + 1 < size_x and 0 <= j + 1 < size_y
                g = gradients[b, i + 1, j + 1] if inside else rng.normal(size=2)
                px, py = unskew(np.float64(i), np.float64(j))
                dx, dy = qx - px, qy - py
                falloff = np.clip(2.0 - dx * dx - dy * dy, 0.0, None) ** 4
                out[b] += falloff * (g[0] * dx + g[1] * dy)
    return out


def test_lattice_is_equilateral_with_edge_sqrt2() -> None:
    for i, j in [(1, 0), (0, 1), (1, 1)]:
        x, y = unskew(np.float64(i), np.float64(j))
        assert math.hypot(x, y) == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize(
    ("height", "width", "feature_size"), [(13, 17, 3.0), (9, 9, 1.3), (20, 7, 0.6)]
)
def test_octave_equals_brute_force_sum_over_all_vertices(
    height: int, width: int, feature_size: float
) -> None:
    octave = SimplexOctave(height, width, feature_size)
    generator = seeded(3)
    random_offset = torch.rand(2, generator=generator, dtype=torch.float64)
    for offset in (torch.zeros(2, dtype=torch.float64), random_offset):
        shifts = torch.randint(octave.shift_range, (3, 2), generator=generator)
        shifts[0] = 0
        shifts[1] = octave.shift_range - 1
        size = (3, *octave.table_size, 2)
        gradients = torch.randn(size, generator=generator, dtype=torch.float64)
        ours = octave.evaluate(offset, shifts, gradients)
        reference = brute_force_octave(octave, offset.numpy(), shifts.numpy(), gradients.numpy())
        assert ours.shape == (3, height, width)
        np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=1e-10)


def test_fields_evaluated_in_blocks_equal_fields_evaluated_alone() -> None:
    # 20 fields of 96 x 96 exceed one CPU block of pixels: they are evaluated in two blocks.
    octave = SimplexOctave(96, 96, 8.0)
    generator = seeded(12)
    offset = torch.rand(2, generator=generator)
    shifts = torch.randint(octave.shift_range, (20, 2), generator=generator)
    gradients = torch.randn((20, *octave.table_size, 2), generator=generator)
    together = octave.evaluate(offset, shifts, gradients)
    alone = torch.cat(
        [octave.evaluate(offset, shifts[b : b + 1], gradients[b : b + 1]) for b in range(20)]
    )
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_window_shifts_cover_a_lattice_cell() -> None:
    # Every alignment of the lattice (v mod 1 at the window's first pixel) is reached by some
    # shift: the shifted origins, reduced to one cell, leave no gap wider than a pixel step.
    octave = SimplexOctave(8, 8, 5.0)
    shifts = np.arange(octave.shift_range, dtype=np.float64)
    ys, xs = np.meshgrid(shifts, shifts, indexing="ij")
    skew = (math.sqrt(3.0) - 1.0) / 2.0
    scale = 1.0 / (math.sqrt(3.0) * octave.feature_size)
    vx = scale * ((1.0 + skew) * xs + skew * ys)
    vy = scale * (skew * xs + (1.0 + skew) * ys)
    cells = np.stack([vx.ravel() % 1.0, vy.ravel() % 1.0], axis=1)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 21), np.linspace(0, 1, 21)), -1).reshape(-1, 2)
    wrapped = np.abs(grid[:, None, :] - cells[None, :, :])
    distance = np.hypot(*np.minimum(wrapped, 1.0 - wrapped).transpose(2, 0, 1)).min(axis=1)
    assert distance.max() < 1.0 / octave.feature_size


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("sampler", [GaussianNoise(), SimplexNoise()], ids=repr)
def test_shape_dtype_device(sampler: NoiseSampler, dtype: torch.dtype) -> None:
    noise = sampler.sample((3, 2, 12, 20), device="cpu", dtype=dtype, generator=seeded(0))
    assert noise.shape == (3, 2, 12, 20)
    assert noise.dtype == dtype
    assert noise.device.type == "cpu"
    assert torch.isfinite(noise).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sampler", [GaussianNoise(), SimplexNoise()], ids=repr)
def test_cuda(sampler: NoiseSampler) -> None:
    generator = torch.Generator(device="cuda").manual_seed(0)
    noise = sampler.sample((16, 1, 96, 96), device="cuda", generator=generator)
    assert noise.device.type == "cuda"
    assert noise.shape == (16, 1, 96, 96)
    again = sampler.sample(
        (16, 1, 96, 96), device="cuda", generator=torch.Generator(device="cuda").manual_seed(0)
    )
    assert torch.equal(noise, again)
    expected_std = 1.0 if isinstance(sampler, GaussianNoise) else 0.58
    assert noise.std().item() == pytest.approx(expected_std, rel=0.15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_octave_matches_cpu() -> None:
    octave = SimplexOctave(40, 56, 6.0)
    generator = seeded(13)
    offset = torch.rand(2, generator=generator, dtype=torch.float64)
    shifts = torch.randint(octave.shift_range, (5, 2), generator=generator)
    gradients = torch.randn((5, *octave.table_size, 2), generator=generator, dtype=torch.float64)
    on_cpu = octave.evaluate(offset, shifts, gradients)
    on_cuda = octave.evaluate(offset.cuda(), shifts.cuda(), gradients.cuda())
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "sampler", [GaussianNoise(), SimplexNoise(), SimplexNoise(per_sample=False)], ids=repr
)
def test_seeded_generator_is_reproducible_and_calls_are_fresh(sampler: NoiseSampler) -> None:
    shape = (4, 1, 24, 24)
    first = sampler.sample(shape, device="cpu", generator=seeded(7))
    assert torch.equal(first, sampler.sample(shape, device="cpu", generator=seeded(7)))
    assert not torch.allclose(first, sampler.sample(shape, device="cpu", generator=seeded(8)))
    generator = seeded(7)
    call_one = sampler.sample(shape, device="cpu", generator=generator)
    call_two = sampler.sample(shape, device="cpu", generator=generator)
    assert not torch.allclose(call_one, call_two)


def test_cpu_fields_are_drawn_on_one_thread_and_the_count_is_restored(monkeypatch) -> None:
    seen = []
    octave_sample = SimplexOctave.sample

    def recording(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return octave_sample(self, *args, **kwargs)

    monkeypatch.setattr(SimplexOctave, "sample", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fields = SimplexNoise().sample((3, 1, 32, 32), device="cpu", generator=seeded(3))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1] * 6
    assert torch.equal(fields, SimplexNoise().sample((3, 1, 32, 32), device="cpu", generator=seeded(3)))


def test_every_field_has_its_own_lattice_alignment() -> None:
    # Gradient noise is 0 at the lattice vertices: with one alignment shared by all fields the
    # per-pixel std across fields would drop to about 0 there (and peak between vertices).
    fields = SimplexNoise(octaves=1, feature_size=4.0).sample(
        (600, 1, 12, 12), device="cpu", generator=seeded(11)
    )
    per_pixel_std = fields[:, 0].std(dim=0)
    assert per_pixel_std.min() > 0.3
    assert per_pixel_std.max() < 0.45


def test_per_sample_fields_are_independent() -> None:
    noise = SimplexNoise(feature_size=8.0).sample((6, 2, 32, 32), device="cpu", generator=seeded(1))
    flat = noise.reshape(12, -1)
    correlation = torch.corrcoef(flat)
    off_diagonal = correlation[~torch.eye(12, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.5
    assert off_diagonal.abs().mean() < 0.15


def test_shared_field_is_identical_over_batch_and_channels() -> None:
    noise = SimplexNoise(per_sample=False).sample((5, 3, 16, 24), device="cpu", generator=seeded(1))
    assert torch.equal(noise, noise[:1, :1].expand_as(noise))
    assert noise.std() > 0.05
    noise[0, 0, 0, 0] = 100.0  # the result owns its memory: no aliasing between samples
    assert noise[1, 0, 0, 0] != 100.0


def test_normalise_gives_zero_mean_unit_std_per_field() -> None:
    noise = SimplexNoise(normalise=True).sample((4, 2, 32, 32), device="cpu", generator=seeded(2))
    std, mean = torch.std_mean(noise, dim=(2, 3), correction=0)
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-4, rtol=0)


def test_gaussian_statistics() -> None:
    noise = GaussianNoise().sample((8, 2, 64, 64), device="cpu", generator=seeded(0))
    assert abs(noise.mean().item()) < 0.02
    assert noise.std().item() == pytest.approx(1.0, abs=0.02)
    assert abs(lag_correlation(noise.reshape(-1, 64, 64).numpy(), 1)) < 0.03


def test_paper_octave_sum_matches_opensimplex_statistics() -> None:
    reference = opensimplex_fields(40, 96, 64.0, octaves=6)
    ours = SimplexNoise().sample((40, 1, 96, 96), device="cpu", generator=seeded(5))
    ours_np = ours[:, 0].double().numpy()
    bound = simplex_amplitude_sum(6, 0.8)
    assert bound == pytest.approx((1 - 0.8**6) / 0.2)
    assert abs(ours_np.mean()) < 0.1
    assert abs(reference.mean()) < 0.1
    assert ours_np.std() == pytest.approx(reference.std(), rel=0.15)
    assert ours_np.std() == pytest.approx(0.58, rel=0.15)  # method.md: authors' std about 0.58
    assert np.abs(ours_np).max() <= bound
    assert np.abs(reference).max() <= bound


@pytest.mark.parametrize("feature_size", [4.0, 8.0])
def test_single_octave_spectrum_matches_opensimplex(feature_size: float) -> None:
    reference = opensimplex_fields(48, 64, feature_size)
    ours = SimplexNoise(octaves=1, feature_size=feature_size).sample(
        (48, 1, 64, 64), device="cpu", generator=seeded(6)
    )
    ours_np = ours[:, 0].double().numpy()
    assert ours_np.std() == pytest.approx(reference.std(), rel=0.05)
    spectrum_ours, spectrum_ref = radial_power(ours_np), radial_power(reference)
    radius = np.arange(spectrum_ref.size)
    centroid_ours = (radius * spectrum_ours).sum()
    centroid_ref = (radius * spectrum_ref).sum()
    assert centroid_ours == pytest.approx(centroid_ref, rel=0.05)
    strong = spectrum_ref > 0.05
    np.testing.assert_allclose(spectrum_ours[strong], spectrum_ref[strong], rtol=0.2)
    for lag in (1, 2, 4):
        assert lag_correlation(ours_np, lag) == pytest.approx(
            lag_correlation(reference, lag), abs=0.05
        )


def test_single_octave_is_smooth_not_white() -> None:
    ours = SimplexNoise(octaves=1, feature_size=8.0).sample(
        (8, 1, 48, 48), device="cpu", generator=seeded(4)
    )
    assert lag_correlation(ours[:, 0].numpy(), 1) > 0.9


def test_single_octave_stays_within_its_bound() -> None:
    bound = octave_bound()
    assert bound == pytest.approx(0.887, abs=0.002)  # the [-0.89, 0.89] of the docstrings
    # Small feature size: many lattice cells per field, so the extremes are approached.
    ours = SimplexNoise(octaves=1, feature_size=0.7).sample(
        (64, 1, 64, 64), device="cpu", dtype=torch.float64, generator=seeded(9)
    )
    assert ours.abs().max().item() <= bound
    assert ours.abs().max().item() > 0.8 * bound
    assert ours.std().item() == pytest.approx(0.368, rel=0.03)


def test_make_noise() -> None:
    assert isinstance(make_noise("gaussian"), GaussianNoise)
    simplex = make_noise("simplex", octaves=3, persistence=0.5, per_sample=False)
    assert isinstance(simplex, SimplexNoise)
    assert (simplex.octaves, simplex.persistence, simplex.per_sample) == (3, 0.5, False)
    assert (simplex.feature_size, simplex.normalise) == (64.0, False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"octaves": 0}, "octaves"),
        ({"octaves": 2.0}, "octaves"),
        ({"octaves": True}, "octaves"),
        ({"persistence": 0.0}, "persistence"),
        ({"persistence": -0.8}, "persistence"),
        ({"persistence": math.nan}, "persistence"),
        ({"feature_size": 0.0}, "feature_size"),
        ({"feature_size": -64.0}, "feature_size"),
        ({"feature_size": math.inf}, "feature_size"),
        ({"per_sample": "yes"}, "per_sample"),
        ({"normalise": 1}, "normalise"),
    ],
)
def test_simplex_constructor_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimplexNoise(**kwargs)


@pytest.mark.parametrize("sampler", [GaussianNoise(), SimplexNoise()], ids=repr)
@pytest.mark.parametrize("shape", [(4, 4, 4), (1, 1, 0, 4), (1, 1, 4.0, 4), (1, -1, 4, 4), "abcd"])
def test_sample_rejects_bad_shape(sampler: NoiseSampler, shape: object) -> None:
    with pytest.raises(ValueError, match="shape"):
        sampler.sample(shape, device="cpu")  # type: ignore[arg-type]


@pytest.mark.parametrize("sampler", [GaussianNoise(), SimplexNoise()], ids=repr)
def test_sample_rejects_integer_dtype(sampler: NoiseSampler) -> None:
    with pytest.raises(ValueError, match="dtype"):
        sampler.sample((1, 1, 4, 4), device="cpu", dtype=torch.int64)


def test_normalise_rejects_single_pixel_fields() -> None:
    with pytest.raises(ValueError, match="normalise"):
        SimplexNoise(normalise=True).sample((2, 1, 1, 1), device="cpu")


def test_make_noise_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind"):
        make_noise("perlin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="octaves"):
        make_noise("gaussian", octaves=6)


def test_simplex_octave_rejects_bad_arguments() -> None:
    octave = SimplexOctave(8, 8, 2.0)
    gradients = torch.zeros((2, *octave.table_size, 2))
    offset = torch.zeros(2)
    shifts = torch.zeros((2, 2), dtype=torch.long)
    size_x, size_y = octave.table_size
    with pytest.raises(ValueError, match="gradients"):
        octave.evaluate(offset, shifts, torch.zeros((2, size_x + 1, size_y, 2)))
    with pytest.raises(ValueError, match="gradients"):
        octave.evaluate(offset, shifts, gradients.long())
    with pytest.raises(ValueError, match="offset"):
        octave.evaluate(torch.zeros((1, 2)), shifts, gradients)
    with pytest.raises(ValueError, match="offset"):
        octave.evaluate(torch.full((2,), 1.0), shifts, gradients)
    with pytest.raises(ValueError, match="shifts"):
        octave.evaluate(offset, torch.zeros((3, 2), dtype=torch.long), gradients)
    with pytest.raises(ValueError, match="shifts"):
        octave.evaluate(offset, shifts.float(), gradients)
    with pytest.raises(ValueError, match="shifts"):
        octave.evaluate(offset, torch.full((2, 2), octave.shift_range), gradients)
    with pytest.raises(ValueError, match="fields"):
        octave.sample(0, device="cpu", dtype=torch.float32, generator=None)
    with pytest.raises(ValueError, match="dtype"):
        octave.sample(2, device="cpu", dtype=torch.float16, generator=None)
    with pytest.raises(ValueError, match="feature_size"):
        SimplexOctave(8, 8, 0.0)
    with pytest.raises(ValueError, match="height"):
        SimplexOctave(0, 8, 2.0)
    with pytest.raises(ValueError, match="width"):
        SimplexOctave(8, 2.5, 2.0)  # type: ignore[arg-type]
