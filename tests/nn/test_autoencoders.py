import pytest
import torch

from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder, DownStack, SliceTransformer, UpStack


def test_stacks_halve_and_double_the_resolution():
    down = DownStack(1, (4, 8, 8), groups=4)
    up = UpStack((8, 8, 4), groups=4)
    x = torch.rand(2, 1, 32, 32)
    h = down(x)
    assert h.shape == (2, 8, 4, 4)
    assert up(h).shape == (2, 4, 32, 32)


def test_encoder_and_decoder_shapes_and_range():
    encoder = ConvEncoder(10, (4, 8), image_size=16, groups=2)
    decoder = ConvDecoder(10, (4, 8), image_size=16, groups=2)
    x = torch.rand(3, 1, 16, 16)
    assert encoder.features(x).shape == (3, encoder.feature_dim) and encoder.feature_dim == 8 * 4 * 4
    z = encoder(x)
    assert z.shape == (3, 10)
    image = decoder(z * 100)  # extreme codes still give images in [0, 1]
    assert image.shape == (3, 1, 16, 16) and image.min() >= 0 and image.max() <= 1


def test_encoder_decoder_learn_to_reconstruct():
    torch.manual_seed(0)
    encoder = ConvEncoder(8, (4, 8), image_size=16, groups=2)
    decoder = ConvDecoder(8, (4, 8), image_size=16, groups=2)
    x = torch.nn.functional.interpolate(torch.rand(4, 1, 4, 4), size=(16, 16), mode="bilinear")
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
    start = (decoder(encoder(x)) - x).abs().mean().item()
    for _ in range(100):
        optimizer.zero_grad()
        loss = (decoder(encoder(x)) - x).abs().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * start


def test_slice_transformer_mixes_slices_and_knows_their_order():
    torch.manual_seed(0)
    mixer = SliceTransformer(8, stack_size=3, layers=1, heads=2).eval()
    x = torch.randn(2, 3, 8)
    y = mixer(x)
    assert y.shape == (2, 3, 8)
    changed = x.clone()
    changed[:, 2] += 1
    # changing the last slice changes the output of the first one (attention across slices)
    assert not torch.allclose(mixer(changed)[:, 0], y[:, 0])
    # equal slices at different positions get different outputs (learned position embedding)
    same = torch.ones(1, 3, 8)
    out = mixer(same)
    assert not torch.allclose(out[0, 0], out[0, 1])


@pytest.mark.parametrize(("build", "message"), [
    (lambda: DownStack(1, (), groups=1), "at least one level"),
    (lambda: DownStack(1, (6,), groups=4), "divisible by groups"),
    (lambda: DownStack(0, (4,), groups=4), "in_channels"),
    (lambda: UpStack((4, -4), groups=1), "channels"),
    (lambda: ConvEncoder(8, (4, 8), image_size=18, groups=2), "divisible by 2 \\*\\* 2"),
    (lambda: ConvEncoder(0, (4,), image_size=16, groups=2), "out_dim"),
    (lambda: ConvDecoder(0, (4,), image_size=16, groups=2), "latent_dim"),
    (lambda: SliceTransformer(6, 3, heads=4), "divisible by heads"),
    (lambda: SliceTransformer(8, 0), "stack_size"),
])
def test_constructor_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_forward_shape_errors():
    encoder = ConvEncoder(8, (4,), image_size=16, groups=2)
    with pytest.raises(ValueError, match=r"\(N, 1, 16, 16\)"):
        encoder(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="z must have shape"):
        ConvDecoder(8, (4,), image_size=16, groups=2)(torch.rand(2, 7))
    with pytest.raises(ValueError, match="x must have shape"):
        SliceTransformer(8, 3)(torch.rand(2, 4, 8))
