"""First-party plain layers: the baseline's conv and deconv blocks, also used as stems and heads."""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "none")


def _common(kernel_default: int, act_default: str) -> dict[str, Option]:
    return {
        "kernel": Option(int, kernel_default, "convolution kernel size (odd)", min=1, max=15),
        "norm": Option(str, "bn", "normalisation after the conv", choices=("bn", "none")),
        "act": Option(str, act_default, "activation after the norm", choices=ACTS),
        "negative_slope": Option(float, 0.2, "slope of leaky_relu", min=0.0, max=1.0),
        "bias": Option(str, "auto", "conv bias: auto = only without BN", choices=("auto", "true", "false")),
    }


def conv(in_channels, out_channels, stride, **options):
    from sarzoo_plain.layers import ConvBlock
    return ConvBlock(in_channels, out_channels, stride, **options)


def deconv(in_channels, out_channels, scale, **options):
    from sarzoo_plain.layers import DeconvBlock
    return DeconvBlock(in_channels, out_channels, scale, **options)


def _odd_kernel(args):
    if args["kernel"] % 2 == 0:
        return f"kernel must be odd so padding keeps the size, got {args['kernel']}"
    return None


def _deconv_check(args):
    padding = (args["kernel"] - 1) // 2
    if args["kernel"] > args["scale"] + 2 * padding:
        return f"kernel {args['kernel']} is too large for scale {args['scale']}"
    return _odd_kernel(args)


@hookimpl
def sarzoo_components():
    return [
        Component("block", "conv", conv,
                  "Plain conv block: Conv(k, stride) → BN → activation (baseline encoder layer, stems, heads)",
                  options=_common(3, "relu"), check=_odd_kernel),
        Component("upsample", "deconv", deconv,
                  "Plain transposed-conv block: ConvTranspose(k, stride=scale) → BN → activation (baseline decoder "
                  "layer)",
                  options=_common(5, "relu"), check=_deconv_check),
    ]
