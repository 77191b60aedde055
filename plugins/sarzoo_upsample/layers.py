"""Upsampling layers: interpolation + 1×1 conv, transposed conv, and pixel shuffle.

Interpolation + conv avoids the checkerboard artefacts of transposed convs (Odena et al. 2016),
which matter on speckle where high-frequency texture is real signal; the others are here to
compare against.
"""
from __future__ import annotations

from torch import nn


class InterpConv(nn.Sequential):
    def __init__(self, in_channels, out_channels, scale=2, mode="bilinear", norm="bn", bias=False):
        super().__init__()
        align = False if mode == "bilinear" else None
        self.up = nn.Upsample(scale_factor=scale, mode=mode, align_corners=align)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if norm == "bn" else nn.Identity()


class TransposedConv(nn.Sequential):
    """kernel scale+2, stride scale, padding 1: exactly ×scale (kernel 4, stride 2, padding 1 for ×2)."""

    def __init__(self, in_channels, out_channels, scale=2, norm="none", act="none"):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, scale + 2, stride=scale,
                                         padding=1, bias=norm != "bn")
        self.norm = nn.BatchNorm2d(out_channels) if norm == "bn" else nn.Identity()
        self.act = nn.ReLU(inplace=False) if act == "relu" else nn.Identity()


class PixelShuffleUp(nn.Sequential):
    """Sub-pixel convolution (Shi et al. 2016): conv to out·scale² channels, then rearrange."""

    def __init__(self, in_channels, out_channels, scale=2, kernel=3, norm="none"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * scale * scale, kernel,
                              padding=kernel // 2, bias=norm != "bn")
        self.shuffle = nn.PixelShuffle(scale)
        self.norm = nn.BatchNorm2d(out_channels) if norm == "bn" else nn.Identity()
