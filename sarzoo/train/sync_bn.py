"""``train.sync_bn``: BatchNorm statistics over the whole step's batch, across processes.

On CUDA this is ``torch.nn.SyncBatchNorm`` (its conversion replaces every BatchNorm module). PyTorch
has no CPU kernels for it (``batch_norm_stats`` is CUDA-only and ``SyncBatchNorm`` refuses CPU
tensors), yet CPU/gloo is where every CI run and most laptops train; ``GlooSyncBatchNorm`` fills
that gap with the same mathematics: per-channel sums, counts and sums of squares all-reduced (in
float64, so E[x²] − E[x]² does not cancel), the biased variance to normalise, the unbiased one for
the running estimate. The all-reduce is differentiable (its backward is the all-reduce of the
gradients, as in PyTorch's own), so the gradients are those of the whole batch. With it, N
processes × batch B train as one process × batch N·B does, on data without no-data pixels
(``tests/test_train_distributed.py``).
"""
from __future__ import annotations

import torch
from torch import nn

from sarzoo.errors import SarzooError


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t = t.clone()
        torch.distributed.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """A ``BatchNorm2d`` whose training statistics are those of all processes' batches together.

    Same parameters and buffers as ``BatchNorm2d`` (checkpoints do not change), so a module is
    converted by changing its class in place; outside training, or alone, it is ``BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = torch.tensor([x.numel() // c], dtype=torch.float64, device=x.device)
        stats = torch.cat([xf.sum((0, 2, 3)).double(), xf.square().sum((0, 2, 3)).double(), count])
        stats = _AllReduceSum.apply(stats)
        n = stats[2 * c]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.square()).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = (1, c, 1, 1)
        y = (xf - mean.float().view(shape)) * torch.rsqrt(var.float() + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.float().view(shape) + self.bias.float().view(shape)
        return y.to(x.dtype)


def convert(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm synchronised across processes.

    On CUDA: timm's conversion (PyTorch's ``SyncBatchNorm``, keeping the activation of timm's
    ``BatchNormAct2d``). On CPU: ``BatchNorm2d`` becomes ``GlooSyncBatchNorm`` in place; another kind
    of BatchNorm (a subclass with an activation, a 1-D or 3-D one) is refused, rather than left
    unsynchronised without a word. The parameters and buffers stay the same tensors, so an optimizer
    built on ``model`` before or after is the same, and checkpoints keep their keys."""
    if device.type == "cuda":
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)
    others = sorted({type(m).__qualname__ for m in model.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m) is not nn.BatchNorm2d})
    if others:
        raise SarzooError(f"train.sync_bn on CPU synchronises torch.nn.BatchNorm2d layers, but this model also has "
                          f"{', '.join(others)}: train with train.sync_bn: false on CPU (each process then "
                          f"normalises by its own batch), or on CUDA, where PyTorch's SyncBatchNorm takes them")
    for m in model.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = GlooSyncBatchNorm
    return model
