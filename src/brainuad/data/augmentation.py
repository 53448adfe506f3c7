"""The paper's training augmentations (§4.4), applied to one axial slice with torchio.

RandomBlur (p 0.25), RandomBiasField (p 0.25), RandomGamma (p 0.5) and RandomGhosting (p 0.5), in
that order, with torchio's defaults otherwise (ghosting restricted to the two in-plane axes,
since a slice has a single voxel along the third).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchio as tio

from brainuad.checks import check_fraction


@dataclass(frozen=True)
class SliceAugmentation:
    """Random intensity augmentations of a slice; probabilities default to the paper's.

    Calling it draws new parameters from torch's global random generator each time.
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
            image: (1, H, W) float intensities in [0, 1].

        Returns:
            (1, H, W) float32, the augmented slice (not clipped: bias and ghosting may leave [0, 1]
            slightly, as in the authors' pipeline).
        """
        if image.ndim != 3 or image.shape[0] != 1:
            raise ValueError(f"SliceAugmentation expects a (1, H, W) slice, got shape {tuple(image.shape)}")
        subject = tio.Subject(image=tio.ScalarImage(tensor=image[..., None].float()))
        augmented = self._transform()(subject)["image"]
        if not isinstance(augmented, tio.Image):
            raise TypeError(f"torchio returned a {type(augmented).__name__} for the image, not an Image")
        return augmented.data[..., 0]
