"""First-party attention modules: CBAM (paper-exact), SE, and timm's CBAM variants as references."""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

_REDUCTION = Option(int, 16, "channel reduction of the MLP (hidden = max(C // reduction, 1))", min=1, max=256)
_KERNEL = Option(int, 7, "spatial attention kernel size (odd)", choices=(3, 5, 7, 9, 11))


def cbam_factory(channels, reduction=16, kernel_size=7):
    from sarzoo_attention.cbam import CBAM
    return CBAM(channels, reduction, kernel_size)


def se_factory(channels, reduction=16):
    from sarzoo_attention.se import SqueezeExcite
    return SqueezeExcite(channels, reduction)


def _timm_rd(channels, reduction):
    return max(channels // reduction, 1)


def timm_cbam(channels, reduction=16, kernel_size=7):
    from timm.layers.cbam import CbamModule
    return CbamModule(channels, rd_channels=_timm_rd(channels, reduction), spatial_kernel_size=kernel_size)


def timm_light_cbam(channels, reduction=16, kernel_size=7):
    from timm.layers.cbam import LightCbamModule
    return LightCbamModule(channels, rd_channels=_timm_rd(channels, reduction), spatial_kernel_size=kernel_size)


@hookimpl
def sarzoo_components():
    return [
        Component("attention", "cbam", cbam_factory,
                  "CBAM exactly as the paper: channel (shared bias-free MLP on max+avg) then spatial (7x7 conv, no BN)",
                  options={"reduction": _REDUCTION, "kernel_size": _KERNEL}),
        Component("attention", "se", se_factory, "Squeeze-and-excitation: global avg pool → MLP → sigmoid channel gate",
                  options={"reduction": _REDUCTION}),
        Component("attention", "timm_cbam", timm_cbam,
                  "timm.layers.CbamModule, the reference CBAM (its spatial conv carries a BatchNorm)",
                  options={"reduction": _REDUCTION, "kernel_size": _KERNEL}),
        Component("attention", "timm_light_cbam", timm_light_cbam,
                  "timm.layers.LightCbamModule: avg+max pooled to one descriptor, lighter spatial gate",
                  options={"reduction": _REDUCTION, "kernel_size": _KERNEL}),
    ]
