import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from brainuad.cli import app
from brainuad.errors import ConfigError
from brainuad.methods.registry import build_detector, load_config, parse_config
from brainuad.train import train_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = ["model.base_channels=8", "model.groups=4", "model.attention_head_channels=8", "model.channel_mult=[1,2,2]",
         "data.val_slices_per_volume=1", "data.batch_size=4", "train.log_every_n_steps=1"]


def tiny_config(cohort, cache, method="ddpm", *extra):
    small = [item for item in SMALL if not item.startswith("model.")] if method == "spark" else SMALL
    return load_config(CONFIGS / "tiny" / f"{method}.yaml", [f"data.root={cohort}", f"data.cache_dir={cache}", *small,
                                                             *extra])


@pytest.fixture(scope="module")
def ddpm_run(tiny_cohort, grid_cache, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "ddpm"
    summary = train_run(tiny_config(tiny_cohort, grid_cache, "ddpm", "train.max_epochs=2"), run_dir, progress=False)
    return run_dir, summary


def test_run_directory_contents(ddpm_run):
    run_dir, summary = ddpm_run
    for name in ("config.yaml", "model.safetensors", "training.json", "examples.png", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "logs" / "csv").rglob("metrics.csv"))
    assert list((run_dir / "logs" / "tensorboard").rglob("events.out.tfevents*"))
    record = json.loads((run_dir / "training.json").read_text())
    assert record["epochs"] == 2 and record["steps"] == summary.steps == 4  # 6 volumes, batch 4 -> 2 steps/epoch
    assert record["psnr_noised_db"] is not None


def test_resume_continues_at_the_right_step(ddpm_run, tiny_cohort, grid_cache, tmp_path):
    run_dir, _ = ddpm_run
    import shutil

    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    summary = train_run(tiny_config(tiny_cohort, grid_cache, "ddpm", "train.max_epochs=3"), resumed, progress=False)
    assert summary.epochs == 3 and summary.steps == 6  # 2 more steps, not 6 from scratch
    # the resumed run logged into a new version folder, starting at epoch 2
    logs = sorted((resumed / "logs" / "csv").glob("version_*/metrics.csv"))
    assert len(logs) == 2
    epochs = {line.split(",")[0] for line in logs[-1].read_text().splitlines()[1:]}
    assert epochs == {"2"}


def test_slices_drawn_on_the_device_train_and_resume_to_the_same_weights(ddpm_run, tiny_cohort, grid_cache,
                                                                        tmp_path):
    """data.slices_on=device (the volumes on the training device, batches drawn and augmented there):
    a run stopped after an epoch and resumed ends with the weights of one run straight through, and
    the slices are other draws than the loader's (same seed and budget as ``ddpm_run``)."""
    def train(run: str, epochs: int):
        config = tiny_config(tiny_cohort, grid_cache, "ddpm", "data.slices_on=device", f"train.max_epochs={epochs}",
                             "train.check_val_every_n_epoch=2")
        return train_run(config, tmp_path / run, progress=False)

    whole = train("whole", 2)
    train("resumed", 1)
    resumed = train("resumed", 2)
    assert whole.steps == resumed.steps == 4
    first, second = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("whole", "resumed"))
    assert all(torch.equal(first[key], second[key]) for key in first)
    loader = load_file(str(ddpm_run[0] / "model.safetensors"))
    assert not all(torch.equal(first[key], loader[key]) for key in first)


def test_cddpm_starts_from_spark_encoder(tiny_cohort, grid_cache, tmp_path):
    spark = train_run(tiny_config(tiny_cohort, grid_cache, "spark", "train.max_epochs=1"), tmp_path / "spark",
                      progress=False)
    weights = Path(spark.weights)
    assert weights.name == "encoder.safetensors"
    config = parse_config({"method": "cddpm", "encoder": {"depth": 18, "dim": 32, "pretrained": str(weights)}})
    method = build_detector(config)
    saved = load_file(str(weights))
    body = method.encoder.body.state_dict()
    assert set(saved) == set(body) and all(torch.equal(saved[k], body[k]) for k in saved)
    # the head to d starts fresh: it is not in the pre-trained file
    assert not any(key.startswith("head") for key in saved)


def test_cli_train_errors(tiny_cohort, tmp_path):
    runner = CliRunner()
    unknown = runner.invoke(app, ["train", str(CONFIGS / "tiny" / "ddpm.yaml"), "data.fodl=1",
                                  "--data", str(tiny_cohort)])
    assert unknown.exit_code == 2 and "unknown key 'data.fodl'" in unknown.output
    wrong = runner.invoke(app, ["train", str(CONFIGS / "tiny" / "spark.yaml"), "--data", str(tiny_cohort)])
    assert wrong.exit_code == 2 and "brainuad pretrain" not in wrong.output and "expected" in wrong.output
    no_data = runner.invoke(app, ["train", str(CONFIGS / "tiny" / "ddpm.yaml"), "--out", str(tmp_path / "r")])
    assert no_data.exit_code == 2 and "--data" in no_data.output


