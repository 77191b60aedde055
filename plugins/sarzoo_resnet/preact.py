"""Pre-activation residual block (ResNet v2, He et al. 2016), exact to sarzoo's Variant B.

BN → ReLU → Conv3×3(stride) → BN → ReLU → Conv3×3, plus a shortcut, with nothing after the add:
keeping the identity path clean is the whole point of v2 and why deep stacks train well.
"""
from __future__ import annotations

from torch import nn

SHORTCUTS = ("auto", "identity", "conv", "bn_relu_conv")


def needs_projection(in_channels: int, out_channels: int, stride: int) -> bool:
    return stride != 1 or in_channels != out_channels


def check_shortcut(args: dict) -> str | None:
    if args.get("shortcut") == "identity" and needs_projection(
            args["in_channels"], args["out_channels"], args["stride"]):
        return ("shortcut 'identity' needs stride 1 and in_channels == out_channels "
                f"(got {args['in_channels']}→{args['out_channels']}, stride {args['stride']}); "
                "use 'auto', 'conv' or 'bn_relu_conv'")
    return None


def make_shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    """identity where shapes allow (auto), else a strided 1×1 conv, optionally pre-activated."""
    if kind == "identity" or (kind == "auto" and not needs_projection(in_channels, out_channels, stride)):
        return nn.Identity()
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
    if kind == "bn_relu_conv":
        return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=False), conv)
    return conv


class PreActBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "auto"):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=False)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)

    def forward(self, x):
        out = self.conv1(self.act(self.bn1(x)))
        out = self.conv2(self.act(self.bn2(out)))
        return out + self.shortcut(x)
