"""SparK masked-image pre-training of the cDDPM's encoder body (paper §3.3, method.md §3).

The objective (:class:`SparKPretrainer`) masks random square cells of healthy slices and trains
the encoder body, run sparsely (:mod:`brainuad.nn.spark`), and a light decoder to reconstruct
them. ``brainuad pretrain`` trains it (:data:`SPARK_SPEC`); the run keeps the body's weights as
``encoder.safetensors``, which a cDDPM config names as ``encoder.pretrained``
(:func:`load_body_weights`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from brainuad.checks import check_fraction, check_int
from brainuad.config import EncoderConfig, RunConfigBase, Section, TrainConfig
from brainuad.errors import InputError
from brainuad.image_range import to_model_range
from brainuad.methods.spec import MethodSpec, OptimizerSettings
from brainuad.nn.encoders import ImageEncoder, ResNetBody
from brainuad.nn.spark import SparKDecoder, expand_cells, masked_mse, sparse_stage_features
from brainuad.weights import load_weights

__all__ = ["BETAS", "LEARNING_RATE", "SPARK_SPEC", "SparKConfig", "SparKPretrainer", "SparKRunConfig",
           "WEIGHT_DECAY", "load_body_weights"]

# AdamW settings of the pre-training (method.md §3).
LEARNING_RATE = 1e-4
WEIGHT_DECAY = 0.05
BETAS = (0.9, 0.95)
ENCODER_FILE = "encoder.safetensors"
"""Where a pre-training run keeps the encoder body's weights."""


