"""The training loop shared by the neural estimators.

The estimator supplies the model, a loss ``loss_fn(model, batch) -> scalar tensor`` and the
batches; this module does the rest: Adam with the learning rate halved on validation plateaus
(or annealed on a cosine, ``TrainConfig.lr_schedule``), train/eval modes, a validation pass per
epoch, early stopping that restores the best weights, a checkpoint per epoch that
``resume=True`` continues from (model, optimiser, epoch, best weights, history and the
batch-shuffling generator), a progress bar with train/validation loss, and a guard against
non-finite losses or gradients: such a step is skipped with a message, and too many in a row
stop training with an error rather than silently training on NaN. The steps run in float32 or,
as an option, in bfloat16 mixed precision (``TrainConfig.precision``).

Determinism: batch order comes from a numpy generator seeded by ``TrainConfig.seed``; weight
initialisation is the estimator's business (it seeds torch inside ``torch.random.fork_rng`` so
the caller's global state is untouched).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["LR_SCHEDULES", "PRECISIONS", "TrainConfig", "TrainResult", "train_model"]

#: learning-rate schedules of :class:`TrainConfig`
LR_SCHEDULES = ("plateau", "cosine")
#: arithmetic of the training steps (:class:`TrainConfig`)
PRECISIONS = ("float32", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        batch_size: clusters per batch; None (the default): the estimator's own (its config's
            default, 32 clusters for the set networks, 100 for the image networks), which
            ``configure`` puts in its place. Run sizes decide it
            (:class:`pyro_clusters.pipeline.sizes.RunSize`).
        max_epochs: upper limit of epochs.
        patience: stop after this many epochs without a better validation loss.
        min_delta: improvement smaller than this does not count.
        clip_grad_norm: gradient-norm clipping (None: off).
        lr_schedule: ``"plateau"``: multiply the learning rate by ``lr_decay_factor`` when the
            validation loss has not improved for ``lr_decay_patience`` epochs
            (``ReduceLROnPlateau``); ``"cosine"``: anneal it from ``lr`` to ``min_lr`` over
            ``max_epochs`` whatever the validation loss does (``CosineAnnealingLR``, one step
            per epoch: epoch e trains at min_lr + (lr - min_lr) (1 + cos(pi e / max_epochs)) / 2;
            Loshchilov & Hutter 2017, arXiv:1608.03983); meant for training on fresh clusters
            every epoch, where the loss is noisy but there is nothing to overfit (the ablation
            in docs/estimators.md compares the two). It assumes the run goes on to
            ``max_epochs``: early stopping or ``max_seconds`` cut it before the learning rate
            is small.
        lr_decay_factor: the plateau schedule's factor (1 switches it off).
        lr_decay_patience: epochs without improvement before the plateau schedule reduces the
            learning rate.
        min_lr: the learning rate is not reduced below this.
        max_bad_steps: consecutive non-finite steps tolerated before raising.
        max_seconds: wall-time budget; training stops after the epoch that exceeds it and
            keeps the best weights so far (None: no limit).
        precision: arithmetic of the training steps. ``"float32"``: all of it.
            ``"bfloat16"``: mixed precision -- the steps' forward passes run under
            ``torch.autocast`` with bfloat16, so matrix products and convolutions take
            bfloat16 inputs and accumulate in float32, while the weights, the optimiser, the
            gradients' update and every op autocast keeps in float32 stay float32; faster on
            CPUs with bfloat16 instructions (AVX-512 BF16, AMX) and on GPUs. A model may keep
            parts of its loss in float32 (the NPE's flow density). Validation losses, and so the
            choice of the best epoch, and all use after training are float32.
        seed: seed of batch shuffling and weight initialisation.
        device: torch device (``"cpu"``, ``"cuda"``, ...).
        progress: show a progress bar.
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int | None = None
    max_epochs: int = 200
    patience: int = 15
    min_delta: float = 1e-4
    clip_grad_norm: float | None = 5.0
    lr_schedule: str = "plateau"
    lr_decay_factor: float = 0.5
    lr_decay_patience: int = 3
    min_lr: float = 1e-5
    max_bad_steps: int = 20
    max_seconds: float | None = None
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    precision: str = "float32"

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.max_epochs < 1 or self.patience < 1 or (
                self.batch_size is not None and self.batch_size < 1):
            raise ValueError("lr, batch_size, max_epochs and patience must be positive")
        if not 0 < self.lr_decay_factor <= 1 or self.lr_decay_patience < 0:
            raise ValueError("lr_decay_factor must be in (0, 1] and lr_decay_patience >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not "
                             f"{self.lr_schedule!r}")
        if self.min_lr < 0 or (self.lr_schedule == "cosine" and self.min_lr > self.lr):
            raise ValueError("min_lr must be >= 0 (and <= lr for the cosine schedule)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")

    def autocast(self) -> torch.autocast:
        """The context the training steps' forward passes run in (:attr:`precision`)."""
        return torch.autocast(torch.device(self.device).type, dtype=torch.bfloat16,
                              enabled=self.precision == "bfloat16")


