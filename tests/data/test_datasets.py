from dataclasses import replace

import numpy as np
import pytest
import torch

from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.cache import GridCache
from brainuad.data.datamodule import HealthySlicesDataModule
from brainuad.data.datasets import FixedSliceDataset, RandomSliceDataset
from brainuad.data.device_slices import DeviceSlices
from brainuad.data.layout import split_subjects


@pytest.fixture(scope="module")
def train_volumes(tiny_cohort, grid_cache):
    cache = GridCache(grid_cache)
    return [cache.load(subject) for subject in split_subjects(tiny_cohort, "ixi", "train", 0, "t2")]


def test_split_subjects_resolve_modalities(tiny_cohort):
    t1 = split_subjects(tiny_cohort, "ixi", "train", 0, "t1")
    t2 = split_subjects(tiny_cohort, "ixi", "train", 0, "t2")
    assert [s.name for s in t1] == [s.name for s in t2] and len(t1) == 6
    assert all(s.image.parent.name == "t2" and s.image.name.endswith("_t2.nii.gz") and s.image.is_file() for s in t2)
    lesion = split_subjects(tiny_cohort, "brats21", "test")
    assert len(lesion) == 3 and all(s.seg is not None and s.image.parent.name == "t2" for s in lesion)
    with pytest.raises(ValueError, match="modality"):
        split_subjects(tiny_cohort, "ixi", "test")


def test_random_slices_one_per_volume_per_epoch(train_volumes):
    dataset = RandomSliceDataset(train_volumes)
    assert len(dataset) == len(train_volumes)
    item = dataset[0]
    assert item["image"].shape == (1, 96, 96) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 96, 96) and item["mask"].dtype == torch.bool
    torch.manual_seed(0)
    draws = [dataset[0]["image"][0].numpy() for _ in range(40)]
    volume = train_volumes[0].image
    chosen = [next(z for z in range(50) if np.array_equal(draw, volume[:, :, z])) for draw in draws]
    assert len(set(chosen)) > 15  # uniform over the 50 slices
    torch.manual_seed(0)
    np.testing.assert_array_equal(dataset[0]["image"][0].numpy(), draws[0])  # seeded: reproducible


def test_fixed_slices_are_deterministic(train_volumes):
    dataset = FixedSliceDataset(train_volumes, slices_per_volume=5)
    assert len(dataset) == 5 * len(train_volumes)
    assert torch.equal(dataset[3]["image"], dataset[3]["image"])
    np.testing.assert_array_equal(dataset[4]["image"][0].numpy(), train_volumes[0].image[:, :, 49])


def test_augmentation_changes_slices_and_keeps_shape(train_volumes):
    torch.manual_seed(1)
    augmentation = SliceAugmentation(1.0, 1.0, 1.0, 1.0)
    image = torch.from_numpy(train_volumes[0].image[:, :, 25].copy())[None]
    out = augmentation(image)
    assert out.shape == image.shape and not torch.allclose(out, image)
    assert torch.equal(SliceAugmentation(0, 0, 0, 0)(image), image)
    with pytest.raises(ValueError, match="blur_p"):
        SliceAugmentation(blur_p=1.5)


def test_datamodule_batches(tiny_cohort):
    data = HealthySlicesDataModule(tiny_cohort, "t1", 1, batch_size=4, val_slices_per_volume=3)
    data.setup("fit")
    assert len(data.train_volumes) == 6 and len(data.val_volumes) == 2
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 1, 96, 96)
    assert sum(len(b["image"]) for b in data.val_dataloader()) == 6


def _slice_of(volume, image: np.ndarray) -> int:
    """The axial position of ``image`` (S, H, W) in ``volume`` (its first slice)."""
    return next(z for z in range(volume.image.shape[2])
                if np.array_equal(image, volume.image[:, :, z:z + len(image)].transpose(2, 0, 1)))


def test_device_slices_draw_a_uniform_slice_of_each_indexed_volume(train_volumes):
    slices = DeviceSlices(train_volumes)
    assert len(slices) == len(train_volumes)
    torch.manual_seed(0)
    indices = torch.tensor([3, 0, 3, 5] * 10)
    batch = slices.draw(indices)
    assert batch["image"].shape == (40, 1, 96, 96) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (40, 1, 96, 96) and batch["mask"].dtype == torch.bool
    chosen = [_slice_of(train_volumes[int(v)], image.numpy()) for v, image in zip(indices, batch["image"])]
    assert len(set(chosen)) > 15  # uniform over the 50 slices
    for v, z, mask in zip(indices, chosen, batch["mask"]):
        np.testing.assert_array_equal(mask[0].numpy(), train_volumes[int(v)].mask[:, :, z])
    torch.manual_seed(0)
    assert torch.equal(slices.draw(indices)["image"], batch["image"])  # the global generator: reproducible


