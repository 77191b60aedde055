"""The seam metric: is the tile grid visible in a reconstruction?

Definition. Between every two neighbouring pixels (left-right and top-bottom, both valid) take the
squared difference of the reconstruction in [0, 1], averaged over channels. A pair is a *border*
pair when a tile of the grid starts or ends between its two pixels, an *interior* pair when no
tile edge lies there but it sits at the same phase of the model's input multiple m as the tile
edges (every m-th pair: tiles are aligned on m, so every edge has that one phase).

    seam_ratio = median(squared difference over border pairs) / median(over interior pairs)

Why medians: a seam raises every border pair a little, a scene's own edge (a field boundary)
raises a few pairs a lot; where such an edge happens to fall on a tile edge, a ratio of means
swings far from 1 (0.4 to 1.6 on synthetic scenes whose field boundaries are every 900 px) while
the ratio of medians stays within a few per cent of it. The medians come from fixed histograms
of log10 of the squared differences (0.001 decade bins), so they stream in constant memory.

A tiling that leaves no trace gives about 1 (the image is as smooth across tile edges as inside
tiles); a visible grid gives more (a step at each edge adds energy there); slightly less than 1
means the blend smooths the overlaps (the mean of two tiles' outputs is smoother than either).
Why only one phase: a decoder that upsamples by m draws its own faint m-px lattice (the squared
differences of tiny's output vary threefold with the phase), and comparing edges with every
other phase would measure that lattice, not the seams. The same ratio of the model's *input* at
the same positions (``input_seam_ratio``, about 1: the scene knows nothing of the grid) says how
far from 1 chance alone takes it on this scene.

Why streaming: the metric is computed block by block as the blocks are written, keeping only the
last row and column of the blocks already seen (for the pairs across block boundaries), so it
costs no second pass and no memory beyond one row of the scene.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sarzoo.data.preprocess import DbHistogram
from sarzoo.inference.tiles import TileGrid

__all__ = ["SeamMeter"]


#: Squared differences are histogrammed as log10 over this range (smaller ones, zeros included, land in
#: the first bin), 0.001 decade per bin: the median ratio is resolved to about 0.2 %.
LOG_LO, LOG_HI, LOG_BIN = -16.0, 1.0, 0.001


class _Energy:
    """Border and interior squared differences: means, and streaming medians (fixed log histograms)."""

    def __init__(self) -> None:
        self.sums = {"border": 0.0, "interior": 0.0}
        self.hists = {k: DbHistogram(LOG_LO, LOG_HI, LOG_BIN) for k in self.sums}

    def add(self, d: np.ndarray, ok: np.ndarray, border: np.ndarray) -> None:
        """``d``: differences ``(C, …)``; ``ok``: both pixels valid and the pair counted; ``border``: which
        pairs are border pairs (broadcast against ``ok``)."""
        e = np.square(d, dtype=np.float64).mean(axis=0)
        for k, sel in (("border", ok & border), ("interior", ok & ~border)):
            v = e[sel]
            self.sums[k] += float(v.sum())
            with np.errstate(divide="ignore"):
                self.hists[k].update(np.maximum(np.log10(v), LOG_LO))

    def count(self, k: str) -> int:
        return self.hists[k].total

    def mean(self, k: str) -> float | None:
        return self.sums[k] / self.count(k) if self.count(k) else None

    def median(self, k: str) -> float | None:
        return 10.0 ** self.hists[k].percentile(50.0) if self.count(k) else None

    def ratio(self) -> float | None:
        b, i = self.median("border"), self.median("interior")
        return None if b is None or i is None else b / i


class SeamMeter:
    """Feed it the finished blocks of one scene (any block sizes; row by row as the engine yields
    them); ``result()`` gives the seam figures of the output ``y`` and of the input ``x``."""

    def __init__(self, grid: TileGrid, height: int, width: int, channels: int):
        self.height, self.width = int(height), int(width)
        # per position p (the pair p − 1, p): True at tile edges, False inside tiles on the edges' phase
        # of the input multiple, None (not counted) elsewhere; see the module's docstring
        self.edge_r, self.count_r = self._positions(grid, self.height)
        self.edge_c, self.count_c = self._positions(grid, self.width)
        self.energy = {"y": _Energy(), "x": _Energy()}
        # the last row of the blocks above, by column; and the last column of the block to the left
        self.bottom = {k: np.zeros((channels, self.width), dtype=np.float32) for k in self.energy}
        self.bottom_ok = np.zeros(self.width, dtype=bool)
        self.bottom_row = np.full(self.width, -2, dtype=np.int64)
        self.right: dict[tuple[int, int, int], tuple[dict[str, np.ndarray], np.ndarray]] = {}

    @staticmethod
    def _positions(grid: TileGrid, length: int) -> tuple[np.ndarray, np.ndarray]:
        edge = np.zeros(length + 1, dtype=bool)
        edge[grid.edges(length)] = True
        phase = np.arange(length + 1) % grid.multiple == grid.pad % grid.multiple
        return edge, edge | phase

    def add(self, row: int, col: int, y: np.ndarray, x: np.ndarray, mask: np.ndarray | None = None) -> None:
        h, w = y.shape[-2:]
        ok = np.ones((h, w), dtype=bool) if mask is None else np.asarray(mask).reshape(-1, h, w).all(axis=0)
        arrays = {"y": y.reshape(-1, h, w), "x": x.reshape(-1, h, w)}
        er, cr = self.edge_r[row + 1:row + h][:, None], self.count_r[row + 1:row + h][:, None]
        ec, cc = self.edge_c[col + 1:col + w][None, :], self.count_c[col + 1:col + w][None, :]
        left = self.right.pop((row, col, h), None)
        top = bool((self.bottom_row[col:col + w] == row - 1).all()) and row > 0
        one_c, one_r = np.array([[self.edge_c[col]]]), np.array([[self.edge_r[row]]])
        for k, a in arrays.items():
            meter = self.energy[k]
            meter.add(np.diff(a, axis=-1), ok[:, 1:] & ok[:, :-1] & cc, ec)
            meter.add(np.diff(a, axis=-2), ok[1:, :] & ok[:-1, :] & cr, er)
            if left is not None and self.count_c[col]:
                meter.add((a[:, :, 0] - left[0][k])[:, :, None], (ok[:, 0] & left[1])[:, None], one_c)
            if top and self.count_r[row]:
                meter.add((a[:, 0, :] - self.bottom[k][:, col:col + w])[:, None, :],
                          (ok[0, :] & self.bottom_ok[col:col + w])[None, :], one_r)
        if col + w < self.width:
            self.right[(row, col + w, h)] = ({k: a[:, :, -1].copy() for k, a in arrays.items()}, ok[:, -1].copy())
        for k, a in arrays.items():
            self.bottom[k][:, col:col + w] = a[:, -1, :]
        self.bottom_ok[col:col + w] = ok[-1, :]
        self.bottom_row[col:col + w] = row + h - 1

    def result(self) -> dict[str, Any]:
        y, x = self.energy["y"], self.energy["x"]
        return {"seam_ratio": y.ratio(), "input_seam_ratio": x.ratio(),
                "border_pairs": y.count("border"), "interior_pairs": y.count("interior"),
                "border_median": y.median("border"), "interior_median": y.median("interior"),
                "border_mean": y.mean("border"), "interior_mean": y.mean("interior")}
