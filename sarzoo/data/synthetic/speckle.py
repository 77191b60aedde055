"""Speckle as a SAR sensor makes it: circular complex Gaussian looks, filtered by a point-spread
function, detected, multilooked.

Why not draw Gamma(L) intensities per pixel, as the first generator did: that speckle is white,
and real speckle is not. A SAR image is sampled finer than its resolution, so the complex
reflections of neighbouring pixels share scatterers; a model trained on white speckle sees real
data's correlated grain as structure and keeps it. Here each look is white circular Gaussian
noise convolved with the sensor's (separable) point-spread function h, normalised so that
Σ|h|² = 1: a filtered circular Gaussian is still circular Gaussian with unit variance, so each
look's intensity |z|² is still exponential with mean 1, only now correlated in space.

Non-integer looks L (real multilooked products have ENL 1.2, 4.4 …): the ⌈L⌉ = n looks are
averaged and multiplied by an independent white Beta(L, n − L) factor, using
Gamma(n) · Beta(L, n − L) ~ Gamma(L). Every pixel is then exactly Gamma(L)-distributed (mean 1,
ENL L, var(ln I) = ψ1(L)) for any L > 0; the factor is white, so the correlation between
distinct pixels is scaled by L/n.

Intensity autocorrelation, for lag d ≠ 0: r(d) = (L/n)·|ρ(d)|², where ρ is the complex
correlation ρ(d) = Σ h(x)h(x+d) (separable: ρ(dy, dx) = ρy(dy)·ρx(dx)). Hence the ENL of the mean
of a k×k box of a homogeneous region:

    ENL_box = k²·L / (1 + (L/n)·(F − 1)),   F = Fy·Fx,   F1 = Σ_{|d|<k} (1 − |d|/k)·ρ1(d)²

which is k²·L for white speckle (F = 1) and k²·L/F for integer L. For a Gaussian PSF of
standard deviation σ ≳ 0.7 px and k ≫ σ, F1 ≈ √(2π)·σ, so ENL_box ≈ k²·L/(2πσ²): a box holds
about k²/(2πσ²) independent samples. ``box_enl`` computes it exactly for the discrete PSF used.
"""
from __future__ import annotations

import math

import numpy as np

#: point-spread functions: white (no filtering), gaussian (width = σ of the amplitude PSF in px),
#: sinc (Hamming-weighted band-limited, as SAR processors make it; width = oversampling factor,
#: i.e. resolution / pixel spacing: the spectrum occupies 1/width of the band)
PSFS = ("white", "gaussian", "sinc")
#: Hamming weighting of the sinc PSF's spectrum: w(f) = a + (1 − a)·cos(2πf/B)
HAMMING = 0.54
#: a Gaussian PSF narrower than this is white: its neighbours' weight exp(−1/2σ²) is below 1e-21
MIN_WIDTH = 0.1


def transfer_1d(n: int, psf: str, width: float) -> np.ndarray:
    """Real transfer function (length n, FFT order) of one axis of the PSF, mean(T²) = 1.

    mean(T²) = 1 is Σh² = 1 (Parseval): filtering keeps unit variance per pixel.
    """
    if psf == "white" or (psf == "gaussian" and width < MIN_WIDTH):
        return np.ones(n)
    if psf == "gaussian":
        d = np.minimum(np.arange(n), n - np.arange(n)).astype(np.float64)
        t = np.fft.fft(np.exp(-0.5 * (d / width) ** 2)).real   # a symmetric kernel: a real spectrum
    elif psf == "sinc":
        if width < 1:
            raise ValueError(f"sinc PSF oversampling must be >= 1, got {width}")
        f, band = np.fft.fftfreq(n), 1.0 / width
        t = np.where(np.abs(f) <= band / 2, HAMMING + (1 - HAMMING) * np.cos(2 * np.pi * f / band), 0.0)
    else:
        raise ValueError(f"unknown PSF {psf!r}; one of {PSFS}")
    return t / math.sqrt(np.mean(t * t))


def amplitude_correlation(n: int, psf: str, width: float) -> np.ndarray:
    """ρ1(d), d = 0 … n−1 (circular): the complex correlation of one look's pixels d apart on one axis."""
    t = transfer_1d(n, psf, width)
    return np.fft.ifft(t * t).real   # ρ(0) = mean(T²) = 1


def box_factor(n: int, psf: str, width: float, k: int) -> float:
    """F1 = Σ_{|d|<k} (1 − |d|/k)·ρ1(d)²: how much the correlation inflates the variance of a k-sample mean."""
    rho = amplitude_correlation(n, psf, width)
    d = np.arange(-(k - 1), k)
    return float(np.sum((1 - np.abs(d) / k) * rho[d % n] ** 2))


def whole_looks(looks: float) -> int:
    """n = ⌈L⌉ complex looks are drawn (a hair's tolerance so 4.0000000001 stays 4 looks)."""
    return max(1, math.ceil(looks - 1e-9))