@dataclass
class TrainResult:
    """What training did.

    Attributes:
        best_epoch: epoch (0-based) whose weights were restored.
        best_val_loss: its validation loss.
        epochs: epochs run in total (including before a resume).
        stopped_early: patience ran out before max_epochs.
        seconds: wall time of this call.
        history: per epoch {epoch, train_loss, val_loss, seconds, skipped_steps}.
    """

    best_epoch: int
    best_val_loss: float
    epochs: int
    stopped_early: bool
    seconds: float
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain dict."""
        return asdict(self)


def _grads_finite(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig):
    """The learning-rate schedule of ``config`` (:attr:`TrainConfig.lr_schedule`)."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.max_epochs,
                                                          eta_min=config.min_lr)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=config.lr_decay_factor, patience=config.lr_decay_patience,
        threshold=config.min_delta, threshold_mode="abs", min_lr=config.min_lr)


def _train_epoch(model: torch.nn.Module, loss_fn: Callable, batches: Iterable,
                 opt: torch.optim.Optimizer, config: TrainConfig,
                 note: Callable[[str], None]) -> tuple[float, int]:
    """One pass of optimiser steps; a step with a non-finite loss or gradient is skipped.

    Returns:
        (the mean loss of the steps taken, the number skipped).

    Raises:
        FloatingPointError: ``config.max_bad_steps`` non-finite steps in a row.
    """
    model.train()
    total, count, skipped, bad_run = 0.0, 0, 0, 0
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        with config.autocast():
            loss = loss_fn(model, batch)
        if not torch.isfinite(loss):
            ok = False
        else:
            loss.backward()
            ok = _grads_finite(model)
        if not ok:
            skipped += 1
            bad_run += 1
            opt.zero_grad(set_to_none=True)
            note("non-finite loss or gradient, step skipped")
            if bad_run >= config.max_bad_steps:
                raise FloatingPointError(
                    f"{bad_run} consecutive training steps had a non-finite loss or "
                    "gradient; check the inputs for NaN/inf or lower the learning rate")
            continue
        bad_run = 0
        if config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        opt.step()
        total += float(loss.detach())
        count += 1
    return total / max(count, 1), skipped


def train_model(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, object], torch.Tensor],
    train_batches: Callable[[np.random.Generator], Iterable],
    val_batches: Iterable,
    config: TrainConfig,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    val_weights: Sequence[float] | None = None,
) -> TrainResult:
    """Train ``model`` by minimising ``loss_fn`` with early stopping.

    Args:
        model: the module (already on ``config.device``).
        loss_fn: mean loss of a batch.
        train_batches: ``f(rng) -> iterable of batches`` for one epoch, shuffled with ``rng``.
        val_batches: re-iterable validation batches.
        config: optimisation settings.
        checkpoint: file written after every epoch (None: no checkpoints).
        resume: continue from ``checkpoint`` if it exists.
        val_weights: how many terms each validation batch's mean loss averages (clusters,
            galaxies), one per batch: the validation loss is then the mean over the whole
            set, Σ_b w_b L_b / Σ_b w_b. None weighs batches equally, which is the same only
            when they are of one size (batches packed by a galaxy budget are not: a batch
            of rich clusters holds fewer of them).

    Returns:
        :class:`TrainResult`; the model holds the best weights on return.
    """
    t_start = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = _scheduler(opt, config)
    rng = np.random.default_rng(config.seed)
    start_epoch, best_val, best_epoch, bad_epochs = 0, float("inf"), -1, 0
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict] = []
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=config.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        best_state, best_val = state["best_state"], state["best_val"]
        best_epoch, bad_epochs = state["best_epoch"], state["bad_epochs"]
        history, start_epoch = state["history"], state["epoch"] + 1
        rng.bit_generator.state = state["rng"]

    stopped_early = bad_epochs >= config.patience
    bar = tqdm(range(start_epoch, config.max_epochs), initial=start_epoch,
               total=config.max_epochs, disable=not config.progress, desc="training",
               unit="epoch")
    for epoch in bar:
        if stopped_early:
            break
        t0 = time.perf_counter()
        train_loss, skipped = _train_epoch(model, loss_fn, train_batches(rng), opt, config,
                                           lambda text, e=epoch: bar.write(f"epoch {e}: {text}"))
        model.eval()
        with torch.no_grad():
            vals = [float(loss_fn(model, b)) for b in val_batches]
        val = float(np.average(vals, weights=val_weights)) if vals else float("nan")
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val,
                        "seconds": time.perf_counter() - t0, "skipped_steps": skipped,
                        "lr": opt.param_groups[0]["lr"]})
        if config.lr_schedule == "cosine":
            sched.step()
        elif np.isfinite(val) and config.lr_decay_factor < 1:
            sched.step(val)
        if np.isfinite(val) and val < best_val - config.min_delta:
            best_val, best_epoch, bad_epochs = val, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val:.4f}", best=f"{best_val:.4f}")
        if ckpt is not None:
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "best_state": best_state,
                        "best_val": best_val, "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs, "history": history, "epoch": epoch,
                        "rng": rng.bit_generator.state}, tmp)
            os.replace(tmp, ckpt)
        if bad_epochs >= config.patience:
            stopped_early = True
            break
        if config.max_seconds is not None and time.perf_counter() - t_start > config.max_seconds:
            bar.write(f"time budget of {config.max_seconds:.0f} s reached after epoch {epoch}")
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_epoch, best_val, len(history), stopped_early,
                       time.perf_counter() - t_start, history)
