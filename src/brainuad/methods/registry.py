"""The methods brainuad knows, by name, and the parsing of run configs into their config classes.

Every method declares a :class:`~brainuad.methods.spec.MethodSpec` beside its implementation;
:data:`SPECS` lists them (adding a method is one module and one entry here, see
docs/adding-a-method.md). A run config's ``method`` key picks its spec and its config class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Sequence, Union

from pydantic import Field, TypeAdapter

from brainuad.config import RunConfigBase, read_config_file, validate_run_config
from brainuad.errors import ConfigError
from brainuad.methods.autoencoders import AE_SPEC, VAE_SPEC
from brainuad.methods.base import AnomalyDetector
from brainuad.methods.cddpm import CDDPM_SPEC
from brainuad.methods.cddpm25d import CDDPM25D_SPEC
from brainuad.methods.cddpm_mc import CDDPM_MC_SPEC
from brainuad.methods.dae import DAE_SPEC
from brainuad.methods.ddpm import DDPM_SPEC
from brainuad.methods.fanogan import FANOGAN_SPEC
from brainuad.methods.pddpm import PDDPM_SPEC
from brainuad.methods.pddpm_iqa import PDDPM_IQA_SPEC
from brainuad.methods.spark import SPARK_SPEC
from brainuad.methods.spec import MethodSpec
from brainuad.methods.svae import SVAE_SPEC
from brainuad.methods.thresh import THRESH_SPEC

__all__ = ["DETECTORS", "METHODS", "SPECS", "build_detector", "load_config", "parse_config",
           "spec_of"]

SPECS: dict[str, MethodSpec[Any]] = {spec.name: spec for spec in (
    DDPM_SPEC, PDDPM_SPEC, CDDPM_SPEC, SPARK_SPEC, AE_SPEC, VAE_SPEC, SVAE_SPEC, DAE_SPEC, FANOGAN_SPEC, THRESH_SPEC,
    PDDPM_IQA_SPEC, CDDPM25D_SPEC, CDDPM_MC_SPEC)}
"""Every method, by its config's ``method`` name, in the order of the paper's tables, then the
follow-up methods (docs/follow-up-methods.md)."""

METHODS = tuple(SPECS)
"""The ``method`` names a run config may have."""

DETECTORS = tuple(name for name, spec in SPECS.items() if spec.detector)
"""The methods that are anomaly detectors (``brainuad train``); the others are pre-trainers."""

# The union of the config classes is built at run time, so it is a value of type Any to mypy.
_CONFIG_UNION: Any = Annotated[Union[tuple(spec.config for spec in SPECS.values())], Field(discriminator="method")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(_CONFIG_UNION)


def spec_of(config_or_name: RunConfigBase | str) -> MethodSpec[Any]:
    """The spec of a run config's method (or of a method name).

    Raises:
        ConfigError: no method of that name.
    """
    name = config_or_name if isinstance(config_or_name, str) else config_or_name.method
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


def parse_config(raw: Any, source: str = "config") -> Any:
    """Validate a raw mapping into the run config class of its ``method``.

    Raises:
        ConfigError: naming ``source`` and every unknown key or bad value.
    """
    return validate_run_config(raw, source, _ADAPTER, METHODS)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Any:
    """Read a YAML run config, apply dotted overrides and validate it (see :func:`parse_config`)."""
    return parse_config(read_config_file(path, overrides), str(path))


def build_detector(config: RunConfigBase, *, load_pretrained: bool = True) -> AnomalyDetector:
    """The untrained anomaly detector of a run config.

    Raises:
        ConfigError: the config is of a pre-trainer (SparK), not a detector.
    """
    spec = spec_of(config)
    if not spec.detector:
        raise ConfigError(f"method {spec.name!r} is a pre-trainer, not an anomaly detector")
    method = spec.build(config, load_pretrained)
    if not isinstance(method, AnomalyDetector):
        raise TypeError(f"the spec of {spec.name!r} is marked a detector but builds a {type(method).__name__}")
    return method
