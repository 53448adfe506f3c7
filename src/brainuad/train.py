"""Training with Lightning: the module wrapping a method, the trainer factory and a run.

Every method (and the SparK pre-trainer) exposes ``training_loss(images, generator=None)``; the
Lightning module optimises it on healthy slices and reports a deterministic validation loss (fixed
noise levels and noise per validation batch), which picks the best checkpoint. A run directory
receives the config, the best weights as safetensors, Lightning's resumable state and CSV and
TensorBoard logs; re-running into the same directory resumes from the last checkpoint.

How a method trains is declared in its spec (:class:`~brainuad.methods.spec.MethodSpec`):
``gradient`` (this module's :class:`TrainingModule`), ``adversarial`` (f-AnoGAN alternates its GAN
and encoder updates by hand: :class:`AdversarialTrainingModule`) or ``fit`` (Thresh: fitted once
on the training volumes; ``config.yaml``, ``model.safetensors`` and ``training.json`` only).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import pickle
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch import Tensor, nn

from brainuad.atomic import write_text
from brainuad.checks import check_fraction
from brainuad.config import TrainingPrecision
from brainuad.data.augmentation import SliceAugmentation
from brainuad.data.cache import GridCache
from brainuad.data.datamodule import HealthySlicesDataModule
from brainuad.data.grid import GridVolume
from brainuad.errors import ConfigError, InputError
from brainuad.lock import FolderLock
from brainuad.methods.base import AnomalyDetector
from brainuad.methods.ddpm import DDPM
from brainuad.methods.fanogan import FAnoGAN
from brainuad.methods.registry import spec_of
from brainuad.methods.spark import SparKPretrainer
from brainuad.methods.spec import MethodSpec, OptimizerSettings
from brainuad.run_directory import write_config
from brainuad.training_check import diffusion_check
from brainuad.weights import save_weights

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
SUMMARY_FILE = "training.json"


@runtime_checkable
class _FitMethod(Protocol):
    """A method trained by one pass over the training volumes (``training = "fit"``: Thresh)."""

    def fit(self, volumes: Sequence[GridVolume]) -> None: ...

    def training_loss(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


class TrainingModule(L.LightningModule):
    """Lightning wrapper of anything with ``training_loss(images, generator=None) -> scalar``.

    Args:
        method: the method (or pre-trainer) to optimise; saved under the ``method.`` key prefix.
        optimizer: the optimiser settings.
        lr: the learning rate.
        val_seed: seed of the per-batch generators that make the validation loss deterministic.
        channels_last: use the channels-last memory format (faster convolutions with oneDNN on CPUs
            and with cuDNN on GPUs).
        compile: compile each of the method's networks (its child modules) with torch.compile;
            their parameters and saved weights keep their names.
    """

    method: AnomalyDetector | SparKPretrainer

    def __init__(self, method: AnomalyDetector | SparKPretrainer, optimizer: OptimizerSettings, lr: float,
                 val_seed: int = 0, channels_last: bool = False, compile: bool = False) -> None:
        super().__init__()
        self.method = method
        self.optimizer_settings = optimizer
        self.lr = lr
        self.val_seed = val_seed
        self.channels_last = channels_last
        self.compile_networks = compile

    def setup(self, stage: str) -> None:
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
        if self.compile_networks:
            for network in self.method.children():
                network.compile()

    def _images(self, batch: dict[str, Tensor]) -> Tensor:
        images = batch["image"]
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        loss = self.method.training_loss(self._images(batch))
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]),
                 sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        generator = torch.Generator(device=self.device).manual_seed(self.val_seed + batch_index)
        loss = self.method.training_loss(self._images(batch), generator)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer | list[torch.optim.Optimizer]:
        return self.optimizer_settings.build(self.method.parameters(), self.lr)


class AdversarialTrainingModule(TrainingModule):
    """f-AnoGAN's two stages by manual optimisation (see :mod:`brainuad.methods.fanogan`).

    GAN epochs: every batch updates the critic; every ``n_critic``-th critic update (counted over
    the whole stage, so it does not depend on the batches per epoch) is followed by a generator
    update. Encoder epochs: every batch updates the encoder with the izi_f loss. Each of critic,
    generator and encoder has its own optimiser with the same settings, and while one steps the
    parameters of the others take no gradient. The validation loss is the izi_f loss in the
    encoder stage and +inf during the GAN stage, so the best checkpoint always has a trained
    encoder.

    Args:
        method: the f-AnoGAN.
        optimizer: settings of each of the three optimisers.
        lr, val_seed, channels_last: see :class:`TrainingModule`.
    """

    method: FAnoGAN

    def __init__(self, method: FAnoGAN, optimizer: OptimizerSettings, lr: float, val_seed: int = 0,
                 channels_last: bool = False, compile: bool = False) -> None:
        super().__init__(method, optimizer, lr, val_seed, channels_last, compile)
        self.automatic_optimization = False

    def _update(self, optimizer: LightningOptimizer, loss_fn: Callable[[], Tensor]) -> Tensor:
        with self.toggled_optimizer(optimizer):
            loss = loss_fn()
            self.manual_backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        images = self._images(batch)
        optimizers = self.optimizers()
        if not isinstance(optimizers, list):
            raise RuntimeError(f"f-AnoGAN trains with three optimisers, got a single {type(optimizers).__name__}")
        critic_optimizer, generator_optimizer, encoder_optimizer = optimizers
        size = len(images)
        if not self.method.in_gan_stage(self.current_epoch):
            loss = self._update(encoder_optimizer, lambda: self.method.training_loss(images))
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
            return loss
        loss = self._update(critic_optimizer, lambda: self.method.critic_loss(images))
        self.log("train/critic_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size,
                 sync_dist=True)
        critic_updates = self.current_epoch * self.trainer.num_training_batches + batch_index + 1
        if critic_updates % self.method.n_critic == 0:
            generator_loss = self._update(generator_optimizer,
                                          lambda: self.method.generator_loss(size, images.device))
            self.log("train/generator_loss", generator_loss, on_step=True, on_epoch=True, batch_size=size,
                     sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        if not self.method.in_gan_stage(self.current_epoch):
            return super().validation_step(batch, batch_index)
        loss = torch.tensor(float("inf"), device=self.device)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer_settings.build(module.parameters(), self.lr) for module in self.method.stage_modules()]


class CosineLearningRate(Callback):
    """Cosine decay of every optimiser's learning rate from its initial value to ``final_fraction``
    of it over the run's budget, set before each training step.

    Progress is the largest of the fraction of ``max_epochs`` done, with a step limit the fraction
    of ``max_steps`` done, and with a wall-time limit the fraction of that time used (Lightning's
    :class:`~lightning.pytorch.callbacks.Timer`, which a resumed run continues), so a run stopped by
    any limit ends at the low rate.
    """

    def __init__(self, final_fraction: float = 0.05) -> None:
        check_fraction("final_fraction", final_fraction)
        self.final_fraction = final_fraction

    @staticmethod
    def progress(trainer: L.Trainer) -> float:
        """Fraction of the budget used, in [0, 1]."""
        done = trainer.current_epoch / max(trainer.max_epochs or 1, 1)
        if trainer.max_steps and trainer.max_steps > 0:
            done = max(done, trainer.global_step / trainer.max_steps)
        # Lightning sets Trainer.callbacks in its callback connector, so its type hints lack it
        callbacks = trainer.callbacks  # type: ignore[attr-defined]
        timer = next((callback for callback in callbacks if isinstance(callback, Timer)), None)
        remaining = None if timer is None else timer.time_remaining("train")
        if timer is not None and remaining is not None:
            elapsed = timer.time_elapsed("train")
            done = max(done, elapsed / max(elapsed + remaining, 1e-9))
        return min(max(done, 0.0), 1.0)

    def factor(self, progress: float) -> float:
        """The learning-rate multiplier at ``progress``: 1 at 0, ``final_fraction`` at 1."""
        return self.final_fraction + (1.0 - self.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        factor = self.factor(self.progress(trainer))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor


class RandomState(Callback):
    """Gives each process of a run its own random streams and keeps them in every checkpoint.

    Under DDP every rank re-seeds its generators with ``seed + rank`` once the processes have
    started (after the model is built, so the initial weights are the same everywhere), so the
    ranks draw different slices, augmentations, time steps and noise; one process keeps its seed.
    Every checkpoint holds each rank's states (torch, its CUDA device, numpy, Python; gathered from
    all ranks, which all dump a checkpoint) and a resumed rank restores its own, so a run resumed
    from its last checkpoint draws what an uninterrupted one would (and ends with the same weights).

    The states are stored as tensors and integers only, so the checkpoint still loads with
    ``torch.load(weights_only=True)``.

    Args:
        seed: the run's seed (``train.seed``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            L.seed_everything(self.seed + trainer.global_rank, workers=True, verbose=False)

    def state_dict(self) -> dict:
        own = _random_states()
        if not _distributed():
            return {"ranks": [own]}
        ranks: list[dict | None] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(ranks, own)
        return {"ranks": ranks}

    def load_state_dict(self, state: dict) -> None:
        if "ranks" not in state:  # a checkpoint of one process, written before states were kept per rank
            _restore_random_states(state, every_device=True)
            return
        rank = torch.distributed.get_rank() if _distributed() else 0
        if rank < len(state["ranks"]):  # a rank the saved run did not have keeps its seeded streams
            _restore_random_states(state["ranks"][rank], every_device=False)


