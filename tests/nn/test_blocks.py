"""Tests of brainuad.nn.embeddings and brainuad.nn.blocks."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from brainuad.nn.blocks import AttentionBlock, ResBlock
from brainuad.nn.embeddings import (
    MLP,
    TimeConditioning,
    TimeContextConditioning,
    TimeEmbedding,
    timestep_embedding,
)


def _perturb(module: nn.Module, std: float = 0.1) -> None:
    """Overwrite every parameter with Gaussian noise (undoes zero-initialisation)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


# --- timestep embedding -------------------------------------------------------------------


def test_timestep_embedding_matches_closed_form() -> None:
    t = np.array([0.0, 1.0, 17.0, 250.0, 999.0])
    dim = 8
    half = dim // 2
    frequencies = np.array([10000.0 ** (-k / half) for k in range(half)])
    expected = np.concatenate(
        [np.cos(t[:, None] * frequencies), np.sin(t[:, None] * frequencies)], axis=1
    )
    got = timestep_embedding(torch.tensor(t, dtype=torch.float32), dim)
    assert got.shape == (5, 8)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_timestep_embedding_of_zero_is_cos_one_sin_zero() -> None:
    got = timestep_embedding(torch.zeros(3), 6)
    expected = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]).expand(3, 6)
    torch.testing.assert_close(got, expected)


def test_timestep_embedding_int_and_float_steps_agree() -> None:
    steps = [0, 5, 499, 999]
    torch.testing.assert_close(
        timestep_embedding(torch.tensor(steps), 16),
        timestep_embedding(torch.tensor(steps, dtype=torch.float64), 16),
    )


@pytest.mark.parametrize(
    ("t", "dim", "match"),
    [
        (torch.zeros(2, 1), 8, "t must have shape"),
        (torch.zeros(2), 7, "dim must be even"),
        (torch.zeros(2), 0, "dim must be a positive integer"),
    ],
)
def test_timestep_embedding_rejects_bad_arguments(t: torch.Tensor, dim: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        timestep_embedding(t, dim)


def test_timestep_embedding_rejects_bad_max_period() -> None:
    with pytest.raises(ValueError, match="max_period"):
        timestep_embedding(torch.zeros(2), 8, max_period=0.0)


# --- MLP I and conditioning strategies ----------------------------------------------------


def test_time_embedding_shape_and_mlp_layout() -> None:
    embedding = TimeEmbedding(sinusoid_dim=32, out_dim=48)
    assert embedding(torch.tensor([1, 500, 999])).shape == (3, 48)
    assert embedding.mlp.fc1.in_features == 32
    assert embedding.mlp.fc2.out_features == 48


def test_time_embedding_rejects_odd_sinusoid_dim() -> None:
    with pytest.raises(ValueError, match="sinusoid_dim must be even"):
        TimeEmbedding(sinusoid_dim=31, out_dim=8)


def test_mlp_rejects_non_positive_width() -> None:
    with pytest.raises(ValueError, match="out_dim"):
        MLP(4, 0)


def test_time_conditioning_rejects_context() -> None:
    conditioning = TimeConditioning(TimeEmbedding(16, 24))
    assert conditioning(torch.tensor([3, 4]), None).shape == (2, 24)
    assert conditioning.out_dim == 24
    with pytest.raises(ValueError, match="context must be None"):
        conditioning(torch.tensor([3, 4]), torch.zeros(2, 8))


def test_time_context_conditioning_concatenates_context_then_time() -> None:
    time_embedding = TimeEmbedding(16, 8)
    conditioning = TimeContextConditioning(time_embedding, context_dim=8, context_mlp=None)
    t = torch.tensor([10, 700])
    context = torch.randn(2, 8)
    emb = conditioning(t, context)
    assert conditioning.out_dim == 16
    assert emb.shape == (2, 16)
    torch.testing.assert_close(emb[:, :8], context)
    torch.testing.assert_close(emb[:, 8:], time_embedding(t))


def test_time_context_conditioning_with_context_mlp() -> None:
    context_mlp = MLP(8, 12)
    conditioning = TimeContextConditioning(TimeEmbedding(16, 12), 8, context_mlp)
    context = torch.randn(2, 8)
    emb = conditioning(torch.tensor([1, 2]), context)
    assert conditioning.out_dim == 24
    torch.testing.assert_close(emb[:, :12], context_mlp(context))


@pytest.mark.parametrize(
    ("context", "match"),
    [
        (None, "context is required"),
        (torch.zeros(2, 5), r"context must have shape \(N, 8\)"),
        (torch.zeros(3, 8), "batch size"),
    ],
)
def test_time_context_conditioning_rejects_bad_context(
    context: torch.Tensor | None, match: str
) -> None:
    conditioning = TimeContextConditioning(TimeEmbedding(16, 8), 8, None)
    with pytest.raises(ValueError, match=match):
        conditioning(torch.tensor([1, 2]), context)


def test_time_context_conditioning_rejects_mismatched_mlp() -> None:
    with pytest.raises(ValueError, match="context_mlp.in_dim"):
        TimeContextConditioning(TimeEmbedding(16, 8), 8, MLP(4, 8))


# --- ResBlock -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "resample", "size_out"),
    [
        (16, 16, "none", 8),
        (16, 32, "none", 8),
        (32, 16, "down", 4),
        (16, 16, "up", 16),
    ],
)
def test_resblock_shapes_and_skip(
    in_channels: int, out_channels: int, resample: str, size_out: int
) -> None:
    block = ResBlock(in_channels, out_channels, emb_dim=12, groups=8, resample=resample)
    out = block(torch.randn(2, in_channels, 8, 8), torch.randn(2, 12))
    assert out.shape == (2, out_channels, size_out, size_out)
    if in_channels == out_channels:
        assert isinstance(block.skip, nn.Identity)
    else:
        assert isinstance(block.skip, nn.Conv2d)
        assert block.skip.kernel_size == (1, 1)
    assert block.film[1].in_features == 12
    assert block.film[1].out_features == 2 * out_channels


