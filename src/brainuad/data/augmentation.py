"""The paper's training augmentations (§4.4): one slice with torchio, or a batch on any device.

RandomBlur (p 0.25), RandomBiasField (p 0.25), RandomGamma (p 0.5) and RandomGhosting (p 0.5), in
that order, with torchio's defaults otherwise (ghosting restricted to the two in-plane axes,
since a slice has a single voxel along the third).

:meth:`SliceAugmentation.__call__` runs torchio on one (1, H, W) slice (the authors' pipeline: in
DataLoader workers). :meth:`SliceAugmentation.augment_batch` does the same four transforms to a
(B, 1, H, W) batch where it lies (the training GPU): each slice's parameters are drawn from the
same distributions as torchio's (:meth:`~SliceAugmentation.sample_batch`), then the whole batch is
transformed at once (:meth:`~SliceAugmentation.apply_batch`). Per slice, with torchio's defaults:

- **blur**: Gaussian, standard deviation ~ U(0, 2) voxels along each in-plane axis (torchio's mm
  at the slice's 1-voxel spacing), truncated at ``int(4 std + 0.5)`` voxels and normalised, the
  edge voxel repeated at the borders (``scipy.ndimage.gaussian_filter``);
- **bias field**: multiplied by ``exp(sum_{i + j <= 3} c_ij x^i y^j)``, ``c_ij ~ U(-0.5, 0.5)``,
  ``x`` and ``y`` the voxel centres scaled to [-1, 1] along H and W (the terms of torchio's
  order-3 polynomial in the third axis vanish on a slice, whose only coordinate there is 0);
- **gamma**: ``sign(v) |v|^gamma``, ``log gamma ~ U(-0.3, 0.3)``;
- **ghosting**: in the centred 2-D spectrum every n-th row (or column: the axis drawn from the
  two), ``n`` uniform in 4..10, is scaled by ``1 - s``, ``s ~ U(0.5, 1)``, and the centre row
  (column) restored; the image is the real part of the inverse transform.

A slice with several channels (a multi-contrast method's slice with its other contrasts) gets one
draw for all of them: the same blur, bias field, gamma and ghosting in every channel. Calling the
augmentation on such a slice runs the batch transforms on it (torchio's RandomGamma would draw a
gamma per channel).

Given the same parameters, :meth:`~SliceAugmentation.apply_batch` equals torchio's transforms
(tests compare them); the draws come from a torch generator on the batch's device, so they follow
the same distributions without being the same numbers (tested with two-sample tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchio as tio
from torch import Tensor

from brainuad.checks import check_fraction
from brainuad.padding import symmetric_pad

__all__ = ["BIAS_TERMS", "AugmentationDraw", "SliceAugmentation"]

BLUR_STD_MAX = 2.0
"""torchio's RandomBlur default: each axis's standard deviation ~ U(0, 2) (voxels here)."""
BLUR_TRUNCATE = 4.0
"""scipy's gaussian_filter truncates its kernel at ``int(4 std + 0.5)`` voxels."""
BIAS_COEFFICIENT_MAX = 0.5
"""torchio's RandomBiasField default: coefficients ~ U(-0.5, 0.5)."""
BIAS_TERMS = tuple((i, j) for i in range(4) for j in range(4 - i))
"""The exponents (i, j) of the bias field's terms ``x^i y^j`` (order 3), in torchio's order."""
LOG_GAMMA_MAX = 0.3
"""torchio's RandomGamma default: log gamma ~ U(-0.3, 0.3)."""
GHOSTS = (4, 10)
"""torchio's RandomGhosting default: 4..10 ghosts (both inclusive)."""
GHOST_INTENSITY = (0.5, 1.0)
"""torchio's RandomGhosting default: the artefact's strength ~ U(0.5, 1)."""


@dataclass(frozen=True)
class AugmentationDraw:
    """The parameters of one batch of B slices (tensors on the batch's device); a slice a
    transform skips holds that transform's identity.

    Attributes:
        blur_std: (B, 2) float, standard deviations in voxels along H and W; 0: not blurred.
        bias_coefficients: (B, 10) float, ``c_ij`` in :data:`BIAS_TERMS` order; 0: no bias field.
        gamma: (B,) float exponents; 1: no gamma.
        ghosts: (B,) int64, the ghosts n; 0: no ghosting.
        ghost_axis: (B,) int64, 0 (along H) or 1 (along W).
        ghost_intensity: (B,) float, the strength s.
    """

    blur_std: Tensor
    bias_coefficients: Tensor
    gamma: Tensor
    ghosts: Tensor
    ghost_axis: Tensor
    ghost_intensity: Tensor


