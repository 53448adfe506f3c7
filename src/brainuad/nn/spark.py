"""SparK's sparse encoder view and light decoder (paper §3.3, method.md §3); the pre-training
objective that uses them is :class:`brainuad.methods.spark.SparKPretrainer`.

SparK (Tian et al. 2023, "Designing BERT for convolutional networks") masks a random subset of
image cells and trains a CNN encoder plus a light hierarchical decoder to reconstruct them. The
encoder runs *sparsely*: masked cells behave as if absent, so it cannot copy their pixels.

Here the sparse view is made from the body's own modules (its weights are the ones trained and
saved, under the body's own state_dict key names) by forward hooks installed for one call:

- the input is zeroed in masked cells;
- every ``Conv2d`` and ``MaxPool2d`` output is masked again at its resolution (masked positions
  set to zero), so masked positions are exactly zero after every layer and a visible position
  next to a masked cell reads only zeros there;
- every ``BatchNorm2d`` is applied to the visible positions only (gathered to a
  ``(P, C, 1, 1)`` batch before the module runs and scattered back into zeros after), so its
  batch statistics and its running-statistics update see visible positions only, with the
  module's own weight, bias, momentum and buffers.

The ReLUs of the body are functional and map zeros to zeros. Cells are square, ``cell_size`` px,
a multiple of the body's largest stride (32), so the cell grid maps exactly onto every feature
map (32 px cells -> 8, 4, 2, 1 px at strides 4, 8, 16, 32 on a 96 px slice).

Reconstruction target: the slice in the model range [-1, 1] (the cDDPM feeds its encoder the
clean slice on that scale), *not* normalised per cell. SparK's per-patch normalisation divides
by the cell's standard deviation; on skull-stripped MRI many cells are (nearly) constant
background, where that division would blow tiny intensity differences up into large targets.
The slices are already normalised per scan to [0, 1] (method.md §2).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from brainuad.checks import check_int
from brainuad.nn.encoders import ResNetBody

__all__ = [
    "SparKDecoder",
    "expand_cells",
    "masked_mse",
    "sparse_stage_features",
]


def expand_cells(cells: Tensor, size: Sequence[int]) -> Tensor:
    """A cell-grid mask at a feature-map resolution: each cell becomes a block of pixels.

    Args:
        cells: (N, 1, gh, gw) bool, one value per cell.
        size: (h, w), multiples of (gh, gw).

    Returns:
        (N, 1, h, w) bool.
    """
    if cells.ndim != 4 or cells.shape[1] != 1 or cells.dtype != torch.bool:
        raise ValueError(f"cells must be a bool tensor of shape (N, 1, gh, gw), got {cells.dtype} "
                         f"{tuple(cells.shape)!r}")
    height, width = int(size[0]), int(size[1])
    rows, columns = cells.shape[-2:]
    if height % rows or width % columns:
        raise ValueError(f"size must be a multiple of the cell grid {(rows, columns)}, got {(height, width)!r}")
    return cells.repeat_interleave(height // rows, dim=2).repeat_interleave(width // columns, dim=3)


class _SparseHooks:
    """Forward hooks that make a body's layers ignore masked cells (see the module docstring).

    Args:
        visible_cells: (N, 1, gh, gw) bool, True where a cell is visible.
    """

    def __init__(self, visible_cells: Tensor) -> None:
        self.visible_cells = visible_cells
        self._by_size: dict[tuple[int, int], Tensor] = {}
        self._gathered: dict[nn.Module, tuple[Tensor, Tensor]] = {}

    def visible(self, size: Sequence[int]) -> Tensor:
        """The visible mask (N, 1, h, w) at resolution ``size``."""
        key = (int(size[0]), int(size[1]))
        if key not in self._by_size:
            self._by_size[key] = expand_cells(self.visible_cells, key)
        return self._by_size[key]

    def remask(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        """Forward hook of a conv / pooling: masked positions of its output set to zero."""
        return output.masked_fill(~self.visible(output.shape[-2:]), 0)

    def gather(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor]:
        """Forward pre-hook of a BatchNorm: (N, C, H, W) -> its visible positions as (P, C, 1, 1)."""
        (x,) = inputs
        visible = self.visible(x.shape[-2:])[:, 0]
        self._gathered[module] = (x, visible)
        return (x.permute(0, 2, 3, 1)[visible][:, :, None, None],)

    def scatter(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        """Forward hook of a BatchNorm: (P, C, 1, 1) -> (N, C, H, W), zero at masked positions.

        The dense output keeps the memory format of the BatchNorm's input (e.g. channels-last).
        """
        x, visible = self._gathered.pop(module)
        dense = torch.zeros_like(x, dtype=output.dtype)
        dense.permute(0, 2, 3, 1)[visible] = output.flatten(1)
        return dense


@contextmanager
def _sparse(body: nn.Module, visible_cells: Tensor) -> Iterator[None]:
    """Within the context, ``body``'s convs, poolings and BatchNorms run sparsely; hooks removed after."""
    hooks = _SparseHooks(visible_cells)
    handles = []
    try:
        for module in body.modules():
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
                handles.append(module.register_forward_hook(hooks.remask))
            elif isinstance(module, nn.BatchNorm2d):
                handles.append(module.register_forward_pre_hook(hooks.gather))
                handles.append(module.register_forward_hook(hooks.scatter))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_visible_cells(visible_cells: Tensor, batch: int, height: int, width: int, multiple: int) -> None:
    if visible_cells.ndim != 4 or visible_cells.shape[:2] != (batch, 1) or visible_cells.dtype != torch.bool:
        raise ValueError(f"visible_cells must be a bool tensor of shape ({batch}, 1, gh, gw), got "
                         f"{visible_cells.dtype} {tuple(visible_cells.shape)!r}")
    rows, columns = visible_cells.shape[-2:]
    if height % rows or width % columns or (height // rows) % multiple or (width // columns) % multiple:
        raise ValueError(f"visible_cells grid {(rows, columns)} must divide the {height} x {width} image into "
                         f"cells whose sides are multiples of {multiple} px")


def sparse_stage_features(body: ResNetBody, x: Tensor, visible_cells: Tensor) -> list[Tensor]:
    """The body's 4 stage outputs computed as if the masked cells were absent.

    Masked positions are exactly zero in every stage output, and features at visible positions
    do not depend on the pixels of masked cells (in train and eval mode). BatchNorm running
    statistics are updated from visible positions only (train mode).

    Args:
        body: the encoder body; its own modules (and weights) are used.
        x: (N, 1, H, W) images (model range [-1, 1]).
        visible_cells: (N, 1, gh, gw) bool, True = visible; the cell sides H / gh and W / gw must
            be multiples of the body's largest stride (32).

    Returns:
        4 tensors (N, body.stage_channels[i], H / s_i, W / s_i), s_i = body.stage_strides[i].
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must have shape (N, 1, H, W), got {tuple(x.shape)!r}")
    _check_visible_cells(visible_cells, x.shape[0], x.shape[2], x.shape[3], body.stage_strides[-1])
    if not bool(visible_cells.any()):
        raise ValueError("visible_cells shows no cell: BatchNorm statistics need visible positions")
    x = x.masked_fill(~expand_cells(visible_cells, x.shape[-2:]), 0)
    with _sparse(body, visible_cells):
        return body.stage_features(x)


def masked_mse(prediction: Tensor, target: Tensor, visible: Tensor) -> Tensor:
    """Mean squared error over the masked (not visible) pixels only, in float32.

    Args:
        prediction: (N, C, H, W) reconstruction.
        target: (N, C, H, W) image.
        visible: (N, 1, H, W) bool, True = visible (excluded from the loss).

    Returns:
        scalar: mean of ``(prediction - target) ** 2`` over masked pixels of all samples.
    """
    if prediction.shape != target.shape or prediction.ndim != 4:
        raise ValueError(f"prediction and target must have the same (N, C, H, W) shape, got "
                         f"{tuple(prediction.shape)!r} and {tuple(target.shape)!r}")
    if visible.dtype != torch.bool or visible.shape != (target.shape[0], 1, *target.shape[2:]):
        raise ValueError(f"visible must be a bool tensor of shape {(target.shape[0], 1, *target.shape[2:])!r}, "
                         f"got {visible.dtype} {tuple(visible.shape)!r}")
    masked = (~visible).expand_as(target)
    if not bool(masked.any()):
        raise ValueError("visible masks no pixel: the loss over masked pixels is undefined")
    return (prediction.float() - target.float())[masked].square().mean()


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """x2 nearest upsampling, then twice conv 3x3 -> BatchNorm -> ReLU; (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SparKDecoder(nn.Module):
    """Light hierarchical (UNet-like) decoder of sparse stage features to a 1-channel image.

    Masked positions of each stage are filled with that stage's learned mask token (a [C_i]
    vector) and projected (1x1 conv) to ``width`` channels. Decoding starts at the deepest stage;
    each up block (x2 upsampling + two conv-BN-ReLU) is followed by adding the next shallower
    stage; after the shallowest stage further up blocks reach the input resolution, and a 1x1
    conv gives the image.

    Args:
        stage_channels: channels C_i of the encoder stages, shallow to deep.
        stage_strides: their strides w.r.t. the input, each twice the previous, the first a power of 2.
        width: channels of the decoder.
    """

    def __init__(self, stage_channels: Sequence[int], stage_strides: Sequence[int], width: int = 64) -> None:
        super().__init__()
        check_int("width", width)
        if not stage_channels or len(stage_channels) != len(stage_strides):
            raise ValueError(f"stage_channels and stage_strides must be non-empty and of equal length, got "
                             f"{tuple(stage_channels)!r} and {tuple(stage_strides)!r}")
        first = stage_strides[0]
        if first < 1 or first & (first - 1) or any(b != 2 * a for a, b in zip(stage_strides, stage_strides[1:])):
            raise ValueError(f"stage_strides must start at a power of 2 and double at each stage, got "
                             f"{tuple(stage_strides)!r}")
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(channels)) for channels in stage_channels)
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02, a=-0.02, b=0.02)
        self.projections = nn.ModuleList(nn.Conv2d(channels, width, 1) for channels in stage_channels)
        blocks = len(stage_channels) - 1 + int(math.log2(first))
        self.up_blocks = nn.ModuleList(_up_block(width, width) for _ in range(blocks))
        self.output = nn.Conv2d(width, 1, 1)

    def forward(self, features: Sequence[Tensor], visible_cells: Tensor) -> Tensor:
        """Decode.

        Args:
            features: per stage (N, C_i, H / s_i, W / s_i), zero at masked positions.
            visible_cells: (N, 1, gh, gw) bool, True = visible.

        Returns:
            (N, 1, H, W) reconstruction.
        """
        if len(features) != len(self.projections):
            raise ValueError(f"features must hold {len(self.projections)} stages, got {len(features)}")
        dense = [
            torch.where(expand_cells(visible_cells, feature.shape[-2:]), feature, token[:, None, None])
            for feature, token in zip(features, self.mask_tokens)
        ]
        h = self.projections[-1](dense[-1])
        for index, block in enumerate(self.up_blocks):
            h = block(h)
            stage = len(dense) - 2 - index
            if stage >= 0:
                h = h + self.projections[stage](dense[stage])
        return self.output(h)