def test_missing_data_root_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--data"):
        train_run(parse_config({"method": "ddpm"}), tmp_path / "run", progress=False)


def test_ddp_on_two_cpu_processes(tiny_cohort, grid_cache, tmp_path):
    """Lightning's DDP strategy with the gloo backend: 2 CPU processes train one run, each on its
    share of the training volumes (held on the device: the index sampler Lightning splits across
    ranks) with its own random streams; one process reports the run."""
    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "brainuad", "train", str(CONFIGS / "tiny" / "ddpm.yaml"), "--data",
               str(tiny_cohort), "--out", str(run_dir), *SMALL, f"data.cache_dir={grid_cache}", "train.max_epochs=1",
               "train.accelerator=cpu", "data.slices_on=device",
               "train.strategy=ddp", "--devices", "2", "--num-nodes", "1"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "gloo" in (result.stdout + result.stderr).lower() or "distributed_backend=gloo" in result.stderr
    assert (run_dir / "model.safetensors").is_file()
    record = json.loads((run_dir / "training.json").read_text())
    assert record["steps"] == 1  # 6 volumes split over 2 processes: 3 slices each, one batch of 4 per process
    assert result.stdout.count("weights:") == 1  # the first process reports the run, the other is silent
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    ranks = next(state for key, state in checkpoint["callbacks"].items() if key.startswith("RandomState"))["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])  # each rank its own stream
    written = (run_dir / "config.yaml").read_text()
    assert "devices: 2" in written and "num_nodes: 1" in written


def test_a_resumed_rank_restores_its_own_random_streams(monkeypatch):
    from brainuad.train import RandomState

    callback = RandomState(seed=0)
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        np.random.seed(seed)
        states.append(callback.state_dict()["ranks"][0])
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    callback.load_state_dict({"ranks": states})
    assert torch.equal(torch.get_rng_state(), states[1]["torch"]) and np.random.randint(1 << 30) == \
        np.random.RandomState(2).randint(1 << 30)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)  # a rank the saved run did not have
    before = torch.manual_seed(5).get_state()
    callback.load_state_dict({"ranks": states})
    assert torch.equal(torch.get_rng_state(), before)
    monkeypatch.undo()
    callback.load_state_dict(states[0])  # a checkpoint written before the states were kept per rank
    assert torch.equal(torch.get_rng_state(), states[0]["torch"])


def test_compile_compiles_each_network_and_keeps_the_weight_names():
    from brainuad.methods.spec import OptimizerSettings
    from brainuad.train import TrainingModule

    method = build_detector(parse_config({"method": "cddpm", "model": {"base_channels": 8, "channel_mult": [1, 2],
                                                                        "groups": 4, "attention_head_channels": 8},
                                          "encoder": {"dim": 8}}))
    names = set(method.state_dict())
    module = TrainingModule(method, OptimizerSettings(), 1e-3, compile=True)
    module.setup("fit")
    assert all(network._compiled_call_impl is not None for network in (method.unet, method.encoder))
    assert set(method.state_dict()) == names
    plain = TrainingModule(build_detector(parse_config({"method": "ddpm"})), OptimizerSettings(), 1e-3)
    plain.setup("fit")
    assert plain.method.unet._compiled_call_impl is None


def test_cosine_learning_rate_decays_over_the_epochs_or_the_wall_time():
    import time
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import Timer
    from lightning.pytorch.trainer.states import RunningStage

    from brainuad.train import CosineLearningRate

    schedule = CosineLearningRate(final_fraction=0.05)
    assert schedule.factor(0.0) == pytest.approx(1.0)
    assert schedule.factor(0.5) == pytest.approx(0.525)
    assert schedule.factor(1.0) == pytest.approx(0.05)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    trainer = SimpleNamespace(current_epoch=3, max_epochs=4, max_steps=-1, global_step=3, callbacks=[],
                              optimizers=[optimizer])
    assert schedule.progress(trainer) == pytest.approx(0.75)
    for epoch, expected in ((0, 0.1), (2, 0.0525), (4, 0.005)):
        trainer.current_epoch = epoch
        schedule.on_train_batch_start(trainer, None, None, 0)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    # a wall-time budget ends the decay when it ends the run first
    timer = Timer(duration={"minutes": 1})
    timer._start_time[RunningStage.TRAINING] = time.monotonic() - 45.0
    trainer = SimpleNamespace(current_epoch=1, max_epochs=100, max_steps=-1, global_step=5, callbacks=[timer],
                              optimizers=[optimizer])
    assert schedule.progress(trainer) == pytest.approx(0.75, abs=0.02)
    # a step budget likewise (the demo's)
    trainer = SimpleNamespace(current_epoch=1, max_epochs=100, max_steps=40, global_step=30, callbacks=[],
                              optimizers=[optimizer])
    assert schedule.progress(trainer) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="final_fraction"):
        CosineLearningRate(1.5)
