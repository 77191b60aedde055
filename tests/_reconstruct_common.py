"""Shared pieces of the reconstruction tests: briefly trained checkpoints and small speckled scenes.

``train_tiny`` trains the built-in ``tiny`` recipe (64 px tiles, input multiple 8) for a few steps
on eight 64 px synthetic scenes: seconds on one core, and its output is no longer constant.
``attention=null`` gives the convolution-only variant: CBAM's channel attention pools over the
whole tile, so a CBAM model's tiles can never agree exactly with a whole-image pass, whatever the
blending (docs/reconstruct.md); the seam test needs a model whose tiles can.
"""
from __future__ import annotations

import numpy as np

from tests._train_common import one_torch_thread

SMALL = ["--set", "data.synthetic.n_scenes=8", "--set", "data.synthetic.size=64", "--set", "train.batch_size=4",
         "--set", "train.histogram_every=0", "--set", "train.preview_samples=0", "--set", "runtime.amp=off"]


def train_tiny(out, steps: int = 20, *sets: str, recipe: str = "tiny"):
    """A ``recipe`` checkpoint after ``steps`` steps (fp32), trained in this process on one thread."""
    from sarzoo.cli import main

    extra = [a for s in sets for a in ("--set", s)]
    with one_torch_thread():
        code = main(["train", recipe, "--out", str(out), "--max-steps", str(steps), "--device", "cpu", *SMALL,
                     *extra])
    assert code == 0
    return out / "last.pt"


def speckled(h: int, w: int, seed: int = 0, channels: int = 0) -> np.ndarray:
    """Linear intensity: two fields, a bright square, 4-look speckle; ``(h, w)`` or ``(channels, h, w)``."""
    rng = np.random.default_rng(seed)
    clean = np.full((h, w), 0.05, np.float32)
    clean[:, w // 2:] *= 4
    clean[h // 5:h // 5 + h // 4, w // 10:w // 10 + w // 4] = 0.5
    if channels:
        clean = np.stack([clean * (0.2 ** c) for c in range(channels)])
    return (clean * rng.gamma(4, 0.25, size=clean.shape)).astype(np.float32)


def write_geotiff(path, a: np.ndarray, nodata=None, descriptions=None, crs="EPSG:32633"):
    import rasterio

    a = a[None] if a.ndim == 2 else a
    with rasterio.open(path, "w", driver="GTiff", height=a.shape[1], width=a.shape[2], count=a.shape[0],
                       dtype=str(a.dtype), nodata=nodata, crs=crs,
                       transform=rasterio.Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(a)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path