def test_device_slices_stacks_and_augmentation(train_volumes):
    stacks = DeviceSlices(train_volumes, stack_size=3).draw(torch.arange(6))["image"]
    assert stacks.shape == (6, 3, 96, 96)
    for volume, stack in zip(train_volumes, stacks):
        _slice_of(volume, stack.numpy())  # three consecutive slices of its own volume
    torch.manual_seed(1)
    plain = DeviceSlices(train_volumes).draw(torch.arange(6))["image"]
    torch.manual_seed(1)
    augmented = DeviceSlices(train_volumes, SliceAugmentation(1, 1, 1, 1)).draw(torch.arange(6))["image"]
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain, atol=1e-3)
    with pytest.raises(ValueError, match="single slices"):
        DeviceSlices(train_volumes, SliceAugmentation(), stack_size=3)
    other = replace(train_volumes[1], image=train_volumes[1].image[:, :, :40], mask=train_volumes[1].mask[:, :, :40])
    with pytest.raises(ValueError, match=f"{other.name} is \\(96, 96, 40\\)"):
        DeviceSlices([train_volumes[0], other])


def test_datamodule_draws_training_slices_on_the_device(tiny_cohort):
    data = HealthySlicesDataModule(tiny_cohort, "t1", 1, batch_size=4, val_slices_per_volume=3, slices_on="device")
    data.setup("fit")
    indices = next(iter(data.train_dataloader()))
    assert indices.shape == (4,) and indices.dtype == torch.int64
    batch = data.on_after_batch_transfer(indices, 0)
    assert batch["image"].shape == (4, 1, 96, 96) and batch["mask"].shape == (4, 1, 96, 96)
    validation = next(iter(data.val_dataloader()))
    assert data.on_after_batch_transfer(validation, 0) is validation  # validation slices come from the loader
    with pytest.raises(ValueError, match="slices_on"):
        HealthySlicesDataModule(tiny_cohort, "t1", 1, slices_on="gpu")  # type: ignore[arg-type]


def test_items_carry_the_other_contrasts_as_channels(tiny_cohort, grid_cache, train_volumes):
    subjects = split_subjects(tiny_cohort, "ixi", "train", 0, "t2", contrasts=("t1",))
    assert all(s.contrasts == (("t1", s.image.parent.parent / "t1" / s.image.name.replace("_t2", "_t1")),)
               for s in subjects)
    with pytest.raises(ValueError, match="other than t2"):
        split_subjects(tiny_cohort, "ixi", "train", 0, "t2", contrasts=("t2",))
    volumes = [GridCache(grid_cache).load(subject) for subject in subjects]
    np.testing.assert_array_equal(volumes[0].image, train_volumes[0].image)  # the T2 as without contrasts
    t1 = volumes[0].contrasts["t1"]
    assert t1.shape == (96, 96, 50) and t1.min() >= 0 and t1.max() == 1 and not t1[~volumes[0].mask].any()
    fixed = FixedSliceDataset(volumes, slices_per_volume=5, contrasts=("t1",))
    item = fixed[2]
    assert item["image"].shape == (2, 96, 96) and item["mask"].shape == (1, 96, 96)
    z = fixed.index[2][1]
    np.testing.assert_array_equal(item["image"][0].numpy(), volumes[0].image[:, :, z])
    np.testing.assert_array_equal(item["image"][1].numpy(), t1[:, :, z])
    torch.manual_seed(3)
    drawn = RandomSliceDataset(volumes, SliceAugmentation(0, 0, 0, 0), contrasts=("t1",))[1]["image"]
    z = _slice_of(volumes[1], drawn[:1].numpy())
    np.testing.assert_array_equal(drawn[1].numpy(), volumes[1].contrasts["t1"][:, :, z])
    torch.manual_seed(3)
    on_device = DeviceSlices(volumes, contrasts=("t1",)).draw(torch.arange(len(volumes)))
    count = len(volumes)
    assert on_device["image"].shape == (count, 2, 96, 96) and on_device["mask"].shape == (count, 1, 96, 96)
    for volume, image in zip(volumes, on_device["image"]):
        z = _slice_of(volume, image[:1].numpy())
        np.testing.assert_array_equal(image[1].numpy(), volume.contrasts["t1"][:, :, z])
    with pytest.raises(ValueError, match="loaded without its t1 image"):
        FixedSliceDataset(train_volumes, contrasts=("t1",))
    for make in (lambda: RandomSliceDataset(volumes, stack_size=3, contrasts=("t1",)),
                 lambda: DeviceSlices(volumes, stack_size=3, contrasts=("t1",))):
        with pytest.raises(ValueError, match="not both"):
            make()
    data = HealthySlicesDataModule(tiny_cohort, "t2", 0, batch_size=4, val_slices_per_volume=2, contrasts=("t1",),
                                   cache=GridCache(grid_cache))
    data.setup("fit")
    assert next(iter(data.train_dataloader()))["image"].shape == (4, 2, 96, 96)
    assert next(iter(data.val_dataloader()))["image"].shape == (4, 2, 96, 96)
