"""Tests of brainuad.nn.unet: shapes, paper-size parameter counts, conditioning, errors."""

import pytest
import torch
from torch import nn

from brainuad.nn.blocks import AttentionBlock, ResBlock
from brainuad.nn.embeddings import TimeConditioning, TimeContextConditioning
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet

TINY = {"base_channels": 32, "groups": 8, "num_res_blocks": 1, "attention_head_channels": 32}
CONTEXT_DIM = 16
VARIANTS = {
    "unconditioned": {},
    "paper": {"context_dim": CONTEXT_DIM},
    "authors": {"context_dim": CONTEXT_DIM, "context_mlp": True},
}


def _count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _perturb_zero_initialised(net: UNet, std: float = 0.05) -> None:
    """Give the zero-initialised convs random weights so every path is live."""
    generator = torch.Generator().manual_seed(2)
    zero_convs = [net.output_conv, net.middle_attention.proj]
    zero_convs += [module.conv2 for module in net.modules() if isinstance(module, ResBlock)]
    with torch.no_grad():
        for conv in zero_convs:
            for parameter in conv.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def _context(net: UNet, batch: int) -> torch.Tensor | None:
    return None if net.context_dim is None else torch.randn(batch, net.context_dim)


# --- construction and shapes --------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shape(variant: str) -> None:
    net = UNet(in_channels=1, out_channels=2, **TINY, **VARIANTS[variant])
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    out = net(x, torch.tensor([0, 500, 999]), _context(net, 3))
    assert out.shape == (3, 2, 32, 32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_is_zero_at_initialisation(variant: str) -> None:
    net = UNet(**TINY, **VARIANTS[variant])
    out = net(torch.randn(2, 1, 16, 16), torch.tensor([3, 4]), _context(net, 2))
    assert torch.count_nonzero(out) == 0


def test_levels_resolutions_and_single_attention() -> None:
    net = UNet(**TINY)
    resolutions: list[tuple[int, ...]] = []
    for level in net.down_levels:
        level[-1].register_forward_hook(lambda m, i, o: resolutions.append(tuple(o.shape[1:])))
    net.middle_attention.register_forward_hook(
        lambda m, i, o: resolutions.append(tuple(o.shape[1:]))
    )
    net(torch.randn(1, 1, 96, 96), torch.tensor([10]))
    assert resolutions == [(32, 96, 96), (64, 48, 48), (64, 24, 24), (64, 24, 24)]
    assert sum(isinstance(m, AttentionBlock) for m in net.modules()) == 1


def test_paper_size_layout() -> None:
    net = UNet()
    assert [len(level) for level in net.down_levels] == [3, 3, 3]
    assert [len(level) for level in net.up_levels] == [4, 4, 4]
    assert [level[-1].out_channels for level in net.down_levels] == [128, 256, 256]
    assert [level[-1].out_channels for level in net.up_levels] == [256, 256, 128]
    assert len(net.downsamplers) == 2 and len(net.upsamplers) == 2
    assert isinstance(net.downsamplers[0].resample, nn.AvgPool2d)
    assert isinstance(net.upsamplers[0].resample, nn.Upsample)
    assert net.middle_attention.num_heads == 4
    assert net.middle_attention.head_channels == 64
    assert isinstance(net.conditioning, TimeConditioning)
    assert net.conditioning.out_dim == 512
    assert net.middle_res1.film[1].in_features == 512
    assert net.downsample_factor == 4
    # Unconditioned paper config: about 37.5 M parameters (method.md §3).
    assert abs(_count(net) - 37.5e6) / 37.5e6 < 0.02


def test_paper_cddpm_embedding_widths() -> None:
    net = UNet(context_dim=128)
    assert isinstance(net.conditioning, TimeContextConditioning)
    assert net.conditioning.time_embedding.out_dim == 128  # c_t in R^d
    assert net.conditioning.out_dim == 256  # c' in R^(2d)
    assert net.conditioning.context_mlp is None
    assert net.middle_res1.film[1].in_features == 256
    assert net.middle_res1.film[1].out_features == 2 * 256  # (gamma, beta) of 2 x C_i


def test_authors_code_variant_parameter_count() -> None:
    net = UNet(context_dim=512, context_mlp=True)
    assert net.conditioning.context_mlp is not None
    assert net.conditioning.out_dim == 1024
    # method.md §3: "About 44 M parameters + encoder".
    assert abs(_count(net) - 44e6) / 44e6 < 0.02


def test_time_embed_dim_overrides_default() -> None:
    assert UNet(**TINY, time_embed_dim=24).conditioning.out_dim == 24
    net = UNet(**TINY, context_dim=CONTEXT_DIM, time_embed_dim=40)
    assert net.conditioning.out_dim == CONTEXT_DIM + 40


# --- conditioning is live -----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "authors"])
def test_context_changes_output(variant: str) -> None:
    torch.manual_seed(0)
    net = UNet(**TINY, **VARIANTS[variant])
    _perturb_zero_initialised(net)
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([500, 500]), torch.randn(2, CONTEXT_DIM))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_timestep_changes_output() -> None:
    torch.manual_seed(0)
    net = UNet(**TINY)
    _perturb_zero_initialised(net)
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    out = net(x, torch.tensor([10, 900]))
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_int_and_float_timesteps_agree() -> None:
    torch.manual_seed(0)
    net = UNet(**TINY)
    _perturb_zero_initialised(net)
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(
        net(x, torch.tensor([10, 900])), net(x, torch.tensor([10.0, 900.0]))
    )