def _distributed() -> bool:
    """Whether this process is a rank of an initialised process group."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _random_states() -> dict:
    """This process's generator states: torch (CPU), its current CUDA device, numpy, Python."""
    numpy_state = np.random.get_state()
    if not isinstance(numpy_state, tuple):  # legacy=True: always the MT19937 tuple
        raise RuntimeError(f"numpy's random state is a {type(numpy_state).__name__}, not the legacy tuple")
    kind, key, position, has_gauss, cached = numpy_state
    version, internal, gauss = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "position": int(position),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss": gauss}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_random_states(state: dict, *, every_device: bool) -> None:
    """Restore what :func:`_random_states` returned (``every_device``: the older format's list of
    every CUDA device's state)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["key"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(int(v) for v in python_state["internal"].tolist()),
                     python_state["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        if every_device:
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            torch.cuda.set_rng_state(state["cuda"])


def build_trainer(run_dir: Path, *, max_epochs: int, max_steps: int | None = None, max_minutes: float | None = None,
                  precision: TrainingPrecision = "32-true", accelerator: str = "auto", devices: int | str = "auto",
                  num_nodes: int = 1, strategy: str = "auto", check_val_every_n_epoch: int = 1,
                  log_every_n_steps: int = 10, lr_schedule: str = "constant", seed: int = 0,
                  progress: bool = True) -> tuple[L.Trainer, ModelCheckpoint]:
    """A Lightning trainer writing checkpoints and CSV/TensorBoard logs into ``run_dir``.

    The best checkpoint is chosen by the validation loss (``val/loss``); ``last.ckpt`` is kept
    for resuming. ``max_steps`` stops training after that many optimiser steps, ``max_minutes``
    after that wall time (the last state is still saved). ``lr_schedule="cosine"`` adds :class:`CosineLearningRate`.
    ``seed``: the run's seed, from which the ranks of a DDP run seed their own streams (:class:`RandomState`).
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be constant or cosine, got {lr_schedule!r}")
    checkpoint = ModelCheckpoint(dirpath=run_dir / CHECKPOINT_DIR, filename="best", monitor="val/loss", mode="min",
                                 save_top_k=1, save_last=True)
    loggers = [CSVLogger(run_dir / "logs", name="csv"), TensorBoardLogger(run_dir / "logs", name="tensorboard")]
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=max_epochs,
        max_steps=-1 if max_steps is None else max_steps,
        max_time=datetime.timedelta(minutes=max_minutes) if max_minutes else None,
        precision=precision,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        check_val_every_n_epoch=check_val_every_n_epoch,
        log_every_n_steps=log_every_n_steps,
        callbacks=[checkpoint, RandomState(seed)] + ([CosineLearningRate()] if lr_schedule == "cosine" else []),
        logger=loggers,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    return trainer, checkpoint


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up notes (accelerators found, a logging-service tip, the time limit
    reached) and its warnings about epochs shorter than its logging interval: the caller (the demo, an
    experiment) says what it trains and for how long itself. Its progress bars stay."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
            yield
    finally:
        logger.setLevel(level)


