"""Typed run configurations, loaded from YAML with dotted command-line overrides.

A run configuration is parsed once, at the entry point, into one of the typed models below
(pydantic, ``extra="forbid"``: an unknown key is an error naming it); code below the entry point
receives explicit values, never the config. The defaults are the paper's values (method.md §3);
``configs/authors_code/`` holds the values of the authors' code as named presets.

Overrides: ``key=value`` pairs with dotted keys (``data.fold=2``, ``train.max_epochs=3``); the
value is parsed as YAML (``true``, ``1e-4``, ``[250, 500, 750]``, ``null``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

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

from brainuad.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class DataConfig(Section):
    """Which healthy data to train on and how to feed it."""

    root: Path | None = Field(None, description="data directory; usually given with --data")
    modality: Literal["t1", "t2"] = "t2"
    fold: int = Field(0, ge=0, le=4)
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(4, ge=0)
    augment: bool = True
    val_slices_per_volume: int = Field(10, ge=1)
    cache_dir: Path | None = Field(None, description="on-disk cache of model-grid volumes (None: memory only)")
    normalise_on: Literal["model_grid", "input_grid"] = Field(
        "model_grid", description="clip/rescale intensities on the 2 mm model grid (default) or at 1 mm before "
                                  "downsampling (input_grid: the authors' code); evaluation and predict follow the run")


class TrainConfig(Section):
    """Optimisation and trainer settings (paper: Adam, lr 1e-5, at most 1600 epochs, batch 32)."""

    lr: float = Field(1e-5, gt=0)
    max_epochs: int = Field(1600, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps (the demo's budget)")
    max_minutes: float | None = Field(None, gt=0, description="stop after this wall time")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant (the paper) or cosine decay to lr/20 over the run's budget: max_epochs, "
                                "max_steps or max_minutes, whichever ends the run first")
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = Field(
        "32-true", description="training precision: 32-true (the paper's fp32, the default), bf16-mixed or 16-mixed "
                               "(autocast; the authors' code trains cDDPM with 16-mixed)")
    seed: int = 0
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    devices: int | Literal["auto"] = "auto"
    strategy: Literal["auto", "ddp", "ddp_spawn"] = "auto"
    check_val_every_n_epoch: int = Field(1, ge=1)
    log_every_n_steps: int = Field(10, ge=1)
    channels_last: bool = Field(True, description="channels-last memory format (faster convolutions on CPU and GPU)")


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
    inference_batch_size: int = Field(64, ge=1, description="slices per forward pass at test time")

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


class PatchConfig(Section):
    """pDDPM patching (method.md §3 "pDDPM")."""

    size: int = Field(48, ge=1)


class SparKConfig(Section):
    """SparK masked-image pre-training of the encoder (method.md §3)."""

    cell_size: int = Field(32, ge=1)
    mask_ratio: float = Field(0.65, gt=0, lt=1)
    decoder_channels: int = Field(64, ge=1)


class _RunBase(Section):
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


class DDPMRunConfig(_RunBase):
    """DDPM with simplex noise (AnoDDPM-style); x0-prediction, L1 loss."""

    method: Literal["ddpm"] = "ddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig()


class PDDPMRunConfig(_RunBase):
    """Patched DDPM (Behrendt et al. 2023)."""

    method: Literal["pddpm"] = "pddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    patch: PatchConfig = PatchConfig()


class CDDPMRunConfig(_RunBase):
    """Conditioned DDPM (the paper's method); test-time ensemble by default."""

    method: Literal["cddpm"] = "cddpm"
    model: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig(ensemble=(250, 500, 750))
    encoder: EncoderConfig = EncoderConfig()


class SparKRunConfig(_RunBase):
    """SparK pre-training of the cDDPM's encoder body (``brainuad pretrain``)."""

    method: Literal["spark"] = "spark"
    encoder: EncoderConfig = EncoderConfig()
    spark: SparKConfig = SparKConfig()
    train: TrainConfig = TrainConfig(lr=1e-4)


class AutoencoderConfig(Section):
    """Convolutional encoder and decoder around a dense bottleneck (AE, VAE, SVAE, f-AnoGAN;
    Baur et al. 2021). One stride-2 level per entry of ``channels`` (96 -> 6 px with four)."""

    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent_dim: int = Field(512, ge=1)
    groups: int = Field(8, ge=1, description="GroupNorm groups; must divide every channel count")
    inference_batch_size: int = Field(64, ge=1, description="slices (SVAE: stacks) per forward pass at test time")

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or min(value) < 1:
            raise ValueError(f"channels must be a non-empty list of positive integers, got {list(value)}")
        return value


class VariationalConfig(Section):
    """The VAE's loss: L1 reconstruction summed over pixels + beta * KL (paper §4.4: beta = 0.001)."""

    beta: float = Field(0.001, ge=0)


class SequenceConfig(Section):
    """SVAE (Behrendt et al. 2022): self-attention over the latents of consecutive slices."""

    stack_size: int = Field(8, ge=2, description="consecutive axial slices per training item")
    layers: int = Field(2, ge=1, description="transformer encoder layers across the slices")
    heads: int = Field(4, ge=1)


class CoarseNoiseConfig(Section):
    """DAE (Kascenas et al. 2022): Gaussian noise drawn on a coarse grid, upsampled bilinearly."""

    resolution: int = Field(16, ge=1, description="side of the coarse noise grid, in cells")
    std: float = Field(0.2, gt=0, description="standard deviation of the noise, in [0, 1] intensity units")
    inference_batch_size: int = Field(64, ge=1)


class AdversarialConfig(Section):
    """f-AnoGAN (Schlegl et al. 2019): WGAN-GP, then the izi_f encoder."""

    gan_epochs: int = Field(800, ge=1, description="epochs of WGAN-GP training; the encoder trains after them")
    n_critic: int = Field(5, ge=1, description="critic updates per generator update")
    gradient_penalty: float = Field(10.0, ge=0, description="lambda of the WGAN-GP gradient penalty")
    feature_weight: float = Field(1.0, ge=0, description="kappa: weight of the critic-feature residual in izi_f")


class ThreshConfig(Section):
    """Thresh (Meissen et al. 2022): the histogram-equalised intensity as the anomaly score."""

    polarity: Literal["auto", "hyper", "hypo"] = Field(
        "auto", description="lesions brighter (hyper) or darker (hypo) than tissue; auto: hyper on T2, hypo on T1")
    bins: int = Field(1024, ge=2, description="histogram bins on [0, 1] of the equalisation")
    equalisation: Literal["per_scan", "healthy_fit"] = Field(
        "per_scan", description="per_scan: each scan equalised with its own brain histogram (Meissen et al., the "
                                "paper's row); healthy_fit: with the pooled healthy training brains")


class AERunConfig(_RunBase):
    """Dense autoencoder (Baur et al. 2021)."""

    method: Literal["ae"] = "ae"
    model: AutoencoderConfig = AutoencoderConfig()


class VAERunConfig(_RunBase):
    """Dense variational autoencoder (Baur et al. 2021), beta = 0.001."""

    method: Literal["vae"] = "vae"
    model: AutoencoderConfig = AutoencoderConfig()
    vae: VariationalConfig = VariationalConfig()


class SVAERunConfig(_RunBase):
    """Sequential VAE over stacks of consecutive slices (Behrendt et al. 2022), beta = 0.001.

    Trained without augmentation: the slice augmentation acts on single slices, not on stacks."""

    method: Literal["svae"] = "svae"
    data: DataConfig = DataConfig(augment=False)
    model: AutoencoderConfig = AutoencoderConfig()
    vae: VariationalConfig = VariationalConfig()
    sequence: SequenceConfig = SequenceConfig()

    @model_validator(mode="after")
    def _no_augmentation(self) -> "SVAERunConfig":
        if self.data.augment:
            raise ValueError("data.augment must be false for svae: the augmentation transforms single slices, "
                             "not stacks")
        return self


class DAERunConfig(_RunBase):
    """Denoising autoencoder (Kascenas et al. 2022): a UNet removing coarse noise."""

    method: Literal["dae"] = "dae"
    model: UNetConfig = UNetConfig()
    dae: CoarseNoiseConfig = CoarseNoiseConfig()


class FAnoGANRunConfig(_RunBase):
    """f-AnoGAN (Schlegl et al. 2019): latent 128, lr 1e-4 (paper §4.4)."""

    method: Literal["fanogan"] = "fanogan"
    model: AutoencoderConfig = AutoencoderConfig(channels=(64, 128, 256, 512), latent_dim=128)
    fanogan: AdversarialConfig = AdversarialConfig()
    train: TrainConfig = TrainConfig(lr=1e-4)

    @model_validator(mode="after")
    def _encoder_epochs_left(self) -> "FAnoGANRunConfig":
        if self.train.max_epochs <= self.fanogan.gan_epochs:
            raise ValueError(f"train.max_epochs ({self.train.max_epochs}) must exceed fanogan.gan_epochs "
                             f"({self.fanogan.gan_epochs}): the encoder trains in the epochs after the GAN")
        return self


class ThreshRunConfig(_RunBase):
    """Intensity thresholding (Thresh): no gradient training, only the fitted equalisation."""

    method: Literal["thresh"] = "thresh"
    thresh: ThreshConfig = ThreshConfig()


DIFFUSION_RUN_CONFIGS = (DDPMRunConfig, PDDPMRunConfig, CDDPMRunConfig)
"""The run configs of diffusion methods (a ``diffusion`` section: noise levels, t_test sweeps)."""

METHODS = ("ddpm", "pddpm", "cddpm", "spark", "ae", "vae", "svae", "dae", "fanogan", "thresh")
"""The ``method`` names a run config may have."""

RunConfig = Annotated[Union[DDPMRunConfig, PDDPMRunConfig, CDDPMRunConfig, SparKRunConfig, AERunConfig,
                            VAERunConfig, SVAERunConfig, DAERunConfig, FAnoGANRunConfig, ThreshRunConfig],
                      Field(discriminator="method")]
_RUN_ADAPTER: TypeAdapter = TypeAdapter(RunConfig)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
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


def _format_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        parts = problem["loc"][1:] if problem["loc"][:1] and problem["loc"][0] in METHODS else problem["loc"]
        location = ".".join(str(part) for part in parts)
        if problem["type"] == "extra_forbidden":
            lines.append(f"unknown key {location!r}")
        else:
            lines.append(f"{location or 'config'}: {problem['msg']}")
    return f"{source}: invalid configuration: " + "; ".join(lines)


def parse_config(raw: dict[str, Any], source: str = "config") -> (
        DDPMRunConfig | PDDPMRunConfig | CDDPMRunConfig | SparKRunConfig | AERunConfig | VAERunConfig | SVAERunConfig
        | DAERunConfig | FAnoGANRunConfig | ThreshRunConfig):
    """Validate a raw mapping into a typed run config.

    Raises:
        ConfigError: naming ``source`` and every unknown key or bad value.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a YAML mapping, got {type(raw).__name__}")
    if "method" not in raw:
        raise ConfigError(f"{source}: the config names no 'method' (one of {', '.join(METHODS)})")
    try:
        return _RUN_ADAPTER.validate_python(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


def load_config(path: str | Path, overrides: list[str] | None = None):
    """Read a YAML run config, apply dotted overrides and validate it (see :func:`parse_config`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    return parse_config(apply_overrides(raw, overrides or []), str(path))


def dump_config(config: BaseModel) -> str:
    """The config as YAML text (every value, defaults included), for a run directory."""
    values = config.model_dump(mode="json")
    ordered = {"method": values.pop("method"), **values}
    return yaml.safe_dump(ordered, sort_keys=False)


def packaged_config(name: str) -> Path:
    """The path of a config shipped with brainuad, e.g. ``"tiny/cddpm"`` or ``"authors_code/ddpm"``."""
    path = Path(__file__).resolve().parent / "configs" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r} (looked for {path})")
    return path
