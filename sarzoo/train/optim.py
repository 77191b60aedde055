"""The optimizer (``train.optimizer``) and the learning-rate schedule (``train.warmup``,
``train.schedule``, ``train.plateau``).

Warm-up and decay are one ``Schedule`` because they act on the same learning rate and hand over
to each other: the linear warm-up sets it before each of the first steps (a function of the step
alone, so it needs no state of its own), then the decay takes over: ReduceLROnPlateau (the seeds'),
judged on the validation loss once per epoch, or a half cosine from ``lr`` to zero at the last step
of ``train.epochs``, again a function of the step alone. Why cosine: a short run on a fixed budget
(``tiny``) ends better when the rate reaches zero on schedule than when noisy validation epochs
decide when to halve it. The checkpoint keeps the schedule's one ``state_dict`` under ``scheduler``
(the plateau scheduler's state, kept for both kinds so the format does not depend on the choice).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam or AdamW from the ``train:`` section."""
    opt = cfg["optimizer"]
    cls = torch.optim.AdamW if opt["type"] == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg["lr"], betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"],
               weight_decay=opt["weight_decay"])


class Schedule:
    """Linear warm-up per step from ``lr × start_factor`` to ``lr``, then ReduceLROnPlateau per epoch
    or a per-step cosine decay to zero at ``epochs × steps_per_epoch`` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: dict[str, Any], steps_per_epoch: int):
        self.optimizer = optimizer
        self.base_lr = cfg["lr"]
        self.start_factor = cfg["warmup"]["start_factor"]
        self.warmup_steps = int(round(cfg["warmup"]["epochs"] * steps_per_epoch))
        self.kind = cfg["schedule"]
        self.total_steps = int(cfg["epochs"]) * steps_per_epoch
        pl = cfg["plateau"]
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=pl["factor"], patience=pl["patience"], min_lr=pl["min_lr"])

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def before_step(self, step: int) -> None:
        """Set the rate of step ``step`` (steps taken so far): the warm-up's, then the cosine's; after
        the warm-up the plateau scheduler's rate is left alone."""
        if step <= self.warmup_steps and self.warmup_steps > 0:
            f = self.start_factor
            lr = self.base_lr * (f + (1.0 - f) * step / self.warmup_steps)
        elif self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            lr = self.base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            return
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def after_epoch(self, step: int, monitor: float | None) -> None:
        """Let the plateau scheduler judge the epoch, once the warm-up no longer sets the rate."""
        if self.kind != "plateau":
            return
        if step >= self.warmup_steps and monitor is not None and math.isfinite(monitor):
            self.plateau.step(monitor)

    def state_dict(self) -> dict[str, Any]:
        return {"plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau.load_state_dict(state["plateau"])
