"""Noise for the diffusion forward process: Gaussian and structured simplex noise.

method.md §3 "Noise" / AnoDDPM (Wyatt et al., CVPR-W 2022): the DDPM-based models replace the
Gaussian eps of x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps by a sum of octaves of 2-D
simplex noise, octave k having amplitude ``persistence ** k`` (0.8) and feature size
``feature_size / 2 ** k`` pixels (64, 32, 16, 8, 4, 2 px for 6 octaves).

Both kinds are small strategy objects sharing one interface,
``sample(shape, *, device, dtype, generator) -> (N, C, H, W)``:

- :class:`GaussianNoise`: i.i.d. standard normal values.
- :class:`SimplexNoise`: octave sums of 2-D simplex noise, drawn fresh on every call, batched
  in torch on the requested device (CPU or CUDA).

Simplex noise of one octave (the lattice, the kernel and the amplitude of OpenSimplex, as in
the `opensimplex` package the tests compare with):

- Coordinates ``u = pixel index / feature_size``; the plane is tiled by equilateral triangles of
  edge sqrt(2) in ``u`` units, found with the usual skew ``v = (u + (u_x + u_y) F) / sqrt(3)``,
  ``F = (sqrt(3) - 1) / 2``: integer points of ``v`` are the lattice vertices, each cell of the
  ``v`` grid is split into two triangles along its diagonal.
- Every vertex carries a gradient ``g`` of fixed length sqrt(29) / 47 (the amplitude of the
  OpenSimplex reference) and contributes ``max(2 - |d|^2, 0) ** 4 * (g . d)`` at displacement
  ``d`` (in ``u`` units). The kernel radius equals the triangle edge, so besides the three
  corners of the containing triangle one more vertex reaches the point: the reflection of the
  corner opposite the nearest edge. These four contributions are summed.
- One octave lies in [-0.89, 0.89] (bound of ``sum |d| max(2 - |d|^2, 0) ** 4`` times the
  gradient length); its standard deviation is about 0.37, and the 6-octave sum at persistence
  0.8 has std about 0.58 (the authors' raw noise) and lies in
  ``[-1, 1] * sum_k persistence ** k``.

Independence and speed (:class:`SimplexOctave`): per call and octave, one random lattice
offset (uniform over a cell) fixes the geometry of a noise plane slightly larger than the
fields: for every plane pixel, the four vertices that reach it and their weights
``max(2 - |d|^2, 0) ** 4 * d``, computed once. Each field then draws its own table of
gradients (direction uniform on the circle, one per lattice vertex) and its own window of the
plane (a random integer shift over at least one lattice cell), so every field has independent
values and its own alignment with the lattice (the zeros of gradient noise at the vertices do
not sit on the same pixels in every field). Per field the work is a few gathers and
multiply-adds per pixel. Nothing is kept between calls; the same seeded generator reproduces
the same fields (per device: CPU and CUDA random streams differ).

On a CPU the fields are computed with one torch thread (:func:`brainuad.cores.torch_threads`):
they are many small operations, and with two threads on a 2-core machine where two other
processes held the cores, batches of 8 and 32 fields took 27 and 96 ms at the median and up to
0.2 and 1.3 s, against 33 and 45 ms, at most 38 and 91 ms, with one (idle: 13 and 30 ms with two
threads, 15 and 36 ms with one).
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch
from torch import Tensor

from brainuad.checks import check_int, check_number
from brainuad.cores import torch_threads

__all__ = [
    "GaussianNoise",
    "NoiseKind",
    "NoiseSampler",
    "SimplexNoise",
    "SimplexOctave",
    "make_noise",
    "simplex_amplitude_sum",
]

NoiseKind: TypeAlias = Literal["gaussian", "simplex"]

_SKEW = (math.sqrt(3.0) - 1.0) / 2.0  # F: plane -> lattice coordinates
_UNSKEW = (3.0 - math.sqrt(3.0)) / 6.0  # G: lattice -> plane coordinates
# Stretches the F/G lattice (triangle edge sqrt(2/3)) to edge sqrt(2), the scale of OpenSimplex.
_LATTICE_SCALE = 1.0 / math.sqrt(3.0)
_KERNEL_RADIUS_SQ = 2.0  # squared kernel radius in plane units = squared triangle edge
_GRADIENT_LENGTH = math.sqrt(29.0) / 47.0  # OpenSimplex amplitude: std 0.37 per octave
# On CPU the fields are evaluated in blocks of about this many pixels, so that the intermediate
# tensors stay in cache (measured 1.2-2x faster than whole batches of 32 fields of 96 x 96).
_CPU_BLOCK_PIXELS = 2**17
# Plane displacement of the lattice steps (1, 0) and (0, 1): (A, B) and (B, A).
_STEP_A = (1.0 - _UNSKEW) / _LATTICE_SCALE
_STEP_B = -_UNSKEW / _LATTICE_SCALE


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    if (
        not isinstance(shape, Sequence)
        or len(shape) != 4
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape)
    ):
        raise ValueError(f"shape must be (N, C, H, W) with positive integers, got {shape!r}")
    n, c, h, w = shape
    return n, c, h, w


def _check_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


class NoiseSampler(ABC):
    """Strategy that draws the noise eps of the forward process (method.md §3 "Noise")."""

    @abstractmethod
    def sample(
        self,
        shape: tuple[int, int, int, int],
        *,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw fresh noise.

        Args:
            shape: (N, C, H, W), positive integers.
            device: device of the result (CPU or CUDA).
            dtype: floating-point dtype of the result.
            generator: random generator on ``device``; None uses torch's default one.

        Returns:
            (N, C, H, W) tensor of noise on ``device``.
        """


