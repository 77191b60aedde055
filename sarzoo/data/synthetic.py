"""Synthetic SAR scenes: clean reflectivity × fully developed L-look Gamma speckle.

Why synthetic data at all: tests, CI and first experiments need SAR-like images without a
download, and only synthetic scenes come with the clean reflectivity, which is what lets us
check that a model removes speckle rather than structure. The scene content is chosen to
exercise what the metrics look at: homogeneous regions (ENL), sharp straight edges and thin
lines (EPI), texture (what a model should keep), and bright point targets (dynamic range).

Everything is deterministic: scene ``i`` of seed ``s`` depends only on ``(s, i)`` and the
size/looks, not on how many scenes are requested.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sarzoo.errors import SarzooError


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear-interpolation matrix (n_out × n_in) mapping a coarse grid onto n_out samples."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 2)
    t = pos - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    m[rows, i0] = 1.0 - t
    m[rows, i0 + 1] = t
    return m


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Zero-mean, unit-std smooth random field: bilinear upsampling of a coarse Gaussian grid.

    Two octaves (cell and cell/2) so the texture is not visibly grid-aligned. Done with two
    small matrix products, which is far cheaper than filtering a full-size noise image.
    """
    out = np.zeros((height, width), dtype=np.float64)
    for c, w in ((cell, 1.0), (max(cell // 2, 2), 0.5)):
        gh, gw = max(height // c + 2, 2), max(width // c + 2, 2)
        coarse = rng.standard_normal((gh, gw))
        out += w * (_interp_matrix(height, gh) @ coarse @ _interp_matrix(width, gw).T)
    std = out.std()
    return (out - out.mean()) / (std if std > 0 else 1.0)


def clean_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A clean reflectivity map in linear intensity (float32, strictly positive).

    Levels are drawn in dB within the usual σ0 range of land and water (−22..−4 dB) and point
    targets at +5..+20 dB, so a −25..0 dB or percentile clip behaves as on real data.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)

    # Homogeneous regions: a Voronoi partition gives convex polygons with straight sharp edges.
    k = int(rng.integers(6, 14))
    pts = rng.uniform((0.0, 0.0), (height, width), size=(k, 2)).astype(np.float32)
    best = np.full((height, width), np.inf, dtype=np.float32)
    label = np.zeros((height, width), dtype=np.int64)
    for j in range(k):
        d = (yy - pts[j, 0]) ** 2 + (xx - pts[j, 1]) ** 2
        closer = d < best
        best[closer] = d[closer]
        label[closer] = j
    levels = rng.uniform(-22.0, -4.0, size=k)
    db = levels[label]

    # Fields: a few rotated rectangles overlaid on the partition (edges at arbitrary angles).
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        a, b = rng.uniform(0.08, 0.3) * width, rng.uniform(0.05, 0.2) * height
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        db = np.where((np.abs(u) < a) & (np.abs(v) < b), rng.uniform(-20.0, -6.0), db)

    # Texture on some regions only, so others stay homogeneous for ENL measurements.
    textured = rng.random(k) < 0.4
    amp = np.where(textured, rng.uniform(1.0, 3.0, size=k), 0.0)
    cell = int(rng.choice([8, 16, 32]))
    db = db + amp[label] * smooth_noise(rng, height, width, cell)

    # A thin dark linear feature (road, river, canal): a 1-3 px wide line across the scene.
    if rng.random() < 0.7:
        th = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        dist = np.abs(-(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th))
        db = np.where(dist < rng.uniform(0.5, 1.5), rng.uniform(-26.0, -22.0), db)

    clean = np.power(10.0, db / 10.0)

    # Bright point targets (buildings, ships, corner reflectors): 1-3 px squares.
    n_pt = int(rng.integers(3, 12))
    for _ in range(n_pt):
        s = int(rng.integers(1, 4))
        r, c = int(rng.integers(0, max(height - s, 1))), int(rng.integers(0, max(width - s, 1)))
        clean[r:r + s, c:c + s] = 10.0 ** (rng.uniform(5.0, 20.0) / 10.0)
    return clean.astype(np.float32)


def speckle(rng: np.random.Generator, shape: tuple[int, int], looks: float) -> np.ndarray:
    """Fully developed L-look intensity speckle: Gamma(shape=L, scale=1/L), mean 1, variance 1/L."""
    return rng.gamma(shape=looks, scale=1.0 / looks, size=shape).astype(np.float32)


class SyntheticSAR:
    """Map-style dataset of synthetic scenes; works with ``torch.utils.data.DataLoader``.

    ``scene(i)`` returns numpy arrays ``(speckled, clean)`` in linear intensity (H, W);
    ``dataset[i]`` returns ``{"speckled", "clean"}`` as float32 tensors (1, H, W) and the
    scene id. Scenes are generated on demand (a few ms each), not cached.
    """

    def __init__(self, n_scenes: int = 32, size: int | tuple[int, int] = 128, looks: float = 4,
                 seed: int = 0):
        if int(n_scenes) < 1:
            raise SarzooError(f"synthetic n_scenes must be >= 1, got {n_scenes}")
        h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if int(h) < 8 or int(w) < 8:
            raise SarzooError(f"synthetic scene size must be >= 8 px, got {size}")
        if not float(looks) > 0:
            raise SarzooError(f"synthetic looks must be > 0, got {looks}")
        self.n_scenes, self.height, self.width = int(n_scenes), int(h), int(w)
        self.looks, self.seed = float(looks), int(seed)

    def __len__(self) -> int:
        return self.n_scenes

    def scene_id(self, i: int) -> str:
        return f"synthetic-{self.seed}-{i:04d}"

    def scene(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(speckled, clean)`` linear intensity, float32 (H, W), for scene ``i``."""
        if not 0 <= i < self.n_scenes:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        clean = clean_scene(rng, self.height, self.width)
        return clean * speckle(rng, clean.shape, self.looks), clean

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        speckled, clean = self.scene(int(i))
        return {"speckled": torch.from_numpy(speckled)[None], "clean": torch.from_numpy(clean)[None],
                "scene": self.scene_id(int(i))}
