"""Tile geometry of a windowed reconstruction: where tiles go, how they are weighted, how they align.

Why one global grid: every pixel's value must come from the same tiles whatever part of the scene
is processed at once (a block, a window of ``sarzoo eval``, the whole image in memory), so the
grid is a property of the scene's size alone. Tiles start at ``-pad + k·stride``: with an overlap,
the grid starts ``pad = overlap`` pixels before the scene (reflect-padded), so a scene's border
pixels sit inside a tile as its interior pixels do, never on a tile's edge where a decoder's
zero-padded convolutions are least reliable.

Why tiles align on the model's input multiple (the encoder's total stride): then every tile
samples the scene on the same lattice (a pixel is at the same phase of every strided layer in
every tile covering it), and the tile itself is a size the encoder can reduce.

Why a raised-cosine ramp: over the ``overlap`` pixels where two tiles meet, the ramps of the two
sum to one (so blending is a weighted mean with no normalisation bump) and, unlike a linear ramp,
have no kink where a ramp meets the flat middle: a kink in the weights shows as a faint line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError

__all__ = ["BLEND_FLOOR", "TileGrid", "tile_size", "input_multiple", "blend_weights", "tile_grid",
           "default_overlap"]

#: Smallest blend weight: never zero, so a pixel covered by one tile's ramp only keeps that tile's value.
BLEND_FLOOR = 1e-3
#: GeoTIFF tiles are multiples of 16 px; output blocks are multiples of a GeoTIFF tile about this big.
GTIFF_TILE = 512


def tile_size(model: Any) -> int:
    """The patch side the model was trained on (the data's patch size, else the recipe's input)."""
    recipe = getattr(model, "recipe", None) or {}
    ps = (recipe.get("data") or {}).get("patch_size")
    if ps:
        return int(ps)
    h, w = recipe.get("input", {}).get("size", model.input_shape[-2:])
    if h != w:
        raise SarzooError(f"the model's input {h}×{w} is not square; tiles are")
    return int(h)


def input_multiple(model: Any) -> int:
    """The encoder's total stride: a tile's side, and the grid's offsets, must be multiples of it."""
    plan = getattr(model, "plan", None)
    if plan is not None:
        return int(plan.total_stride)
    recipe = getattr(model, "recipe", None)
    if recipe and "encoder" in recipe:
        from sarzoo.config import total_stride

        return int(total_stride(recipe))
    return 1


def blend_weights(size: int, overlap: int, floor: float = BLEND_FLOOR) -> np.ndarray:
    """1-D tile weights: a raised-cosine ramp over the ``overlap`` pixels at each end, 1 inside.

    ``0.5 − 0.5·cos(π·(i + ½)/overlap)`` at distance ``i`` from the edge: two tiles overlapping by
    ``overlap`` pixels have weights summing to exactly 1 there, and the ramp meets the flat middle
    with zero slope. Never below ``floor``, so a pixel covered by one tile's ramp alone still
    takes that tile's value. ``overlap`` 0: all ones (tiles side by side).
    """
    if overlap <= 0:
        return np.ones(size, dtype=np.float64)
    i = np.arange(size, dtype=np.float64)
    d = np.minimum(i, size - 1 - i)  # distance from the nearer edge
    ramp = np.where(d < overlap, 0.5 - 0.5 * np.cos(np.pi * (d + 0.5) / overlap), 1.0)
    return np.maximum(ramp, floor)


