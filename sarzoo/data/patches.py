"""Cutting scenes into patches, splitting train/validation by scene, and augmentation.

Why the split works on scenes (files) and never on patches: patches of one scene overlap
(stride < patch size) and share the same acquisition, so patches of a scene on both sides of
the split leak the validation set into training. Patches are only *positions* here; pixels
are read lazily, one window at a time, when a dataset item is requested.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sarzoo.data.readers import Scene
from sarzoo.errors import SarzooError


@dataclass(frozen=True)
class Region:
    """A rectangle of a scene that patches may be cut from (a whole scene, or one side of a
    spatial split); reads never leave it, so the two sides of a split scene stay disjoint."""

    scene: Scene
    row: int
    col: int
    height: int
    width: int

    @classmethod
    def whole(cls, scene: Scene) -> "Region":
        return cls(scene, 0, 0, scene.height, scene.width)


@dataclass(frozen=True)
class PatchRef:
    """A square patch at absolute ``(row, col)`` of ``region.scene``; the part outside the
    region (scenes smaller than a patch) is padded as no-data when read."""

    region: Region
    row: int
    col: int
    size: int


def grid_positions(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride``, plus one flush with the end.

    The extra end-aligned position means the grid always covers the whole axis (the last
    patch overlaps its neighbour more than ``stride`` says) instead of dropping a border strip.
    A length shorter than the patch gives the single position 0 (the patch is padded).
    """
    if patch < 1 or stride < 1:
        raise SarzooError(f"patch size and stride must be >= 1, got patch={patch}, stride={stride}")
    if length <= patch:
        return [0]
    pos = list(range(0, length - patch + 1, stride))
    if pos[-1] != length - patch:
        pos.append(length - patch)
    return pos


def patch_grid(height: int, width: int, patch_size: int, stride: int) -> list[tuple[int, int]]:
    """``(row, col)`` of every patch of a ``height × width`` raster, row-major."""
    return [(r, c) for r in grid_positions(height, patch_size, stride)
            for c in grid_positions(width, patch_size, stride)]


def region_patches(region: Region, patch_size: int, stride: int) -> list[PatchRef]:
    return [PatchRef(region, region.row + r, region.col + c, patch_size)
            for r, c in patch_grid(region.height, region.width, patch_size, stride)]


def read_patch(p: PatchRef) -> tuple[np.ndarray, np.ndarray | None]:
    """``(raw, clean)`` float32 (C, size, size); outside the region: NaN (raw) / 0 (clean)."""
    reg = p.region
    r0, c0 = max(p.row, reg.row), max(p.col, reg.col)
    r1, c1 = min(p.row + p.size, reg.row + reg.height), min(p.col + p.size, reg.col + reg.width)
    h, w = r1 - r0, c1 - c0
    full = h == p.size and w == p.size
    raw = reg.scene.read(r0, c0, h, w)
    clean = reg.scene.read_clean(r0, c0, h, w) if reg.scene.has_clean else None
    if full:
        return raw, clean
    out = np.full((raw.shape[0], p.size, p.size), np.nan, dtype=np.float32)
    out[:, r0 - p.row:r0 - p.row + h, c0 - p.col:c0 - p.col + w] = raw
    if clean is not None:
        cl = np.zeros((clean.shape[0], p.size, p.size), dtype=np.float32)
        cl[:, r0 - p.row:r0 - p.row + h, c0 - p.col:c0 - p.col + w] = clean
        clean = cl
    return out, clean


def _n_val(n: int, val_fraction: float) -> int:
    """Validation count: the rounded fraction, but at least one item on each side."""
    return min(max(int(round(val_fraction * n)), 1), n - 1)


def split_scenes(scenes: Sequence[Scene], val_fraction: float, seed: int = 0
                 ) -> tuple[list[Region], list[Region]]:
    """Train and validation regions, split by scene group, deterministic from ``seed``.

    - Two or more groups (files / synthetic scenes): a seeded permutation of the sorted group
      ids; the first ``round(val_fraction · n)`` groups (at least 1, at most n − 1) validate.
    - One group holding several scenes (an ``(N, H, W)`` stack): the last frames validate, in
      file order, since neighbouring frames of a stack usually come from the same place.
    - One scene: it is cut spatially across its longer axis; the last ``val_fraction`` of the
      rows (or columns), at least one, validate, the rest trains. Patches never cross the cut.
    ``val_fraction == 0`` puts everything in training.
    """
    if not 0.0 <= float(val_fraction) < 1.0:
        raise SarzooError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if not scenes:
        raise SarzooError("no scenes to split")
    if val_fraction == 0:
        return [Region.whole(s) for s in scenes], []
    groups: dict[str, list[Scene]] = {}
    for s in scenes:
        groups.setdefault(s.group, []).append(s)
    names = sorted(groups)
    if len(names) >= 2:
        perm = np.random.default_rng(seed).permutation(len(names))
        n_val = _n_val(len(names), val_fraction)
        val_names = {names[i] for i in perm[:n_val]}
        train = [Region.whole(s) for g in names if g not in val_names for s in groups[g]]
        val = [Region.whole(s) for g in names if g in val_names for s in groups[g]]
        return train, val
    members = groups[names[0]]
    if len(members) >= 2:
        n_val = _n_val(len(members), val_fraction)
        return ([Region.whole(s) for s in members[:-n_val]], [Region.whole(s) for s in members[-n_val:]])
    s = members[0]
    if max(s.height, s.width) < 2:
        raise SarzooError(f"{s.id}: a single {s.height}x{s.width} scene is too small to split")
    if s.height >= s.width:
        n_val = _n_val(s.height, val_fraction)
        cut = s.height - n_val
        return [Region(s, 0, 0, cut, s.width)], [Region(s, cut, 0, n_val, s.width)]
    n_val = _n_val(s.width, val_fraction)
    cut = s.width - n_val
    return [Region(s, 0, 0, s.height, cut)], [Region(s, 0, cut, s.height, n_val)]


def random_dihedral(tensors: Sequence[Any], generator: Any = None) -> list[Any]:
    """Apply one random element of the 8 flips/90° rotations to all ``tensors`` alike.

    SAR speckle statistics are isotropic enough for these to be free extra data; arbitrary
    angles would interpolate and change the speckle, so they are not used. Randomness comes
    from torch's RNG, which DataLoader seeds per worker.
    """
    import torch

    k = int(torch.randint(0, 8, (1,), generator=generator).item())
    out = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        t = torch.rot90(t, k % 4, dims=(-2, -1))
        if k >= 4:
            t = torch.flip(t, dims=(-1,))
        out.append(t)
    return out