@pytest.mark.parametrize(
    ("resample", "reference"),
    [
        ("none", lambda x: x),
        ("down", lambda x: F.avg_pool2d(x, 2)),
        ("up", lambda x: x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)),
    ],
)
def test_resblock_is_resampled_skip_at_initialisation(resample: str, reference) -> None:
    block = ResBlock(16, 16, emb_dim=4, groups=4, resample=resample)
    x = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(block(x, torch.randn(2, 4)), reference(x))
    assert torch.count_nonzero(block.conv2.weight) == 0


def test_resblock_film_matches_scale_shift_formula() -> None:
    torch.manual_seed(0)
    block = ResBlock(8, 16, emb_dim=6, groups=4)
    _perturb(block)
    x = torch.randn(3, 8, 5, 5)
    emb = torch.randn(3, 6)
    h = F.group_norm(x, 4, block.norm1.weight, block.norm1.bias)
    h = F.conv2d(F.silu(h), block.conv1.weight, block.conv1.bias, padding=1)
    projection = F.linear(F.silu(emb), block.film[1].weight, block.film[1].bias)
    gamma, beta = projection[:, :16, None, None], projection[:, 16:, None, None]
    h = F.group_norm(h, 4, block.norm2.weight, block.norm2.bias) * (1 + gamma) + beta
    h = F.conv2d(F.silu(h), block.conv2.weight, block.conv2.bias, padding=1)
    expected = F.conv2d(x, block.skip.weight, block.skip.bias) + h
    torch.testing.assert_close(block(x, emb), expected)


def test_resblock_embedding_changes_output_once_perturbed() -> None:
    block = ResBlock(8, 8, emb_dim=6, groups=4)
    _perturb(block)
    x = torch.randn(1, 8, 4, 4).expand(2, -1, -1, -1)
    out = block(x, torch.randn(2, 6))
    assert not torch.allclose(out[0], out[1])