@dataclass(frozen=True)
class TileGrid:
    """The global tile grid of one tiling: ``tile`` px tiles every ``stride`` px from ``-pad``."""

    tile: int
    overlap: int
    multiple: int = 1

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def pad(self) -> int:
        return self.overlap

    def count(self, length: int) -> int:
        """Tiles along an axis of ``length`` px: the last one reaches ``pad`` px past the end."""
        return max(1, math.ceil((length + 2 * self.pad - self.tile) / self.stride) + 1)

    def start(self, k: int) -> int:
        return -self.pad + k * self.stride

    def touching(self, length: int, a: int, b: int) -> range:
        """Indices of the tiles overlapping ``[a, b)`` on an axis of ``length`` px."""
        lo = max(0, (a + self.pad - self.tile) // self.stride + 1)
        hi = min(self.count(length) - 1, -(-(b + self.pad) // self.stride) - 1)
        return range(lo, hi + 1)

    def weights(self) -> np.ndarray:
        return blend_weights(self.tile, self.overlap)

    def weight_sum(self, length: int, a: int, b: int) -> np.ndarray:
        """Σ of the 1-D weights of every tile covering each position of ``[a, b)``: the 2-D sum is the
        outer product of two of these, because the grid is the same along every row and column."""
        w = self.weights()
        out = np.zeros(b - a, dtype=np.float64)
        for k in self.touching(length, a, b):
            t = self.start(k)
            lo, hi = max(a, t), min(b, t + self.tile)
            out[lo - a:hi - a] += w[lo - t:hi - t]
        return out

    def edges(self, length: int) -> np.ndarray:
        """Positions ``p`` in ``(0, length)`` where a tile starts or ends between pixels ``p − 1`` and ``p``."""
        e = {self.start(k) + d for k in range(self.count(length)) for d in (0, self.tile)}
        return np.array(sorted(p for p in e if 0 < p < length), dtype=np.int64)

    def block_layout(self, block: int) -> tuple[int, int]:
        """``(block, file_tile)``: output blocks of about ``block`` px and the GeoTIFF tile they are written
        in. Both are multiples of 16 (GeoTIFF tiles are) and, where that keeps them near the request,
        of the stride (a block edge falls where a tile starts, so fewer tiles straddle two blocks);
        the file tile is as near ``GTIFF_TILE`` as that allows (but no larger than the block) and the
        block a multiple of it, so every block writes whole file tiles.

        Why the stride alignment is given up when lcm(stride, 16) exceeds both the request and
        ``GTIFF_TILE``: a 1001 px stride would otherwise force 16,016 px blocks (a 2 GB accumulator
        where 2048 px were asked for). Blocks never change the output (``engine``), only how many
        tiles run twice, so the memory bound comes first."""
        unit = self.stride * 16 // math.gcd(self.stride, 16)
        if unit > max(block, GTIFF_TILE):
            unit = 16
        file_tile = unit * max(1, min(GTIFF_TILE // unit, block // unit))
        return file_tile * max(1, round(block / file_tile)), file_tile

    def describe(self) -> str:
        return f"{self.tile} px tiles every {self.stride} px (overlap {self.overlap} px)"


def default_overlap(tile: int, multiple: int) -> int:
    """A quarter of the tile, on the model's multiple: enough for the blend to hide the seams
    (docs/reconstruct.md has the measured seam figures) at 1.8× the tiles of no overlap."""
    return (tile // 4) // multiple * multiple


def _nearest(value: int, multiple: int, lo: int, hi: int) -> str:
    below, above = value // multiple * multiple, -(-value // multiple) * multiple
    options = [v for v in (below, above) if lo <= v <= hi]
    return " or ".join(str(v) for v in dict.fromkeys(options)) or str(max(lo, multiple))


def tile_grid(model: Any, tile: int | None = None, overlap: int = 0,
              names: tuple[str, str] = ("tile", "overlap")) -> TileGrid:
    """The checked grid for ``model``: ``tile`` (default the model's patch size) and ``overlap`` must be
    multiples of its input multiple, with ``0 <= overlap < tile``; ``names`` are what the error
    messages call them (``--tile``/``--overlap`` on the command line)."""
    m = input_multiple(model)
    tile = tile_size(model) if tile is None else tile
    for name, v in zip(names, (tile, overlap)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise SarzooError(f"{name} must be a whole number of pixels, got {v!r}")
    tile, overlap = int(tile), int(overlap)
    why = (f"the model's input multiple (its encoder's total stride), so that every tile samples the scene "
           f"on the same {m} px lattice")
    if tile < m or tile % m:
        raise SarzooError(f"{names[0]} {tile} px is not a multiple of {m}, {why}; use "
                          f"{_nearest(tile, m, m, 1 << 30)}")
    if not 0 <= overlap < tile:
        raise SarzooError(f"{names[1]} must be in [0, {tile - m}] px for {tile} px tiles (less than the tile), "
                          f"got {overlap}")
    if overlap % m:
        raise SarzooError(f"{names[1]} {overlap} px is not a multiple of {m}, {why}; use "
                          f"{_nearest(overlap, m, 0, tile - m)}")
    return TileGrid(tile, overlap, m)