@dataclass
class TrainingSummary:
    """What a finished (or interrupted) training run reports."""

    run_dir: str
    method: str
    epochs: int
    steps: int
    best_val_loss: float | None
    seconds: float
    weights: str
    psnr_noised_db: float | None = None
    psnr_reconstruction_db: float | None = None


def _write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2))


def _best_state(checkpoint: ModelCheckpoint, module: TrainingModule) -> dict[str, Tensor]:
    """The method's weights from the best checkpoint (or the current ones when there is none)."""
    path = checkpoint.best_model_path
    if path and Path(path).is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        return {key.removeprefix("method."): value for key, value in state.items() if key.startswith("method.")}
    return module.method.state_dict()


def _fit_run(config: Any, spec: MethodSpec[Any], run_dir: Path, method: nn.Module, data: HealthySlicesDataModule,
             started: float) -> TrainingSummary:
    """Thresh: fit the method on the training volumes, report its loss on the validation slices
    (the mean over slices), save the fitted state."""
    if not isinstance(method, _FitMethod):
        raise TypeError(f"{type(method).__name__} trains by fit(volumes) but has no fit or training_loss")
    data.setup("fit")
    method.fit(data.train_volumes)
    total, count = 0.0, 0
    for batch in data.val_dataloader():
        total += float(method.training_loss(batch["image"])) * len(batch["image"])
        count += len(batch["image"])
    weights = save_weights(run_dir / spec.weights_file, spec.exported_weights(method.state_dict()))
    summary = TrainingSummary(run_dir=str(run_dir), method=config.method, epochs=0, steps=0,
                              best_val_loss=total / count, seconds=round(time.time() - started, 1),
                              weights=str(weights))
    _write_json(run_dir / SUMMARY_FILE, asdict(summary))
    return summary


