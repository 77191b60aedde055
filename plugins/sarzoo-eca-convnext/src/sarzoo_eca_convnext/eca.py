"""ECA: Efficient Channel Attention (Wang et al., "ECA-Net", CVPR 2020).

Squeeze by global average pooling, then a 1-D convolution across neighbouring channels instead
of SE's bottleneck MLP (no dimensionality reduction), then a sigmoid gate. The kernel size adapts
to the channel count: k = |(log2(C) + b) / γ| rounded up to the next odd number (γ=2, b=1).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def adaptive_kernel_size(channels: int, gamma: int = 2, beta: int = 1) -> int:
    t = int(abs((math.log2(channels) + beta) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, beta: int = 1):
        super().__init__()
        k = kernel_size if kernel_size is not None else adaptive_kernel_size(channels, gamma, beta)
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(dim=(2, 3))                        # (B, C)
        y = self.conv(y.unsqueeze(1)).squeeze(1)      # 1-D conv across channels
        return x * torch.sigmoid(y)[:, :, None, None]
