"""Bottleneck residual block (ResNet-50 style, post-activation).

1×1 reduce → 3×3 (stride) → 1×1 expand, each with BN, ReLU after the add. Cheaper than two 3×3
convs at wide channel counts, which is where autoencoder encoders spend their parameters.
"""
from __future__ import annotations

from torch import nn

from sarzoo_resnet.postact import _projection


class BottleneckBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, reduction: int = 4):
        super().__init__()
        mid = max(out_channels // reduction, 1)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=False)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act(out + self.shortcut(x))
