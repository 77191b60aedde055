"""The training loss: ``w_mse·MSE + w_ssim·(1 − SSIM)`` (SPEC §2), mask-aware.

SSIM is pytorch-msssim's (Gaussian window 11, σ 1.5, ``data_range=1``, ``nonnegative_ssim``).
With no-data pixels in a batch, MSE is averaged over valid pixels only and the SSIM map over the
window positions whose whole window is valid (the same rule as ``sarzoo.metrics.ssim``), so
filled no-data never teaches the model anything. A batch without no-data takes pytorch-msssim's
own code path, bit for bit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sarzoo.metrics import _win_size


def _masked_ssim_per_image(x: torch.Tensor, y: torch.Tensor, valid_px: torch.Tensor, win: int) -> torch.Tensor:
    from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

    c = x.shape[1]
    g = _fspecial_gauss_1d(win, 1.5).repeat([c, 1, 1, 1]).to(x.device, x.dtype)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu1, mu2 = gaussian_filter(x, g), gaussian_filter(y, g)
    s11 = gaussian_filter(x * x, g) - mu1 ** 2
    s22 = gaussian_filter(y * y, g) - mu2 ** 2
    s12 = gaussian_filter(x * y, g) - mu1 * mu2
    smap = ((2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)) * ((2 * s12 + c2) / (s11 + s22 + c2))
    # window positions entirely on valid pixels (erosion of the mask by the window)
    valid = (-F.max_pool2d(-(valid_px.to(x.dtype)), kernel_size=win, stride=1)) > 0.5
    valid = valid.to(x.dtype)
    n = valid.sum(dim=(1, 2, 3))
    per = (smap * valid).sum(dim=(1, 2, 3)) / n.clamp_min(1)
    # an image without a single fully valid window contributes nothing (weight 0)
    return torch.relu(per), (n > 0).to(x.dtype)


class ReconstructionLoss(nn.Module):
    """``forward(x_hat, x, mask=None) -> (loss, parts)``; ``parts`` = detached ``mse`` and ``ssim``."""

    def __init__(self, mse: float = 0.5, ssim: float = 0.5, win_size: int = 11, masked: bool = True):
        super().__init__()
        if win_size % 2 == 0:
            win_size += 1
        self.w_mse, self.w_ssim, self.win_size, self.masked = float(mse), float(ssim), int(win_size), bool(masked)

    @classmethod
    def from_config(cls, cfg: dict) -> "ReconstructionLoss":
        return cls(cfg["mse"], cfg["ssim"], cfg["win_size"], cfg["masked"])

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None):
        from pytorch_msssim import ssim as _ssim

        x_hat = x_hat.float()
        x = x.float()
        win = _win_size(x.shape[-2], x.shape[-1], self.win_size)
        use_mask = self.masked and mask is not None and not bool(mask.all())
        if use_mask:
            m = mask.to(x.dtype).expand_as(x)
            mse = ((x_hat - x) ** 2 * m).sum() / m.sum().clamp_min(1.0)
            per, w = _masked_ssim_per_image(x_hat, x, m, win)
            ssim = (per * w).sum() / w.sum().clamp_min(1.0)
        else:
            mse = F.mse_loss(x_hat, x)
            ssim = _ssim(x_hat, x, data_range=1.0, size_average=True, win_size=win, nonnegative_ssim=True)
        loss = self.w_mse * mse + self.w_ssim * (1.0 - ssim)
        return loss, {"mse": mse.detach(), "ssim": ssim.detach()}