class GaussianNoise(NoiseSampler):
    """I.i.d. standard normal noise (the plain DDPM eps): mean 0, std 1, unbounded."""

    def sample(
        self,
        shape: tuple[int, int, int, int],
        *,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw (N, C, H, W) standard normal values (see :meth:`NoiseSampler.sample`)."""
        size = _check_shape(shape)
        _check_dtype(dtype)
        return torch.randn(size, generator=generator, device=device, dtype=dtype)

    def __repr__(self) -> str:
        return "GaussianNoise()"


def simplex_amplitude_sum(octaves: int, persistence: float) -> float:
    """Sum of the octave amplitudes ``sum_{k < octaves} persistence ** k``.

    Raw simplex fields lie in ``[-1, 1]`` times this sum (about 3.69 for 6 octaves at 0.8).
    """
    return sum(persistence**k for k in range(octaves))


class SimplexNoise(NoiseSampler):
    """Octave sum of 2-D simplex noise (AnoDDPM; method.md §3 "Noise"), see the module docstring.

    ``field = sum_{k < octaves} persistence ** k * simplex(pixel / (feature_size / 2 ** k))``.

    Args:
        octaves: number of octaves, >= 1 (6 in the paper).
        persistence: amplitude ratio of consecutive octaves, > 0 (0.8 in the paper).
        feature_size: feature size of octave 0 in pixels, > 0 (64 in the paper); it halves
            with each octave.
        per_sample: True (default): every sample and channel gets its own independent field.
            False ("shared", the authors' code): one field for the whole batch.
        normalise: False (default, as the authors): raw fields, std about 0.58 for the paper's
            settings, values in ``[-1, 1] * simplex_amplitude_sum(octaves, persistence)``.
            True: each (H, W) field is rescaled to zero mean and unit variance.
    """

    def __init__(
        self,
        octaves: int = 6,
        persistence: float = 0.8,
        feature_size: float = 64.0,
        per_sample: bool = True,
        normalise: bool = False,
    ) -> None:
        check_int("octaves", octaves)
        check_number("persistence", persistence, 0, open_low=True)
        check_number("feature_size", feature_size, 0, open_low=True)
        if not isinstance(per_sample, bool):
            raise ValueError(f"per_sample must be a bool, got {per_sample!r}")
        if not isinstance(normalise, bool):
            raise ValueError(f"normalise must be a bool, got {normalise!r}")
        self.octaves = octaves
        self.persistence = float(persistence)
        self.feature_size = float(feature_size)
        self.per_sample = per_sample
        self.normalise = normalise

    @torch.no_grad()
    def sample(
        self,
        shape: tuple[int, int, int, int],
        *,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw fresh simplex fields.

        Args:
            shape: (N, C, H, W), positive integers; ``normalise`` needs H * W >= 2.
            device: device of the result (CPU or CUDA); all work happens there.
            dtype: floating-point dtype of the result (computed in at least float32).
            generator: random generator on ``device``; None uses torch's default one.

        Returns:
            (N, C, H, W) tensor on ``device``: independent fields per (sample, channel), or one
            field repeated over N and C when ``per_sample`` is False. Raw values lie in
            ``[-1, 1] * simplex_amplitude_sum(octaves, persistence)``.
        """
        n, c, h, w = _check_shape(shape)
        _check_dtype(dtype)
        if self.normalise and h * w < 2:
            raise ValueError(f"normalise needs at least 2 pixels per field, got shape {shape!r}")
        work_dtype = torch.promote_types(dtype, torch.float32)
        fields = n * c if self.per_sample else 1
        total = torch.zeros((fields, h, w), device=device, dtype=work_dtype)
        with torch_threads(1) if total.device.type == "cpu" else nullcontext():
            for k in range(self.octaves):
                octave = SimplexOctave(h, w, self.feature_size / 2**k)
                fields_k = octave.sample(fields, device=device, dtype=work_dtype, generator=generator)
                total.add_(fields_k, alpha=self.persistence**k)
        if self.normalise:
            std, mean = torch.std_mean(total, dim=(1, 2), keepdim=True, correction=0)
            total = (total - mean) / std.clamp_min(torch.finfo(work_dtype).tiny)
        if self.per_sample:
            return total.view(n, c, h, w).to(dtype)
        return total.view(1, 1, h, w).expand(n, c, h, w).to(dtype, copy=True)

    def __repr__(self) -> str:
        return (
            f"SimplexNoise(octaves={self.octaves}, persistence={self.persistence}, "
            f"feature_size={self.feature_size}, per_sample={self.per_sample}, "
            f"normalise={self.normalise})"
        )


@dataclass(frozen=True)
class SimplexOctave:
    """One octave of 2-D simplex noise on (H, W) fields: its lattice and its evaluation.

    Sampling is split from evaluation (as torchio's random/deterministic transforms):
    :meth:`sample` draws the random parameters and :meth:`evaluate` turns them into fields.

    The fields are windows of a noise plane of (H + P - 1, W + P - 1) pixels, P =
    :attr:`shift_range`. Pixel (row y, column x) of the plane sits at
    ``u = (x, y) / feature_size`` and at lattice point ``v = S(u) + offset``, where ``S`` is the
    skew of the module docstring and ``offset`` (in [0, 1)^2) aligns the lattice with the
    pixels. Field b is the (H, W) window of the plane at row ``shifts[b, 0]`` and column
    ``shifts[b, 1]``, evaluated with its own gradient table ``gradients[b]``.

    Args:
        height: H in pixels, >= 1.
        width: W in pixels, >= 1.
        feature_size: pixels per plane unit, finite and > 0.
    """

    height: int
    width: int
    feature_size: float

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            check_int(name, value)
        check_number("feature_size", self.feature_size, 0, open_low=True)

    @property
    def shift_range(self) -> int:
        """P, the number of window shifts per axis: ``ceil(sqrt(3) * feature_size)``.

        A P x P square of pixels holds a whole lattice cell (the cell spanned by the steps
        (1, 0) and (0, 1) fits in a box of sqrt(3) plane units), so the window shifts give
        the fields every alignment relative to the lattice.
        """
        return math.ceil(math.sqrt(3.0) * self.feature_size)

    @property
    def plane_size(self) -> tuple[int, int]:
        """(H + P - 1, W + P - 1): the plane that holds every window."""
        return self.height + self.shift_range - 1, self.width + self.shift_range - 1

    @property
    def table_size(self) -> tuple[int, int]:
        """(S_x, S_y): vertices per lattice axis in the gradient table of one field.

        Vertex (i, j) (integer point of ``v``) is entry (i + 1, j + 1): the table spans from -1
        to two past the last cell of the plane on each axis, which holds every vertex that
        reaches the plane for any offset in [0, 1)^2.
        """
        plane_h, plane_w = self.plane_size
        stretch = _LATTICE_SCALE / self.feature_size
        span_x = stretch * ((1.0 + _SKEW) * (plane_w - 1) + _SKEW * (plane_h - 1))
        span_y = stretch * (_SKEW * (plane_w - 1) + (1.0 + _SKEW) * (plane_h - 1))
        return math.floor(span_x) + 5, math.floor(span_y) + 5

    def sample(
        self,
        fields: int,
        *,
        device: torch.device | str,
        dtype: torch.dtype,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Draw ``fields`` independent fields of this octave.

        Draws, in this order: ``offset`` uniform in [0, 1)^2, the window shifts of every field
        uniform in {0 .. P - 1}^2 and one gradient per table entry and field, of length
        sqrt(29) / 47 and direction uniform on the circle.

        Args:
            fields: number of fields B, >= 1.
            device: device of the draws and of the result.
            dtype: float32 or float64.
            generator: random generator on ``device``; None uses torch's default one.

        Returns:
            (B, H, W) tensor, values in [-0.89, 0.89], std about 0.37.
        """
        check_int("fields", fields)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        offset = torch.rand(2, generator=generator, device=device, dtype=dtype)
        shifts = torch.randint(self.shift_range, (fields, 2), generator=generator, device=device)
        angle = torch.rand(
            (fields, *self.table_size), generator=generator, device=device, dtype=dtype
        ).mul_(2.0 * math.pi)
        gradients = torch.complex(angle.cos(), angle.sin()).mul_(_GRADIENT_LENGTH)
        return self._evaluate(offset, shifts, torch.view_as_real(gradients))

    def evaluate(self, offset: Tensor, shifts: Tensor, gradients: Tensor) -> Tensor:
        """Fields of this octave for given random parameters (see the class docstring).

        Args:
            offset: (2,) lattice offset, each coordinate in [0, 1).
            shifts: (B, 2) integer window shifts (row, column), each in [0, P).
            gradients: (B, S_x, S_y, 2) float32 or float64 gradient of each lattice vertex,
                (S_x, S_y) = :attr:`table_size`.

        Returns:
            (B, H, W) tensor, dtype and device of ``gradients``. With gradients of length
            sqrt(29) / 47 the values lie in [-0.89, 0.89].
        """
        size = self.table_size
        if gradients.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"gradients must be float32 or float64, got {gradients.dtype!r}")
        if gradients.ndim != 4 or gradients.shape[1:] != (*size, 2):
            raise ValueError(
                f"gradients must have shape (B, {size[0]}, {size[1]}, 2), "
                f"got {tuple(gradients.shape)!r}"
            )
        if offset.shape != (2,):
            raise ValueError(f"offset must have shape (2,), got {tuple(offset.shape)!r}")
        if not bool(((offset >= 0) & (offset < 1)).all()):
            raise ValueError(f"offset must lie in [0, 1), got {offset.tolist()!r}")
        fields = gradients.shape[0]
        if shifts.shape != (fields, 2) or shifts.dtype.is_floating_point or shifts.is_complex():
            raise ValueError(
                f"shifts must be an integer tensor of shape ({fields}, 2), "
                f"got {shifts.dtype} of shape {tuple(shifts.shape)!r}"
            )
        if fields and not bool(((shifts >= 0) & (shifts < self.shift_range)).all()):
            raise ValueError(
                f"shifts must lie in [0, {self.shift_range}), got values from "
                f"{shifts.min().item()!r} to {shifts.max().item()!r}"
            )
        device = gradients.device
        return self._evaluate(offset.to(gradients), shifts.to(device, torch.long), gradients)

    def _evaluate(self, offset: Tensor, shifts: Tensor, gradients: Tensor) -> Tensor:
        """:meth:`evaluate` without the argument checks."""
        fields = gradients.shape[0]
        device = gradients.device
        index, conj_weights = self._plane_weights(offset)
        plane_w = self.plane_size[1]
        rows = shifts[:, :1] + torch.arange(self.height, device=device)
        cols = shifts[:, 1:] + torch.arange(self.width, device=device)
        window = (rows.unsqueeze(2) * plane_w + cols.unsqueeze(1)).view(fields, -1)
        table = torch.view_as_complex(gradients.reshape(fields, -1, 2).contiguous())
        noise = torch.zeros(window.shape, device=device, dtype=table.dtype)
        block = max(fields, 1)
        if device.type == "cpu":
            block = max(1, _CPU_BLOCK_PIXELS // (self.height * self.width))
        for start in range(0, fields, block):
            rows_block = slice(start, start + block)
            self._accumulate(
                noise[rows_block], index, conj_weights, window[rows_block], table[rows_block]
            )
        return noise.real.view(fields, self.height, self.width)

    @staticmethod
    def _accumulate(
        noise: Tensor, index: Tensor, conj_weights: Tensor, window: Tensor, table: Tensor
    ) -> None:
        """Add ``sum over vertices of Re(g * conj_weight)`` to ``noise`` (complex, in place).

        Args:
            noise: (b, H * W) complex accumulator of b fields.
            index, conj_weights: (4, plane pixels) from :meth:`_plane_weights`.
            window: (b, H * W) int64 plane pixel of each field pixel.
            table: (b, S_x * S_y) complex gradients ``g_x + i g_y`` of the b fields.
        """
        for vertex in range(4):
            plane_index = index[vertex].expand(window.shape[0], -1)
            vertex_index = torch.gather(plane_index, 1, window)
            noise.addcmul_(
                torch.gather(table, 1, vertex_index),
                torch.gather(conj_weights[vertex].expand_as(plane_index), 1, window),
            )

    def _plane_weights(self, offset: Tensor) -> tuple[Tensor, Tensor]:
        """The four vertices that reach each plane pixel and their weights.

        Args:
            offset: (2,) lattice offset in [0, 1)^2, float32 or float64.

        Returns:
            ``index``: (4, plane pixels) int64 gradient-table entry of each vertex;
            ``conj_weights``: (4, plane pixels) complex ``max(2 - |d|^2, 0) ** 4 * (d_x - i d_y)``
            for the plane displacement d from the vertex to the pixel, so that the noise is
            ``sum over vertices of Re(g * conj_weight)``, g = g_x + i g_y.
        """
        plane_h, plane_w = self.plane_size
        size_y = self.table_size[1]
        device, dtype = offset.device, offset.dtype
        # Lattice coordinates v = S(u) + offset; S is linear, so build it from rows and columns.
        stretch = _LATTICE_SCALE / self.feature_size
        cols = torch.arange(plane_w, device=device, dtype=dtype) * stretch
        rows = torch.arange(plane_h, device=device, dtype=dtype).unsqueeze(1) * stretch
        vx = ((1.0 + _SKEW) * cols + _SKEW * rows) + offset[0]
        vy = (_SKEW * cols + (1.0 + _SKEW) * rows) + offset[1]
        cell_x = vx.floor()
        cell_y = vy.floor()
        fx = vx - cell_x
        fy = vy - cell_y
        # Plane displacement from the cell's origin vertex (0, 0).
        unskew = (fx + fy) * _UNSKEW
        dx0 = (fx - unskew) / _LATTICE_SCALE
        dy0 = (fy - unskew) / _LATTICE_SCALE
        origin = (cell_x.long() + 1) * size_y + (cell_y.long() + 1)

        # The containing triangle: corners (0, 0), (1, 1) and (1, 0) above the diagonal
        # (fx >= fy), else (0, 1). In the (hi, lo) = sorted (fx, fy) frame its barycentric
        # coordinates are 1 - hi at (0, 0), hi - lo at the middle corner and lo at (1, 1); the
        # fourth vertex is the reflection of the corner with the smallest one across the
        # opposite edge: (2, 1), (0, 1) or (0, -1) in that frame.
        upper = fx >= fy
        hi = torch.maximum(fx, fy)
        lo = torch.minimum(fx, fy)
        bary_origin = 1.0 - hi
        bary_middle = hi - lo
        origin_smallest = (bary_origin < bary_middle) & (bary_origin < lo)
        far_smallest = (lo < bary_origin) & (lo < bary_middle)
        extra_hi = origin_smallest.to(dtype) * 2.0
        extra_lo = 1.0 - far_smallest.to(dtype) * 2.0
        middle_x = upper.to(dtype)
        steps: tuple[tuple[Tensor | float, Tensor | float], ...] = (
            (0.0, 0.0),
            (1.0, 1.0),
            (middle_x, 1.0 - middle_x),
            (torch.where(upper, extra_hi, extra_lo), torch.where(upper, extra_lo, extra_hi)),
        )
        indices, weights = [], []
        for step_x, step_y in steps:
            dx = dx0 - (step_x * _STEP_A + step_y * _STEP_B)
            dy = dy0 - (step_x * _STEP_B + step_y * _STEP_A)
            falloff = (_KERNEL_RADIUS_SQ - dx * dx - dy * dy).clamp_min_(0.0).pow_(4)
            step_index = step_x * size_y + step_y  # small integers, exact in floating point
            if isinstance(step_index, Tensor):
                indices.append(origin + step_index.long())
            else:
                indices.append(origin + int(step_index))
            conj_weight_x = falloff * dx
            conj_weight_y = falloff.mul_(dy).neg_()
            weights.append(torch.complex(conj_weight_x, conj_weight_y))
        return torch.stack(indices).view(4, -1), torch.stack(weights).view(4, -1)


def make_noise(kind: NoiseKind, **simplex_options: int | float | bool) -> NoiseSampler:
    """Build the noise strategy named in a training config.

    Args:
        kind: "gaussian" or "simplex".
        simplex_options: keyword arguments of :class:`SimplexNoise` (only for "simplex").

    Returns:
        A :class:`GaussianNoise` or :class:`SimplexNoise`.
    """
    if kind == "gaussian":
        if simplex_options:
            raise ValueError(
                f"gaussian noise takes no options, got {sorted(simplex_options)!r}"
            )
        return GaussianNoise()
    if kind == "simplex":
        return SimplexNoise(**simplex_options)  # type: ignore[arg-type]
    raise ValueError(f"kind must be 'gaussian' or 'simplex', got {kind!r}")
