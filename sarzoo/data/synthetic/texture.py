"""Texture: the spatial variation of the reflectivity inside a land-cover region (product model).

Why: real distributed targets are not flat. Forest canopies, crops and towns vary from pixel to
pixel beyond the speckle, which makes the observed intensity K-distributed (Gamma texture ×
Gamma speckle) or G0-distributed (inverse-Gamma texture, heavier tails: towns). A despeckler must
keep this variation, since it is part of the reflectivity; so the texture belongs to the clean
image and has a correlation length of its own, longer than the speckle's.

Construction: one correlated Gaussian field per scene (white noise filtered by a Gaussian of
standard deviation ``corr`` px, unit variance), mapped pixel by pixel to the texture of the
region's shape parameter by the Wilson–Hilferty transform G/ν ≈ (1 − 1/(9ν) + z/(3√ν))³ (no
scipy: numpy has no Gamma quantile). Its mean and variance are within 0.5 % of Gamma(ν)/ν for
ν ≥ 1; the inverse-Gamma texture (α − 1)/G has mean 1 and variance 1/(α − 2) within 5 % for
α ≥ 6 (24 % above it at α = 4: the transform's thin lower tail is what 1/G magnifies).
"""
from __future__ import annotations

import numpy as np

from sarzoo.data.synthetic.speckle import transfer_1d

FAMILIES = ("gamma", "inverse_gamma")
#: Wilson–Hilferty's cube is floored here so G stays positive at the far lower tail (z < −2.7 at ν = 1)
_FLOOR = 0.2


def gaussian_field(rng: np.random.Generator, shape: tuple[int, int], corr: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian field with a Gaussian correlation of ``corr`` px (float32)."""
    h, w = shape
    noise = rng.standard_normal(shape, dtype=np.float32)
    if corr <= 0:
        return noise
    ty, tx = transfer_1d(h, "gaussian", corr), transfer_1d(w, "gaussian", corr)[: w // 2 + 1]
    spec = np.fft.rfft2(noise) * (ty[:, None] * tx[None, :]).astype(np.float32)
    return np.fft.irfft2(spec, s=shape).astype(np.float32)


def _gamma_unit(z: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Wilson–Hilferty: a standard normal z → approximately Gamma(shape)/shape (mean 1)."""
    base = 1.0 - 1.0 / (9.0 * shape) + z / (3.0 * np.sqrt(shape))
    return np.maximum(base, _FLOOR) ** 3


def texture(z: np.ndarray, shape: np.ndarray, family: str) -> np.ndarray:
    """Mean-1 texture from the Gaussian field ``z`` and the per-pixel shape parameter ``shape``.

    ``gamma``: Gamma(ν)/ν, variance 1/ν (K-distributed intensity once speckled).
    ``inverse_gamma``: (α − 1)/Gamma(α), variance 1/(α − 2) (G0-distributed intensity); α > 2.
    """
    shape = np.asarray(shape, dtype=np.float32)
    if family == "gamma":
        return _gamma_unit(z, shape).astype(np.float32)
    if family == "inverse_gamma":
        return ((shape - 1.0) / (shape * _gamma_unit(z, shape))).astype(np.float32)
    raise ValueError(f"unknown texture family {family!r}; one of {FAMILIES}")
