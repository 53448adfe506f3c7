"""Which binarisations of the test maps an evaluation scores: threshold rules and post-processing variants.

Every threshold rule is applied to the fully post-processed maps; the headline rule (the first
that is not the oracle) also to each ablation variant (paper Table 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from brainuad.evaluate.conformal import ConformalFPR, ConformalVolume
from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.results import FULL, PoolSource
from brainuad.evaluate.thresholds import HealthyFPR, Oracle, ThresholdStrategy, ValDice, ValDiceBisection

THRESHOLD_NAMES = ("val-dice", "val-dice-bisection", "healthy-fpr", "conformal-fpr", "conformal-volume", "oracle")
HEALTHY_FPR_RATES = (0.01, 0.05, 0.10)
CONFORMAL_FPR_ALPHA = 0.05
"""Default bound of ``conformal-fpr`` on the expected voxel false-positive rate of a healthy scan."""
CONFORMAL_VOLUME_ALPHA = 0.10
CONFORMAL_VOLUME_ML = 1.0
"""Defaults of ``conformal-volume``: at most ``CONFORMAL_VOLUME_ML`` ml flagged in a healthy scan with
probability at least ``1 - CONFORMAL_VOLUME_ALPHA``."""


def _parameters(name: str, base: str, count: int) -> list[float]:
    """The numbers after ``base`` in ``base:a[:b]`` (at most ``count``)."""
    parts = name.split(":")[1:]
    if len(parts) > count:
        raise ValueError(f"threshold {name!r}: {base} takes at most {count} ':'-separated value(s)")
    try:
        return [float(part) for part in parts]
    except ValueError:
        raise ValueError(f"threshold {name!r}: the values after {base} must be numbers, e.g. {base}:0.1") from None


def _conformal_rule(name: str) -> ThresholdRule | None:
    """``conformal-fpr[:ALPHA]`` or ``conformal-volume[:ALPHA[:ML]]``, else None."""
    base = name.split(":")[0]
    if base == "conformal-fpr":
        (alpha,) = _parameters(name, base, 1) or [CONFORMAL_FPR_ALPHA]
        return ThresholdRule(ConformalFPR(alpha), "healthy-val")
    if base == "conformal-volume":
        given = _parameters(name, base, 2)
        alpha, max_ml = [*given, *(CONFORMAL_VOLUME_ALPHA, CONFORMAL_VOLUME_ML)[len(given):]]
        return ThresholdRule(ConformalVolume(alpha, max_ml), "healthy-val")
    return None


@dataclass(frozen=True)
class ThresholdRule:
    """A threshold strategy and the voxels it is chosen on.

    Attributes:
        strategy: the strategy (its ``label`` names the results).
        source: "lesion-val" (the set's validation split), "healthy-val" (IXI validation volumes of
            the run's fold) or "test" (the oracle).
    """

    strategy: ThresholdStrategy
    source: PoolSource

    @property
    def label(self) -> str:
        return self.strategy.label


def threshold_rules(names: Sequence[str]) -> tuple[ThresholdRule, ...]:
    """The rules named by ``names`` (from :data:`THRESHOLD_NAMES`), in order, without repeats;
    ``healthy-fpr`` gives three rules (1, 5, 10 %); ``conformal-fpr:A`` bounds the expected voxel
    false-positive rate of a healthy scan by ``A`` (default 0.05), ``conformal-volume:A:V`` the
    probability of more than ``V`` ml flagged in one by ``A`` (defaults 0.1 and 1 ml; see
    :mod:`~brainuad.evaluate.conformal`). The first rule that is not the oracle is the headline.

    Raises:
        ValueError: an unknown name, an empty list, or only the oracle.
    """
    if isinstance(names, str) or not names:
        raise ValueError(f"thresholds must be a non-empty list of names from {THRESHOLD_NAMES}, got {names!r}")
    rules: list[ThresholdRule] = []
    for name in dict.fromkeys(names):
        if name == "val-dice":
            rules.append(ThresholdRule(ValDice(), "lesion-val"))
        elif name == "val-dice-bisection":
            rules.append(ThresholdRule(ValDiceBisection(), "lesion-val"))
        elif name == "healthy-fpr":
            rules.extend(ThresholdRule(HealthyFPR(rate), "healthy-val") for rate in HEALTHY_FPR_RATES)
        elif name == "oracle":
            rules.append(ThresholdRule(Oracle(), "test"))
        elif (conformal := _conformal_rule(name)) is not None:
            rules.append(conformal)
        else:
            raise ValueError(f"unknown threshold {name!r}; choose from {', '.join(THRESHOLD_NAMES)}")
    unique: dict[str, ThresholdRule] = {}
    for rule in rules:  # one rule per label (conformal-fpr and conformal-fpr:0.05 are one), the first kept
        unique.setdefault(rule.label, rule)
    rules = list(unique.values())
    if all(rule.source == "test" for rule in rules):
        raise ValueError("thresholds: 'oracle' is an upper bound on the test split and cannot be the only "
                         "threshold; add a real one, e.g. 'val-dice'")
    headline = next(rule for rule in rules if rule.source != "test")
    return (headline, *(rule for rule in rules if rule is not headline))


@dataclass(frozen=True)
class PostProcessingVariant:
    """A labelled post-processing: ``full`` or an ablation ("without CC", "without MF", "without BE")."""

    label: str
    postprocessing: PostProcessing


def postprocessing_variants(base: PostProcessing, ablation: bool) -> tuple[PostProcessingVariant, ...]:
    """``full`` (``base``) and, with ``ablation``, ``base`` without each step it uses (paper Table 4:
    connected components, median filter, brain erosion)."""
    variants = [PostProcessingVariant(FULL, base)]
    if ablation:
        for label, step in (("without CC", "components"), ("without MF", "median"), ("without BE", "erosion")):
            if getattr(base, step):
                without: dict[str, Any] = {step: False}
                variants.append(PostProcessingVariant(label, replace(base, **without)))
    return tuple(variants)


@dataclass(frozen=True)
class Binarisation:
    """One binarisation of the test maps: a post-processing variant and a threshold rule."""

    variant: PostProcessingVariant
    rule: ThresholdRule


def binarisations(rules: tuple[ThresholdRule, ...],
                  variants: tuple[PostProcessingVariant, ...]) -> tuple[Binarisation, ...]:
    """Every rule on the full post-processing, the headline rule on each ablation variant."""
    return (*(Binarisation(variants[0], rule) for rule in rules),
            *(Binarisation(variant, rules[0]) for variant in variants[1:]))


def variants_needing(pairs: Sequence[Binarisation], source: PoolSource) -> list[PostProcessingVariant]:
    """The post-processing variants whose maps a threshold chosen on ``source`` needs, in order."""
    return list(dict.fromkeys(pair.variant for pair in pairs if pair.rule.source == source))