def test_zero_initialised_output_conv_receives_gradient() -> None:
    net = UNet(**TINY, context_dim=CONTEXT_DIM)
    x = torch.randn(2, 1, 16, 16)
    loss = (net(x, torch.tensor([1, 2]), torch.randn(2, CONTEXT_DIM)) - x).abs().mean()
    loss.backward()
    assert net.output_conv.weight.grad is not None
    assert torch.count_nonzero(net.output_conv.weight.grad) > 0


def test_gradients_reach_encoder_and_zero_initialised_layers() -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder(depth=18, out_dim=CONTEXT_DIM)
    net = UNet(**TINY, context_dim=CONTEXT_DIM)
    _perturb_zero_initialised(net)
    x0 = torch.rand(2, 1, 32, 32) * 2 - 1
    x_t = x0 + torch.randn_like(x0)
    loss = (net(x_t, torch.tensor([100, 800]), encoder(x0)) - x0).abs().mean()
    loss.backward()
    for parameter in (
        encoder.head.weight,
        encoder.body.conv1.weight,
        net.middle_attention.proj.weight,
        net.up_levels[0][0].conv2.weight,
        net.conditioning.time_embedding.mlp.fc1.weight,
    ):
        assert parameter.grad is not None
        assert torch.count_nonzero(parameter.grad) > 0


# --- memory format and mixed precision ----------------------------------------------------


def test_channels_last_input_gives_same_output() -> None:
    torch.manual_seed(0)
    net = UNet(**TINY, context_dim=CONTEXT_DIM)
    _perturb_zero_initialised(net)
    x = torch.randn(2, 1, 16, 16)
    context = torch.randn(2, CONTEXT_DIM)
    t = torch.tensor([5, 600])
    reference = net(x, t, context)
    net_channels_last = net.to(memory_format=torch.channels_last)
    out = net_channels_last(x.contiguous(memory_format=torch.channels_last), t, context)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


def test_bfloat16_autocast() -> None:
    torch.manual_seed(0)
    net = UNet(**TINY, context_dim=CONTEXT_DIM, context_mlp=True)
    _perturb_zero_initialised(net)
    x = torch.randn(2, 1, 16, 16)
    context = torch.randn(2, CONTEXT_DIM)
    t = torch.tensor([5, 600])
    reference = net(x, t, context)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, context)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out).all()
    scale = reference.abs().max()
    assert (out.float() - reference).abs().max() < 0.05 * scale


# --- argument validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"groups": 12}, r"channel_mult\[0\] = 32 is not divisible by groups=12"),
        ({"groups": 64, "channel_mult": (2, 3)}, r"channel_mult\[1\] = 96 is not divisible"),
        ({"attention_head_channels": 48}, "not divisible by attention_head_channels=48"),
        ({"base_channels": 0}, "base_channels must be a positive integer"),
        ({"base_channels": 33, "groups": 11}, "base_channels must be even"),
        ({"channel_mult": ()}, "channel_mult must not be empty"),
        ({"channel_mult": (1, 0)}, "channel_mult entries must be a positive integer"),
        ({"num_res_blocks": 0}, "num_res_blocks must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"context_dim": 0}, "context_dim must be a positive integer"),
        ({"context_mlp": True}, "context_mlp=True requires a context_dim"),
        ({"time_embed_dim": -1}, "time_embed_dim must be a positive integer"),
        ({"in_channels": 0}, "in_channels must be a positive integer"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    arguments = {**TINY, **kwargs}
    with pytest.raises(ValueError, match=match):
        UNet(**arguments)


def test_rejects_context_for_unconditioned_net() -> None:
    net = UNet(**TINY)
    with pytest.raises(ValueError, match="context must be None"):
        net(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]), torch.randn(2, CONTEXT_DIM))


def test_rejects_missing_or_wrong_context_for_conditioned_net() -> None:
    net = UNet(**TINY, context_dim=CONTEXT_DIM)
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ValueError, match="context is required"):
        net(x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="context must have shape"):
        net(x, torch.tensor([1, 2]), torch.randn(2, CONTEXT_DIM + 1))


@pytest.mark.parametrize(
    ("x", "t", "match"),
    [
        (torch.randn(2, 3, 16, 16), torch.tensor([1, 2]), r"x must have shape \(N, 1, H, W\)"),
        (torch.randn(2, 1, 18, 16), torch.tensor([1, 2]), "divisible by 4"),
        (torch.randn(2, 1, 16, 16), torch.tensor([1, 2, 3]), r"t must have shape \(2,\)"),
    ],
)
def test_rejects_bad_inputs(x: torch.Tensor, t: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNet(**TINY)(x, t)