def train_run(config: Any, run_dir: str | Path, *, progress: bool = True) -> TrainingSummary:
    """Train the method of ``config`` into ``run_dir`` (resuming from its last checkpoint if any).

    Writes ``config.yaml``, the best weights (the spec's ``weights_file``: ``model.safetensors``,
    for SparK the encoder body as ``encoder.safetensors``), ``checkpoints/``, ``logs/`` and
    ``training.json``; for diffusion methods also ``examples.png`` and the PSNR check at t = 500
    (see :func:`~brainuad.training_check.diffusion_check`). A method that trains by ``fit``
    (Thresh) is fitted instead (see :func:`_fit_run`): no checkpoints or logs. The run directory is
    locked meanwhile (:class:`~brainuad.lock.FolderLock`): a second training or an evaluation of it
    is refused.
    """
    if config.data.root is None:
        raise ConfigError("no data directory: give --data DATA or set data.root in the config")
    run_dir = Path(run_dir)
    # under DDP every rank runs this function; the processes Lightning or torchrun starts besides
    # rank 0 (RANK / LOCAL_RANK > 0) share rank 0's lock
    first_rank = int(os.environ.get("RANK", "0")) == 0 and int(os.environ.get("LOCAL_RANK", "0")) == 0
    with FolderLock(run_dir, f"training {config.method}") if first_rank else contextlib.nullcontext():
        return _train_locked(config, run_dir, progress)


