"""sarzoo-eca-convnext: ECA attention and a ConvNeXt block, as a sarzoo plugin.

sarzoo finds this module through the ``sarzoo.plugins`` entry point in pyproject.toml and calls
``sarzoo_components()``. Torch modules are imported inside the factories, so ``sarzoo list``
and ``sarzoo plugins`` stay cheap. The factories are named ``make_*``, not like their submodules:
importing ``sarzoo_eca_convnext.eca`` binds the package attribute ``eca`` to that submodule, which
would replace a factory function called ``eca`` the next time the hook runs.
"""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

__version__ = "0.1.0"


def make_eca(channels, kernel_size=None, gamma=2, beta=1):
    from sarzoo_eca_convnext.eca import ECA
    return ECA(channels, kernel_size=kernel_size, gamma=gamma, beta=beta)


def _check_eca(args):
    k = args.get("kernel_size")
    if k is not None and k % 2 == 0:
        return f"kernel_size must be odd (or null for the adaptive size), got {k}"
    return None


def make_convnext(in_channels, out_channels, stride, kernel_size=7, expansion=4, layer_scale=1e-6,
             drop_path=0.0):
    from sarzoo_eca_convnext.convnext import ConvNeXtBlock
    return ConvNeXtBlock(in_channels, out_channels, stride, kernel_size=kernel_size,
                         expansion=expansion, layer_scale=layer_scale, drop_path=drop_path)


def _convnext_shape(in_shape, args):
    # The downsampling layer is a stride×stride conv with stride `stride` (a "patchify" conv): it
    # floors. With the input a multiple of `stride` (input_multiple below) floor equals ceil, so
    # the block keeps the kind's rule exactly where the builder uses it.
    _, h, w = in_shape
    s = args["stride"]
    return (args["out_channels"], h // s, w // s)


@hookimpl
def sarzoo_components():
    return [
        Component("attention", "eca", make_eca,
                  "Efficient Channel Attention: global avg pool → 1-D conv across channels "
                  "(adaptive kernel) → sigmoid gate",
                  options={
                      "kernel_size": Option(int, None, "1-D kernel size (odd); null: "
                                            "|(log2(C) + beta) / gamma| rounded up to odd",
                                            min=1, max=31, nullable=True),
                      "gamma": Option(int, 2, "gamma of the adaptive kernel size", min=1, max=8),
                      "beta": Option(int, 1, "beta of the adaptive kernel size", min=0, max=8),
                  },
                  check=_check_eca),
        Component("block", "convnext", make_convnext,
                  "ConvNeXt block: depthwise k×k → LayerNorm → 1×1 ×4 → GELU → 1×1 → layer scale, "
                  "residual; LayerNorm + stride×stride conv downsampling first",
                  options={
                      "kernel_size": Option(int, 7, "depthwise conv kernel", choices=(3, 5, 7)),
                      "expansion": Option(int, 4, "hidden width = expansion × out_channels",
                                          min=1, max=8),
                      "layer_scale": Option(float, 1e-6, "initial layer scale (0: none)",
                                            min=0.0, max=1.0),
                      "drop_path": Option(float, 0.0, "stochastic depth rate (training only)",
                                          min=0.0, max=0.9),
                  },
                  output_shape=_convnext_shape,
                  input_multiple=lambda args: args["stride"]),
    ]
