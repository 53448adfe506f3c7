"""The multi-contrast cDDPM: the encoder sees each slice with its other contrasts, the UNet the slice."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import small_conditioned_unet
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.config import packaged_config
from brainuad.data.cache import GridCache
from brainuad.data.layout import split_subjects
from brainuad.errors import ConfigError
from brainuad.evaluate.scoring import ResidualScorer, crop_width, read_contrasts
from brainuad.methods.base import volume_noise_seed, volume_slices
from brainuad.methods.cddpm_mc import MultiContrastCDDPM
from brainuad.methods.diffusion import DiffusionSchedule
from brainuad.methods.registry import SPECS, build_detector, parse_config
from brainuad.nn.encoders import ImageEncoder
from brainuad.nn.unet import UNet
from brainuad.noise import GaussianNoise

SMALL = ["model.base_channels=8", "model.groups=4", "model.attention_head_channels=8", "encoder.dim=8",
         "diffusion.ensemble=null", "data.batch_size=4", "data.val_slices_per_volume=1"]


def make(contrasts=("t1",)):
    unet = small_conditioned_unet()
    encoder = ImageEncoder(18, 16, in_channels=1 + len(contrasts))
    return MultiContrastCDDPM(unet, encoder, GaussianNoise(), DiffusionSchedule(1000), contrasts=contrasts,
                              t_test=500)


def test_the_encoder_sees_the_other_contrast_and_the_unet_denoises_the_slice():
    method = make().eval()
    rng = np.random.default_rng(0)
    channels = rng.random((2, 32, 32, 4)).astype(np.float32)
    changed = channels.copy()
    changed[1, :, :, 2] = 0.0  # slice 2 of the T1 only

    def contexts(array):
        with torch.no_grad():
            return method.context(method.condition_slices(array) * 2 - 1)

    before, after = contexts(channels), contexts(changed)
    assert not torch.allclose(after[2], before[2])
    assert torch.equal(after[1], before[1]) and torch.equal(after[3], before[3])
    reconstructions = [method.reconstruct(channels[0], condition=array) for array in (channels, changed)]
    assert reconstructions[0].shape == (32, 32, 4) and 0 <= reconstructions[0].min() <= reconstructions[0].max() <= 1
    assert not np.allclose(reconstructions[0][:, :, 2], reconstructions[1][:, :, 2])
    np.testing.assert_array_equal(reconstructions[0][:, :, 1], reconstructions[1][:, :, 1])
    # the volume's own noise, and the encoder given the slices with their T1
    slices = volume_slices(channels[0])
    generator = torch.Generator().manual_seed(volume_noise_seed(method.seed, channels[0]))
    with torch.no_grad():
        expected = method.reconstruct_at(slices, (500,), generator, torch.from_numpy(channels).permute(3, 0, 1, 2))
    np.testing.assert_allclose(reconstructions[0], expected[:, 0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_a_volume_without_its_other_contrast_is_refused(tiny_cohort, grid_cache):
    method = make()
    subject = split_subjects(tiny_cohort, "brats21", "test")[0]
    single = GridCache(grid_cache).load(subject)
    with pytest.raises(ValueError, match="loaded without its t1 image"):
        method.reconstruct(single)
    with pytest.raises(ValueError, match=r"t1 image: give a GridVolume .* \(2, X, Y, Z\) array"):
        method.reconstruct(single.image)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\): each slice with its t1 slice"):
        method.reconstruct_at(torch.rand(3, 1, 32, 32), (500,))
    loaded = GridCache(grid_cache).load(split_subjects(tiny_cohort, "brats21", "test", contrasts=("t1",))[0])
    middle = slice(23, 27)  # four slices: quick to reconstruct
    both = replace(loaded, image=loaded.image[:, :, middle], mask=loaded.mask[:, :, middle], seg=None,
                   contrasts={"t1": loaded.contrasts["t1"][:, :, middle]})
    assert read_contrasts(method) == ("t1",) and read_contrasts(build_detector(parse_config({"method": "cddpm"}))) == ()
    small = make()
    small.inference_batch_size = 50
    np.testing.assert_array_equal(small.reconstruct(both),
                                  small.reconstruct(both.image, condition=both.channels(["t1"])))
    # the domain-shift study's conditioning width crops the T2 and the T1 alike
    cropped = ResidualScorer(small, t_test=500, conditioning_width=0.5).score(both).reconstruction
    expected = small.reconstruct(both.image, t_test=500, condition=crop_width(both.channels(["t1"]), 0.5))
    np.testing.assert_allclose(cropped, expected, atol=1e-6)
    assert not np.allclose(cropped, small.reconstruct(both, t_test=500))


def test_training_denoises_channel_0_and_trains_the_encoder_on_every_channel():
    method = make()
    images = torch.rand(2, 2, 32, 32)
    loss = method.training_loss(images, torch.Generator().manual_seed(0))
    expected = method.denoising_loss(images[:, :1], torch.Generator().manual_seed(0), condition=images)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    gradient = method.encoder.body.conv1.weight.grad
    assert gradient[:, 0].abs().sum() > 0 and gradient[:, 1].abs().sum() > 0
    with pytest.raises(ValueError, match=r"images must be \(N, 2, H, W\)"):
        method.training_loss(torch.rand(2, 1, 32, 32))


def test_volumes_reconstructed_together_equal_each_alone_and_a_crop_covers_every_channel():
    method = make()
    rng = np.random.default_rng(2)
    conditions = [rng.random((2, 32, 32, 5)).astype(np.float32) for _ in range(2)]
    alone = [method.reconstruct(condition[0], condition=condition) for condition in conditions]
    method.inference_batch_size = 1000
    together = method.reconstruct_many([condition[0] for condition in conditions], conditions=conditions)
    for expected, actual in zip(alone, together, strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    cropped = crop_width(conditions[0], 0.5)
    assert cropped.shape == (2, 32, 32, 5) and not cropped[:, 16:].any()
    np.testing.assert_array_equal(cropped[:, :16], conditions[0][:, :16])
    np.testing.assert_array_equal(crop_width(conditions[0][0], 0.5), cropped[0])
    with pytest.raises(ValueError, match="C, X, Y, Z"):
        crop_width(np.zeros((2, 2)), 0.5)


def test_config_and_builder():
    config = parse_config({"method": "cddpm_mc"})
    assert config.encoder.contrasts == ("t1",) and config.data.modality == "t2" and config.data.augment
    assert config.diffusion.ensemble == (250, 500, 750) and SPECS["cddpm_mc"].contrasts(config) == ("t1",)
    small = parse_config({"method": "cddpm_mc", "encoder": {"depth": 18, "dim": 8, "contrasts": ["t1", "flair"]},
                          "model": {"base_channels": 8, "groups": 4, "attention_head_channels": 8}})
    method = build_detector(small)
    assert isinstance(method, MultiContrastCDDPM) and method.encoder.in_channels == 3
    assert method.contrasts == ("t1", "flair")
    with pytest.raises(ConfigError, match=r"other contrasts than data.modality \(t1\)"):
        parse_config({"method": "cddpm_mc", "data": {"modality": "t1"}})
    for contrasts in ([], ["t1", "t1"], ["pd"]):
        with pytest.raises(ConfigError, match="contrasts"):
            parse_config({"method": "cddpm_mc", "encoder": {"contrasts": contrasts}})
    unet = UNet(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_head_channels=8, groups=4,
                context_dim=16)
    with pytest.raises(ValueError, match="need 2"):
        MultiContrastCDDPM(unet, ImageEncoder(18, 16), GaussianNoise(), DiffusionSchedule(1000))


def _cli(*args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, " ".join(result.output.split())


def test_train_evaluate_and_predict_from_the_command_line(tiny_cohort, grid_cache, tmp_path):
    """The T2 model reads the T1 of every subject: from the data layout in training and evaluation,
    from beside each scan (or --contrast) in predict."""
    run = tmp_path / "run"
    code, output = _cli("train", packaged_config("tiny/cddpm_mc"), "--data", tiny_cohort, "--out", run,
                        f"data.cache_dir={grid_cache}", "train.max_steps=2", *SMALL)
    assert code == 0, output
    code, output = _cli("evaluate", run, "--data", tiny_cohort, "--out", tmp_path / "eval", "--limit", "1",
                        "--sets", "brats21", "--no-ablation", "--cache-dir", grid_cache)
    assert code == 0, output
    result = json.loads((tmp_path / "eval" / "summary.json").read_text())["summary"]["groups"][0]["runs"][0]
    assert result["method"] == "cddpm_mc" and [item["dataset"] for item in result["sets"]] == ["brats21"]
    scan = next(iter(sorted((tiny_cohort / "Test" / "Brats21" / "t2").glob("*_t2.nii.gz"))))
    t1 = tiny_cohort / "Test" / "Brats21" / "t1" / scan.name.replace("_t2", "_t1")
    code, output = _cli("predict", run, scan, "--out", tmp_path / "pred", "--threshold", "0.3")
    assert code == 0 and f"read with its t1 image {t1}" in output, output
    assert (tmp_path / "pred" / scan.name.replace("_t2.nii.gz", "_t2_anomaly.nii.gz")).is_file()
    alone = tmp_path / "alone" / scan.name
    alone.parent.mkdir()
    alone.write_bytes(scan.read_bytes())
    code, output = _cli("predict", run, alone, "--out", tmp_path / "missing", "--threshold", "0.3")
    assert code == 1 and "the model reads each scan with its t1 image, and none was found beside it" in output
    code, output = _cli("predict", run, alone, "--contrast", f"t1={t1}", "--out", tmp_path / "given",
                        "--threshold", "0.3")
    assert code == 0 and f"read with its t1 image {t1}" in output, output
    code, output = _cli("predict", run, alone, "--contrast", f"flair={t1}", "--out", tmp_path / "wrong")
    assert code == 2 and "reads t1 beside each scan, not flair" in output