def _gaussian_kernels(std: Tensor) -> Tensor:
    """(N,) standard deviations (voxels) -> (N, 2 R + 1) normalised kernels, R the widest radius;
    each zero beyond its own ``int(4 std + 0.5)`` (a delta for std 0)."""
    radius = int(BLUR_TRUNCATE * BLUR_STD_MAX + 0.5)
    std = std.double()
    offsets = torch.arange(-radius, radius + 1, device=std.device, dtype=torch.float64)
    own_radius = torch.floor(BLUR_TRUNCATE * std + 0.5)
    weights = torch.exp(-0.5 * (offsets / std.clamp_min(1e-12)[:, None]) ** 2)
    weights = torch.where(offsets.abs() <= own_radius[:, None], weights, 0.0)
    return weights / weights.sum(dim=1, keepdim=True)


def _blur(images: Tensor, std: Tensor) -> Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with (N, 2) standard deviations (along H, W)."""
    count = images.shape[0]
    out = images
    for axis in (0, 1):
        kernels = _gaussian_kernels(std[:, axis]).to(images.dtype)
        weight = kernels.reshape(count, 1, -1, 1) if axis == 0 else kernels.reshape(count, 1, 1, -1)
        padded = symmetric_pad(out, kernels.shape[1] // 2, dims=(2 + axis,)).transpose(0, 1)  # (1, N, H', W')
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                         allow_tf32=False):  # full fp32 on a GPU too (cuDNN would use TF32), as torchio
            out = F.conv2d(padded, weight, groups=count).transpose(0, 1)
    return out


def _axis_coordinates(size: int, device: torch.device) -> Tensor:
    """Voxel centres along an axis of ``size`` scaled to [-1, 1] (0 for a single voxel), float64."""
    centres = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    return centres / centres.max() if size > 1 else centres


def _bias_fields(coefficients: Tensor, height: int, width: int) -> Tensor:
    """(N, 10) coefficients -> (N, 1, H, W) float32 fields ``exp(sum c_ij x^i y^j)``."""
    x = _axis_coordinates(height, coefficients.device)
    y = _axis_coordinates(width, coefficients.device)
    terms = torch.stack([x[:, None] ** i * y[None, :] ** j for i, j in BIAS_TERMS])  # (10, H, W)
    exponent = torch.einsum("nt,thw->nhw", coefficients.double(), terms)
    return torch.exp(exponent).float()[:, None]


def _ghost(images: Tensor, ghosts: Tensor, axis: Tensor, intensity: Tensor) -> Tensor:
    """k-space ghosting of (N, 1, H, W): rows (axis 0) or columns (axis 1) ``0, n, 2n, ...`` of the
    centred spectrum scaled by ``1 - s``, the centre one kept."""
    height, width = images.shape[-2:]
    spectrum = torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1))
    rows = torch.arange(height, device=images.device)[None, :, None]
    columns = torch.arange(width, device=images.device)[None, None, :]
    along_h = (axis == 0)[:, None, None]
    position = torch.where(along_h, rows, columns)
    centre = torch.where(along_h, height // 2, width // 2)
    scaled = (position % ghosts[:, None, None] == 0) & (position != centre)
    factor = torch.where(scaled, (1 - intensity)[:, None, None], 1.0).to(spectrum.real.dtype)
    restored = torch.fft.ifft2(torch.fft.ifftshift(spectrum * factor[:, None], dim=(-2, -1)))
    return restored.real.float()


def _where_rows(applied: Tensor, transform, images: Tensor, *parameters: Tensor) -> Tensor:
    """``transform(images[applied], *parameters[applied])`` in the rows where ``applied``, the
    input elsewhere."""
    rows = applied.nonzero().squeeze(1)
    if rows.numel() == 0:
        return images
    out = images.clone()
    out[rows] = transform(images[rows], *(parameter[rows] for parameter in parameters))
    return out


@dataclass(frozen=True)
class SliceAugmentation:
    """Random intensity augmentations of slices; probabilities default to the paper's.

    Calling it augments one slice with torchio, drawing from torch's global generator;
    :meth:`augment_batch` augments a batch on its own device.
    """

    blur_p: float = 0.25
    bias_field_p: float = 0.25
    gamma_p: float = 0.5
    ghosting_p: float = 0.5

    def __post_init__(self) -> None:
        for name in ("blur_p", "bias_field_p", "gamma_p", "ghosting_p"):
            value = getattr(self, name)
            check_fraction(f"SliceAugmentation: {name}", value)

    def _transform(self) -> tio.Compose:
        return tio.Compose([
            tio.RandomBlur(p=self.blur_p),
            tio.RandomBiasField(p=self.bias_field_p),
            tio.RandomGamma(p=self.gamma_p),
            tio.RandomGhosting(p=self.ghosting_p, axes=(0, 1)),
        ])

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Augment one slice.

        Args:
            image: (C, H, W) float intensities in [0, 1]: one slice (C = 1, torchio) or a slice's
                channels (C > 1: :meth:`augment_batch`, one draw for all channels from torch's
                global generator).

        Returns:
            (C, H, W) float32, the augmented slice (not clipped: bias and ghosting may leave [0, 1]
            slightly, as in the authors' pipeline).
        """
        if image.ndim != 3 or image.shape[0] < 1:
            raise ValueError(f"SliceAugmentation expects a (C, H, W) slice, got shape {tuple(image.shape)}")
        if image.shape[0] > 1:
            return self.augment_batch(image[None].float())[0]
        subject = tio.Subject(image=tio.ScalarImage(tensor=image[..., None].float()))
        augmented = self._transform()(subject)["image"]
        if not isinstance(augmented, tio.Image):
            raise TypeError(f"torchio returned a {type(augmented).__name__} for the image, not an Image")
        return augmented.data[..., 0]

    def sample_batch(self, count: int, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> AugmentationDraw:
        """Draw the parameters of ``count`` slices on ``device`` (the same number of draws whatever
        is applied, so a run's random stream does not depend on the images).

        Args:
            count: slices in the batch.
            device: where the parameters are drawn and kept.
            generator: a generator on ``device``; None: the device's global generator.
        """
        def uniform(*shape: int) -> Tensor:
            return torch.rand(shape, device=device, generator=generator)

        probabilities = torch.tensor([self.blur_p, self.bias_field_p, self.gamma_p, self.ghosting_p], device=device)
        applied = uniform(count, 4) < probabilities
        blur_std = BLUR_STD_MAX * uniform(count, 2) * applied[:, :1]
        bias = BIAS_COEFFICIENT_MAX * (2 * uniform(count, len(BIAS_TERMS)) - 1) * applied[:, 1:2]
        gamma = torch.where(applied[:, 2], torch.exp(LOG_GAMMA_MAX * (2 * uniform(count) - 1)), 1.0)
        ghosts = torch.randint(GHOSTS[0], GHOSTS[1] + 1, (count,), device=device, generator=generator)
        axis = torch.randint(0, 2, (count,), device=device, generator=generator)
        low, high = GHOST_INTENSITY
        intensity = low + (high - low) * uniform(count)
        return AugmentationDraw(blur_std, bias, gamma, torch.where(applied[:, 3], ghosts, 0), axis, intensity)

    @staticmethod
    def apply_batch(images: Tensor, draw: AugmentationDraw) -> Tensor:
        """Blur, bias field, gamma and ghosting of a batch, in that order, with drawn parameters.

        Args:
            images: (B, C, H, W) float intensities in [0, 1], on the draw's device; a slice's C
                channels share its parameters.
            draw: the parameters of the B slices.

        Returns:
            (B, C, H, W) float32 (not clipped, as :meth:`__call__`).
        """
        if images.ndim != 4 or images.shape[1] < 1:
            raise ValueError(f"augment_batch expects (B, C, H, W) slices, got shape {tuple(images.shape)}")
        if draw.gamma.shape != images.shape[:1]:
            raise ValueError(f"the draw holds {draw.gamma.shape[0]} slices' parameters, the batch {images.shape[0]}")
        count, channels, height, width = images.shape
        if channels > 1:  # every channel as a slice of its own with its slice's parameters
            flat = images.reshape(count * channels, 1, height, width)
            shared = AugmentationDraw(*(parameter.repeat_interleave(channels, dim=0) for parameter in (
                draw.blur_std, draw.bias_coefficients, draw.gamma, draw.ghosts, draw.ghost_axis, draw.ghost_intensity)))
            return SliceAugmentation.apply_batch(flat, shared).reshape(count, channels, height, width)
        out = images.float()
        out = _where_rows(draw.blur_std.amax(dim=1) > 0, _blur, out, draw.blur_std)
        out = _where_rows(draw.bias_coefficients.ne(0).any(dim=1),
                          lambda x, c: x * _bias_fields(c, *x.shape[-2:]), out, draw.bias_coefficients)
        out = out.sign() * out.abs() ** draw.gamma[:, None, None, None].to(out.dtype)
        return _where_rows(draw.ghosts > 0, _ghost, out, draw.ghosts, draw.ghost_axis, draw.ghost_intensity)

    def augment_batch(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a (B, C, H, W) batch where it lies: :meth:`sample_batch` then :meth:`apply_batch`."""
        return self.apply_batch(images, self.sample_batch(images.shape[0], images.device, generator))