def box_enl(looks: float, psf: str, width: tuple[float, float], k: int, shape: tuple[int, int]) -> float:
    """Expected ENL of the mean of a k×k box of speckle (module docstring: the derivation)."""
    f = box_factor(shape[0], psf, width[0], k) * box_factor(shape[1], psf, width[1], k)
    return k * k * looks / (1 + looks / whole_looks(looks) * (f - 1))


def intensity_correlation(looks: float, psf: str, width: tuple[float, float], lag: tuple[int, int],
                          shape: tuple[int, int]) -> float:
    """Correlation coefficient of the speckle intensities of two pixels ``lag`` (rows, cols) apart."""
    if lag == (0, 0):
        return 1.0
    ry = amplitude_correlation(shape[0], psf, width[0])[lag[0] % shape[0]]
    rx = amplitude_correlation(shape[1], psf, width[1])[lag[1] % shape[1]]
    return looks / whole_looks(looks) * float(ry * rx) ** 2


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Circular complex Gaussian, E|z|² = 1, complex64."""
    z = rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
    return z * np.float32(math.sqrt(0.5))


def _looks(rng: np.random.Generator, n: int, shape: tuple[int, int],
           transfer: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """n independent looks (n, H, W), complex64, each circular Gaussian with E|z|² = 1, filtered.

    Filtered looks are drawn in the frequency domain: the DFT of white circular Gaussian noise is
    white circular Gaussian noise, so the spectrum is drawn directly, weighted by the transfer
    function and inverse-transformed once (half the FFTs of filtering a spatial draw, same law).
    """
    z = _complex_normal(rng, (n, *shape))
    if transfer is None:
        return z
    ty, tx = transfer
    z *= (ty[:, None] * tx[None, :] * math.sqrt(shape[0] * shape[1])).astype(np.float32)
    return np.fft.ifft2(z, axes=(-2, -1)).astype(np.complex64, copy=False)


def _detect(z: np.ndarray, looks: float, rng: np.random.Generator) -> np.ndarray:
    """Mean of the looks' |z|², times Beta(L, n − L)·n/L for non-integer L: exactly Gamma(L)/L."""
    n = z.shape[0]
    out = np.mean(np.square(z.real) + np.square(z.imag), axis=0, dtype=np.float32)
    if looks < n:
        out *= (rng.beta(looks, n - looks, size=out.shape) * (n / looks)).astype(np.float32)
    return out


def speckle_channels(rng: np.random.Generator, shape: tuple[int, int], looks: float, psf: str = "white",
                     width: tuple[float, float] = (0.0, 0.0), channels: int = 1,
                     coherence: float = 0.0) -> np.ndarray:
    """Multiplicative speckle (channels, H, W), float32, mean 1, each pixel Gamma(L)/L.

    Channel c > 0 shares a fraction of channel 0's scatterers: its looks are γ·z0 + √(1 − γ²)·zc
    with γ = ``coherence`` (the complex coherence of the channels, e.g. VV and VH), so the
    intensity correlation of the two channels' speckle is γ²·L/⌈L⌉ (γ² for integer L). Channel 0
    uses the generator exactly as a one-channel call does, so it is the same array either way.
    """
    if not looks > 0:
        raise ValueError(f"looks must be > 0, got {looks}")
    if not 0.0 <= coherence <= 1.0:
        raise ValueError(f"coherence must be in [0, 1], got {coherence}")
    n = whole_looks(looks)
    white = psf == "white" or (psf == "gaussian" and max(width) < MIN_WIDTH)
    transfer = None if white else (transfer_1d(shape[0], psf, width[0]), transfer_1d(shape[1], psf, width[1]))
    z0 = _looks(rng, n, shape, transfer)
    out = [_detect(z0, looks, rng)]
    for _ in range(1, channels):
        # mixing after the (linear) filter is mixing before it: both channels share the PSF
        own = _looks(rng, n, shape, transfer)
        zc = np.complex64(coherence) * z0 + np.complex64(math.sqrt(1 - coherence ** 2)) * own
        out.append(_detect(zc, looks, rng))
    return np.stack(out)


def speckle(rng: np.random.Generator, shape: tuple[int, int], looks: float, psf: str = "white",
            width: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """One channel of ``speckle_channels``: (H, W) float32, mean 1, variance 1/L, Gamma(L)/L per pixel."""
    return speckle_channels(rng, shape, looks, psf, width)[0]


def trigamma(x: float) -> float:
    """ψ1(x) = Σ_k 1/(x + k)², the variance of ln G for G ~ Gamma(x): var(ln I) of L-look speckle.

    Recurrence ψ1(x) = ψ1(x + 1) + 1/x² up to x ≥ 8, then the asymptotic series (error < 1e-12).
    """
    if not x > 0:
        raise ValueError(f"trigamma needs x > 0, got {x}")
    acc = 0.0
    while x < 8.0:
        acc += 1.0 / (x * x)
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = (1.0 / x + inv2 / 2 + inv2 / x * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30))))
    return acc + series
