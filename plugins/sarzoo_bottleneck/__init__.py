"""First-party bottlenecks: what sits between encoder and decoder, and how the latent is stored.

``none`` (float32, the default: no parameters, the seeds' models unchanged), ``fp16``, ``quantize``
(rounding with a per-channel Gaussian entropy model), ``factorized`` (Ballé et al. 2018's learned
factorized prior) and ``hyperprior`` (their scale hyperprior). The entropy-coded ones use
constriction's range coder (``coding``); the protocol every bottleneck follows is
``sarzoo.interfaces.BOTTLENECK_PROTOCOL`` and docs/codec.md.
"""
from __future__ import annotations

from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option

_DECODER_INPUT = Option(str, "noise", "what the decoder sees in training: 'ste' (rounded, straight-through "
                        "gradient) or 'noise' (y + uniform noise, like the likelihoods)", choices=("ste", "noise"))


def make_none(channels):
    from sarzoo_bottleneck.raw import RawBottleneck
    return RawBottleneck(channels, 32)


def make_fp16(channels):
    from sarzoo_bottleneck.raw import RawBottleneck
    return RawBottleneck(channels, 16)


def make_quantize(channels, decoder_input="noise"):
    from sarzoo_bottleneck.gaussian import QuantizeBottleneck
    return QuantizeBottleneck(channels, decoder_input)


def make_factorized(channels, decoder_input="noise", filters=3, init_scale=10.0):
    from sarzoo_bottleneck.factorized import FactorizedBottleneck
    return FactorizedBottleneck(channels, decoder_input, filters, init_scale)


def make_hyperprior(channels, hyper_channels=None, decoder_input="noise"):
    from sarzoo_bottleneck.hyperprior import HyperpriorBottleneck
    return HyperpriorBottleneck(channels, hyper_channels, decoder_input)


@hookimpl
def sarzoo_components():
    return [
        Component("bottleneck", "none", make_none,
                  "the float32 latent as it is (32 bits per number, no parameters)"),
        Component("bottleneck", "fp16", make_fp16,
                  "the latent rounded to float16 (16 bits per number, straight-through in training)"),
        Component("bottleneck", "quantize", make_quantize,
                  "uniform scalar quantisation (rounding) coded with a learned Gaussian per channel",
                  options={"decoder_input": _DECODER_INPUT}),
        Component("bottleneck", "factorized", make_factorized,
                  "rounding + Ballé 2018's learned factorized entropy model, range-coded",
                  options={"decoder_input": _DECODER_INPUT,
                           "filters": Option(int, 3, "width of each density MLP layer", min=1, max=16),
                           "init_scale": Option(float, 10.0, "initial spread of the densities", min=0.1,
                                                max=1000)}),
        Component("bottleneck", "hyperprior", make_hyperprior,
                  "rounding + Ballé 2018's scale hyperprior (Gaussian conditional, factorized side info)",
                  options={"hyper_channels": Option(int, None, "channels of the hyper-latent; null = "
                                                    "max(latent channels, 8)", min=1, max=1024, nullable=True),
                           "decoder_input": _DECODER_INPUT}),
    ]
