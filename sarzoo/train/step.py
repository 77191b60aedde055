"""One optimizer step, and what a non-finite one may leave behind.

The step runs under the runtime's autocast and GradScaler and clips the gradient norm. A NaN/Inf
loss or gradient skips the step instead of updating the weights: the batch-norm statistics the bad
forward pass touched are put back and the gradients dropped, so a skipped step leaves the model as
it was. (Counting such steps, and stopping after a streak, is the loop's decision state.)
Putting the statistics back needs their values from before the forward pass; they are copied with
one fused ``_foreach_copy_`` into storage allocated once (a few kB: BatchNorm statistics are per
channel), not cloned tensor by tensor each step. The step's numbers reach the host in one transfer
(one device synchronisation, not one per number). A finite step can still make the weights
themselves non-finite (Adam with ``eps`` 0): ``weights_finite`` is checked before every
checkpoint, which ``NonFiniteWeights`` then refuses to write.
"""
from __future__ import annotations

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
    """``step(batch) -> metrics`` (``loss``, ``mse``, ``ssim``, ``psnr``, ``grad_norm``), or None if skipped.

    ``net`` is what runs forward (``Runtime.prepare_model``'s result); ``model`` the module whose
    parameters and buffers it updates.
    """

    def __init__(self, net: torch.nn.Module, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 loss_fn: ReconstructionLoss, runtime: Runtime, grad_clip: float | None):
        self.net, self.model, self.optimizer, self.loss_fn, self.rt = net, model, optimizer, loss_fn, runtime
        self.clip = grad_clip if grad_clip is not None else math.inf
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.buffers = [b for b in model.buffers()]
        self.saved_buffers = [b.detach().clone() for b in self.buffers]

    def _snapshot(self) -> None:
        if self.buffers and self.saved_buffers[0].device != self.buffers[0].device:  # the model moved
            self.saved_buffers = [b.detach().clone() for b in self.buffers]
        elif self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.saved_buffers, self.buffers)

    def __call__(self, batch: dict[str, Any]) -> dict[str, float] | None:
        x, mask = batch["x"], batch["mask"]
        self._snapshot()
        self.optimizer.zero_grad(set_to_none=True)
        with self.rt.autocast():
            x_hat, _ = self.net(x)
        loss, parts = self.loss_fn(x_hat, x, mask)
        ok = bool(torch.isfinite(loss))
        grad_norm = float("nan")
        if ok:
            scaler = self.rt.scaler
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
                scaler.step(self.optimizer)  # skips by itself on inf/NaN gradients (fp16 overflow)
                scaler.update()
            else:
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
                ok = bool(torch.isfinite(grad_norm))
                if ok:
                    self.optimizer.step()
        if not ok:
            with torch.no_grad():  # the bad forward must not leave NaN in BatchNorm statistics
                torch._foreach_copy_(self.buffers, self.saved_buffers)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        loss_v, mse, ssim, grad_norm = torch.stack(
            [loss.detach().float(), parts["mse"].detach().float(), parts["ssim"].detach().float(),
             torch.as_tensor(grad_norm, dtype=torch.float32, device=loss.device)]).tolist()
        return {"loss": loss_v, "mse": mse, "ssim": ssim,
                "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf, "grad_norm": grad_norm}
