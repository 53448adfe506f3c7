"""Tests of brainuad.nn.spark: masking without leaks, masked BatchNorm statistics, the masked loss,
the mask sampler, learning, and the body's weights round trip."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_squared_error
from torch import Tensor, nn

from brainuad.errors import InputError
from brainuad.methods.spark import BETAS, LEARNING_RATE, SPARK_SPEC, WEIGHT_DECAY, SparKPretrainer, load_body_weights
from brainuad.nn.encoders import ImageEncoder, ResNetBody
from brainuad.nn.spark import SparKDecoder, expand_cells, masked_mse, sparse_stage_features
from brainuad.weights import save_weights

SIZE = 96


def _pretrainer(depth: int = 18, seed: int = 0) -> SparKPretrainer:
    torch.manual_seed(seed)
    return SparKPretrainer(ImageEncoder(depth).body, decoder_channels=16)


def _inputs(n: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random images (n, 1, 96, 96) in [-1, 1] and a fixed visible-cell mask (n, 1, 3, 3)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, SIZE, SIZE, generator=generator) * 2 - 1
    visible = torch.zeros(n, 9, dtype=torch.bool)
    visible[0, [0, 4, 8]] = True
    visible[1:, [1, 2, 5]] = True
    return x, visible.view(n, 1, 3, 3)


def _scramble_masked(x: Tensor, visible_cells: Tensor) -> Tensor:
    """x with the pixels of masked cells replaced by large random values."""
    noise = 1000 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    return torch.where(expand_cells(visible_cells, x.shape[-2:]), x, noise)


def _smooth_slices(n: int) -> Tensor:
    """(n, 1, 96, 96) brain-like test slices in [0, 1]: textured ellipses on a zero background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    slices = [((xx - 0.2 * i) ** 2 / 0.5 + (yy + 0.1 * i) ** 2 / 0.3 < 1).float()
              * (0.5 + 0.3 * torch.sin(5 * xx + i) * torch.cos(3 * yy)) for i in range(n)]
    return torch.stack(slices)[:, None]


def test_expand_cells_matches_nearest_interpolation() -> None:
    cells = torch.rand(3, 1, 3, 3, generator=torch.Generator().manual_seed(0)) > 0.5
    for size in (96, 48, 24, 12, 6, 3):
        reference = F.interpolate(cells.float(), size=(size, size), mode="nearest") > 0.5
        assert torch.equal(expand_cells(cells, (size, size)), reference)


def test_expand_cells_rejects_non_multiple_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of the cell grid"):
        expand_cells(torch.ones(1, 1, 3, 3, dtype=torch.bool), (10, 9))
    with pytest.raises(ValueError, match="cells must be a bool tensor"):
        expand_cells(torch.ones(1, 1, 3, 3), (9, 9))


def test_sample_mask_masks_exactly_round_ratio_cells_per_sample() -> None:
    pretrainer = _pretrainer()
    assert pretrainer.masked_cell_count(SIZE, SIZE) == round(0.65 * 9) == 6
    mask = pretrainer.sample_mask(500, SIZE, SIZE, torch.Generator().manual_seed(1))
    assert mask.shape == (500, 1, 3, 3) and mask.dtype == torch.bool
    assert torch.equal((~mask).sum(dim=(1, 2, 3)), torch.full((500,), 6))
    assert len({tuple(row.tolist()) for row in mask.flatten(1)}) > 50  # per-sample masks differ
    frequency = (~mask).float().mean(0).flatten()  # each cell masked about 6/9 of the time
    assert torch.all((frequency - 6 / 9).abs() < 0.1), frequency
    again = pretrainer.sample_mask(500, SIZE, SIZE, torch.Generator().manual_seed(1))
    other = pretrainer.sample_mask(500, SIZE, SIZE, torch.Generator().manual_seed(2))
    assert torch.equal(mask, again) and not torch.equal(mask, other)


def test_sample_mask_errors() -> None:
    pretrainer = _pretrainer()
    with pytest.raises(ValueError, match="n must be"):
        pretrainer.sample_mask(0, SIZE, SIZE)
    with pytest.raises(ValueError, match="height must be a positive multiple of cell_size 32, got 100"):
        pretrainer.sample_mask(1, 100, SIZE)
    with pytest.raises(ValueError, match="at least one cell must be masked and one visible"):
        SparKPretrainer(ResNetBody(18), mask_ratio=0.02).sample_mask(1, SIZE, SIZE)
    with pytest.raises(ValueError, match="at least one cell must be masked and one visible"):
        SparKPretrainer(ResNetBody(18), mask_ratio=0.97).sample_mask(1, SIZE, SIZE)


