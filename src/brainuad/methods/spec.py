"""What a method declares about itself, once, beside its implementation: :class:`MethodSpec`.

Training, the CLI, the evaluation and the demo ask a method's spec (through
:mod:`brainuad.methods.registry`) instead of testing its name: how to build it from its run
config, how it trains, how many consecutive slices a training item holds, and what it can do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import torch
from torch import nn

from brainuad.config import RunConfigBase

__all__ = ["MethodSpec", "OptimizerSettings", "TrainingKind", "WEIGHTS_FILE"]

TrainingKind = Literal["gradient", "adversarial", "fit"]
"""How a method trains: ``gradient`` (one optimiser on ``training_loss``), ``adversarial``
(f-AnoGAN's alternating critic, generator and encoder updates: ``stage_modules``, ``critic_loss``,
``generator_loss``, ``in_gan_stage``) or ``fit`` (one pass over the training volumes: ``fit``)."""

WEIGHTS_FILE = "model.safetensors"
"""Where a run keeps a detector's trained weights."""

ConfigT = TypeVar("ConfigT", bound=RunConfigBase)


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimiser a method trains with; the learning rate comes from ``train.lr``.

    Attributes:
        kind: Adam (the paper's detectors) or AdamW (SparK pre-training).
        weight_decay: decoupled weight decay (AdamW) or L2 penalty (Adam).
        betas: Adam's moment coefficients.
    """

    kind: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def build(self, parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """The optimiser over ``parameters`` with learning rate ``lr``: the fused implementation
        (one kernel for all parameters on a GPU, a vectorised loop on a CPU)."""
        optimizer = torch.optim.AdamW if self.kind == "adamw" else torch.optim.Adam
        return optimizer(parameters, lr=lr, weight_decay=self.weight_decay, betas=self.betas, fused=True)


def _single_slices(config: RunConfigBase) -> int:
    return 1


def _no_noise_levels(config: RunConfigBase) -> None:
    return None


def _no_contrasts(config: RunConfigBase) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class MethodSpec(Generic[ConfigT]):
    """One method, as training, evaluation and the CLI see it.

    Attributes:
        name: the ``method`` value of its run configs (``cddpm``, ``thresh``, ...).
        config: its run config class (a :class:`~brainuad.config.RunConfigBase` whose ``method``
            field is ``Literal[name]``).
        build: ``build(config, load_pretrained)`` -> the untrained module. ``load_pretrained``:
            read pre-trained parts named in the config (a cDDPM's SparK encoder); off when a
            run's own trained weights are loaded next anyway.
        summary: one line for help texts and docs.
        training: how it trains (:data:`TrainingKind`).
        optimizer: its optimiser (``adversarial``: each of the stages' optimisers).
        detector: an anomaly detector (``anomaly_map(volume)``), which ``train``, ``evaluate`` and
            ``predict`` accept; False for a pre-trainer (SparK), which ``pretrain`` runs.
        weights_file: the file a finished run writes the weights to.
        export: the part of the trained module's state dict that is written there (default all).
        stack_size: consecutive axial slices per training item (1: single slices).
        noise_levels: the number T of noise levels of a diffusion method's schedule (test levels
            t_test lie in 1..T; after training, the PSNR check at t = 500 runs), None otherwise.
        contrasts: the other modalities of each subject the method reads beside ``data.modality``
            (a multi-contrast method: ``("t1",)``), in training items (as channels after the
            slice), evaluation and prediction; empty for a single-contrast method.
    """

    name: str
    config: type[ConfigT]
    build: Callable[[ConfigT, bool], nn.Module]
    summary: str
    training: TrainingKind = "gradient"
    optimizer: OptimizerSettings = OptimizerSettings()
    detector: bool = True
    weights_file: str = WEIGHTS_FILE
    export: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    stack_size: Callable[[ConfigT], int] = _single_slices
    noise_levels: Callable[[ConfigT], int | None] = _no_noise_levels
    contrasts: Callable[[ConfigT], tuple[str, ...]] = _no_contrasts

    def __post_init__(self) -> None:
        declared = self.config.model_fields["method"].default
        if declared != self.name:
            raise ValueError(f"method spec {self.name!r}: its config class {self.config.__name__} has method "
                             f"{declared!r}")

    def exported_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors of a trained module's ``state`` that its run keeps in :attr:`weights_file`."""
        return state if self.export is None else self.export(state)
