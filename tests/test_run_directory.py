"""Run directories: the config beside the weights, loaded without unpickling, errors that name the file."""

import shutil

import pytest
import torch

from brainuad.errors import InputError
from brainuad.methods.registry import parse_config
from brainuad.run_directory import load_run, read_run_config, write_config
from brainuad.weights import save_weights


def test_load_run_errors(tmp_path, trained_ddpm_run):
    with pytest.raises(InputError, match="run directory not found"):
        load_run(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.yaml"):
        load_run(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(trained_ddpm_run, broken)
    save_weights(broken / "model.safetensors", {"unet.input_conv.weight": torch.zeros(3)})
    with pytest.raises(InputError, match="do not fit"):
        load_run(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(InputError, match="weights file not found"):
        load_run(broken)
    with pytest.raises(InputError, match="no model.safetensors in the run directory"):
        read_run_config(broken, trained=True)


def test_a_pretraining_run_is_not_a_detector(tmp_path):
    write_config(tmp_path, parse_config({"method": "spark"}))
    with pytest.raises(InputError, match="spark pre-training run, not an anomaly detector"):
        read_run_config(tmp_path)


def test_the_written_config_reads_back_equal(tmp_path):
    config = parse_config({"method": "cddpm", "data": {"fold": 3}, "diffusion": {"t_test": 250}})
    write_config(tmp_path, config)
    assert read_run_config(tmp_path) == config
