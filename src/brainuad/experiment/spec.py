"""The experiment file (``brainuad experiment EXPERIMENT.yaml``): which models, folds and
modalities to train and which studies to run on them. Typed; an unknown key is an error.

Example (``experiments/tiny.yaml``)::

    name: tiny
    folds: [0, 1]
    modalities: [t2]
    methods:
      - {label: cDDPM, key: cddpm, config: tiny/cddpm, reference: cDDPM}
      - {label: DDPM, key: ddpm, config: tiny/ddpm, reference: DDPM}
    training: [train.max_steps=6]
    evaluation: {limit: 1}
    studies:
      ablation: false
      domain_shift: {t_tests: [500], dice: true}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from brainuad.config import Section
from brainuad.errors import ConfigError
from brainuad.evaluate.domain_shift import (
    CONDITIONING_WIDTHS,
    CONTRAST_LEVELS,
    HISTOGRAM_CONTRASTS,
    SHIFT_NOISE_LEVELS,
    DomainShiftSettings,
)
from brainuad.experiment.reference import REFERENCE_ROWS

__all__ = ["DomainShiftStudy", "Evaluation", "Experiment", "MethodEntry", "Studies", "experiment_file",
           "load_experiment", "packaged_experiments"]

PACKAGED = Path(__file__).resolve().parents[1] / "experiments"
"""The experiment files shipped with brainuad (``experiments/`` in the source tree)."""

_KEY = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")


class MethodEntry(Section):
    """One model of the experiment (a row of the tables), trained once per fold and modality.

    Attributes:
        label: the row label, e.g. ``cDDPM + SSL + ENS``.
        key: the run folders' prefix (``runs/<key>-<modality>-fold<k>``); default: the label in
            lower case with spaces as ``-``.
        config: a packaged config name (``cddpm``, ``tiny/ddpm``, ``authors_code/cddpm``) or a YAML
            file (relative to the experiment file).
        overrides: dotted ``key=value`` overrides of that config.
        pretrain: a SparK config (name or file) to pre-train the encoder with, once per fold and
            modality, before this model; its encoder then initialises the model's
            (``encoder.pretrained``). None: no pre-training.
        pretrain_overrides: overrides of the SparK config.
        reference: the paper's row to print beside this model (a name of
            :data:`~brainuad.experiment.reference.REFERENCE_ROWS`), or None.
        modalities: the modalities this model is trained on, among the experiment's (default: all
            of them); a multi-contrast model reading T1 beside T2 is trained on T2 only.
    """

    label: str = Field(min_length=1)
    key: str | None = None
    config: str = Field(min_length=1)
    overrides: tuple[str, ...] = ()
    pretrain: str | None = None
    pretrain_overrides: tuple[str, ...] = ()
    reference: str | None = None
    modalities: tuple[Literal["t1", "t2"], ...] | None = None

    @field_validator("key")
    @classmethod
    def _plain_key(cls, value: str | None) -> str | None:
        if value is not None and not _KEY.match(value):
            raise ValueError(f"a key is lower-case letters, digits and _.+- only, got {value!r}")
        return value

    @field_validator("reference")
    @classmethod
    def _known_reference(cls, value: str | None) -> str | None:
        if value is not None and value not in REFERENCE_ROWS:
            raise ValueError(f"no published row {value!r}; choose from {', '.join(REFERENCE_ROWS)}")
        return value

    @property
    def run_key(self) -> str:
        key = self.key or re.sub(r"[^a-z0-9_.+-]+", "-", self.label.lower()).strip("-")
        if not key:
            raise ValueError(f"the label {self.label!r} gives no folder name: set key")
        return key


class Evaluation(Section):
    """How every run is evaluated (the paper's protocol; sets follow each run's modality).

    Attributes:
        thresholds: threshold rules, the first that is not ``oracle`` the headline.
        limit: the first N volumes of every split only (a quick look, not a result), or all.
        lpips_weights: Med3D weights for LPIPS (relative to the experiment file), or None (skipped).
        postprocess_order: ``paper`` (median, then the eroded mask) or ``authors_code``.
    """

    thresholds: tuple[str, ...] = ("val-dice",)
    limit: int | None = Field(None, ge=1)
    lpips_weights: Path | None = None
    postprocess_order: Literal["paper", "authors_code"] = "paper"


class DomainShiftStudy(Section):
    """The domain-shift study (paper §4.5.2, Fig. 2 and 3) on the diffusion models.

    Attributes:
        methods: labels of the models to study (default: every diffusion model).
        folds: folds to study (default: the experiment's).
        contrasts, t_tests, widths, histogram_contrasts, dice: as
            :class:`~brainuad.evaluate.domain_shift.DomainShiftSettings`.
    """

    methods: tuple[str, ...] | None = None
    folds: tuple[int, ...] | None = None
    contrasts: tuple[float, ...] = CONTRAST_LEVELS
    t_tests: tuple[int, ...] = SHIFT_NOISE_LEVELS
    widths: tuple[float, ...] = CONDITIONING_WIDTHS
    histogram_contrasts: tuple[float, ...] = HISTOGRAM_CONTRASTS
    dice: bool = True

    def settings(self) -> DomainShiftSettings:
        return DomainShiftSettings(self.contrasts, self.t_tests, self.widths, self.histogram_contrasts, self.dice)

    @model_validator(mode="after")
    def _valid_settings(self) -> "DomainShiftStudy":
        self.settings()
        return self


class Studies(Section):
    """What is measured beyond Tables 2 and 3 (always made).

    Attributes:
        ablation: Table 4, the post-processing ablation.
        t_test: single test noise levels for the Dice-against-t_test figure (paper Fig. 5), or None.
        domain_shift: the domain-shift study, or None.
    """

    ablation: bool = True
    t_test: tuple[int, ...] | None = None
    domain_shift: DomainShiftStudy | None = None


class Experiment(Section):
    """A grid of trainings and the studies on them.

    Attributes:
        name: shown in the report.
        description: one paragraph for the report.
        folds: IXI folds (0-4) each model is trained on.
        modalities: ``t2`` (BraTS21, MSLUB) and/or ``t1`` (ATLAS, WMH).
        methods: the models.
        training: overrides applied to every run (before each model's own), e.g. a step budget.
        evaluation: the evaluation settings.
        studies: the studies.
    """

    name: str = Field(min_length=1)
    description: str = ""
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    modalities: tuple[Literal["t1", "t2"], ...] = ("t2", "t1")
    methods: tuple[MethodEntry, ...] = Field(min_length=1)
    training: tuple[str, ...] = ()
    evaluation: Evaluation = Evaluation()
    studies: Studies = Studies()

    @field_validator("folds")
    @classmethod
    def _folds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value) or not all(0 <= fold <= 4 for fold in value):
            raise ValueError(f"folds must be distinct values in 0..4, got {list(value)}")
        return value

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"modalities must be distinct (t1, t2), got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Experiment":
        keys = [entry.run_key for entry in self.methods]
        labels = [entry.label for entry in self.methods]
        for name, values in (("key", keys), ("label", labels)):
            twins = sorted({value for value in values if values.count(value) > 1})
            if twins:
                raise ValueError(f"two methods share the {name} {', '.join(twins)}")
        for entry in self.methods:
            foreign = [modality for modality in entry.modalities or () if modality not in self.modalities]
            if entry.modalities is not None and (not entry.modalities or foreign
                                                 or len(set(entry.modalities)) != len(entry.modalities)):
                raise ValueError(f"{entry.label}: modalities must be distinct modalities of the experiment "
                                 f"({', '.join(self.modalities)}), got {list(entry.modalities)}")
        study = self.studies.domain_shift
        if study is not None:
            unknown = [label for label in study.methods or () if label not in labels]
            if unknown:
                raise ValueError(f"studies.domain_shift.methods names no method of the experiment: {unknown}")
            outside = [fold for fold in study.folds or () if fold not in self.folds]
            if outside:
                raise ValueError(f"studies.domain_shift.folds {outside} are not among the experiment's folds")
        return self


def packaged_experiments() -> list[str]:
    """Names of the shipped experiment files (``tiny``, ``paper-table3``, ...)."""
    return sorted(path.stem for path in PACKAGED.glob("*.yaml"))


def experiment_file(name: str | Path) -> Path:
    """An experiment file: a path to a YAML file, or the name of a shipped one (``tiny``).

    Raises:
        ConfigError: neither a file nor a shipped name.
    """
    path = Path(name)
    if path.is_file():
        return path
    shipped = PACKAGED / f"{name}.yaml"
    if path.suffix not in (".yaml", ".yml") and shipped.is_file():
        return shipped
    raise ConfigError(f"{path}: experiment file not found (shipped experiments: {', '.join(packaged_experiments())})")


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file.

    Raises:
        ConfigError: the file is missing, not YAML, or holds an unknown key or a bad value (each named).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an experiment file is a YAML mapping, got {type(raw).__name__}")
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}"
                             for item in error.errors())
        raise ConfigError(f"{path}: {problems}") from None
