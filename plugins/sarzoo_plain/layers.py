"""The baseline's plain layers: a conv block (also used for stems and output heads) and a
transposed-conv block, each conv → optional BN → activation."""
from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "none")
NORMS = ("bn", "none")


def activation(name: str, negative_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=False)
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    return nn.Identity()


def _bias(bias: str, norm: str) -> bool:
    # A conv followed by BN gets no bias: BN's shift makes it redundant (seed 001).
    return norm != "bn" if bias == "auto" else bias == "true"


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels, out_channels, stride=1, kernel=3, norm="bn", act="relu",
                 negative_slope=0.2, bias="auto"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride,
                              padding=kernel // 2, bias=_bias(bias, norm))
        self.norm = nn.BatchNorm2d(out_channels) if norm == "bn" else nn.Identity()
        self.act = activation(act, negative_slope)


class DeconvBlock(nn.Sequential):
    """ConvTranspose2d with padding (kernel-1)//2 and output_padding chosen so the output is exactly
    ``scale`` × the input (kernel 5, stride 2, padding 2, output_padding 1 in the baseline)."""

    def __init__(self, in_channels, out_channels, scale=2, kernel=5, norm="bn", act="relu",
                 negative_slope=0.2, bias="auto"):
        super().__init__()
        padding = (kernel - 1) // 2
        output_padding = scale + 2 * padding - kernel
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=scale,
                                         padding=padding, output_padding=output_padding,
                                         bias=_bias(bias, norm))
        self.norm = nn.BatchNorm2d(out_channels) if norm == "bn" else nn.Identity()
        self.act = activation(act, negative_slope)
