"""The method registry: every method's spec, and every detector trained, saved and loaded again."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from brainuad.config import AutoencoderConfig, UNetConfig
from brainuad.data.cache import GridCache
from brainuad.data.grid import MODEL_GRID_SHAPE
from brainuad.data.layout import split_subjects
from brainuad.errors import ConfigError
from brainuad.methods.base import AnomalyDetector, ReconstructionMethod
from brainuad.methods.registry import DETECTORS, METHODS, SPECS, build_detector, load_config, parse_config, spec_of
from brainuad.run_directory import load_run
from brainuad.train import train_run

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SMALL_NETWORKS = {
    UNetConfig: ["model.base_channels=8", "model.groups=4", "model.attention_head_channels=8",
                 "model.channel_mult=[1,2,2]"],
    AutoencoderConfig: ["model.channels=[4,8,8,8]", "model.groups=2", "model.latent_dim=16"],
}
"""Overrides that shrink a run config's ``model`` section, by its type."""
METHOD_OVERRIDES = {"fanogan": ["fanogan.gan_epochs=1", "model.latent_dim=128"], "svae": ["sequence.stack_size=4"],
                    "cddpm": ["encoder.dim=8", "diffusion.ensemble=null"],
                    "cddpm25d": ["encoder.dim=8", "diffusion.ensemble=null"],
                    "cddpm_mc": ["encoder.dim=8", "diffusion.ensemble=null"]}
"""What a method needs on top: f-AnoGAN an encoder epoch after its GAN epoch, the SVAE short stacks, the
cDDPMs one test level instead of the ensemble of three (for speed)."""


def small_config(name: str, cohort: Path, cache: Path):
    spec = SPECS[name]
    model = spec.config.model_fields.get("model")
    shrink = SMALL_NETWORKS[model.annotation] if model is not None else []
    return load_config(CONFIGS / "tiny" / f"{name}.yaml", [
        f"data.root={cohort}", f"data.cache_dir={cache}", "data.batch_size=4", "data.val_slices_per_volume=1",
        "train.max_epochs=2", "train.log_every_n_steps=1", *shrink, *METHOD_OVERRIDES.get(name, [])])


def test_every_method_has_one_spec_named_as_its_config():
    assert tuple(SPECS) == METHODS == ("ddpm", "pddpm", "cddpm", "spark", "ae", "vae", "svae", "dae", "fanogan",
                                       "thresh", "pddpm_iqa", "cddpm25d", "cddpm_mc")
    for name, spec in SPECS.items():
        assert spec.name == name and spec.config.model_fields["method"].default == name
        assert isinstance(parse_config({"method": name}), spec.config)
    assert DETECTORS == tuple(name for name in METHODS if name != "spark")
    assert set(METHOD_OVERRIDES) <= set(METHODS)


def test_what_the_specs_declare():
    diffusion = {name for name, spec in SPECS.items() if spec.noise_levels(parse_config({"method": name}))}
    assert diffusion == {"ddpm", "pddpm", "cddpm", "pddpm_iqa", "cddpm25d", "cddpm_mc"}
    assert {name: spec.training for name, spec in SPECS.items() if spec.training != "gradient"} == {
        "fanogan": "adversarial", "thresh": "fit"}
    assert SPECS["svae"].stack_size(parse_config({"method": "svae"})) == 8
    assert SPECS["cddpm25d"].stack_size(parse_config({"method": "cddpm25d"})) == 3
    assert {SPECS[name].stack_size(parse_config({"method": name})) for name in METHODS
            if name not in ("svae", "cddpm25d")} == {1}
    assert {name: SPECS[name].contrasts(parse_config({"method": name})) for name in METHODS
            if SPECS[name].contrasts(parse_config({"method": name}))} == {"cddpm_mc": ("t1",)}
    assert SPECS["spark"].weights_file == "encoder.safetensors" and not SPECS["spark"].detector
    assert SPECS["spark"].optimizer.kind == "adamw" and SPECS["fanogan"].optimizer.betas == (0.0, 0.9)


def test_a_spec_must_match_its_config_and_names_are_checked():
    from brainuad.methods.spec import MethodSpec

    with pytest.raises(ValueError, match="has method 'ddpm'"):
        MethodSpec("other", SPECS["ddpm"].config, SPECS["ddpm"].build, "a wrong name")
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        spec_of("nope")
    with pytest.raises(ConfigError, match="pre-trainer"):
        build_detector(parse_config({"method": "spark"}))


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_trains_saves_and_loads_again(name, tiny_cohort, grid_cache, tmp_path):
    """Two epochs of a small network; the run directory's weights load into the same detector."""
    config = small_config(name, tiny_cohort, grid_cache)
    summary = train_run(config, tmp_path / name, progress=False)
    assert summary.best_val_loss is not None and summary.method == name
    assert summary.epochs == (0 if SPECS[name].training == "fit" else 2)
    loaded_config, method = load_run(tmp_path / name)
    assert loaded_config == config and not method.training
    assert type(method) is type(build_detector(config)) and isinstance(method, AnomalyDetector)
    saved = load_file(str(tmp_path / name / SPECS[name].weights_file))
    state = method.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[key], state[key].cpu()) for key in saved)
    contrasts = SPECS[name].contrasts(config)
    volume = GridCache(grid_cache).load(split_subjects(tiny_cohort, "brats21", "test", contrasts=contrasts)[0])
    if isinstance(method, ReconstructionMethod):  # anomaly_map is this score of this reconstruction
        reconstruction = method.reconstruct(volume)
        assert reconstruction.shape == MODEL_GRID_SHAPE
        scores = method.reconstruction_score(volume.image, reconstruction)
    else:
        scores = method.anomaly_map(volume)
    assert scores.shape == MODEL_GRID_SHAPE and np.isfinite(scores).all()
    assert (SPECS[name].noise_levels(config) is not None) == (tmp_path / name / "examples.png").is_file()
