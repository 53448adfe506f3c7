"""The model grid: a preprocessed 1 mm volume -> 96 x 96 x 50 voxels in [0, 1], and back.

method.md §2, steps 5-6: centre crop/pad to 192 x 192 x 100, downsample by 2 (cubic B-spline for
images, nearest neighbour for labels) to 96 x 96 x 50, then clip to the 1st/99th percentiles of the
intensities inside the brain mask and scale to [0, 1]; voxels outside the brain are 0.

Where the intensities are normalised is a named choice (:data:`NORMALISE_ON`); the paper does not
say:

- ``"model_grid"`` (the default): after downsampling, with the percentiles of the 2 mm brain, so
  the image lies exactly in [0, 1] and is 0 outside the brain mask;
- ``"input_grid"`` (the authors' code): clip and rescale at 1 mm with the percentiles of the 1 mm
  brain, then downsample; the cubic B-spline then overshoots [0, 1] slightly near edges and leaves
  small values just outside the 2 mm mask, as in the published numbers.

:class:`GridTransform` records the crop/pad of one input so model-grid maps can be carried back
onto the input's own voxel grid (same shape and affine), for outputs that overlay the input scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from brainuad.data.volume import Volume

MODEL_GRID_SHAPE = (96, 96, 50)
CROP_SHAPE = (192, 192, 100)
DOWNSAMPLE = 2
PERCENTILES = (1.0, 99.0)
NormaliseOn = Literal["model_grid", "input_grid"]
NORMALISE_ON: tuple[NormaliseOn, ...] = ("model_grid", "input_grid")
"""Where :func:`to_model_grid` clips and rescales intensities (see the module docstring)."""


@dataclass(frozen=True)
class GridTransform:
    """How one input volume was brought onto the model grid.

    Attributes:
        input_shape: (I, J, K) voxels of the input.
        input_affine: (4, 4) affine of the input.
        offsets: per axis, the input index of the first voxel of the centred 192 x 192 x 100 box
            (negative where the input was padded).
        crop_shape: the box (192, 192, 100 by default).
        factor: the downsampling factor (2).
    """

    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    offsets: tuple[int, int, int]
    crop_shape: tuple[int, int, int] = CROP_SHAPE
    factor: int = DOWNSAMPLE

    @classmethod
    def for_shape(cls, input_shape: tuple[int, ...], input_affine: np.ndarray,
                  crop_shape: tuple[int, int, int] = CROP_SHAPE, factor: int = DOWNSAMPLE) -> "GridTransform":
        """The centred crop/pad of ``input_shape`` to ``crop_shape`` (torchio CropOrPad convention:
        the extra voxel of an odd difference goes to the end)."""
        if len(input_shape) != 3:
            raise ValueError(f"input_shape must have 3 axes, got {input_shape}")
        if any(size % factor for size in crop_shape):
            raise ValueError(f"crop_shape {crop_shape} must be divisible by factor {factor}")
        oi, oj, ok = ((size - crop) // 2 for size, crop in zip(input_shape, crop_shape))
        si, sj, sk = (int(s) for s in input_shape)
        ci, cj, ck = crop_shape
        return cls((si, sj, sk), np.asarray(input_affine, dtype=np.float64), (oi, oj, ok), (ci, cj, ck), factor)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Shape of the model grid (96, 96, 50 by default)."""
        i, j, k = (size // self.factor for size in self.crop_shape)
        return i, j, k

    @property
    def grid_affine(self) -> np.ndarray:
        """(4, 4) affine of the model grid: 2 mm voxels whose centres sit between input voxel pairs."""
        shift = np.eye(4)
        shift[:3, 3] = self.offsets
        scale = np.diag([self.factor] * 3 + [1.0])
        scale[:3, 3] = (self.factor - 1) / 2.0
        return self.input_affine @ shift @ scale

    def crop(self, array: np.ndarray) -> np.ndarray:
        """Centre crop/pad an (I, J, K) input array to ``crop_shape`` (padding with 0)."""
        if array.shape != self.input_shape:
            raise ValueError(f"array shape {array.shape} differs from the transform's input shape {self.input_shape}")
        out = np.zeros(self.crop_shape, dtype=array.dtype)
        src, dst = self._overlap()
        out[dst] = array[src]
        return out

    def uncrop(self, array: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`crop`: place a ``crop_shape`` array back into a zero input-shaped array."""
        if array.shape != self.crop_shape:
            raise ValueError(f"array shape {array.shape} differs from the crop shape {self.crop_shape}")
        out = np.zeros(self.input_shape, dtype=array.dtype)
        src, dst = self._overlap()
        out[src] = array[dst]
        return out

    def _overlap(self) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        src, dst = [], []
        for size, crop, offset in zip(self.input_shape, self.crop_shape, self.offsets):
            start = max(offset, 0)
            stop = min(offset + crop, size)
            src.append(slice(start, stop))
            dst.append(slice(start - offset, stop - offset))
        return tuple(src), tuple(dst)

    def to_grid(self, array: np.ndarray, *, label: bool) -> np.ndarray:
        """Input (I, J, K) array -> model grid (96, 96, 50): crop/pad then downsample.

        Images use a cubic B-spline, labels (``label=True``) nearest neighbour (returned as bool).
        """
        cropped = self.crop(np.asarray(array, dtype=np.float32))
        zoom = 1.0 / self.factor
        if label:
            return ndimage.zoom(cropped, zoom, order=0, grid_mode=True, mode="grid-constant") > 0.5
        return ndimage.zoom(cropped, zoom, order=3, grid_mode=True, mode="grid-constant").astype(np.float32)

    def to_input(self, grid_array: np.ndarray, *, label: bool) -> np.ndarray:
        """Model-grid (96, 96, 50) array -> the input's own (I, J, K) grid: upsample then un-crop.

        Continuous maps are interpolated linearly (``label=False``), binary maps by nearest
        neighbour (returned as bool). Voxels outside the cropped box are 0.
        """
        grid_array = np.asarray(grid_array, dtype=np.float32)
        if grid_array.shape != self.grid_shape:
            raise ValueError(f"grid array shape {grid_array.shape} differs from the model grid {self.grid_shape}")
        upsampled = ndimage.zoom(grid_array, self.factor, order=0 if label else 1, grid_mode=True, mode="nearest")
        restored = self.uncrop(upsampled)
        return restored > 0.5 if label else restored


def normalise_intensity(image: np.ndarray, mask: np.ndarray,
                        percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """Clip ``image`` to the given percentiles of its brain voxels and scale to [0, 1].

    Args:
        image: (I, J, K) intensities.
        mask: (I, J, K) bool brain mask; the percentiles are computed inside it only.
        percentiles: (low, high) in percent.

    Returns:
        (I, J, K) float32 in [0, 1], exactly 0 outside the mask.
    """
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} differs from mask shape {mask.shape}")
    if not mask.any():
        raise ValueError("cannot normalise: the brain mask is empty")
    low, high = np.percentile(image[mask], percentiles)
    scale = high - low if high > low else 1.0
    scaled = (np.clip(image, low, high) - low) / scale
    return np.where(mask, scaled, 0.0).astype(np.float32)


@dataclass
class GridVolume:
    """A volume on the model grid, ready for a method.

    Attributes:
        image: (96, 96, 50) float32 in [0, 1] (about [0, 1] when normalised on the input grid).
        mask: (96, 96, 50) bool brain mask.
        seg: (96, 96, 50) bool segmentation or None.
        name: subject identifier.
        transform: how to carry grid maps back to the input's geometry.
        contrasts: other contrasts of the same subject (``"t1"`` -> (96, 96, 50) float32), brought
            onto the grid with the image's transform and brain mask and normalised as the image
            (each with its own percentiles); empty unless a multi-contrast method asked for them.
    """

    image: np.ndarray
    mask: np.ndarray
    seg: np.ndarray | None
    name: str
    transform: GridTransform
    contrasts: Mapping[str, np.ndarray] = field(default_factory=dict)

    def to_input(self, grid_array: np.ndarray, *, label: bool = False) -> np.ndarray:
        """A (96, 96, 50) map of this volume in the input's own voxel grid."""
        return self.transform.to_input(grid_array, label=label)

    def check_contrasts(self, contrasts: Sequence[str]) -> None:
        """Raise ValueError, naming the volume, when one of ``contrasts`` was not loaded with it."""
        missing = [name for name in contrasts if name not in self.contrasts]
        if missing:
            held = ", ".join(self.contrasts) or "none"
            raise ValueError(f"volume {self.name!r} was loaded without its {', '.join(missing)} image (other "
                             f"contrasts held: {held})")

    def channels(self, contrasts: Sequence[str]) -> np.ndarray:
        """The image and the named other contrasts as channels: (1 + C, 96, 96, 50) float32, the
        image first, then ``contrasts`` in the order given.

        Raises:
            ValueError: a named contrast was not loaded with this volume.
        """
        self.check_contrasts(contrasts)
        return np.stack([self.image, *(self.contrasts[name] for name in contrasts)]).astype(np.float32, copy=False)


def to_model_grid(volume: Volume, crop_shape: tuple[int, int, int] = CROP_SHAPE,
                  factor: int = DOWNSAMPLE, normalise_on: NormaliseOn = "model_grid",
                  contrasts: Mapping[str, np.ndarray] | None = None) -> GridVolume:
    """Bring a preprocessed 1 mm volume onto the model grid (method.md §2 steps 5-6).

    Args:
        volume: the input; its ``mask`` is required (the brain mask decides the percentiles).
        normalise_on: clip and rescale after downsampling (``"model_grid"``) or before it, at 1 mm
            (``"input_grid"``, the authors' order); see the module docstring.
        contrasts: other contrasts of the subject on the volume's own voxel grid (name -> (I, J, K)
            array, co-registered with the image); each is brought onto the grid and normalised as
            the image, inside the same brain mask.

    Returns:
        A :class:`GridVolume` with (96, 96, 50) arrays for the default ``crop_shape`` and ``factor``.
    """
    if normalise_on not in NORMALISE_ON:
        raise ValueError(f"normalise_on must be one of {', '.join(NORMALISE_ON)}, got {normalise_on!r}")
    if volume.mask is None:
        raise ValueError(f"volume {volume.name!r} has no brain mask; one is needed for the model grid")
    transform = GridTransform.for_shape(volume.shape, volume.affine, crop_shape, factor)
    mask = transform.to_grid(volume.mask, label=True)
    if not mask.any():
        raise ValueError(f"volume {volume.name!r}: no brain voxel is left inside the centred "
                         f"{crop_shape} box; is the scan preprocessed (1 mm, brain centred)?")
    brain = volume.mask.astype(bool)

    def normalised(image: np.ndarray) -> np.ndarray:
        if normalise_on == "model_grid":
            return normalise_intensity(transform.to_grid(image, label=False), mask)
        return transform.to_grid(normalise_intensity(image, brain), label=False)

    others = {}
    for name, array in (contrasts or {}).items():
        if np.shape(array) != volume.shape:
            raise ValueError(f"volume {volume.name!r}: its {name} image has shape {np.shape(array)}, the image "
                             f"{volume.shape}; the contrasts of a subject must share one voxel grid")
        others[name] = normalised(np.asarray(array, dtype=np.float32))
    seg = None if volume.seg is None else transform.to_grid(volume.seg, label=True)
    return GridVolume(image=normalised(volume.image), mask=mask, seg=seg, name=volume.name, transform=transform,
                      contrasts=others)
