import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from brainuad.errors import InputError
from brainuad.evaluate.reconstruction import (
    LpipsUnavailableError,
    MedicalLpips,
    build_med3d_resnet,
    l1_error,
    lesion_l1,
    peak_signal_noise_ratio,
    structural_similarity,
)


def _pair(shape=(16, 18, 10), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    y = np.clip(x + rng.normal(0, 0.1, shape), 0, 1)
    return x, y


def test_ssim_3d_matches_skimage():
    x, y = _pair()
    assert structural_similarity(x, y) == pytest.approx(sk_ssim(x, y, data_range=1.0), abs=1e-9)
    assert structural_similarity(x, x) == pytest.approx(1.0)


def test_ssim_slicewise_is_the_mean_of_2d_skimage_ssim():
    x, y = _pair()
    expected = np.mean([sk_ssim(x[:, :, k], y[:, :, k], data_range=1.0) for k in range(x.shape[2])])
    assert structural_similarity(x, y, slicewise=True) == pytest.approx(expected, abs=1e-9)


def test_ssim_masked_mean_of_the_skimage_map():
    x, y = _pair()
    mask = np.zeros(x.shape, bool)
    mask[3:12, 4:15, 2:8] = True
    _, full_map = sk_ssim(x, y, data_range=1.0, full=True)
    assert structural_similarity(x, y, mask=mask) == pytest.approx(full_map[mask].mean(), abs=1e-9)


def test_psnr_matches_skimage():
    x, y = _pair()
    assert peak_signal_noise_ratio(x, y) == pytest.approx(sk_psnr(x, y, data_range=1.0), abs=1e-9)
    mask = x > 0.5
    assert peak_signal_noise_ratio(x, y, mask=mask) == pytest.approx(sk_psnr(x[mask], y[mask], data_range=1.0))
    assert peak_signal_noise_ratio(x, x) == float("inf")


def test_l1_errors_and_ratio():
    x = np.zeros((4, 4, 4))
    y = np.zeros_like(x)
    brain = np.zeros(x.shape, bool)
    brain[1:3] = True
    lesion = np.zeros_like(brain)
    lesion[1, 1, 1] = True
    y[1, 1, 1] = 0.8  # lesion error
    y[2] = 0.1  # healthy brain error on 16 voxels
    y[0] = 0.5  # background, outside the brain
    assert l1_error(x, y, brain) == pytest.approx((0.8 + 16 * 0.1) / 32)
    fair = lesion_l1(x, y, lesion, brain)
    assert fair.unhealthy == pytest.approx(0.8)
    assert fair.healthy == pytest.approx(16 * 0.1 / 31)
    assert fair.ratio == pytest.approx(fair.unhealthy / fair.healthy)
    authors = lesion_l1(x, y, lesion)  # background counted as healthy
    assert authors.healthy == pytest.approx((16 * 0.1 + 16 * 0.5) / 63)
    no_lesion = lesion_l1(x, y, np.zeros_like(lesion), brain)
    assert np.isnan(no_lesion.unhealthy) and np.isnan(no_lesion.ratio)


def test_invalid_reconstruction_inputs():
    x, y = _pair()
    with pytest.raises(ValueError, match="shape mismatch"):
        structural_similarity(x, y[:-1])
    with pytest.raises(ValueError, match="window_size"):
        structural_similarity(x, y, window_size=4)
    with pytest.raises(ValueError, match="data_range"):
        peak_signal_noise_ratio(x, y, data_range=0)
    with pytest.raises(ValueError, match="NaN"):
        l1_error(x * np.nan, y, x > 0.5)
    with pytest.raises(ValueError, match="boolean"):
        l1_error(x, y, (x > 0.5).astype(int))
    with pytest.raises(ValueError, match="selects no voxel"):
        l1_error(x, y, np.zeros(x.shape, bool))
    with pytest.raises(ValueError, match="slicewise"):
        structural_similarity(x[:, :, 0], y[:, :, 0], slicewise=True)
    with pytest.raises(ValueError, match="data_range"):
        structural_similarity(x, y, data_range=-1.0)
    with pytest.raises(ValueError, match="no healthy voxel"):
        lesion_l1(x, y, np.ones(x.shape, bool))
    with pytest.raises(ValueError, match="shape mismatch"):
        lesion_l1(x, y, x > 0.5, np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match="depth"):
        build_med3d_resnet(11)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    torch.manual_seed(0)
    state = build_med3d_resnet(10).state_dict()
    folder = tmp_path_factory.mktemp("lpips")
    safetensors_path = folder / "resnet10.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(safetensors_path))
    med3d_path = folder / "resnet_10.pth"  # Med3D layout: wrapped, DataParallel prefix, a segmentation head
    wrapped = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    wrapped["module.conv_seg.0.weight"] = torch.zeros(2, 2)
    torch.save({"state_dict": wrapped, "epoch": 3}, med3d_path)
    return safetensors_path, med3d_path


def test_lpips_with_random_weights(random_weights):
    volumes = torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    for path in random_weights:
        lpips = MedicalLpips(path, depth=10)
        assert torch.allclose(lpips.distance(volumes, volumes), torch.zeros(2))
        different = lpips.distance(volumes, volumes.flip(0))
        assert different.shape == (2,) and (different > 0).all()


def test_lpips_errors(random_weights, tmp_path):
    with pytest.raises(LpipsUnavailableError, match="no weights file"):
        MedicalLpips(None)
    missing = tmp_path / "absent.pth"
    with pytest.raises(InputError, match="absent.pth.*not found"):
        MedicalLpips(missing)
    with pytest.raises(InputError, match="resnet10.safetensors.*does not fit a Med3D resnet18"):
        MedicalLpips(random_weights[0], depth=18)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="garbage.pth.*cannot be read"):
        MedicalLpips(garbage)
    not_tensors = tmp_path / "list.pth"
    torch.save({"conv1.weight": [1, 2]}, not_tensors)
    with pytest.raises(InputError, match="list.pth.*no state dict of tensors"):
        MedicalLpips(not_tensors)
    lpips = MedicalLpips(random_weights[0])
    with pytest.raises(ValueError, match="reference"):
        lpips.distance(torch.rand(1, 2, 8, 8, 8), torch.rand(1, 2, 8, 8, 8))
    with pytest.raises(ValueError, match="shape mismatch"):
        lpips.distance(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 9))
