"""One optimizer step, and what a non-finite one may leave behind.

The step runs under the runtime's autocast and GradScaler, accumulates the gradients of its
micro-batches, and clips the gradient norm. A NaN/Inf loss or gradient skips the step instead of
updating the weights: the batch-norm statistics the bad forward pass touched are put back and the
gradients dropped, so a skipped step leaves the model as it was. (Counting such steps, and stopping
after a streak, is the loop's decision state.) Putting the statistics back needs their values from
before the forward pass; they are copied with one fused ``_foreach_copy_`` into storage allocated
once (a few kB: BatchNorm statistics are per channel), not cloned tensor by tensor each step. The
step's numbers reach the host in one transfer (one device synchronisation, not one per number). A
finite step can still make the weights themselves non-finite (Adam with ``eps`` 0):
``weights_finite`` is checked before every checkpoint, which ``NonFiniteWeights`` then refuses to
write.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import torch

from sarzoo.train.loss import ReconstructionLoss
from sarzoo.train.runtime import Runtime


class NonFiniteWeights(Exception):
    """The weights themselves went NaN/Inf: writing them would replace the last good checkpoint."""


def weights_finite(model: torch.nn.Module) -> bool:
    with torch.no_grad():
        return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


class TrainStep:
    """``step(batches) -> metrics`` (``loss``, ``mse``, ``ssim``, ``psnr``, ``grad_norm``, and ``bpp`` for an
    entropy-coded bottleneck), or None if skipped.

    ``batches`` is one batch, or the list of micro-batches of one optimizer step
    (``train.accumulate``): their gradients add up (each loss divided by their number) before the
    one update. ``net`` is what runs forward (``Runtime.prepare_model``'s result: the model, its
    compiled form, or its ``DistributedDataParallel`` wrapper); ``model`` the module whose
    parameters and buffers it updates.

    With several processes every process must take the same decision, or one would wait forever
    in a collective the others skipped: every micro-batch is always run backward (a non-finite loss
    then makes the gradients non-finite, which DDP's averaging spreads to every process), and the
    losses, with a "this process's losses were finite" count, are summed over the processes in
    the one transfer that brings the step's numbers to the host. The numbers reported are the
    means over the whole step (all micro-batches of all processes): the loss one process would
    have had on the step's batch when the shares hold as many valid pixels (each share's loss is a
    mean over its own valid pixels; with no-data they are weighed by share, not by pixel).
    """

    def __init__(self, net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: ReconstructionLoss, runtime: Runtime, grad_clip: float | None):
        self.net, self.model, self.optimizer, self.loss_fn, self.rt = net, model, optimizer, loss_fn, runtime
        self.clip = grad_clip if grad_clip is not None else math.inf
        self.params = [p for p in model.parameters() if p.requires_grad]
        # an entropy-coded bottleneck: the forward returns the likelihoods, the loss adds the rate,
        # and the step reports ``bpp`` (fixed-precision ones would log a constant: left out)
        self.rd = bool(getattr(model, "entropy_coded", False))
        self.names = ("loss", "mse", "ssim") + (("bpp",) if self.rd else ())
        self.buffers = [b for b in model.buffers()]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]

    def _snapshot(self) -> None:
        if self.buffers and self.saved_buffers[0].device != self.buffers[0].device:  # the model moved
            self.saved_buffers = [b.detach().clone() for b in self.buffers]
        elif self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.saved_buffers, self.buffers)

    def _reduce_gradients(self, now: bool):
        """DDP averages gradients on the last micro-batch's backward only (``no_sync`` before it)."""
        no_sync = getattr(self.net, "no_sync", None) if self.rt.world.distributed else None
        return contextlib.nullcontext() if now or no_sync is None else no_sync()

    def __call__(self, batches: dict[str, Any] | list[dict[str, Any]]) -> dict[str, float] | None:
        micro = batches if isinstance(batches, list) else [batches]
        scaler = self.rt.scaler
        self._snapshot()
        self.optimizer.zero_grad(set_to_none=True)
        sums = None
        for j, batch in enumerate(micro):
            x, mask = batch["x"], batch["mask"]
            with self._reduce_gradients(j == len(micro) - 1):
                with self.rt.autocast():
                    if self.rd:
                        x_hat, _, likelihoods = self.net(x, rd=True)
                    else:
                        (x_hat, _), likelihoods = self.net(x), None
                loss, parts = self.loss_fn(x_hat, x, mask, likelihoods)
                scaled = loss / len(micro) if len(micro) > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            numbers = torch.stack([loss.detach().float()] + [parts[k].detach().float() for k in self.names[1:]])
            sums = numbers if sums is None else sums + numbers
        world = self.rt.world
        n = len(self.names)
        step = torch.cat([sums / len(micro), torch.isfinite(sums).all().float().reshape(1)])
        world.sum_(step)
        ok = bool(step[n] >= world.world_size)   # every process's losses finite
        grad_norm = torch.tensor(float("nan"))
        if ok:
            if scaler is not None:
                scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
                scaler.step(self.optimizer)  # skips by itself on inf/NaN gradients (fp16 overflow)
                scaler.update()
            else:
                # the gradients are the same on every process after DDP's averaging: so is this decision
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
                ok = bool(torch.isfinite(grad_norm))
                if ok:
                    self.optimizer.step()
        if not ok:
            with torch.no_grad():  # the bad forward must not leave NaN in BatchNorm statistics
                torch._foreach_copy_(self.buffers, self.saved_buffers)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        values = torch.cat([step[:n] / world.world_size,
                            grad_norm.detach().float().reshape(1).to(step.device)]).tolist()
        out = dict(zip(self.names, values[:n]))
        mse = out["mse"]
        out.update({"psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf, "grad_norm": values[n]})
        return out