def _train_locked(config: Any, run_dir: Path, progress: bool) -> TrainingSummary:
    from rich.progress import track

    spec = spec_of(config)
    write_config(run_dir, config)
    L.seed_everything(config.train.seed, workers=True, verbose=False)
    started = time.time()
    method = spec.build(config, True)
    data = HealthySlicesDataModule(
        config.data.root, config.data.modality, config.data.fold, batch_size=config.data.batch_size,
        num_workers=config.data.num_workers, augmentation=SliceAugmentation() if config.data.augment else None,
        val_slices_per_volume=config.data.val_slices_per_volume,
        cache=GridCache(config.data.cache_dir, normalise_on=config.data.normalise_on),
        progress=(lambda items, text: track(items, description=text, transient=True)) if progress else None,
        stack_size=spec.stack_size(config), slices_on=config.data.slices_on, contrasts=spec.contrasts(config))
    if spec.training == "fit":
        return _fit_run(config, spec, run_dir, method, data, started)
    module: TrainingModule
    if spec.training == "adversarial":
        if not isinstance(method, FAnoGAN):
            raise TypeError(f"adversarial training needs an f-AnoGAN, got {type(method).__name__}")
        module = AdversarialTrainingModule(method, spec.optimizer, config.train.lr, val_seed=config.train.seed,
                                           channels_last=config.train.channels_last, compile=config.train.compile)
    else:
        if not isinstance(method, (AnomalyDetector, SparKPretrainer)):
            raise TypeError(f"gradient training needs an AnomalyDetector or SparKPretrainer, got "
                            f"{type(method).__name__}")
        module = TrainingModule(method, spec.optimizer, config.train.lr, val_seed=config.train.seed,
                                channels_last=config.train.channels_last, compile=config.train.compile)
    trainer, checkpoint = build_trainer(
        run_dir, max_epochs=config.train.max_epochs, max_steps=config.train.max_steps,
        max_minutes=config.train.max_minutes,
        precision=config.train.precision, accelerator=config.train.accelerator, devices=config.train.devices,
        num_nodes=config.train.num_nodes, strategy=config.train.strategy,
        check_val_every_n_epoch=config.train.check_val_every_n_epoch,
        log_every_n_steps=config.train.log_every_n_steps, lr_schedule=config.train.lr_schedule,
        seed=config.train.seed, progress=progress)
    last = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last if last.is_file() else None, weights_only=True)
    except pickle.UnpicklingError as error:
        raise InputError(last, f"holds objects other than tensors and plain values, so it is not loaded ({error})",
                         "a checkpoint brainuad wrote never does: delete it (and checkpoints/) to train afresh") \
            from None
    state = _best_state(checkpoint, module)
    best = checkpoint.best_model_score
    summary = TrainingSummary(
        run_dir=str(run_dir), method=config.method, epochs=trainer.current_epoch, steps=trainer.global_step,
        best_val_loss=None if best is None or not math.isfinite(float(best)) else float(best),
        seconds=round(time.time() - started, 1), weights="")
    if not trainer.is_global_zero:
        return summary
    weights = save_weights(run_dir / spec.weights_file, spec.exported_weights(state))
    if spec.noise_levels(config) is not None:
        if not isinstance(method, DDPM):
            raise TypeError(f"the PSNR check after training needs a DDPM, got {type(method).__name__}")
        method.load_state_dict(state)
        check = diffusion_check(method.cpu(), data.val_volumes, run_dir / "examples.png", seed=config.train.seed)
        summary.psnr_noised_db = round(check.psnr_noised_db, 2)
        summary.psnr_reconstruction_db = round(check.psnr_reconstruction_db, 2)
    summary.weights = str(weights)
    _write_json(run_dir / SUMMARY_FILE, asdict(summary))
    return summary
