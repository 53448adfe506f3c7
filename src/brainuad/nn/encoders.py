"""Image encoder F_enc of the cDDPM: a ResNet body (1 input channel; the 2.5-D cDDPM's sees a
slice and its neighbours as channels) and a linear head to d.

Paper §3.2/§4.3: "a ResNet-backbone with a fully connected layer to match the target
dimension of c in R^d". ResNet: He et al. (2016); stride on the 3x3 conv of the bottleneck
("v1.5" layout), BatchNorm, no bias on convolutions.

Built for SparK masked pre-training (paper §3.3): every convolution, BatchNorm and pooling
is its own named submodule (never a functional call, never shared), so a pre-training module
can swap them for masked versions and re-mask their outputs; ReLU is applied functionally
(it maps zeros to zeros). The body (:class:`ResNetBody`) holds no head, so its state_dict
can be saved after pre-training and loaded into ``ImageEncoder.body`` while the head to d
starts fresh.
"""

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from brainuad.checks import check_int

__all__ = ["BasicBlock", "Bottleneck", "ImageEncoder", "ResNetBody"]

Depth = Literal[18, 34, 50]

_STAGE_WIDTHS = (64, 128, 256, 512)
_STAGE_STRIDES = (1, 2, 2, 2)
_STEM_CHANNELS = 64


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv + BatchNorm projection when the shape changes, None (identity) otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34). x: (N, C_in, H, W) -> (N, width, H / stride, W / stride).

    Args:
        in_channels: input channels C_in.
        width: output channels (expansion 1).
        stride: stride of the first conv (1 or 2).
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(in_channels, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, H, W) -> (N, width, H / stride, W / stride)."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(h + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convs (ResNet-50), expansion 4.

    Args:
        in_channels: input channels C_in.
        width: channels of the 3x3 conv; output channels are 4 * width.
        stride: stride of the 3x3 conv (1 or 2).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C_in, H, W) -> (N, 4 * width, H / stride, W / stride)."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(h + identity)


_ARCHITECTURES: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
}


class ResNetBody(nn.Module):
    """ResNet body for images of ``in_channels`` channels: stem, 4 stages, global average pooling.

    Stem: conv 7x7 stride 2 (``conv1``) -> BatchNorm (``bn1``) -> ReLU -> max-pool 3x3
    stride 2 (``maxpool``); stages ``layer1`` .. ``layer4`` at strides 4, 8, 16, 32; global
    average pooling (``avgpool``). On a 96 x 96 slice the stages are 24, 12, 6 and 3 px.

    Attributes:
        stage_channels: output channels of the 4 stages ((64, 128, 256, 512) for depth
            18/34, (256, 512, 1024, 2048) for depth 50).
        stage_strides: downsampling factor of each stage output w.r.t. the input, (4, 8, 16, 32).
        out_channels: width of the pooled feature vector (= stage_channels[-1]).
        in_channels: channels of the input images.

    Args:
        depth: 18, 34 (BasicBlock) or 50 (Bottleneck).
        in_channels: input channels (1: a slice; the paper's encoder).
    """

    def __init__(self, depth: Depth = 50, in_channels: int = 1) -> None:
        super().__init__()
        if depth not in _ARCHITECTURES:
            raise ValueError(f"depth must be one of 18, 34, 50, got {depth!r}")
        block, counts = _ARCHITECTURES[depth]
        self.in_channels = check_int("in_channels", in_channels)
        self.conv1 = nn.Conv2d(in_channels, _STEM_CHANNELS, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(_STEM_CHANNELS)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = _STEM_CHANNELS
        stages = []
        for width, stride, count in zip(_STAGE_WIDTHS, _STAGE_STRIDES, counts, strict=True):
            blocks = []
            for index in range(count):
                blocks.append(block(channels, width, stride if index == 0 else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.stage_channels = tuple(width * block.expansion for width in _STAGE_WIDTHS)
        self.stage_strides = (4, 8, 16, 32)
        self.out_channels = self.stage_channels[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stage_features(self, x: Tensor) -> list[Tensor]:
        """Outputs of the 4 stages.

        Args:
            x: (N, in_channels, H, W) images.

        Returns:
            4 tensors (N, stage_channels[i], ceil(H / s_i), ceil(W / s_i)),
            s_i = stage_strides[i].
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)!r}")
        h = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = stage(h)
            features.append(h)
        return features

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_channels, H, W) -> globally average-pooled features (N, out_channels)."""
        return self.avgpool(self.stage_features(x)[-1]).flatten(1)


class ImageEncoder(nn.Module):
    """F_enc: ResNet body + linear head, x0 -> context vector c in R^d (paper §3.2).

    ``encoder.body`` is the :class:`ResNetBody` (load SparK pre-trained weights into it with
    ``encoder.body.load_state_dict``); ``encoder.head`` is ``Linear(body.out_channels, d)``.

    Args:
        depth: ResNet depth, 18, 34 or 50 (paper: 50).
        out_dim: width d of the context vector (paper: 128; authors' code: 512).
        in_channels: input channels (paper: 1, the slice; the 2.5-D cDDPM: 2k + 1 slices).
    """

    def __init__(self, depth: Depth = 50, out_dim: int = 128, in_channels: int = 1) -> None:
        super().__init__()
        self.out_dim = check_int("out_dim", out_dim)
        self.body = ResNetBody(depth, in_channels)
        self.head = nn.Linear(self.body.out_channels, out_dim)

    @property
    def in_channels(self) -> int:
        """Channels of the input images."""
        return self.body.in_channels

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, in_channels, H, W) clean (noise-free) slices -> context vectors c: (N, out_dim)."""
        return self.head(self.body(x))
