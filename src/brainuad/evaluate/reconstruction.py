"""Reconstruction quality: SSIM, PSNR, l1 errors, l1-ratio and a 3-D medical LPIPS (paper §4.5.1).

Volumes are (X, Y, Z) = (96, 96, 50) intensities in [0, 1] (``data_range = 1``), axial slices
along the last axis.

- :func:`structural_similarity`: SSIM of Wang et al. (2004) as scikit-image's
  ``structural_similarity`` with its defaults (7-voxel uniform window, K1 = 0.01, K2 = 0.03,
  sample covariance, "reflect" borders, the mean over the map without the 3-voxel border strip),
  implemented with ``scipy.ndimage.uniform_filter`` in float64 (scikit-image keeps float32
  inputs in float32, so for those the two agree to about 1e-6 only). ``slicewise=False`` is the 3-D
  SSIM of the volume (7 x 7 x 7 windows); ``slicewise=True`` averages the 2-D SSIM of the axial
  slices. With a mask, the map (border strip included) is averaged over the mask instead.
- :func:`peak_signal_noise_ratio`: ``10 log10(data_range**2 / MSE)`` as scikit-image's
  ``peak_signal_noise_ratio``; optionally the MSE inside a mask.
- :func:`l1_error`: mean absolute error inside the brain mask.
- :func:`lesion_l1`: l1 inside and outside the lesions and their ratio, the paper's l1-ratio
  ``l1_unhealthy / l1_healthy``.
- :class:`MedicalLpips`: LPIPS (Zhang et al., 2018) on features of a 3-D ResNet pre-trained on
  medical volumes (Med3D, Chen et al. 2019), built with MONAI's ``resnet`` and loaded from a
  weights file given by the user (never downloaded). For each residual stage l (layer1..layer4)
  the features are normalised to unit length over channels, ``d_l`` is the squared difference
  summed over channels and averaged over positions (no learned per-channel weights), and LPIPS
  is the mean of ``d_l`` over the stages.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from monai.networks.nets import resnet
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from brainuad.errors import BrainUADError, InputError
from brainuad.evaluate.metrics import check_mask, check_same_shape, check_scores
from brainuad.methods.similarity import ssim_map

__all__ = [
    "LesionL1",
    "LpipsUnavailableError",
    "MED3D_DEPTHS",
    "MedicalLpips",
    "build_med3d_resnet",
    "l1_error",
    "lesion_l1",
    "peak_signal_noise_ratio",
    "structural_similarity",
]

MED3D_DEPTHS = (10, 18, 34, 50, 101, 152, 200)


def _check_pair(reference: np.ndarray, reconstruction: np.ndarray) -> None:
    check_scores("reference", reference)
    check_scores("reconstruction", reconstruction)
    check_same_shape(reference=reference, reconstruction=reconstruction)


def _check_region(name: str, mask: np.ndarray, reference: np.ndarray) -> None:
    check_mask(name, mask)
    check_same_shape(reference=reference, **{name: mask})
    if not mask.any():
        raise ValueError(f"{name} selects no voxel")


def structural_similarity(reference: np.ndarray, reconstruction: np.ndarray, *, data_range: float = 1.0,
                          window_size: int = 7, slicewise: bool = False, mask: np.ndarray | None = None) -> float:
    """Mean SSIM between an input and its reconstruction (scikit-image's definition).

    Args:
        reference: (X, Y, Z) float input volume (or any 2-D/3-D array when not ``slicewise``).
        reconstruction: same shape.
        data_range: intensity range (1 for [0, 1] volumes).
        window_size: odd edge of the uniform window, <= every filtered axis.
        slicewise: average 2-D SSIM over the slices along the last axis instead of 3-D SSIM.
        mask: boolean, same shape: average the SSIM map over it instead of the cropped map.
    """
    _check_pair(reference, reconstruction)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    axes = reference.ndim - 1 if slicewise else reference.ndim
    if slicewise and reference.ndim != 3:
        raise ValueError(f"slicewise SSIM needs (X, Y, Z) volumes, got shape {reference.shape}")
    if not isinstance(window_size, int) or window_size < 3 or window_size % 2 == 0 \
            or window_size > min(reference.shape[:axes]):
        raise ValueError(f"window_size must be an odd int in [3, {min(reference.shape[:axes])}], got {window_size!r}")
    size = (window_size,) * axes + (1,) * (reference.ndim - axes)
    similarity = ssim_map(reference, reconstruction, size, data_range=data_range)
    if mask is not None:
        _check_region("mask", mask, reference)
        return float(similarity[mask].mean())
    pad = (window_size - 1) // 2
    interior = tuple(slice(pad, -pad) for _ in range(axes))
    return float(similarity[interior].mean())


def peak_signal_noise_ratio(reference: np.ndarray, reconstruction: np.ndarray, *, data_range: float = 1.0,
                            mask: np.ndarray | None = None) -> float:
    """PSNR in dB, ``10 log10(data_range**2 / MSE)``; ``inf`` for identical inputs.

    Args:
        reference: float array, e.g. (X, Y, Z).
        reconstruction: same shape.
        data_range: intensity range (1 for [0, 1] volumes).
        mask: boolean, same shape: the MSE over these voxels only (None: all voxels).
    """
    _check_pair(reference, reconstruction)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    error = (reference.astype(np.float64) - reconstruction.astype(np.float64)) ** 2
    if mask is not None:
        _check_region("mask", mask, reference)
        error = error[mask]
    mse = float(error.mean())
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def l1_error(reference: np.ndarray, reconstruction: np.ndarray, brain_mask: np.ndarray) -> float:
    """Mean absolute error inside the brain mask.

    Args:
        reference: (X, Y, Z) float input.
        reconstruction: same shape.
        brain_mask: (X, Y, Z) boolean, not empty.
    """
    _check_pair(reference, reconstruction)
    _check_region("brain_mask", brain_mask, reference)
    return float(np.abs(reference[brain_mask].astype(np.float64) - reconstruction[brain_mask]).mean())


class LesionL1(NamedTuple):
    """l1 errors inside and outside the lesions and the paper's l1-ratio (unhealthy / healthy)."""

    unhealthy: float
    healthy: float
    ratio: float


def lesion_l1(reference: np.ndarray, reconstruction: np.ndarray, lesion: np.ndarray,
              brain_mask: np.ndarray | None = None) -> LesionL1:
    """Mean absolute error inside the lesions, outside them, and their ratio.

    "Healthy" is the brain outside the lesions when ``brain_mask`` is given; with None it is
    every non-lesion voxel of the grid, background included (the authors' code). No lesion
    voxel: ``unhealthy`` and ``ratio`` are nan.

    Args:
        reference: (X, Y, Z) float input.
        reconstruction: same shape.
        lesion: (X, Y, Z) boolean ground truth.
        brain_mask: (X, Y, Z) boolean or None.
    """
    _check_pair(reference, reconstruction)
    check_mask("lesion", lesion)
    check_same_shape(reference=reference, lesion=lesion)
    if brain_mask is not None:
        check_mask("brain_mask", brain_mask)
        check_same_shape(reference=reference, brain_mask=brain_mask)
    healthy = ~lesion if brain_mask is None else brain_mask & ~lesion
    if not healthy.any():
        raise ValueError("no healthy voxel outside the lesions to compare with")
    error = np.abs(reference.astype(np.float64) - reconstruction)
    healthy_l1 = float(error[healthy].mean())
    unhealthy_l1 = float(error[lesion].mean()) if lesion.any() else float("nan")
    ratio = unhealthy_l1 / healthy_l1 if healthy_l1 > 0 else float("nan")
    return LesionL1(unhealthy_l1, healthy_l1, ratio)


class LpipsUnavailableError(BrainUADError):
    """LPIPS cannot be computed because no Med3D weights file was given (the caller reports
    "LPIPS skipped")."""


def build_med3d_resnet(depth: int = 10) -> resnet.ResNet:
    """MONAI's 3-D ResNet in the Med3D layout: 1 input channel, 7^3 stride-2 stem, the shortcut
    type and downsample bias of the released Med3D weights, no classification head.

    Args:
        depth: one of ``MED3D_DEPTHS`` (10, 18, 34, 50, 101, 152, 200).
    """
    if depth not in MED3D_DEPTHS:
        raise ValueError(f"depth must be one of {MED3D_DEPTHS}, got {depth!r}")
    bias_downsample, shortcut_type = resnet.get_medicalnet_pretrained_resnet_args(depth)
    factory = getattr(resnet, f"resnet{depth}")
    return factory(spatial_dims=3, n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, feed_forward=False,
                   shortcut_type=shortcut_type, bias_downsample=bias_downsample)


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a safetensors file or of a ``torch.save``d (Med3D) state dict."""
    state: object  # torch.load may return any object: checked below
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, SafetensorError, EOFError, ValueError, pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0]
        raise InputError(path, f"cannot be read as LPIPS weights ({reason})",
                         "give a safetensors file or a Med3D .pth state dict") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # Med3D checkpoints wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(path, "holds no state dict of tensors", "give a safetensors file or a Med3D .pth state dict")
    return {key.removeprefix("module."): value for key, value in state.items()}


class MedicalLpips:
    """LPIPS between volumes from a Med3D 3-D ResNet (see the module docstring).

    Args:
        weights: the weights file (``.safetensors``, or a Med3D ``.pth`` state dict read with
            ``torch.load(weights_only=True)``; a ``module.`` prefix and heads such as
            ``conv_seg`` are ignored). None raises :class:`LpipsUnavailableError`.
        depth: the ResNet depth the weights belong to (10 for Med3D's resnet_10).
        device: where the network runs.
    """

    def __init__(self, weights: str | Path | None, depth: int = 10, device: str | torch.device = "cpu") -> None:
        if weights is None:
            raise LpipsUnavailableError("LPIPS needs the weights of a Med3D 3-D ResNet: no weights file given")
        path = Path(weights)
        if not path.is_file():
            raise InputError(path, "LPIPS weights file not found")
        self.network = build_med3d_resnet(depth)
        state = _read_state_dict(path)
        expected = self.network.state_dict()
        missing = [key for key in expected if key not in state and not key.endswith("num_batches_tracked")]
        wrong = [key for key in expected if key in state and state[key].shape != expected[key].shape]
        if missing or wrong:
            listed = ", ".join((missing + wrong)[:3])
            raise InputError(path, f"does not fit a Med3D resnet{depth}: {len(missing)} missing and "
                             f"{len(wrong)} mis-shaped tensors (e.g. {listed})",
                             "check the depth the weights were trained with")
        self.network.load_state_dict({key: state[key] for key in expected if key in state}, strict=False)
        self.network.eval().to(device)
        self.device = torch.device(device)

    def _features(self, x: Tensor) -> list[Tensor]:
        net = self.network
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        features = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = stage(x)
            features.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return features

    @torch.no_grad()
    def distance(self, reference: Tensor, reconstruction: Tensor) -> Tensor:
        """LPIPS of each pair of volumes.

        Args:
            reference: (N, 1, X, Y, Z) float tensor.
            reconstruction: same shape.
        Returns:
            (N,) float tensor on ``device``, 0 for identical inputs.
        """
        for name, value in (("reference", reference), ("reconstruction", reconstruction)):
            if not isinstance(value, Tensor) or not value.is_floating_point() or value.ndim != 5 or value.shape[1] != 1:
                kind = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{name} must be a floating (N, 1, X, Y, Z) tensor, got {kind}")
        if reference.shape != reconstruction.shape:
            raise ValueError(f"shape mismatch: reference {tuple(reference.shape)}, "
                             f"reconstruction {tuple(reconstruction.shape)}")
        first = self._features(reference.to(self.device, torch.float32))
        second = self._features(reconstruction.to(self.device, torch.float32))
        per_stage = [(a - b).pow(2).sum(dim=1).mean(dim=(1, 2, 3)) for a, b in zip(first, second)]
        return torch.stack(per_stage).mean(dim=0)
