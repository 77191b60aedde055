"""The training step's parts, assembled in one place for ``sarzoo train`` and ``sarzoo bench``.

Why shared: the benchmark claims to time exactly the step the trainer runs (forward, loss,
backward, clipping, optimizer step, under the runtime's fast path), and the numerics check claims
that the fast path trains like fp32 from the same seed. Both hold only if the model, optimizer,
loss and step are built the same way, in the same order (the seed is set right before the model,
whose initialisation draws from torch's RNG), and compiled on the same kind of probe.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sarzoo.model import build_model
from sarzoo.plan import Plan
from sarzoo.train.loss import ReconstructionLoss
from sarzoo.train.optim import build_optimizer
from sarzoo.train.rng import seed_everything
from sarzoo.train.runtime import Runtime
from sarzoo.train.step import TrainStep


@dataclass
class StepParts:
    """The bare ``model`` (checkpoints read it), its optimizer and loss, and the ``step`` that runs
    ``step.net`` (the model on the fast path, or its compiled form after ``compile_step``)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: ReconstructionLoss
    step: TrainStep


def assemble_step(plan: Plan, runtime: Runtime, seed: int) -> StepParts:
    """Seed, build the plan's model, put it on the runtime's fast path, and make its optimizer,
    loss and step from the recipe's ``train:`` section."""
    cfg = plan.recipe["train"]
    seed_everything(seed)  # before the model: its initialisation draws from torch's RNG
    model = build_model(plan)
    net = runtime.prepare_model(model)
    optimizer = build_optimizer(model.parameters(), cfg)
    loss_fn = ReconstructionLoss.from_config(cfg["loss"], cfg.get("rate"))
    step = TrainStep(net, model, optimizer, loss_fn, runtime, cfg["grad_clip"])
    return StepParts(model, optimizer, loss_fn, step)


def probe_input(batch_size: int, channels: int, height: int, width: int) -> torch.Tensor:
    """A batch of the training shape for the compile probe, from its own generator: the global RNG
    is training's."""
    return torch.rand(batch_size, channels, height, width, generator=torch.Generator().manual_seed(0))


def compile_probe(runtime: Runtime, x: torch.Tensor) -> Callable[[torch.nn.Module], torch.Tensor]:
    """``probe(net)``: one forward and backward pass of ``x`` through ``net``, what ``torch.compile``
    compiles and ``FastPath.compile_now`` checks against eager mode."""

    def probe(net: torch.nn.Module) -> torch.Tensor:
        with runtime.autocast():
            x_hat, _ = net(runtime.fast.input(x))
        x_hat.float().square().mean().backward()
        return x_hat

    return probe


def compile_step(parts: StepParts, runtime: Runtime, x: torch.Tensor) -> torch.nn.Module:
    """Compile the step's module now on the probe ``x`` (or fall back to eager with the reason in
    ``runtime.fast.compile_fallback``); a no-op when the fast path does not compile."""
    parts.step.net = runtime.compile_now(parts.step.net, parts.model, compile_probe(runtime, x))
    return parts.step.net
