"""The training loss: ``w_mse·MSE + w_ssim·(1 − SSIM)`` (SPEC §2), mask-aware.

SSIM is pytorch-msssim's (Gaussian window 11, σ 1.5, ``data_range=1``, ``nonnegative_ssim``).
With no-data pixels in a batch, MSE is averaged over valid pixels only and the SSIM map over the
window positions whose whole window is valid (the same rule as ``sarzoo.metrics.ssim``), so
filled no-data never teaches the model anything. A batch without no-data takes pytorch-msssim's
own code path, bit for bit.

Rate–distortion training (``train.rate.lmbda`` > 0, docs/codec.md) adds ``lmbda × bpp``, where
``bpp`` is the bits the bottleneck's likelihoods give the batch (``-log2`` summed) per *valid*
pixel of the batch (``sarzoo.codec.rates``): the rate is what the coded file of those pixels would
cost, and a patch's no-data share does not make its valid pixels look cheaper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sarzoo.codec.rates import likelihood_bits, valid_pixels
from sarzoo.metrics import _win_size, masked_ssim_per_image


class ReconstructionLoss(nn.Module):
    """``forward(x_hat, x, mask=None, likelihoods=None) -> (loss, parts)``; ``parts`` = detached ``mse``
    and ``ssim``, and ``bpp`` when likelihoods are given (the rate counts in the loss when ``lmbda`` > 0)."""

    def __init__(self, mse: float = 0.5, ssim: float = 0.5, win_size: int = 11, masked: bool = True,
                 lmbda: float = 0.0):
        super().__init__()
        if win_size % 2 == 0:
            win_size += 1
        self.w_mse, self.w_ssim, self.win_size, self.masked = float(mse), float(ssim), int(win_size), bool(masked)
        self.lmbda = float(lmbda)

    @classmethod
    def from_config(cls, cfg: dict, rate: dict | None = None) -> "ReconstructionLoss":
        return cls(cfg["mse"], cfg["ssim"], cfg["win_size"], cfg["masked"], (rate or {}).get("lmbda", 0.0))

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None, likelihoods=None):
        from pytorch_msssim import ssim as _ssim

        x_hat = x_hat.float()
        x = x.float()
        win = _win_size(x.shape[-2], x.shape[-1], self.win_size)
        use_mask = self.masked and mask is not None and not bool(mask.all())
        if use_mask:
            m = mask.to(x.dtype).expand_as(x)
            mse = ((x_hat - x) ** 2 * m).sum() / m.sum().clamp_min(1.0)
            per, has = masked_ssim_per_image(x_hat, x, m, win)
            w = has.to(x.dtype)
            ssim = (per * w).sum() / w.sum().clamp_min(1.0)
        else:
            mse = F.mse_loss(x_hat, x)
            ssim = _ssim(x_hat, x, data_range=1.0, size_average=True, win_size=win, nonnegative_ssim=True)
        loss = self.w_mse * mse + self.w_ssim * (1.0 - ssim)
        parts = {"mse": mse.detach(), "ssim": ssim.detach()}
        if likelihoods:
            bpp = likelihood_bits(likelihoods) / valid_pixels(mask, x).clamp_min(1.0)
            # also at lmbda 0: the entropy model's parameters stay in the graph (with zero gradient),
            # which DistributedDataParallel requires of every parameter
            loss = loss + self.lmbda * bpp
            parts["bpp"] = bpp.detach()
        return loss, parts
