"""First-party upsampling components: interpolation + 1×1 conv, transposed conv, pixel shuffle."""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

_NORM_BN = Option(str, "bn", "normalisation after the conv", choices=("bn", "none"))
_NORM_NONE = Option(str, "none", "normalisation after the conv", choices=("bn", "none"))


def interp(in_channels, out_channels, scale, mode="bilinear", norm="bn", bias=False):
    from sarzoo_upsample.layers import InterpConv
    return InterpConv(in_channels, out_channels, scale, mode, norm, bias)


def transposed(in_channels, out_channels, scale, norm="none", act="none"):
    from sarzoo_upsample.layers import TransposedConv
    return TransposedConv(in_channels, out_channels, scale, norm, act)


def pixel_shuffle(in_channels, out_channels, scale, kernel=3, norm="none"):
    from sarzoo_upsample.layers import PixelShuffleUp
    return PixelShuffleUp(in_channels, out_channels, scale, kernel, norm)


@hookimpl
def sarzoo_components():
    return [
        Component("upsample", "interp", interp,
                  "Bilinear or nearest ×scale interpolation, then 1x1 conv (BN optional)",
                  options={"mode": Option(str, "bilinear", "interpolation mode", choices=("bilinear", "nearest")),
                           "norm": _NORM_BN,
                           "bias": Option(bool, False, "bias on the 1x1 conv")}),
        Component("upsample", "transposed", transposed,
                  "Transposed conv, kernel scale+2, stride scale, padding 1 (4/2/1 for ×2)",
                  options={"norm": _NORM_NONE,
                           "act": Option(str, "none", "activation after the norm", choices=("relu", "none"))}),
        Component("upsample", "pixel_shuffle", pixel_shuffle,
                  "Sub-pixel conv: conv to out·scale² channels, then PixelShuffle(scale)",
                  options={"kernel": Option(int, 3, "conv kernel size", choices=(1, 3, 5)), "norm": _NORM_NONE}),
    ]
