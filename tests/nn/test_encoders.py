"""Tests of brainuad.nn.encoders against MONAI's ResNet (an independent implementation)."""

import pytest
import torch
from monai.networks.nets import ResNet
from torch import nn

from brainuad.nn.encoders import ImageEncoder, ResNetBody

# depth -> (MONAI block name, blocks per stage, stage channels, number of convs / BatchNorms)
ARCHITECTURES = {
    18: ("basic", [2, 2, 2, 2], (64, 128, 256, 512), 20),
    34: ("basic", [3, 4, 6, 3], (64, 128, 256, 512), 36),
    50: ("bottleneck", [3, 4, 6, 3], (256, 512, 1024, 2048), 53),
}


def _monai_resnet(depth: int) -> ResNet:
    block, layers, _, _ = ARCHITECTURES[depth]
    return ResNet(
        block,
        layers,
        [64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=1,
        conv1_t_size=7,
        conv1_t_stride=2,
        feed_forward=False,
        bias_downsample=False,
    )


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_output_and_stage_shapes_on_96px_slices(depth: int) -> None:
    encoder = ImageEncoder(depth=depth, out_dim=128).eval()
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        assert encoder(x).shape == (2, 128)
        stages = encoder.body.stage_features(x)
    channels = ARCHITECTURES[depth][2]
    assert encoder.body.stage_channels == channels
    assert encoder.body.out_channels == channels[-1]
    assert [tuple(f.shape) for f in stages] == [
        (2, channels[0], 24, 24),
        (2, channels[1], 12, 12),
        (2, channels[2], 6, 6),
        (2, channels[3], 3, 3),
    ]
    assert [96 // s for s in encoder.body.stage_strides] == [24, 12, 6, 3]


@pytest.mark.parametrize("depth", [18, 50])
def test_body_matches_monai_resnet(depth: int) -> None:
    body = ResNetBody(depth).eval()
    reference = _monai_resnet(depth).eval()
    reference.load_state_dict(body.state_dict(), strict=True)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(body(x), reference(x))


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_parameter_count_matches_monai_resnet(depth: int) -> None:
    ours = sum(p.numel() for p in ResNetBody(depth).parameters())
    theirs = sum(p.numel() for p in _monai_resnet(depth).parameters())
    assert ours == theirs


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_every_conv_and_norm_is_a_distinct_named_module(depth: int) -> None:
    body = ResNetBody(depth)
    all_entries = list(body.named_modules(remove_duplicate=False))
    assert len(all_entries) == len(list(body.named_modules()))
    expected = ARCHITECTURES[depth][3]
    assert sum(isinstance(m, nn.Conv2d) for _, m in all_entries) == expected
    assert sum(isinstance(m, nn.BatchNorm2d) for _, m in all_entries) == expected
    assert isinstance(body.maxpool, nn.MaxPool2d)
    assert isinstance(body.avgpool, nn.AdaptiveAvgPool2d)


def test_body_state_dict_excludes_head_and_loads_into_fresh_encoder() -> None:
    pretrained = ImageEncoder(depth=18, out_dim=32)
    body_state = pretrained.body.state_dict()
    assert not any("head" in key for key in body_state)
    assert set(pretrained.state_dict()) == {f"body.{key}" for key in body_state} | {
        "head.weight",
        "head.bias",
    }

    fresh = ImageEncoder(depth=18, out_dim=64)
    fresh.body.load_state_dict(body_state, strict=True)
    x = torch.randn(2, 1, 32, 32)
    pretrained.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh.body(x), pretrained.body(x))
        assert fresh(x).shape == (2, 64)


def test_encoder_is_differentiable_end_to_end() -> None:
    encoder = ImageEncoder(depth=18, out_dim=8)
    encoder(torch.randn(2, 1, 32, 32)).sum().backward()
    assert torch.count_nonzero(encoder.body.conv1.weight.grad) > 0
    assert torch.count_nonzero(encoder.head.weight.grad) > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 101}, "depth must be one of 18, 34, 50, got 101"),
        ({"out_dim": 0}, "out_dim must be a positive integer, got 0"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImageEncoder(**kwargs)


def test_rejects_multichannel_input() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, H, W\)"):
        ImageEncoder(depth=18)(torch.randn(2, 3, 32, 32))
