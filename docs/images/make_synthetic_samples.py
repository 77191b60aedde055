"""Draw docs/images/synthetic_samples.png: what the synthetic generator makes (docs/data.md).

Run from the repository root: ``python docs/images/make_synthetic_samples.py``. Every panel is
128 × 128 px in dB, −30..+10 dB mapped to black..white, so panels compare with each other:

- row 1: one clean scene, then speckled with 1 look white, 1 look correlated (Gaussian PSF σ = 1.2 px),
  4.5 looks white, 4.5 looks correlated;
- row 2: a dual-pol pair: clean VV, speckled VV, clean VH, speckled VH (2.5 looks, σ = 0.8 px), and
  the speckle ratio VV/(clean VV) of that scene (×1, 0..3 linear) to show the grain;
- row 3: two held-out-profile scenes (``profile="heldout"``), clean and speckled, and a third speckled.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sarzoo.data.synthetic import SyntheticSAR
from sarzoo.images import write_png

OUT = Path(__file__).resolve().parent / "synthetic_samples.png"
SIZE, GAP, LOW, HIGH = 128, 4, -30.0, 10.0


def db01(intensity: np.ndarray) -> np.ndarray:
    return np.clip((10 * np.log10(np.maximum(intensity, 1e-12)) - LOW) / (HIGH - LOW), 0, 1)


def grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Panels in rows, separated by white gaps."""
    h = len(rows) * SIZE + (len(rows) - 1) * GAP
    w = max(len(r) for r in rows) * (SIZE + GAP) - GAP
    out = np.ones((h, w), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            y, x = i * (SIZE + GAP), j * (SIZE + GAP)
            out[y:y + SIZE, x:x + SIZE] = panel
    return out


def main() -> Path:
    clean = SyntheticSAR(1, SIZE, seed=3).scene(0)[1]
    row1 = [db01(clean)]
    for looks in (1.0, 4.5):
        for corr in (0.0, 1.2):
            row1.append(db01(SyntheticSAR(1, SIZE, looks, seed=3, correlation=corr).scene(0)[0]))

    s, c = SyntheticSAR(2, SIZE, 2.5, seed=5, channels=2, correlation=0.8).scene(1)
    row2 = [db01(c[0]), db01(s[0]), db01(c[1]), db01(s[1]), np.clip(s[0] / c[0] / 3, 0, 1)]

    held = SyntheticSAR(3, SIZE, seed=3, profile="heldout")
    (h0, c0), (h1, c1), (h2, _) = (held.scene(i) for i in range(3))
    row3 = [db01(c0), db01(h0), db01(c1), db01(h1), db01(h2)]
    return write_png(OUT, grid([row1, row2, row3]))


if __name__ == "__main__":
    print(main(), file=sys.stdout)
