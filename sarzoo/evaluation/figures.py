"""The figures of an evaluation: model and classical reference side by side, and their means.

Why every figure of the model is paired with the reference's on the same pixels: an autoencoder
with 16× fewer latent numbers than input numbers that cannot beat "average 4×4 blocks, bicubic
back" is not worth its parameters (SPEC §3), and the absolute PSNR/SSIM of speckled data mean little on their own. For
synthetic data model, reference and speckled input are also measured against the clean
reflectivity (the only way to tell speckle removal from lost structure).

The figures come from ``sarzoo.metrics.batch_metrics``, the function training validation uses,
so the patch level of ``sarzoo eval`` reproduces what a run logged for its validation split.
Multi-channel images carry the same structure again per band under ``"channels"`` (the figures
at the top are then the means over the bands).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["METRICS", "CLEAN_METRICS", "figures", "summarise", "mean_defined"]

#: Metric names, in report order.
METRICS = ("psnr", "ssim", "enl_ratio", "epi")
#: Metrics that make sense against the clean reflectivity (ENL ratio compares speckle levels of
#: input and output; against a speckle-free truth it has no meaning).
CLEAN_METRICS = ("psnr", "ssim", "epi")


def _assemble(model: dict[str, Any], reference: dict[str, Any], inp: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: model[k] for k in METRICS}
    out["reference"] = {k: reference[k] for k in METRICS}
    if inp is not None:
        out["clean"] = {"model": {k: model[f"{k}_clean"] for k in CLEAN_METRICS},
                        "reference": {k: reference[f"{k}_clean"] for k in CLEAN_METRICS},
                        "input": {k: inp[k] for k in CLEAN_METRICS}}
    return out


def figures(x: Any, y: Any, ref: Any, mask: Any, prep: Any, clean: Any = None) -> dict[str, Any]:
    """Model (``y``) and reference (``ref``) figures of an image or a batch of input ``x``, plus
    ``clean`` {model, reference, input} when the clean reflectivity is given. A batch gives means
    over its images (``batch_metrics``); ``prep`` may be one per image (per-scene ranges). Several
    channels: the means over bands, and ``"channels"``: the same figures per band name."""
    from sarzoo.metrics import band_names, batch_metrics, channels_of

    c = channels_of(x)
    bands = band_names(c, prep) if c > 1 else None
    model = batch_metrics(x, y, mask, prep, clean, bands=bands)
    reference = batch_metrics(x, ref, mask, prep, clean, bands=bands)
    # the speckled input measured as a reconstruction of the clean truth, the way batch_metrics
    # measures the model's and the reference's (same argument order: clean first)
    inp = None if clean is None else batch_metrics(clean, x, mask, bands=bands)
    out = _assemble(model, reference, inp)
    if "channels" in model:
        out["channels"] = {b: _assemble(model["channels"][b], reference["channels"][b],
                                        None if inp is None else inp["channels"][b]) for b in model["channels"]}
    return out


def mean_defined(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Weighted mean of the defined values; an undefined one (None, NaN) drops out with its weight.

    ±inf is kept (and the mean becomes ±inf, reported as null): an infinite PSNR or ENL ratio is a
    real outcome that a mean must not hide."""
    ok = [(float(v), w) for v, w in zip(values, weights) if v is not None and not math.isnan(v)]
    if not ok:
        return None
    return float(sum(v * w for v, w in ok) / sum(w for _, w in ok))


def summarise(items: Sequence[dict[str, Any]], weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Means of every figure over ``items`` (``figures`` of images or of batches), each weighted by
    ``weights`` (the batch sizes; 1 per image by default). ``n_images`` is the sum of the weights."""
    w = [1.0] * len(items) if weights is None else [float(v) for v in weights]
    s: dict[str, Any] = {k: mean_defined([it.get(k) for it in items], w) for k in METRICS}
    s["n_images"] = len(items) if weights is None else int(sum(w))
    s["reference"] = {k: mean_defined([it["reference"].get(k) for it in items], w) for k in METRICS}
    with_clean = [(it, wi) for it, wi in zip(items, w) if it.get("clean")]
    if with_clean:
        cw = [wi for _, wi in with_clean]
        s["clean"] = {who: {k: mean_defined([it["clean"][who].get(k) for it, _ in with_clean], cw)
                            for k in CLEAN_METRICS}
                      for who in ("model", "reference", "input")}
    if items and items[0].get("channels"):
        s["channels"] = {}
        for band in items[0]["channels"]:
            per = summarise([it["channels"][band] for it in items], w)
            per.pop("n_images")
            s["channels"][band] = per
    return s
