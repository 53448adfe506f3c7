from pathlib import Path

import numpy as np
import pytest
import torch

from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.cache import GridCache
from brainuad.data.datamodule import HealthySlicesDataModule
from brainuad.data.datasets import FixedSliceDataset, RandomSliceDataset
from brainuad.data.layout import split_subjects
from brainuad.errors import ConfigError
from brainuad.methods.autoencoders import GaussianLatent
from brainuad.methods.registry import load_config
from brainuad.methods.svae import SequenceVAE, window_starts
from brainuad.nn.autoencoders import ConvDecoder, ConvEncoder, SliceTransformer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SIZE = 16
STACK = 3


def make(inference_batch_size=4):
    torch.manual_seed(0)
    return SequenceVAE(ConvEncoder(8, (4, 8), image_size=SIZE, groups=2), SliceTransformer(8, STACK, layers=1, heads=2),
                       ConvDecoder(8, (4, 8), image_size=SIZE, groups=2), GaussianLatent(0.001),
                       inference_batch_size=inference_batch_size)


def smooth_stacks(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, STACK, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


def test_window_starts_centre_each_slice():
    assert window_starts(10, 4).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 6]
    assert window_starts(5, 5).tolist() == [0] * 5
    with pytest.raises(ValueError, match="cannot hold"):
        window_starts(3, 4)


def test_loss_falls_by_half_when_overfitting_stacks():
    method = make()
    stacks = smooth_stacks(2)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)

    def fixed_loss():
        with torch.no_grad():
            return method.training_loss(stacks, torch.Generator().manual_seed(1)).item()

    start = fixed_loss()
    for _ in range(80):
        optimizer.zero_grad()
        method.training_loss(stacks).backward()
        optimizer.step()
    assert fixed_loss() < 0.5 * start, (start, fixed_loss())


def test_volume_reconstruction_takes_each_slice_from_its_centred_window():
    method = make()
    volume = np.random.default_rng(0).random((SIZE, SIZE, 7)).astype(np.float32)
    reconstruction = method.reconstruct(volume)
    assert reconstruction.shape == (SIZE, SIZE, 7) and reconstruction.dtype == np.float32
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    slices = torch.from_numpy(volume).permute(2, 0, 1)
    with torch.no_grad():
        for z, start in enumerate(window_starts(7, STACK).tolist()):
            expected = method.reconstruct_stacks(slices[None, start:start + STACK])[0, z - start]
            np.testing.assert_allclose(reconstruction[:, :, z], expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(make(inference_batch_size=1).reconstruct(volume), reconstruction, atol=1e-6)


def test_a_slice_reconstruction_depends_on_its_neighbours():
    method = make().eval()
    stacks = smooth_stacks(1)
    changed = stacks.clone()
    changed[:, 2] = 1 - changed[:, 2]
    with torch.no_grad():
        assert not torch.allclose(method.reconstruct_stacks(stacks)[:, 0], method.reconstruct_stacks(changed)[:, 0])


def test_errors():
    with pytest.raises(ValueError, match="mixer's dim"):
        SequenceVAE(ConvEncoder(6, (4,), image_size=SIZE, groups=2), SliceTransformer(8, STACK, heads=2),
                    ConvDecoder(8, (4,), image_size=SIZE, groups=2), GaussianLatent())
    with pytest.raises(ValueError, match=r"\(N, 3, 16, 16\)"):
        make().training_loss(torch.rand(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="cannot hold"):
        make().reconstruct(np.zeros((SIZE, SIZE, 2), dtype=np.float32))


@pytest.fixture(scope="module")
def train_volumes(tiny_cohort):
    cache = GridCache()
    return [cache.load(subject) for subject in split_subjects(tiny_cohort, "ixi", "train", 0, "t2")]


def test_stack_datasets_give_consecutive_slices(train_volumes):
    dataset = RandomSliceDataset(train_volumes, stack_size=5)
    torch.manual_seed(0)
    for _ in range(10):
        item = dataset[1]
        assert item["image"].shape == item["mask"].shape == (5, 96, 96)
        volume = train_volumes[1].image
        start = next(z for z in range(46) if np.array_equal(item["image"][0].numpy(), volume[:, :, z]))
        np.testing.assert_array_equal(item["image"].numpy(), volume[:, :, start:start + 5].transpose(2, 0, 1))
    fixed = FixedSliceDataset(train_volumes, slices_per_volume=3, stack_size=5)
    assert [z for volume, z in fixed.index if volume == 0] == [0, 22, 45]
    assert fixed[2]["image"].shape == (5, 96, 96)
    with pytest.raises(ValueError, match="augmentation"):
        RandomSliceDataset(train_volumes, SliceAugmentation(), stack_size=5)
    with pytest.raises(ValueError, match="exceeds"):
        FixedSliceDataset(train_volumes, stack_size=51)
    with pytest.raises(ValueError, match="augmentation"):
        HealthySlicesDataModule(Path("."), "t2", 0, stack_size=5)


def test_augmentation_is_refused_in_the_config(tiny_cohort):
    with pytest.raises(ConfigError, match="data.augment must be false"):
        load_config(CONFIGS / "tiny" / "svae.yaml", ["data.augment=true"])
