"""A scan with its brain mask and optional lesion segmentation, sharing one geometry."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from brainuad.data.io import image_stem, read_image, voxel_spacing
from brainuad.errors import InputError

_AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class Volume:
    """One 3-D scan, its brain mask and optional ground-truth segmentation.

    Attributes:
        image: (I, J, K) float32 intensities.
        affine: (4, 4) RAS+ voxel-to-world affine in mm.
        mask: (I, J, K) bool brain mask, or None when the scan has none yet.
        seg: (I, J, K) bool lesion segmentation, or None (healthy or unlabelled scans).
        name: subject identifier used in outputs and reports.
    """

    image: np.ndarray
    affine: np.ndarray
    mask: np.ndarray | None = None
    seg: np.ndarray | None = None
    name: str = "volume"
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.image.ndim != 3:
            raise ValueError(f"Volume {self.name!r}: image must be 3-D, got shape {self.image.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume {self.name!r}: affine must be 4x4, got shape {self.affine.shape}")
        for label in ("mask", "seg"):
            array = getattr(self, label)
            if array is None:
                continue
            array = np.asarray(array)
            if array.shape != self.image.shape:
                raise ValueError(f"Volume {self.name!r}: {label} shape {array.shape} differs from "
                                 f"image shape {self.image.shape}")
            setattr(self, label, array > 0.5 if array.dtype != bool else array)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(I, J, K) voxels."""
        return tuple(self.image.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        return voxel_spacing(self.affine)

    def with_arrays(self, **arrays: np.ndarray | None) -> "Volume":
        """A copy with some of ``image``, ``mask``, ``seg`` (or ``affine``) replaced."""
        changes: dict[str, Any] = dict(arrays)
        return replace(self, **changes)

    def load_contrast(self, path: str | Path, contrast: str) -> np.ndarray:
        """Another contrast of this volume's subject (its ``contrast`` image, e.g. ``"t1"``) read from
        ``path``: (I, J, K) float32 on this volume's voxel grid.

        Raises:
            InputError: the file is missing or unreadable, or its shape or affine differs from this
                volume's (the contrasts of a subject must be co-registered on one grid).
        """
        image, affine = read_image(path)
        advice = ("the contrasts of a subject must be co-registered on one voxel grid (brainuad prepare writes them "
                  "so; brainuad predict --raw registers them)")
        if image.shape != self.shape:
            raise InputError(path, f"the {contrast} image has shape {image.shape}, the subject's image "
                                   f"{self.source or self.name} {self.shape}", advice)
        if not np.allclose(affine, self.affine, atol=_AFFINE_TOLERANCE_MM):
            raise InputError(path, f"the {contrast} image's affine differs from that of {self.source or self.name}",
                             advice)
        return np.asarray(image, dtype=np.float32)

    @classmethod
    def load(cls, image_path: str | Path, mask_path: str | Path | None = None,
             seg_path: str | Path | None = None, name: str | None = None) -> "Volume":
        """Read an image and, optionally, its brain mask and segmentation from disk.

        The mask and segmentation must have the image's shape and affine (within 1e-3 mm), and a
        given mask must not be empty.

        Raises:
            InputError: naming the file at fault when a file is missing or unreadable, a shape or
                affine differs from the image's, or the brain mask is empty.
        """
        image, affine = read_image(image_path)
        labels: dict[str, np.ndarray | None] = {"mask": None, "seg": None}
        for label, path in (("mask", mask_path), ("seg", seg_path)):
            if path is None:
                continue
            array, label_affine = read_image(path)
            if array.shape != image.shape:
                raise InputError(path, f"{label} shape {array.shape} differs from image shape {image.shape} "
                                       f"of {image_path}", "resample it onto the image grid")
            if not np.allclose(label_affine, affine, atol=_AFFINE_TOLERANCE_MM):
                raise InputError(path, f"{label} affine differs from the affine of {image_path}",
                                 "the two files are not in the same space")
            labels[label] = array > 0.5
        if mask_path is not None and labels["mask"] is not None and not labels["mask"].any():
            raise InputError(mask_path, "brain mask is empty", "check the skull-stripping output")
        return cls(image=image, affine=affine, mask=labels["mask"], seg=labels["seg"],
                   name=name or image_stem(image_path), source=Path(image_path))
