"""Post-activation residual blocks (ResNet v1, He et al. 2015) as used by ResNet-Lite.

Conv-BN-ReLU-Conv-BN plus a projection shortcut (1×1 conv + BN, strided or transposed), ReLU after
the add. The up variant (an ``upsample`` component) doubles resolution with a transposed conv on
both paths, so decoders can be residual end to end.
"""
from __future__ import annotations

from torch import nn


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


class PostActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=False)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class PostActUpBlock(nn.Module):
    """Residual block that enlarges by ``scale``: transposed conv (kernel scale+2, padding 1) on the
    main path (kernel 4, stride 2, padding 1 for ×2 as in seed 003), transposed 1×1-style conv
    (kernel = stride = scale) + BN on the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(in_channels, out_channels, scale + 2, stride=scale,
                                        padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=False)
        self.shortcut = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, scale, stride=scale, bias=False),
            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))
