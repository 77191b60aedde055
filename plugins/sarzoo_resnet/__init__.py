"""First-party residual blocks: pre-activation (v2), post-activation (v1, down and up), bottleneck.

Torch-dependent modules are imported inside the factories so that listing components stays cheap.
"""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

SHORTCUT_DOC = ("auto: identity when shape is kept, else a strided 1×1 conv; identity; conv: "
                "always a 1×1 conv (no BN); bn_relu_conv: BN-ReLU-1×1 conv")


def preact_factory(in_channels, out_channels, stride, shortcut="auto"):
    from sarzoo_resnet.preact import PreActBlock
    return PreActBlock(in_channels, out_channels, stride, shortcut)


def _check_preact(args):
    from sarzoo_resnet.preact import check_shortcut
    return check_shortcut(args)


def postact_factory(in_channels, out_channels, stride):
    from sarzoo_resnet.postact import PostActBlock
    return PostActBlock(in_channels, out_channels, stride)


def postact_up(in_channels, out_channels, scale):
    from sarzoo_resnet.postact import PostActUpBlock
    return PostActUpBlock(in_channels, out_channels, scale)


def bottleneck_factory(in_channels, out_channels, stride, reduction=4):
    from sarzoo_resnet.bottleneck import BottleneckBlock
    return BottleneckBlock(in_channels, out_channels, stride, reduction)


@hookimpl
def sarzoo_components():
    return [
        Component("block", "preact", preact_factory,
                  "Pre-activation residual block (ResNet v2): BN-ReLU-Conv3x3 ×2 + shortcut, no activation after the "
                  "add",
                  options={"shortcut": Option(str, "auto", SHORTCUT_DOC,
                                              choices=("auto", "identity", "conv", "bn_relu_conv"))},
                  check=_check_preact),
        Component("block", "postact",  postact_factory,
                  "Post-activation residual block (ResNet v1): Conv-BN-ReLU-Conv-BN + projection (1x1 conv+BN), ReLU "
                  "after the add"),
        Component("upsample", "postact_up", postact_up,
                  "Post-activation residual up block (ResNet v1): transposed conv main path and transposed 1x1 "
                  "conv+BN shortcut"),
        Component("block", "bottleneck", bottleneck_factory,
                  "Bottleneck residual block: 1x1 reduce, 3x3, 1x1 expand (BN each), projection shortcut, ReLU after "
                  "the add",
                  options={"reduction": Option(int, 4, "out_channels // reduction is the bottleneck width",
                                               min=1, max=64)}),
    ]
