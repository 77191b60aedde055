"""The windowed reconstruction loop: a scene of any size through the model, one output block at a time.

Why blocks with halos: each output block is finished on its own. For a block, the input window
covering every tile of the global grid (``tiles.TileGrid``) that touches it is read (reflected
where it leaves the scene), those tiles run in batches, and their blended outputs are summed
inside the block only. A pixel's value therefore depends on the tiles covering it and nothing
else: not on the block size, not on which other blocks exist, not on the batch. Memory is one
block's window and accumulator and one batch of tiles, whatever the scene's size; the price is
that a tile straddling two blocks runs twice (blocks are aligned on the stride to keep that rare).

Why the loop yields blocks instead of writing them: ``sarzoo reconstruct`` writes them to a
GeoTIFF or ``.npy``, ``sarzoo eval`` measures them (each window of a scene is one block), the
notebook API collects them in memory; one tiling implementation serves all three.

A source is anything with ``height``, ``width``, ``channels`` and ``read(row, col, h, w)`` returning
a float32 ``(channels, h, w)`` window (every ``sarzoo.data`` ``Scene`` is one).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, NamedTuple

import numpy as np
import torch

from sarzoo import fastpath
from sarzoo.data.readers import iter_blocks
from sarzoo.errors import SarzooError
from sarzoo.inference.tiles import TileGrid, tile_grid

__all__ = ["Block", "reconstruct_blocks", "scene_values", "count_tiles", "reflect_index", "read_reflected",
           "reconstruct", "DEFAULT_BLOCK"]

#: Output block side (px) before rounding to the grid's alignment: a 2048² float64 accumulator is 32 MiB
#: a channel, and the halo (one tile each side) is then a few per cent of the block.
DEFAULT_BLOCK = 2048


class Block(NamedTuple):
    """One finished output block at ``(row, col)`` of the source: its input ``x`` in [0, 1] (no-data
    filled), the validity ``mask`` (None without a preprocessing: every pixel counts), and the
    reconstruction ``y`` in [0, 1]; all float32/bool ``(C, h, w)``."""

    row: int
    col: int
    x: np.ndarray
    mask: np.ndarray | None
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.shape[-2], self.y.shape[-1]


def reflect_index(i: np.ndarray, length: int) -> np.ndarray:
    """Positions outside ``[0, length)`` mirrored back inside (``numpy.pad``'s ``reflect``, repeated
    as often as needed: a window may be many times larger than a tiny scene)."""
    if length == 1:
        return np.zeros_like(i)
    period = 2 * (length - 1)
    j = np.mod(i, period)
    return np.where(j >= length, period - j, j)


def read_reflected(source: Any, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Rows ``[r0, r1)`` × columns ``[c0, c1)`` of ``source``, reflected where they leave it; reads only
    the part of the scene the window (or its mirror image) covers."""
    h, w = int(source.height), int(source.width)
    if r0 >= 0 and c0 >= 0 and r1 <= h and c1 <= w:
        return source.read(r0, c0, r1 - r0, c1 - c0)
    rows, cols = reflect_index(np.arange(r0, r1), h), reflect_index(np.arange(c0, c1), w)
    ra, ca = int(rows.min()), int(cols.min())
    a = source.read(ra, ca, int(rows.max()) + 1 - ra, int(cols.max()) + 1 - ca)
    return a[:, rows - ra][:, :, cols - ca]


def count_tiles(grid: TileGrid, shape: tuple[int, int], blocks: Iterable[tuple[int, int, int, int]]) -> int:
    """Tile evaluations ``reconstruct_blocks`` will run over ``blocks`` (a progress bar's total)."""
    return sum(len(grid.touching(shape[0], r, r + h)) * len(grid.touching(shape[1], c, c + w))
               for r, c, h, w in blocks)


def _check_source(model: Any, source: Any) -> int:
    channels = int(model.input_shape[0])
    if int(source.channels) != channels:
        where = getattr(source, "id", "the input")
        raise SarzooError(f"{where}: has {source.channels} band(s) but the model takes {channels} channel(s); "
                          f"give a {channels}-band input (bands in the order the model was trained on)")
    return channels


