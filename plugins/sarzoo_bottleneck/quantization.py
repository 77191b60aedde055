"""Quantisation in training and at inference, and the pieces of likelihood every entropy model shares.

Training cannot round (zero gradient almost everywhere), so it uses the usual proxies (Ballé et al.
2017/2018): the *likelihoods* are evaluated at ``y + u``, ``u ~ U(-1/2, 1/2)`` (a differentiable
upper bound of the rounded rate), and the *decoder* sees either the same noisy value (``noise``) or
``round(y)`` with the identity as gradient (``ste``, straight-through: the decoder trains on what it
will receive at inference). In eval mode both are ``round(y)``.
"""
from __future__ import annotations

import math

import torch

#: Likelihoods are bounded below: -log2 of 1e-9 is about 30 bits, and a zero would be infinite.
LIKELIHOOD_BOUND = 1e-9
#: The Gaussian conditional's smallest scale (CompressAI's value: below it a unit bin holds ~all mass).
SCALE_BOUND = 0.11


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` that still passes gradients pushing ``x`` up from below the bound
    (a plain clamp would freeze a parameter stuck under it)."""

    @staticmethod
    def forward(ctx, x, bound: float):
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return _LowerBound.apply(x, bound)


def noisy(y: torch.Tensor) -> torch.Tensor:
    return y + torch.empty_like(y).uniform_(-0.5, 0.5)


def quantise(y: torch.Tensor, training: bool, decoder_input: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(for the likelihood, for the decoder)``: noisy and noisy/straight-through in training,
    both ``round(y)`` in eval mode."""
    if not training:
        r = torch.round(y)
        return r, r
    n = noisy(y)
    if decoder_input == "noise":
        return n, n
    return n, y + (torch.round(y) - y).detach()


def gaussian_likelihood(y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
    """P(y) of a unit bin around ``y`` under N(mean, scale²), with the symmetric trick that keeps
    the difference of CDFs accurate in the far tail (both CDFs taken on the same side)."""
    v = (y - means).abs() if means is not None else y.abs()
    s = lower_bound(scales, SCALE_BOUND)
    upper = _std_cdf((0.5 - v) / s)
    lower = _std_cdf((-0.5 - v) / s)
    return lower_bound(upper - lower, LIKELIHOOD_BOUND)


def _std_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def bits(likelihoods: torch.Tensor) -> torch.Tensor:
    return -torch.log2(likelihoods).sum()