@pytest.mark.parametrize("depth", [18, 50])
def test_every_layer_sees_zeros_at_masked_positions(depth: int) -> None:
    body = ResNetBody(depth).train()
    x, visible_cells = _inputs()
    inputs: list[Tensor] = []
    handles = [module.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
               for module in body.modules() if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d))]
    features = sparse_stage_features(body, x, visible_cells)
    for handle in handles:
        handle.remove()
    # every conv / BN / pooling input is the output of a conv, BN, pooling or ReLU of one
    assert len(inputs) == sum(isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)) for m in body.modules())
    for tensor in [*inputs, *features]:
        masked = ~expand_cells(visible_cells, tensor.shape[-2:]).expand_as(tensor)
        assert torch.count_nonzero(tensor[masked]) == 0
    assert [f.shape[-1] for f in features] == [24, 12, 6, 3]
    assert all(torch.count_nonzero(f) > 0 for f in features)


@pytest.mark.parametrize(("depth", "train"), [(18, True), (18, False), (50, True)])
def test_visible_features_do_not_depend_on_masked_pixels(depth: int, train: bool) -> None:
    body = ResNetBody(depth).train(train)
    x, visible_cells = _inputs()
    scrambled = _scramble_masked(x, visible_cells)
    with torch.no_grad():
        features = sparse_stage_features(body, x, visible_cells)
        changed = sparse_stage_features(body, scrambled, visible_cells)
        dense = body.stage_features(x)
        dense_changed = body.stage_features(scrambled)
    for clean, other in zip(features, changed, strict=True):
        assert torch.equal(clean, other)
    # the dense body does see the masked pixels at visible positions: the check above can fail
    visible = expand_cells(visible_cells, dense[0].shape[-2:]).expand_as(dense[0])
    assert not torch.allclose(dense[0][visible], dense_changed[0][visible])


def test_batchnorm_statistics_use_visible_positions_only() -> None:
    body = ResNetBody(18).train()
    norms = [module for module in body.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:  # momentum 1: the running stats become this batch's statistics
        norm.momentum = 1.0
    x, visible_cells = _inputs(n=3)
    inputs: dict[nn.Module, Tensor] = {}
    handles = [norm.register_forward_pre_hook(lambda module, args: inputs.__setitem__(module, args[0]))
               for norm in norms]
    with torch.no_grad():
        sparse_stage_features(body, x, visible_cells)
    for handle in handles:
        handle.remove()
    assert set(inputs) == set(norms)
    for norm in norms:
        h = inputs[norm]
        visible = expand_cells(visible_cells, h.shape[-2:])[:, 0]
        values = h.permute(0, 2, 3, 1)[visible].double()  # (P, C): visible positions only, by hand
        torch.testing.assert_close(norm.running_mean.double(), values.mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(norm.running_var.double(), values.var(0, correction=1), rtol=1e-4, atol=1e-6)
        assert int(norm.num_batches_tracked) == 1
    # statistics over all positions (zeros included) would differ
    stem = inputs[body.bn1]
    assert not torch.allclose(body.bn1.running_mean, stem.mean(dim=(0, 2, 3)), rtol=1e-3)

    statistics = {name: buffer.clone() for name, buffer in body.named_buffers()}
    with torch.no_grad():
        sparse_stage_features(body, _scramble_masked(x, visible_cells), visible_cells)
    for name, buffer in body.named_buffers():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(buffer, statistics[name]), name


def test_sparse_view_leaves_no_hooks_behind_even_on_error() -> None:
    body = ResNetBody(18).train()
    x, visible_cells = _inputs(n=1)
    sparse_stage_features(body, x, visible_cells)
    one_cell = torch.zeros_like(visible_cells)
    one_cell[0, 0, 1, 1] = True
    with pytest.raises(ValueError, match="more than 1 value per channel"):  # BatchNorm of 1 position at stride 32
        sparse_stage_features(body, x, one_cell)
    for module in body.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_sparse_stage_features_errors() -> None:
    body = ResNetBody(18)
    x, visible_cells = _inputs()
    with pytest.raises(ValueError, match="x must have shape"):
        sparse_stage_features(body, x.repeat(1, 3, 1, 1), visible_cells)
    with pytest.raises(ValueError, match="visible_cells must be a bool tensor"):
        sparse_stage_features(body, x, visible_cells.float())
    with pytest.raises(ValueError, match="visible_cells must be a bool tensor"):
        sparse_stage_features(body, x, visible_cells[:1])
    with pytest.raises(ValueError, match="shows no cell"):
        sparse_stage_features(body, x, torch.zeros_like(visible_cells))
    with pytest.raises(ValueError, match="multiples of 32"):
        sparse_stage_features(body, x, torch.ones(2, 1, 6, 6, dtype=torch.bool))


def test_masked_mse_uses_masked_pixels_only() -> None:
    generator = torch.Generator().manual_seed(3)
    prediction = torch.randn(2, 1, SIZE, SIZE, generator=generator)
    target = torch.randn(2, 1, SIZE, SIZE, generator=generator)
    _, visible_cells = _inputs()
    visible = expand_cells(visible_cells, (SIZE, SIZE))
    loss = masked_mse(prediction, target, visible)
    reference = mean_squared_error(target[~visible].numpy(), prediction[~visible].numpy())
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference, rel=1e-5)
    changed_visible = torch.where(visible, 100 * torch.randn(target.shape, generator=generator), target)
    assert torch.equal(masked_mse(prediction, changed_visible, visible), loss)
    changed_masked = torch.where(visible, target, target + 1)
    assert masked_mse(prediction, changed_masked, visible) != loss


def test_masked_mse_errors() -> None:
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="same"):
        masked_mse(x, torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="visible must be a bool tensor"):
        masked_mse(x, x, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="masks no pixel"):
        masked_mse(x, x, torch.ones(1, 1, 4, 4, dtype=torch.bool))