@torch.no_grad()
def reconstruct_blocks(model: Any, source: Any, grid: TileGrid, blocks: Iterable[tuple[int, int, int, int]],
                       prep: Any = None, batch_size: int = 16,
                       on_tiles: Callable[[int], None] | None = None) -> Iterator[Block]:
    """Each of ``blocks`` (``(row, col, h, w)`` windows of ``source``, any sizes, any order) as a finished
    ``Block``. ``prep`` (a ``Preprocessing``) maps raw values to [0, 1] and gives the mask; without
    it the source already holds [0, 1] values. ``on_tiles(n)`` is told after every batch."""
    channels = _check_source(model, source)
    if batch_size < 1:
        raise SarzooError(f"batch_size must be at least 1, got {batch_size}")
    H, W = int(source.height), int(source.width)
    T = grid.tile
    w1 = grid.weights()
    w2 = np.outer(w1, w1)
    release = getattr(source, "release", None)
    was_training = model.training
    model.eval()
    try:
        for br, bc, bh, bw in blocks:
            rows, cols = grid.touching(H, br, br + bh), grid.touching(W, bc, bc + bw)
            wr0, wc0 = grid.start(rows[0]), grid.start(cols[0])
            raw = read_reflected(source, wr0, grid.start(rows[-1]) + T, wc0, grid.start(cols[-1]) + T)
            if release is not None:
                release()
            inner = (slice(None), slice(br - wr0, br - wr0 + bh), slice(bc - wc0, bc - wc0 + bw))
            if prep is None:
                x, mask = raw.astype(np.float32, copy=False), None
            else:
                x, m = prep.forward(raw)
                mask = np.ascontiguousarray(m[inner])
            acc = np.zeros((channels, bh, bw), dtype=np.float64)
            pos = [(grid.start(k), grid.start(j)) for k in rows for j in cols]
            for b in range(0, len(pos), batch_size):
                chunk = pos[b:b + batch_size]
                tiles = np.stack([x[:, r - wr0:r - wr0 + T, c - wc0:c - wc0 + T] for r, c in chunk])
                y = fastpath.forward(model, torch.from_numpy(tiles))
                y = (y[0] if isinstance(y, tuple) else y).float().clamp(0.0, 1.0).cpu().numpy()
                for (r, c), t in zip(chunk, y):
                    r0, r1 = max(r, br), min(r + T, br + bh)
                    c0, c1 = max(c, bc), min(c + T, bc + bw)
                    acc[:, r0 - br:r1 - br, c0 - bc:c1 - bc] += (t[:, r0 - r:r1 - r, c0 - c:c1 - c]
                                                                 * w2[r0 - r:r1 - r, c0 - c:c1 - c])
                if on_tiles is not None:
                    on_tiles(len(chunk))
            acc /= np.outer(grid.weight_sum(H, br, br + bh), grid.weight_sum(W, bc, bc + bw))
            yield Block(br, bc, np.ascontiguousarray(x[inner]), mask, acc.astype(np.float32))
    finally:
        model.train(was_training)


def scene_values(model: Any, scene: Any, grid: TileGrid, prep: Any, block: int, *, nodata: float | None = None,
                 batch_size: int = 16, on_tiles: Callable[[int], None] | None = None, tally: Any = None,
                 where: str = "the input") -> Iterator[tuple[Block, np.ndarray]]:
    """A whole scene in output blocks of ``block`` px (``TileGrid.block_layout``'s), row by row, each as
    ``(block, values)``: the values in the data's domain (``rasters.output_values``: ``nodata``, NaN
    when None, at no-data pixels). Each block's clip counts go to ``tally`` (a ``clips.ClipTally``)
    under ``where``. The loop of ``sarzoo reconstruct`` (which writes the values) and of
    ``Loaded.reconstruct`` (which collects them)."""
    from sarzoo.inference.rasters import output_values

    blocks = iter_blocks(int(scene.height), int(scene.width), block)
    for blk in reconstruct_blocks(model, scene, grid, blocks, prep=prep, batch_size=batch_size, on_tiles=on_tiles):
        if tally is not None:
            tally.add(where, blk.x, blk.mask)
        yield blk, output_values(prep, blk.y, blk.mask, nodata)


class ArraySource:
    """An in-memory ``(C, H, W)`` array as a source (values taken as they are)."""

    def __init__(self, array: np.ndarray, source_id: str = "the input"):
        self.array, self.id = array, source_id
        self.channels, self.height, self.width = (int(d) for d in array.shape)

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        return self.array[:, row:row + h, col:col + w]


def reconstruct(model: Any, x01: Any, overlap: int = 0, batch_size: int = 16, tile: int | None = None) -> Any:
    """Reconstruct an image of any size in [0, 1]: ``(H, W)`` for a single-channel model, ``(C, H, W)``
    (C = the model's input channels, any C). Returns the same type and shape as ``x01`` (numpy
    float32 or a CPU tensor).

    The image is tiled on the global grid (``tiles.TileGrid``: ``tile`` px, default the model's patch
    size, every ``tile − overlap`` px, reflect-padded at the borders; both multiples of the model's
    input multiple) and overlapping tiles are blended with a raised-cosine ramp, block by block
    (``reconstruct_blocks``), exactly as ``sarzoo reconstruct`` does for a file. Memory: the image,
    the output, one block's accumulator and one batch of tiles.
    """
    is_tensor = isinstance(x01, torch.Tensor)
    x = (x01.detach().cpu().numpy() if is_tensor else np.asarray(x01)).astype(np.float32, copy=False)
    shape_in = x.shape
    channels = int(model.input_shape[0])
    while x.ndim > 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] != channels or min(x.shape) < 1:
        want = "(H, W) or (1, H, W)" if channels == 1 else f"({channels}, H, W)"
        raise SarzooError(f"reconstruct expects one image {want} for this {channels}-channel model, got shape "
                          f"{tuple(shape_in)}")
    if int(batch_size) < 1:
        raise SarzooError(f"batch_size must be at least 1, got {batch_size}")
    grid = tile_grid(model, tile, overlap)
    source = ArraySource(x)
    out = np.empty(x.shape, dtype=np.float32)
    blocks = iter_blocks(source.height, source.width, grid.block_layout(DEFAULT_BLOCK)[0])
    for blk in reconstruct_blocks(model, source, grid, blocks, batch_size=int(batch_size)):
        h, w = blk.shape
        out[:, blk.row:blk.row + h, blk.col:blk.col + w] = blk.y
    res = out.reshape(shape_in)
    return torch.from_numpy(res) if is_tensor else res