class SparKPretrainer(nn.Module):
    """SparK masked-image pre-training of a ResNet body: sparse encoder + light decoder.

    ``training_loss`` has the signature of the anomaly detectors' so one Lightning module trains
    both. The body is the attribute ``body`` (state_dict keys ``body.*`` are the body's own);
    a run keeps it as ``encoder.safetensors`` (:data:`SPARK_SPEC`) and load it into ``ImageEncoder.body`` with
    :func:`load_body_weights`. Optimiser: AdamW with :data:`LEARNING_RATE`,
    :data:`WEIGHT_DECAY` and :data:`BETAS`.

    Args:
        body: the encoder body to pre-train (trained in place).
        cell_size: side of the square mask cells in px, a multiple of the body's largest stride (32).
        mask_ratio: fraction of cells masked per sample, in (0, 1); exactly
            ``round(mask_ratio * cells)`` cells are masked in each sample (Python rounding).
        decoder_channels: width of the decoder.
    """

    def __init__(self, body: ResNetBody, *, cell_size: int = 32, mask_ratio: float = 0.65,
                 decoder_channels: int = 64) -> None:
        super().__init__()
        if not isinstance(body, ResNetBody):
            raise ValueError(f"body must be a ResNetBody, got {type(body).__name__}")
        largest_stride = body.stage_strides[-1]
        if isinstance(cell_size, bool) or not isinstance(cell_size, int) or cell_size <= 0 \
                or cell_size % largest_stride:
            raise ValueError(f"cell_size must be a positive multiple of {largest_stride}, got {cell_size!r}")
        self.mask_ratio = check_fraction("mask_ratio", mask_ratio, open_low=True, open_high=True)
        check_int("decoder_channels", decoder_channels)
        self.cell_size = cell_size
        self.body = body
        self.decoder = SparKDecoder(body.stage_channels, body.stage_strides, decoder_channels)

    def masked_cell_count(self, height: int, width: int) -> int:
        """Cells masked per sample on a ``height`` x ``width`` image: ``round(mask_ratio * cells)``."""
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % self.cell_size:
                raise ValueError(f"{name} must be a positive multiple of cell_size {self.cell_size}, got {value!r}")
        cells = (height // self.cell_size) * (width // self.cell_size)
        count = round(self.mask_ratio * cells)
        if not 0 < count < cells:
            raise ValueError(f"mask_ratio {self.mask_ratio} masks {count} of the {cells} cells of a {height} x "
                             f"{width} image: at least one cell must be masked and one visible")
        return count

    def sample_mask(self, n: int, height: int, width: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> Tensor:
        """Random cell masks, independent per sample, with exactly :meth:`masked_cell_count` masked cells.

        Args:
            n: number of samples.
            height, width: image size in px (multiples of ``cell_size``).
            generator: random generator on ``device``; None uses torch's default one.
            device: where the mask is made.

        Returns:
            (n, 1, height / cell_size, width / cell_size) bool, True = visible.
        """
        check_int("n", n)
        count = self.masked_cell_count(height, width)
        rows, columns = height // self.cell_size, width // self.cell_size
        order = torch.rand(n, rows * columns, generator=generator, device=device).argsort(dim=1)
        visible = torch.ones(n, rows * columns, dtype=torch.bool, device=order.device)
        visible.scatter_(1, order[:, :count], False)
        return visible.view(n, 1, rows, columns)

    def forward(self, x: Tensor, visible_cells: Tensor) -> Tensor:
        """Reconstruct images from their visible cells.

        Args:
            x: (N, 1, H, W) images in the model range [-1, 1].
            visible_cells: (N, 1, H / cell_size, W / cell_size) bool, True = visible.

        Returns:
            (N, 1, H, W) reconstruction (model range).
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"x must have shape (N, 1, H, W), got {tuple(x.shape)!r}")
        expected = (x.shape[0], 1, x.shape[2] // self.cell_size, x.shape[3] // self.cell_size)
        if tuple(visible_cells.shape) != expected:
            raise ValueError(f"visible_cells must have shape {expected!r} for x of shape {tuple(x.shape)!r}, "
                             f"got {tuple(visible_cells.shape)!r}")
        return self.decoder(sparse_stage_features(self.body, x, visible_cells), visible_cells)

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """MSE on the masked cells of a reconstruction from randomly masked slices.

        Args:
            images: (N, 1, H, W) healthy slices in [0, 1]; H, W multiples of ``cell_size``.
            generator: random generator on the images' device for the masks; None uses torch's
                default one (a fixed one makes the loss deterministic).

        Returns:
            scalar float32 loss (target: the slices in [-1, 1], not normalised per cell).
        """
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)!r}")
        x = to_model_range(images)
        visible_cells = self.sample_mask(x.shape[0], x.shape[2], x.shape[3], generator, x.device)
        return masked_mse(self(x, visible_cells), x, expand_cells(visible_cells, x.shape[-2:]))

def load_body_weights(body: ResNetBody, path: str | Path) -> None:
    """Load SparK pre-trained body weights (safetensors, never unpickled) into ``body`` in place.

    SparK pre-trains a 1-channel body. A body of C > 1 input channels (the 2.5-D cDDPM's encoder,
    a slice and its neighbours) gets the stem convolution's kernel inflated: repeated over the C
    channels and divided by C, so that a stack of C copies of one slice gives the stem output the
    pre-trained body gives that slice (the rest of the body loads unchanged).

    Raises:
        InputError: the file is missing or unreadable, or its tensors do not match the body's
            keys and shapes (e.g. pre-trained with another depth).
    """
    state = load_weights(path)
    stem = state.get("conv1.weight")
    if body.in_channels > 1 and stem is not None and stem.ndim == 4 and stem.shape[1] == 1:
        state = {**state, "conv1.weight": stem.repeat(1, body.in_channels, 1, 1) / body.in_channels}
    expected = body.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
                for key, value in expected.items() if key in state and state[key].shape != value.shape]
    if missing or unexpected or reshaped:
        raise InputError(path, f"does not hold the weights of this encoder body ({len(missing)} keys missing, e.g. "
                               f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}; "
                               f"{len(reshaped)} of another shape, e.g. {reshaped[:2]})",
                         "pre-train with the same encoder.depth as the cDDPM that loads it")
    body.load_state_dict(state)


class SparKConfig(Section):
    """SparK masked-image pre-training of the encoder (method.md §3)."""

    cell_size: int = Field(32, ge=1)
    mask_ratio: float = Field(0.65, gt=0, lt=1)
    decoder_channels: int = Field(64, ge=1)


class SparKRunConfig(RunConfigBase):
    """SparK pre-training of the cDDPM's encoder body (``brainuad pretrain``)."""

    method: Literal["spark"] = "spark"
    encoder: EncoderConfig = EncoderConfig()
    spark: SparKConfig = SparKConfig()
    train: TrainConfig = TrainConfig(lr=LEARNING_RATE)


def build_spark(config: SparKRunConfig, load_pretrained: bool) -> SparKPretrainer:
    """The SparK objective around a fresh encoder body of the configured depth."""
    body = ImageEncoder(depth=config.encoder.depth, out_dim=config.encoder.dim).body
    return SparKPretrainer(body, cell_size=config.spark.cell_size, mask_ratio=config.spark.mask_ratio,
                           decoder_channels=config.spark.decoder_channels)


def body_weights(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The encoder body's tensors of a pretrainer's state dict, under the body's own key names."""
    return {key.removeprefix("body."): value for key, value in state.items() if key.startswith("body.")}


SPARK_SPEC = MethodSpec("spark", SparKRunConfig, build_spark, "SparK pre-training of the cDDPM's encoder",
                        optimizer=OptimizerSettings("adamw", WEIGHT_DECAY, BETAS), detector=False,
                        weights_file=ENCODER_FILE, export=body_weights)
