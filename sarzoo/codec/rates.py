"""How big a latent is: numbers, bits at its storage precision, bits per (valid) pixel.

One place for the arithmetic that ``sarzoo build``, ``sarzoo eval``, the trainer and the codec all
report, so "16× compression" is never a count of numbers passed off as bits: a 16×16×16 float32
latent of a 256² patch is 4,096 × 32 bits = 2 bits per pixel, whatever the ratio of numbers says.
Bits come from the bottleneck's likelihoods (``-log2`` summed; a fixed-precision bottleneck's are
``2**-32`` or ``2**-16`` per number), per *valid* pixel: a pixel counts when any of its channels
holds a measurement.
"""
from __future__ import annotations

import math
from typing import Any

#: Storage precision of the fixed-precision bottlenecks, in bits per latent number.
STORAGE_BITS = {"none": 32, "fp16": 16}


def latent_size(plan) -> dict[str, Any]:
    """``numbers``, ``storage`` (float32, float16 or entropy-coded) and ``bits_per_pixel`` at that
    precision (None when entropy-coded: the rate is then measured, ``sarzoo eval``/``encode``)."""
    numbers = math.prod(plan.latent_shape)
    pixels = plan.input_shape[1] * plan.input_shape[2]
    ref = plan.recipe.get("bottleneck") or {"type": "none"}
    name = ref["type"].rpartition(":")[2]
    bits = STORAGE_BITS.get(name)
    if plan.bottleneck is not None and bits is None:
        storage = "entropy-coded"
    else:
        bits = bits or 32
        storage = f"float{bits}"
    return {"numbers": numbers, "pixels": pixels, "storage": storage,
            "bits_per_pixel": None if storage == "entropy-coded" else numbers * bits / pixels,
            "numbers_ratio": plan.compression_ratio}


def describe_latent(size: dict[str, Any], measured_bpp: float | None = None) -> str:
    """``4,096 numbers = 2 bits/pixel as float32``, or for an entropy-coded latent its measured rate
    (``measured_bpp``, or the ``bits_per_pixel`` a measurement put in ``size``) when there is one."""
    text = f"{size['numbers']:,} numbers"
    if size["storage"] != "entropy-coded":
        return f"{text} = {size['bits_per_pixel']:.4g} bits/pixel as {size['storage']}"
    measured = measured_bpp if measured_bpp is not None else size.get("bits_per_pixel")
    if measured is not None:
        return f"{text}, entropy-coded: {measured:.4g} bits per valid pixel measured"
    return f"{text}, entropy-coded (rate depends on the image: sarzoo eval / sarzoo encode measure it)"


def likelihood_bits(likelihoods) -> Any:
    """Total bits of a batch: ``-log2`` of every likelihood, summed (a tensor)."""
    import torch

    total = None
    for lik in likelihoods:
        b = -torch.log2(lik.float()).sum()
        total = b if total is None else total + b
    return total


def valid_pixels(mask, x) -> Any:
    """Pixels (positions) with any valid channel in the batch; all of them without a mask."""
    import torch

    if mask is None:
        return torch.tensor(float(x.shape[0] * x.shape[-2] * x.shape[-1]), device=x.device)
    m = mask if mask.dim() == 4 else mask[:, None]
    return m.to(torch.bool).any(dim=1).sum().float()