def test_training_loss_is_the_masked_mse_in_model_range() -> None:
    pretrainer = _pretrainer().eval()  # running statistics: both evaluations see the same network
    images = _smooth_slices(2)
    with torch.no_grad():
        loss = pretrainer.training_loss(images, torch.Generator().manual_seed(5))
        visible_cells = pretrainer.sample_mask(2, SIZE, SIZE, torch.Generator().manual_seed(5))
        x = images * 2 - 1
        expected = masked_mse(pretrainer(x, visible_cells), x, expand_cells(visible_cells, (SIZE, SIZE)))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.equal(loss, expected)


def test_training_loss_reaches_body_decoder_and_mask_tokens() -> None:
    pretrainer = _pretrainer().train()
    pretrainer.training_loss(_smooth_slices(2), torch.Generator().manual_seed(0)).backward()
    for name, parameter in pretrainer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert all(token.grad.abs().sum() > 0 for token in pretrainer.decoder.mask_tokens)
    assert pretrainer.body.conv1.weight.grad.abs().sum() > 0


def test_loss_falls_when_overfitting_a_few_slices() -> None:
    pretrainer = _pretrainer().train()
    images = _smooth_slices(2)
    optimizer = torch.optim.AdamW(pretrainer.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, betas=BETAS)

    def fixed_loss() -> float:
        with torch.no_grad():
            return pretrainer.training_loss(images, torch.Generator().manual_seed(123)).item()

    before = fixed_loss()
    for step in range(12):
        optimizer.zero_grad()
        pretrainer.training_loss(images, torch.Generator().manual_seed(step)).backward()
        optimizer.step()
    after = fixed_loss()
    assert after < 0.85 * before, (before, after)


def test_body_state_dict_keys_are_those_of_the_image_encoder_body() -> None:
    pretrainer = _pretrainer()
    reference = ImageEncoder(18).body.state_dict()
    body_keys = [key.removeprefix("body.") for key in pretrainer.state_dict() if key.startswith("body.")]
    assert body_keys == list(reference)
    x, visible_cells = _inputs()
    sparse_stage_features(pretrainer.body, x, visible_cells)
    assert list(pretrainer.body.state_dict()) == list(reference)


