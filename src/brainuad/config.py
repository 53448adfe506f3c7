"""Typed run configurations, loaded from YAML with dotted command-line overrides.

A run configuration is parsed once, at the entry point, into a typed model (pydantic,
``extra="forbid"``: an unknown key is an error naming it); code below the entry point receives
explicit values, never the config. This module holds what every run config shares (the
:class:`RunConfigBase` with its ``data`` and ``train`` sections, and sections several methods
use); each method declares its own run config beside its implementation, and
:mod:`brainuad.methods.registry` parses a YAML file into the right one. The defaults are the
paper's values (method.md §3); ``configs/authors_code/`` holds the values of the authors' code as
named presets.

Fields that only say where and how a run executes (data directory, workers, devices, batch size
at inference, ...) are declared with :func:`execution_field`; :func:`execution_keys` lists them
(runs that differ only there and in ``data.fold`` are folds of one model).

Overrides: ``key=value`` pairs with dotted keys (``data.fold=2``, ``train.max_epochs=3``); the
value is parsed as YAML (``true``, ``1e-4``, ``[250, 500, 750]``, ``null``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from brainuad.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


EXECUTION = "execution"
"""The ``json_schema_extra`` key that marks a field as an execution setting."""


def execution_field(default: Any, **kwargs: Any) -> Any:
    """A config field that says where or how a run executes, not which model it is (see
    :func:`execution_keys`); arguments as :func:`pydantic.Field`."""
    return Field(default, json_schema_extra={EXECUTION: True}, **kwargs)


def _is_execution(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get(EXECUTION))


def execution_keys(config_class: type[BaseModel], prefix: str = "") -> frozenset[str]:
    """The dotted keys of ``config_class`` declared with :func:`execution_field`, nested sections
    included (e.g. ``data.root``, ``train.devices``, ``diffusion.inference_batch_size``)."""
    keys: set[str] = set()
    for name, field in config_class.model_fields.items():
        if _is_execution(field):
            keys.add(prefix + name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= execution_keys(field.annotation, f"{prefix}{name}.")
    return frozenset(keys)


class DataConfig(Section):
    """Which healthy data to train on and how to feed it."""

    root: Path | None = execution_field(None, description="data directory; usually given with --data")
    modality: Literal["t1", "t2"] = "t2"
    fold: int = Field(0, ge=0, le=4)
    batch_size: int = Field(32, ge=1)
    num_workers: int = execution_field(4, ge=0)
    slices_on: Literal["loader", "device"] = execution_field(
        "loader", description="where training slices are drawn and augmented: loader (DataLoader workers with "
                              "torchio, the authors' pipeline) or device (the volumes held on the training GPU, "
                              "each batch drawn and augmented there; same distributions, other random draws)")
    augment: bool = True
    val_slices_per_volume: int = Field(10, ge=1)
    cache_dir: Path | None = execution_field(None, description="on-disk cache of model-grid volumes (None: memory "
                                                                "only)")
    normalise_on: Literal["model_grid", "input_grid"] = Field(
        "model_grid", description="clip/rescale intensities on the 2 mm model grid (default) or at 1 mm before "
                                  "downsampling (input_grid: the authors' code); evaluation and predict follow the run")


TrainingPrecision = Literal["32-true", "bf16-mixed", "16-mixed"]
"""The training precisions a run config may choose (Lightning's names)."""


class TrainConfig(Section):
    """Optimisation and trainer settings (paper: Adam, lr 1e-5, at most 1600 epochs, batch 32)."""

    lr: float = Field(1e-5, gt=0)
    max_epochs: int = Field(1600, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (the demo's budget)")
    max_minutes: float | None = Field(None, gt=0, description="stop after this wall time")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant (the paper) or cosine decay to lr/20 over the run's budget: max_epochs, "
                                "max_steps or max_minutes, whichever ends the run first")
    precision: TrainingPrecision = Field(
        "32-true", description="training precision: 32-true (the paper's fp32, the default), bf16-mixed or 16-mixed "
                               "(autocast; the authors' code trains cDDPM with 16-mixed)")
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = execution_field("auto")
    devices: int | Literal["auto"] = execution_field("auto", description="devices per node (GPUs, or CPU processes)")
    num_nodes: int = execution_field(1, ge=1, description="machines of a multi-node DDP run (SLURM or torchrun)")
    strategy: Literal["auto", "ddp", "ddp_spawn"] = execution_field("auto")
    compile: bool = execution_field(False, description="compile the networks with torch.compile (slower start, "
                                                       "faster steps where a compiler backend is available)")
    check_val_every_n_epoch: int = Field(1, ge=1)
    log_every_n_steps: int = execution_field(10, ge=1)
    channels_last: bool = execution_field(True, description="channels-last memory format (faster convolutions on CPU "
                                                            "and GPU)")


class NoiseConfig(Section):
    """Forward-process noise (method.md §3 "Noise")."""

    kind: Literal["simplex", "gaussian"] = "simplex"
    octaves: int = Field(6, ge=1)
    persistence: float = Field(0.8, gt=0)
    feature_size: float = Field(64.0, gt=0)
    per_sample: bool = Field(True, description="one field per sample (false: one per batch, the authors' code)")
    normalise: bool = Field(False, description="rescale each field to unit variance")


class UNetConfig(Section):
    """The ADM-style denoising UNet (method.md §3)."""

    base_channels: int = Field(128, ge=1)
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = Field(3, ge=1)
    attention_head_channels: int = Field(64, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    groups: int = Field(32, ge=1)


class DiffusionConfig(Section):
    """The diffusion process and test-time reconstruction."""

    timesteps: int = Field(1000, ge=2)
    noise: NoiseConfig = NoiseConfig()
    t_test: int = Field(500, ge=1, description="noise level of a single-step reconstruction")
    ensemble: tuple[int, ...] | None = Field(None, description="noise levels averaged instead of t_test")
    inference_batch_size: int | None = execution_field(
        None, ge=1, description="slices per forward pass at test time, several volumes' slices and noise levels "
                                "together (None: 64 on a CPU, 512 on a GPU; --batch-slices overrides it)")

    @model_validator(mode="after")
    def _levels_in_range(self) -> "DiffusionConfig":
        for level in (self.t_test, *(self.ensemble or ())):
            if not 1 <= level <= self.timesteps:
                raise ValueError(f"test noise level {level} outside 1..{self.timesteps}")
        return self


class EncoderConfig(Section):
    """The image encoder F_enc of the cDDPM (method.md §3 "Conditioning")."""

    depth: Literal[18, 34, 50] = 50
    dim: int = Field(128, ge=1, description="context dimension d (paper 128; authors' code 512)")
    context_mlp: bool = Field(False, description="pass c through its own MLP first (authors' code)")
    pretrained: Path | None = Field(None, description="SparK-pretrained encoder body (.safetensors)")


class AutoencoderConfig(Section):
    """Convolutional encoder and decoder around a dense bottleneck (AE, VAE, SVAE, f-AnoGAN;
    Baur et al. 2021). One stride-2 level per entry of ``channels`` (96 -> 6 px with four)."""

    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = Field(512, ge=1)
    groups: int = Field(8, ge=1, description="GroupNorm groups; must divide every channel count")
    inference_batch_size: int = execution_field(64, ge=1, description="slices (SVAE: stacks) per forward pass at "
                                                                     "test time")

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1:
            raise ValueError(f"channels must be a non-empty list of positive integers, got {list(value)}")
        return value


class RunConfigBase(Section):
    """What every run config has: a ``method`` name (each method's config narrows it to a
    ``Literal``), the healthy ``data`` it trains on and the ``train`` settings."""

    method: str
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


class StackRunConfigBase(RunConfigBase):
    """A run config whose training items are stacks of consecutive axial slices (the SVAE, the
    2.5-D cDDPM): trained without augmentation, which transforms single slices, not stacks."""

    data: DataConfig = DataConfig(augment=False)

    @model_validator(mode="after")
    def _no_augmentation(self) -> "StackRunConfigBase":
        if self.data.augment:
            raise ValueError(f"data.augment must be false for {self.method}: the augmentation transforms single "
                             f"slices, not stacks")
        return self


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config mapping."""
    result = dict(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. data.fold=2)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key part")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({error})") from error
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def _format_validation_error(source: str, error: ValidationError, methods: Sequence[str]) -> str:
    lines = []
    for problem in error.errors():
        parts = problem["loc"][1:] if problem["loc"][:1] and problem["loc"][0] in methods else problem["loc"]
        location = ".".join(str(part) for part in parts)
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown key {location!r}")
        else:
            lines.append(f"{location or 'config'}: {problem['msg']}")
    return f"{source}: invalid configuration: " + "; ".join(lines)


def validate_run_config(raw: Any, source: str, adapter: TypeAdapter[Any], methods: Sequence[str]) -> Any:
    """Validate a raw mapping with ``adapter`` (a union of run configs discriminated by ``method``).

    Args:
        raw: the mapping read from YAML (overrides applied).
        source: what to name in messages (the file).
        adapter: validates the union of the run configs.
        methods: the ``method`` names the union accepts.

    Raises:
        ConfigError: naming ``source`` and every unknown key or bad value.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping, got {type(raw).__name__}")
    if "method" not in raw:
        raise ConfigError(f"{source}: the config names no 'method' (one of {', '.join(methods)})")
    try:
        return adapter.validate_python(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error, methods)) from None


def read_config_file(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The raw mapping of a YAML config file with dotted ``overrides`` applied (not yet validated).

    Raises:
        ConfigError: the file is missing or not valid YAML, or an override is malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(raw).__name__}")
    return apply_overrides(raw, list(overrides))


def dump_config(config: BaseModel) -> str:
    """The config as YAML text (every value, defaults included), for a run directory."""
    values = config.model_dump(mode="json")
    ordered = {"method": values.pop("method"), **values}
    text: str = yaml.safe_dump(ordered, sort_keys=False)
    return text


def packaged_config(name: str) -> Path:
    """The path of a config shipped with brainuad, e.g. ``"tiny/cddpm"`` or ``"authors_code/ddpm"``."""
    path = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r} (looked for {path})")
    return path
