"""The clean reflectivity of a synthetic scene: land-cover regions, texture, thin features, points.

Why this content: it is what real SAR scenes show and what the metrics look at. Regions with
sharp straight boundaries (a Voronoi partition and rotated rectangles: parcels, fields) carry a
land-cover class with its σ0 range (water −30..−20 dB up to towns −8..+5 dB); some are
homogeneous (where ENL is measured), the others textured (what a model must keep). Dark lines
(roads, meandering rivers), bright line segments (bridges, building edges), bright points and
the scattered strong pixels of towns exercise edge preservation and dynamic range.

Dual polarisation comes for free: every region and feature also draws its VV − VH ratio in dB
(``profiles.CLASSES``), and the VH reflectivity is VV's divided by it, texture included.
"""
from __future__ import annotations

import numpy as np

from sarzoo.data.synthetic.profiles import (
    BRIGHT_LINE,
    CLASS_NAMES,
    CLASSES,
    POINT,
    RIVER,
    ROAD,
    URBAN_DENSITY,
    URBAN_SCATTERER,
    Profile,
)
from sarzoo.data.synthetic.texture import gaussian_field, texture

WATER, URBAN = CLASS_NAMES.index("water"), CLASS_NAMES.index("urban")


def _partition(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Region labels: Voronoi cells (convex polygons, straight sharp edges) under 1–3 rotated
    rectangles (fields at arbitrary angles). Labels are 0 … count − 1."""
    h, w = yy.shape
    k = int(rng.integers(6, 14))
    pts = rng.uniform((0.0, 0.0), (h, w), size=(k, 2)).astype(np.float32)
    label = np.argmin((yy - pts[:, :1, None]) ** 2 + (xx - pts[:, 1:, None]) ** 2, axis=0)
    for j in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        a, b = rng.uniform(0.08, 0.3) * w, rng.uniform(0.05, 0.2) * h
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        label = np.where((np.abs(u) < a) & (np.abs(v) < b), k + j, label)
    return label


def _line(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, half_width: float,
          meander: bool = False, half_length: float | None = None) -> np.ndarray:
    """Pixels within ``half_width`` of a random line (a sine-meandering one for rivers; a segment
    of ``half_length`` either side of its centre when given)."""
    h, w = yy.shape
    th = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    amp, period, phase = rng.uniform(0.02, 0.1) * max(h, w), rng.uniform(0.5, 1.5) * max(h, w), rng.uniform(0, 6.3)
    if meander:
        v = v - amp * np.sin(2 * np.pi * u / period + phase)
    hit = np.abs(v) < half_width
    if half_length is not None:
        hit &= np.abs(u) < half_length
    return hit


def _paint(rng: np.random.Generator, db: np.ndarray, ratio: np.ndarray, hit: np.ndarray,
           kind: tuple[tuple[float, float], tuple[float, float]], per_pixel: bool = False) -> None:
    """Set the pixels ``hit`` to a level and a VV − VH ratio drawn from ``kind`` (one for the
    whole feature, or one per pixel)."""
    n = int(hit.sum()) if per_pixel else 1
    db[hit] = rng.uniform(*kind[0], size=n)
    ratio[hit] = rng.uniform(*kind[1], size=n)


def reflectivity(rng: np.random.Generator, height: int, width: int, prof: Profile,
                 texture_correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """``(vv, ratio_db)``: VV reflectivity in linear intensity (float32, > 0) and VV − VH in dB.

    Every draw happens whatever the channel count, so a scene's VV is the same with one channel
    or two.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    label = _partition(rng, yy, xx)
    m = int(label.max()) + 1
    cls = rng.choice(len(CLASS_NAMES), size=m, p=np.asarray(prof.class_mix) / sum(prof.class_mix))
    lo = np.array([CLASSES[c][0][0] for c in CLASS_NAMES])[cls]
    hi = np.array([CLASSES[c][0][1] for c in CLASS_NAMES])[cls]
    rlo = np.array([CLASSES[c][1][0] for c in CLASS_NAMES])[cls]
    rhi = np.array([CLASSES[c][1][1] for c in CLASS_NAMES])[cls]
    level, rdb = rng.uniform(lo, hi), rng.uniform(rlo, rhi)
    # texture: land regions only (open water stays homogeneous), shape log-uniform in the range
    textured = (rng.random(m) < prof.texture_fraction) & (cls != WATER)
    shape = np.exp(rng.uniform(np.log(prof.texture[0]), np.log(prof.texture[1]), size=m))
    z = gaussian_field(rng, (height, width), texture_correlation)
    tex = np.where(textured[label], texture(z, shape[label], prof.texture_family), np.float32(1.0))

    db, ratio = level[label], rdb[label]
    tex_db = 10.0 * np.log10(tex)
    db = db + tex_db
    # the strong isolated scatterers of towns: single pixels, a fixed share of each urban region
    urban = (cls == URBAN)[label] & (rng.random((height, width)) < URBAN_DENSITY)
    _paint(rng, db, ratio, urban, URBAN_SCATTERER, per_pixel=True)
    # dark lines: roads (straight, 1–2 px) and rivers (meandering, 2–5 px), homogeneous
    for _ in range(int(rng.integers(0, 3))):
        _paint(rng, db, ratio, _line(rng, yy, xx, rng.uniform(0.5, 1.0)), ROAD)
    if rng.random() < 0.5:
        _paint(rng, db, ratio, _line(rng, yy, xx, rng.uniform(1.0, 2.5), meander=True), RIVER)
    # bright line segments (bridges, building edges) and points (corner reflectors, ships)
    for _ in range(int(rng.integers(0, 4))):
        seg = _line(rng, yy, xx, 0.5, half_length=rng.uniform(5.0, 25.0))
        _paint(rng, db, ratio, seg, BRIGHT_LINE)
    for _ in range(int(rng.integers(3, 12))):
        s = int(rng.integers(1, 3))
        r, c = int(rng.integers(0, max(height - s, 1))), int(rng.integers(0, max(width - s, 1)))
        hit = np.zeros((height, width), dtype=bool)
        hit[r:r + s, c:c + s] = True
        _paint(rng, db, ratio, hit, POINT)
    vv = np.power(np.float32(10.0), (db / 10.0).astype(np.float32))
    return vv.astype(np.float32), ratio.astype(np.float32)
