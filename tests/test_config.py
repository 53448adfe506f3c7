from pathlib import Path

import pytest

from brainuad.config import apply_overrides, dump_config, execution_keys
from brainuad.errors import ConfigError
from brainuad.methods.cddpm import CDDPMRunConfig
from brainuad.methods.ddpm import DDPMRunConfig
from brainuad.methods.registry import METHODS, SPECS, load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_parses_and_its_method_is_its_file_name(path):
    config = load_config(path)
    assert config.method == path.stem
    assert isinstance(config, SPECS[path.stem].config)


def test_every_method_has_a_base_config_and_a_tiny_one():
    assert sorted(path.stem for path in CONFIGS.glob("*.yaml")) == sorted(METHODS)
    assert sorted(path.stem for path in (CONFIGS / "tiny").glob("*.yaml")) == sorted(METHODS)


def test_execution_fields_are_declared_in_the_configs():
    """The settings that say where and how a run executes, not which model it is."""
    assert execution_keys(SPECS["ddpm"].config) == {
        "data.root", "data.num_workers", "data.slices_on", "data.cache_dir", "train.accelerator", "train.devices",
        "train.num_nodes", "train.strategy", "train.compile", "train.log_every_n_steps", "train.channels_last",
        "diffusion.inference_batch_size"}
    assert "dae.inference_batch_size" in execution_keys(SPECS["dae"].config)
    assert "model.inference_batch_size" in execution_keys(SPECS["svae"].config)
    assert not {"data.fold", "train.lr", "diffusion.t_test"} & execution_keys(SPECS["cddpm"].config)


def test_paper_values_are_the_defaults():
    config = parse_config({"method": "cddpm"})
    assert isinstance(config, CDDPMRunConfig)
    assert config.train.lr == 1e-5 and config.train.max_epochs == 1600 and config.data.batch_size == 32
    assert config.diffusion.timesteps == 1000 and config.diffusion.ensemble == (250, 500, 750)
    assert config.encoder.dim == 128 and config.encoder.depth == 50 and not config.encoder.context_mlp
    assert config.diffusion.noise.kind == "simplex" and config.diffusion.noise.per_sample
    assert not config.diffusion.noise.normalise
    assert config.model.base_channels == 128 and config.model.channel_mult == (1, 2, 2)
    ddpm = parse_config({"method": "ddpm"})
    assert ddpm.diffusion.t_test == 500 and ddpm.diffusion.ensemble is None


def test_paper_and_authors_code_presets_differ_as_method_md_says():
    paper = load_config(CONFIGS / "cddpm.yaml")
    authors = load_config(CONFIGS / "authors_code" / "cddpm.yaml")
    assert (paper.train.lr, authors.train.lr) == (1e-5, 1e-4)
    assert (paper.train.max_epochs, authors.train.max_epochs) == (1600, 1200)
    assert authors.train.precision == "16-mixed" and authors.encoder.dim == 512 and authors.encoder.context_mlp
    assert not authors.diffusion.noise.per_sample


@pytest.mark.parametrize(("method", "authors_precision"), [("cddpm", "16-mixed"), ("ddpm", "32-true"),
                                                            ("pddpm", "32-true")])
def test_precision_is_the_papers_fp32_and_the_authors_presets_set_theirs(method, authors_precision):
    assert load_config(CONFIGS / f"{method}.yaml").train.precision == "32-true"
    assert parse_config({"method": method}).train.precision == "32-true"
    assert load_config(CONFIGS / "authors_code" / f"{method}.yaml").train.precision == authors_precision


def test_unknown_key_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="unknown key 'data.fodl'"):
        parse_config({"method": "ddpm", "data": {"fodl": 1}})
    with pytest.raises(ConfigError, match="unknown key 'encoder'"):
        parse_config({"method": "ddpm", "encoder": {"depth": 18}})


def test_bad_values_and_missing_method():
    with pytest.raises(ConfigError, match="data.fold"):
        parse_config({"method": "ddpm", "data": {"fold": 7}})
    with pytest.raises(ConfigError, match="names no 'method'"):
        parse_config({"data": {}})
    with pytest.raises(ConfigError, match="method"):
        parse_config({"method": "nope"})
    with pytest.raises(ConfigError, match="noise level 2000"):
        parse_config({"method": "ddpm", "diffusion": {"t_test": 2000}})


def test_dotted_overrides():
    raw = apply_overrides({"method": "ddpm", "data": {"fold": 0}},
                          ["data.fold=2", "train.max_epochs=3", "diffusion.ensemble=[250, 500]", "data.modality=t1"])
    config = parse_config(raw)
    assert isinstance(config, DDPMRunConfig)
    assert config.data.fold == 2 and config.train.max_epochs == 3 and config.diffusion.ensemble == (250, 500)
    assert config.data.modality == "t1"
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["data.fold"])


def test_dump_round_trip(tmp_path):
    config = parse_config({"method": "pddpm", "data": {"fold": 3}})
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
