"""What the generator draws from: land-cover classes, the ``train`` and ``heldout`` profiles, and
the per-scene parameters drawn from a profile.

Why two profiles: a model can do well on scenes like its training scenes and still fail on real
data, whose looks, speckle correlation and texture differ. The ``heldout`` profile is a fixed set
of scenes unlike the default training ones in every one of those respects (looks and correlation
outside the training ranges, a sinc PSF instead of a Gaussian one, anisotropic, inverse-Gamma
instead of Gamma texture, another class mix, its own seed stream), so ``sarzoo eval --heldout``
measures how a model transfers. Its numbers are constants here, documented in docs/data.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from sarzoo.data.synthetic.speckle import MIN_WIDTH
from sarzoo.errors import SarzooError

#: land-cover classes: (σ0 of VV in dB, VV − VH in dB), each drawn uniformly per region. C band,
#: moderate incidence: water is dark and its cross-pol weakest (VH 9–12 dB below VV); vegetation's
#: volume scattering gives the strongest relative cross-pol (5–7 dB below); towns are bright.
CLASSES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "water": ((-30.0, -20.0), (9.0, 12.0)),
    "soil": ((-18.0, -10.0), (7.0, 10.0)),
    "vegetation": ((-14.0, -6.0), (5.0, 7.0)),
    "urban": ((-8.0, 5.0), (6.0, 9.0)),
}
CLASS_NAMES = tuple(CLASSES)

#: thin features drawn over the regions: (σ0 VV dB, VV − VH dB) ranges
ROAD = ((-26.0, -18.0), (8.0, 11.0))          # 1–2 px straight dark lines
RIVER = ((-30.0, -22.0), (9.0, 12.0))         # 2–5 px meandering dark lines (water)
BRIGHT_LINE = ((0.0, 10.0), (6.0, 10.0))      # 1 px segments 10–50 px long: bridges, building edges
POINT = ((5.0, 20.0), (8.0, 12.0))            # 1–2 px: corner reflectors, ships, pylons
URBAN_SCATTERER = ((0.0, 15.0), (6.0, 10.0))  # single bright pixels inside urban regions
URBAN_DENSITY = 0.004                         # their share of an urban region's pixels


@dataclass(frozen=True)
class Profile:
    """One parameter set of the generator; ranges are [low, high], drawn uniformly unless noted."""

    name: str
    looks: tuple[float, float]                # looks L per scene
    psf: str                                  # "gaussian" (isotropic) or "sinc" (per-axis widths)
    correlation: tuple[float, float]          # PSF width per scene (per axis for sinc), px
    texture_family: str                       # "gamma" (K) or "inverse_gamma" (G0)
    texture: tuple[float, float]              # texture shape per region, log-uniform
    texture_fraction: float                   # chance that a land region is textured
    texture_correlation: tuple[float, float]  # σ (px) of the texture's Gaussian field, per scene
    class_mix: tuple[float, ...]              # probability of each of CLASS_NAMES per region
    coherence: tuple[float, float]            # VV/VH complex coherence γ per scene (channels=2)
    stream: int                               # 0: rng of scene i is [seed, i]; else [seed, i, stream]


TRAIN = Profile(name="train", looks=(1.0, 5.0), psf="gaussian", correlation=(0.0, 1.2),
                texture_family="gamma", texture=(1.0, 10.0), texture_fraction=0.5,
                texture_correlation=(1.0, 4.0), class_mix=(0.15, 0.25, 0.4, 0.2),
                coherence=(0.1, 0.4), stream=0)
HELDOUT = Profile(name="heldout", looks=(6.0, 10.0), psf="sinc", correlation=(2.0, 3.0),
                  texture_family="inverse_gamma", texture=(4.0, 10.0), texture_fraction=0.7,
                  texture_correlation=(5.0, 8.0), class_mix=(0.3, 0.1, 0.2, 0.4),
                  coherence=(0.4, 0.6), stream=0x48454C44)   # "HELD"
PROFILES = {"train": TRAIN, "heldout": HELDOUT}


@dataclass(frozen=True)
class SceneParams:
    """The parameters one scene was drawn with (``SyntheticSAR.params(i)``)."""

    looks: float
    psf: str                       # "white", "gaussian" or "sinc"
    width: tuple[float, float]     # PSF width along rows, columns (px; see speckle.PSFS)
    texture_correlation: float
    coherence: float


def as_range(value: float | Sequence[float], name: str, low: float, high: float = math.inf) -> tuple[float, float]:
    """A number or [lo, hi] as a checked (lo, hi); ``SarzooError`` naming ``name`` otherwise."""
    try:
        pair = (float(value), float(value)) if np.ndim(value) == 0 else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise SarzooError(f"synthetic {name} must be a number or [low, high], got {value!r}")
    if not low <= pair[0] <= pair[1] <= high:
        bound = f"{low:g} <= low <= high" + (f" <= {high:g}" if math.isfinite(high) else "")
        raise SarzooError(f"synthetic {name} must satisfy {bound}, got {value!r}")
    return pair


def profile(name: str, looks=None, correlation=None, texture=None, texture_fraction=None) -> Profile:
    """The named profile; ``train`` takes the given ranges (None: its defaults), ``heldout`` is fixed."""
    if name not in PROFILES:
        raise SarzooError(f"synthetic profile must be one of {', '.join(PROFILES)}, got {name!r}")
    base = PROFILES[name]
    if name != "train":
        return base
    changes: dict = {}
    if looks is not None:
        changes["looks"] = as_range(looks, "looks", 1.0, 1000.0)
    if correlation is not None:
        changes["correlation"] = as_range(correlation, "correlation", 0.0, 16.0)
    if texture is not None:
        changes["texture"] = as_range(texture, "texture", 1.0, 1000.0)
    if texture_fraction is not None:
        if not 0.0 <= float(texture_fraction) <= 1.0:
            raise SarzooError(f"synthetic texture_fraction must be in [0, 1], got {texture_fraction!r}")
        changes["texture_fraction"] = float(texture_fraction)
    return replace(base, **changes)


def draw_params(prof: Profile, rng: np.random.Generator) -> SceneParams:
    """One scene's parameters; always the same count of draws, so they depend on the ranges only."""
    looks = float(rng.uniform(*prof.looks))
    wy = float(rng.uniform(*prof.correlation))
    wx = float(rng.uniform(*prof.correlation))
    tex = float(rng.uniform(*prof.texture_correlation))
    coh = float(rng.uniform(*prof.coherence))
    if prof.psf == "gaussian":
        width = (wy, wy)    # isotropic: the second draw is unused
        psf = "white" if wy < MIN_WIDTH else "gaussian"
    else:
        width, psf = (wy, wx), prof.psf
    return SceneParams(looks, psf, width, tex, coh)
