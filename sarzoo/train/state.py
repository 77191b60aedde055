"""The decision state of a run, and the training checkpoint it is saved in and restored from.

``TrainState`` is everything besides the model, optimizer, schedule and scaler that decides what
happens next: the counters, the best value, the early-stopping count, the non-finite counts, the
running sums of the current epoch. Together with those components and the RNG states it makes the
training checkpoint (in ``sarzoo.checkpoint``'s format), so a run resumed from any checkpoint,
mid-epoch included, goes on exactly as the uninterrupted one would have (bitwise on CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sarzoo import checkpoint
from sarzoo.errors import SarzooError
from sarzoo.train.optim import Schedule
from sarzoo.train.rng import rng_state, set_rng_state
from sarzoo.train.runtime import Runtime

#: training metrics summed over the steps of an epoch (the step's ``grad_norm`` is logged, not summed)
METRIC_KEYS = ("loss", "mse", "ssim", "psnr")
#: summed too when the step reports them: ``bpp`` of rate–distortion training
OPTIONAL_KEYS = ("bpp",)


def _zero_accum() -> dict[str, float]:
    return {**dict.fromkeys(METRIC_KEYS, 0.0), "n": 0, "time": 0.0}


@dataclass
class TrainState:
    best: dict[str, Any]           # value, epoch, step, metric (+ psnr, ssim of that epoch)
    epoch: int = 0                 # epochs completed
    step: int = 0                  # optimizer steps attempted (skipped non-finite ones included)
    batch_in_epoch: int = 0        # steps of the current epoch taken
    samples_in_epoch: int = 0      # patches of the current epoch consumed (all processes): where it goes on
    bad_epochs: int = 0            # epochs since the last improvement (early stopping)
    nonfinite: dict[str, int] = field(default_factory=lambda: {"total": 0, "in_a_row": 0})
    accum: dict[str, float] = field(default_factory=_zero_accum)
    last_val: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, has_validation: bool) -> "TrainState":
        metric = "val_loss" if has_validation else "train_loss"
        return cls(best={"value": math.inf, "epoch": None, "step": None, "metric": metric})

    def count_step(self, metrics: dict[str, float] | None, seconds: float, samples: int) -> None:
        """One step of ``samples`` patches done: ``metrics`` of a finite one, None for a skipped (non-finite) one."""
        self.step += 1
        self.batch_in_epoch += 1
        self.samples_in_epoch += samples
        self.accum["time"] += seconds
        if metrics is None:
            self.nonfinite["total"] += 1
            self.nonfinite["in_a_row"] += 1
            return
        self.nonfinite["in_a_row"] = 0
        for k in METRIC_KEYS + OPTIONAL_KEYS:
            if k in metrics:
                self.accum[k] = self.accum.get(k, 0.0) + metrics[k]
        self.accum["n"] += 1

    def running_means(self) -> dict[str, float]:
        """Means of the current epoch's finite steps so far (empty before the first)."""
        n = self.accum["n"]
        return {k: self.accum[k] / n for k in METRIC_KEYS + OPTIONAL_KEYS if k in self.accum} if n else {}

    def judge(self, monitor: float | None, min_delta: float, val: dict[str, Any]) -> bool:
        """Record the epoch's monitored loss: True (and a new best) if it improved by more than ``min_delta``."""
        improved = monitor is not None and monitor < self.best["value"] - min_delta
        if improved:
            self.best = {"value": float(monitor), "epoch": self.epoch + 1, "step": self.step,
                         "metric": self.best["metric"], "psnr": val.get("psnr"), "ssim": val.get("ssim")}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        return improved

    def next_epoch(self, val: dict[str, Any]) -> None:
        self.last_val = dict(val)
        self.epoch += 1
        self.batch_in_epoch = 0
        self.samples_in_epoch = 0
        self.accum = _zero_accum()

    def to_payload(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "best": dict(self.best),
            "early_stopping": {"bad_epochs": self.bad_epochs},
            "nonfinite": dict(self.nonfinite),
            "accum": dict(self.accum),
            "metrics": dict(self.last_val),
            "reference": dict(self.reference),
        }

    @classmethod
    def from_payload(cls, ck: dict[str, Any], samples_in_epoch: int) -> "TrainState":
        return cls(epoch=int(ck["epoch"]), step=int(ck["step"]), batch_in_epoch=int(ck["batch_in_epoch"]),
                   samples_in_epoch=samples_in_epoch,
                   best=dict(ck["best"]), bad_epochs=int(ck["early_stopping"]["bad_epochs"]),
                   nonfinite=dict(ck["nonfinite"]), accum=dict(ck["accum"]), last_val=dict(ck.get("metrics") or {}),
                   reference=dict(ck.get("reference") or {}))


@dataclass
class TrainingParts:
    """What a training checkpoint saves besides the decision state, and where it is restored into."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    runtime: Runtime
    recipe: dict[str, Any]
    preprocessing: Any
    sizes: dict[str, int]          # steps_per_epoch, n_train, n_val, step_batch, world_size: how it was trained
    data_info: dict[str, Any]


def training_payload(state: TrainState, t: TrainingParts) -> dict[str, Any]:
    """The training checkpoint: the model part every checkpoint has, then the whole training state."""
    scaler = t.runtime.scaler
    return {
        **checkpoint.model_payload(t.model, t.recipe, t.preprocessing, kind="training"),
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.schedule.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "amp": t.runtime.amp,
        **state.to_payload(),
        **t.sizes,
        "data": dict(t.data_info),
        "rng": rng_state(),
    }


def checkpoint_step_batch(ck: dict[str, Any]) -> int:
    """Patches per step of the run that wrote ``ck``; a checkpoint from before several processes
    took one batch of its own recipe's ``batch_size`` (its recipe is resolved on reading)."""
    if ck.get("step_batch"):
        return int(ck["step_batch"])
    train = ck["recipe"]["train"]
    return int(train["batch_size"]) * int(train.get("accumulate") or 1)


def restore(ck: dict[str, Any], t: TrainingParts) -> TrainState:
    """Load a training checkpoint into ``t`` and the global RNGs; its decision state is returned.

    Refuses a checkpoint of other training data: the epochs' batches would not be the same ones.
    A checkpoint written with another number of processes (or ``train.accumulate``), hence another
    number of patches per step, continues from the same patch of the same epoch's order; the steps
    are then cut differently from there on, so the run goes on, but not bit for bit as it would have.
    """
    n_train = t.sizes["n_train"]
    if ck.get("n_train") != n_train:
        raise SarzooError(f"{ck.get('_path')}: the training data changed since this checkpoint "
                          f"({ck.get('n_train')} patches then, {n_train} now): resuming would not continue the same "
                          f"run. Start a new run.")
    step_batch = checkpoint_step_batch(ck)
    samples = ck.get("samples_in_epoch")
    samples = int(samples) if samples is not None else int(ck["batch_in_epoch"]) * step_batch
    t.model.load_state_dict(ck["model"])
    t.optimizer.load_state_dict(ck["optimizer"])
    t.schedule.load_state_dict(ck["scheduler"])
    if t.runtime.scaler is not None and ck.get("scaler"):
        t.runtime.scaler.load_state_dict(ck["scaler"])
    state = TrainState.from_payload(ck, samples)
    if step_batch != t.sizes["step_batch"]:
        # the step count of the epoch in this run's steps, for progress and the end-of-epoch test
        state.batch_in_epoch = samples // t.sizes["step_batch"]
    set_rng_state(ck["rng"])
    return state
