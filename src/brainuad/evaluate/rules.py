"""Which binarisations of the test maps an evaluation scores: threshold rules and post-processing variants.

Every threshold rule is applied to the fully post-processed maps; the headline rule (the first
that is not the oracle) also to each ablation variant (paper Table 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from brainuad.evaluate.postprocess import PostProcessing
from brainuad.evaluate.results import FULL, PoolSource
from brainuad.evaluate.thresholds import HealthyFPR, Oracle, ThresholdStrategy, ValDice, ValDiceBisection

THRESHOLD_NAMES = ("val-dice", "val-dice-bisection", "healthy-fpr", "oracle")
HEALTHY_FPR_RATES = (0.01, 0.05, 0.10)


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
    ``healthy-fpr`` gives three rules (1, 5, 10 %). The first rule that is not the oracle is the
    headline.

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
        else:
            raise ValueError(f"unknown threshold {name!r}; choose from {', '.join(THRESHOLD_NAMES)}")
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