def test_resblock_zero_initialised_conv_receives_gradient() -> None:
    block = ResBlock(8, 8, emb_dim=6, groups=4)
    block(torch.randn(2, 8, 4, 4), torch.randn(2, 6)).square().sum().backward()
    assert block.conv2.weight.grad is not None
    assert torch.count_nonzero(block.conv2.weight.grad) > 0


def test_resblock_accepts_channels_last() -> None:
    block = ResBlock(8, 16, emb_dim=6, groups=4, resample="down")
    _perturb(block)
    x = torch.randn(2, 8, 8, 8)
    emb = torch.randn(2, 6)
    torch.testing.assert_close(
        block(x.contiguous(memory_format=torch.channels_last), emb), block(x, emb)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 12}, "in_channels=12 is not divisible by groups=8"),
        ({"out_channels": 20}, "out_channels=20 is not divisible by groups=8"),
        ({"groups": 0}, "groups must be a positive integer"),
        ({"emb_dim": 0}, "emb_dim must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"resample": "sideways"}, "resample must be one of"),
    ],
)
def test_resblock_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    arguments = {"in_channels": 16, "out_channels": 16, "emb_dim": 4, "groups": 8}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ResBlock(**arguments)


def test_resblock_rejects_bad_inputs() -> None:
    block = ResBlock(8, 8, emb_dim=6, groups=4)
    with pytest.raises(ValueError, match="x must have shape"):
        block(torch.randn(2, 4, 4, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match="emb must have shape"):
        block(torch.randn(2, 8, 4, 4), torch.randn(2, 5))


# --- AttentionBlock -----------------------------------------------------------------------


def test_attention_heads_from_channels_per_head() -> None:
    assert AttentionBlock(256, head_channels=64).num_heads == 4
    assert AttentionBlock(128, head_channels=64).num_heads == 2


def test_attention_is_identity_at_initialisation() -> None:
    block = AttentionBlock(32, head_channels=16, groups=8)
    x = torch.randn(2, 32, 5, 5)
    torch.testing.assert_close(block(x), x)


def _reference_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """Explicit per-head softmax attention, q/k/v as consecutive channel thirds of qkv."""
    n, c, height, width = x.shape
    normed = F.group_norm(x, block.norm.num_groups, block.norm.weight, block.norm.bias)
    qkv = F.conv2d(normed, block.qkv.weight, block.qkv.bias).reshape(n, 3 * c, -1)
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
    heads = []
    d = block.head_channels
    for head in range(c // d):
        channels = slice(head * d, (head + 1) * d)
        scores = torch.einsum("ncq,nck->nqk", q[:, channels], k[:, channels]) / math.sqrt(d)
        heads.append(torch.einsum("nqk,nck->ncq", scores.softmax(dim=-1), v[:, channels]))
    attended = torch.cat(heads, dim=1).reshape(n, c, height, width)
    return x + F.conv2d(attended, block.proj.weight, block.proj.bias)


def test_attention_matches_explicit_multi_head_attention() -> None:
    block = AttentionBlock(32, head_channels=8, groups=8)
    _perturb(block, std=0.3)
    x = torch.randn(2, 32, 4, 3)
    torch.testing.assert_close(block(x), _reference_attention(block, x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        block(x.contiguous(memory_format=torch.channels_last)), block(x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 48, "head_channels": 32}, "not divisible by head_channels=32"),
        ({"channels": 36, "head_channels": 4}, "not divisible by groups=8"),
        ({"channels": 32, "head_channels": 0}, "head_channels must be a positive integer"),
    ],
)
def test_attention_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AttentionBlock(groups=8, **kwargs)


def test_attention_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="x must have shape"):
        AttentionBlock(32, head_channels=16, groups=8)(torch.randn(1, 16, 4, 4))
