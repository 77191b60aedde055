"""The ConvNeXt block (Liu et al., "A ConvNet for the 2020s", CVPR 2022), as a sarzoo block.

Block: depthwise k×k conv → LayerNorm → Linear C→4C → GELU → Linear 4C→C → layer scale γ
(initialised to 1e-6) → stochastic depth, added to the input. ConvNeXt changes resolution and width
in separate downsampling layers (LayerNorm, then a 2×2 stride-2 conv); here that layer runs first
when the block is asked for a stride (LayerNorm + stride×stride conv) or only a channel change
(1×1 conv), so the block fits sarzoo's ``block(in_channels, out_channels, stride)`` interface.
"""
from __future__ import annotations

import torch
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 7,
                 expansion: int = 4, layer_scale: float = 1e-6, drop_path: float = 0.0):
        super().__init__()
        if stride > 1:
            self.down = nn.Sequential(LayerNorm2d(in_channels, eps=1e-6),
                                      nn.Conv2d(in_channels, out_channels, stride, stride=stride))
        elif in_channels != out_channels:
            self.down = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.down = nn.Identity()
        c = out_channels
        self.dwconv = nn.Conv2d(c, c, kernel_size, padding=kernel_size // 2, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1 = nn.Linear(c, expansion * c)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expansion * c, c)
        self.gamma = nn.Parameter(torch.full((c,), float(layer_scale))) if layer_scale > 0 else None
        self.drop_path = float(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        y = self.dwconv(x).permute(0, 2, 3, 1)        # NHWC for LayerNorm and the Linears
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = y * self.gamma
        y = y.permute(0, 3, 1, 2)
        if self.training and self.drop_path > 0:      # stochastic depth, per sample
            keep = 1.0 - self.drop_path
            mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
            y = y * mask
        return x + y