def test_save_and_load_body_round_trip(tmp_path) -> None:
    pretrainer = _pretrainer(seed=1).train()
    optimizer = torch.optim.AdamW(pretrainer.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, betas=BETAS)
    pretrainer.training_loss(_smooth_slices(2), torch.Generator().manual_seed(0)).backward()
    optimizer.step()
    path = save_weights(tmp_path / SPARK_SPEC.weights_file, SPARK_SPEC.exported_weights(pretrainer.state_dict()))
    assert path == tmp_path / "encoder.safetensors" and sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    torch.manual_seed(2)
    fresh = ImageEncoder(18)
    x = _smooth_slices(2) * 2 - 1
    pretrainer.body.eval()
    fresh.eval()
    with torch.no_grad():
        expected = pretrainer.body.stage_features(x)
        assert not torch.allclose(fresh.body.stage_features(x)[-1], expected[-1])
        load_body_weights(fresh.body, path)
        loaded = fresh.body.stage_features(x)
    for a, b in zip(expected, loaded, strict=True):
        assert torch.equal(a, b)
    for name, tensor in pretrainer.body.state_dict().items():
        assert torch.equal(fresh.body.state_dict()[name], tensor), name


def test_load_body_weights_of_another_depth_raises_input_error(tmp_path) -> None:
    path = save_weights(tmp_path / SPARK_SPEC.weights_file, SPARK_SPEC.exported_weights(_pretrainer().state_dict()))
    with pytest.raises(InputError, match="does not hold the weights of this encoder body") as caught:
        load_body_weights(ImageEncoder(34).body, path)
    assert caught.value.path == path and str(path) in str(caught.value)
    with pytest.raises(InputError, match="of another shape"):
        load_body_weights(ImageEncoder(50).body, path)


def test_load_body_weights_refuses_non_safetensors_files(tmp_path) -> None:
    path = tmp_path / "encoder.pt"
    torch.save(ResNetBody(18).state_dict(), path)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_body_weights(ResNetBody(18), path)
    with pytest.raises(InputError, match="not found"):
        load_body_weights(ResNetBody(18), tmp_path / "missing.safetensors")


def test_decoder_output_shape_and_token_filling() -> None:
    decoder = SparKDecoder((64, 128, 256, 512), (4, 8, 16, 32), width=8).eval()
    _, visible_cells = _inputs()
    features = [torch.zeros(2, c, SIZE // s, SIZE // s) for c, s in zip((64, 128, 256, 512), (4, 8, 16, 32))]
    assert len(decoder.up_blocks) == 5
    with torch.no_grad():
        output = decoder(features, visible_cells)
        with_tokens = decoder(features, visible_cells)
        decoder.mask_tokens[0].add_(1.0)
        changed = decoder(features, visible_cells)
    assert output.shape == (2, 1, SIZE, SIZE)
    assert torch.equal(output, with_tokens) and not torch.equal(output, changed)


@pytest.mark.parametrize(
    ("channels", "strides", "width", "message"),
    [
        ((64, 128), (4, 8), 0, "width must be a positive integer"),
        ((64, 128), (4,), 8, "equal length"),
        ((64, 128), (3, 6), 8, "power of 2"),
        ((64, 128), (4, 12), 8, "double"),
    ],
)
def test_decoder_errors(channels, strides, width, message) -> None:
    with pytest.raises(ValueError, match=message):
        SparKDecoder(channels, strides, width)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cell_size": 48}, "cell_size must be a positive multiple of 32, got 48"),
        ({"cell_size": 0}, "cell_size must be a positive multiple of 32, got 0"),
        ({"mask_ratio": 1.0}, r"mask_ratio must be in \(0, 1\), got 1.0"),
        ({"mask_ratio": 0}, r"mask_ratio must be in \(0, 1\), got 0"),
        ({"decoder_channels": 0}, "decoder_channels must be a positive integer, got 0"),
    ],
)
def test_pretrainer_argument_errors(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        SparKPretrainer(ResNetBody(18), **options)


def test_pretrainer_rejects_a_body_of_another_type_and_bad_images() -> None:
    with pytest.raises(ValueError, match="body must be a ResNetBody, got ImageEncoder"):
        SparKPretrainer(ImageEncoder(18))
    pretrainer = _pretrainer()
    with pytest.raises(ValueError, match="images must have shape"):
        pretrainer.training_loss(torch.rand(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="width must be a positive multiple of cell_size"):
        pretrainer.training_loss(torch.rand(2, 1, SIZE, 100))
    with pytest.raises(ValueError, match="visible_cells must have shape"):
        pretrainer(torch.rand(2, 1, SIZE, SIZE), torch.ones(2, 1, 2, 2, dtype=torch.bool))
