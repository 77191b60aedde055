"""Patch grid, split by scene, augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarzoo.data.patches import (
    PatchRef,
    Region,
    grid_positions,
    patch_grid,
    random_dihedral,
    read_patch,
    region_patches,
    split_scenes,
)
from sarzoo.data.readers import MemoryScene
from sarzoo.errors import SarzooError


def _scenes(n, group=None, shape=(40, 40)):
    return [MemoryScene(f"s{i:02d}", np.full(shape, i + 1.0, np.float32), group=group) for i in range(n)]


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), patch=st.integers(1, 80), stride=st.integers(1, 80))
def test_patch_grid_properties(h, w, patch, stride):
    grid = patch_grid(h, w, patch, stride)
    rows = grid_positions(h, patch, stride)
    assert rows == sorted(set(rows)) and rows[0] == 0
    assert rows[-1] == max(h - patch, 0)
    assert all(b - a <= stride for a, b in zip(rows, rows[1:]))
    assert all(r + min(patch, h) <= h and c + min(patch, w) <= w for r, c in grid)
    if stride <= patch:  # then the grid covers every pixel
        cov = np.zeros((h, w), bool)
        for r, c in grid:
            cov[r:r + patch, c:c + patch] = True
        assert cov.all()


def test_split_by_scene_deterministic_disjoint():
    scenes = _scenes(10)
    tr1, va1 = split_scenes(scenes, 0.3, seed=4)
    tr2, va2 = split_scenes(list(reversed(scenes)), 0.3, seed=4)  # listing order does not matter
    ids = lambda regs: sorted(r.scene.id for r in regs)  # noqa: E731
    assert ids(tr1) == ids(tr2) and ids(va1) == ids(va2)
    assert len(va1) == 3 and len(tr1) == 7
    assert not set(ids(tr1)) & set(ids(va1))
    assert set(ids(tr1)) | set(ids(va1)) == {s.id for s in scenes}
    assert all(r == Region.whole(r.scene) for r in tr1 + va1)
    others = {tuple(ids(split_scenes(scenes, 0.3, seed=s)[1])) for s in range(10)}
    assert len(others) > 1  # the seed matters


@pytest.mark.parametrize("n,frac", [(2, 0.01), (2, 0.99), (3, 0.5), (5, 0.9)])
def test_split_keeps_one_scene_each_side(n, frac):
    tr, va = split_scenes(_scenes(n), frac, seed=0)
    assert len(tr) >= 1 and len(va) >= 1 and len(tr) + len(va) == n


def test_split_groups_stay_together():
    scenes = _scenes(4, group="a.npy") + [MemoryScene(f"b{i}", np.ones((8, 8)), group="b.npy") for i in range(3)]
    tr, va = split_scenes(scenes, 0.5, seed=1)
    assert len({r.scene.group for r in tr}) == 1 and len({r.scene.group for r in va}) == 1
    assert {r.scene.group for r in tr} != {r.scene.group for r in va}


def test_single_stack_splits_contiguously():
    scenes = _scenes(10, group="patches.npy")
    tr, va = split_scenes(scenes, 0.2, seed=123)
    assert [r.scene.id for r in va] == ["s08", "s09"]
    assert [r.scene.id for r in tr] == [f"s{i:02d}" for i in range(8)]


def test_single_scene_spatial_split_disjoint():
    data = np.arange(100 * 60, dtype=np.float32).reshape(100, 60) + 1
    scene = MemoryScene("only", data)
    (tr,), (va,) = split_scenes([scene], 0.25, seed=0)
    assert (tr.row, tr.height, va.row, va.height) == (0, 75, 75, 25)
    seen_tr, seen_va = set(), set()
    for regs, seen in ((tr, seen_tr), (va, seen_va)):
        for p in region_patches(regs, 32, 16):
            raw, _ = read_patch(p)
            seen.update(raw[np.isfinite(raw)].astype(int).tolist())
    assert seen_tr and seen_va and not seen_tr & seen_va  # no pixel on both sides
    # Wide scenes are cut across columns.
    (tr, ), (va, ) = split_scenes([MemoryScene("wide", np.ones((10, 50)))], 0.2, seed=0)
    assert (tr.width, va.col, va.width) == (40, 40, 10)


def test_split_zero_fraction_and_errors():
    tr, va = split_scenes(_scenes(3), 0.0, seed=0)
    assert len(tr) == 3 and va == []
    with pytest.raises(SarzooError):
        split_scenes(_scenes(3), 1.0)
    with pytest.raises(SarzooError):
        split_scenes([], 0.2)


def test_small_scene_patch_is_padded_as_nodata():
    scene = MemoryScene("tiny", np.ones((10, 12), np.float32), clean=np.ones((10, 12)))
    (p,) = region_patches(Region.whole(scene), 16, 16)
    raw, clean = read_patch(p)
    assert raw.shape == clean.shape == (1, 16, 16)
    raw = raw[0]
    assert np.isfinite(raw[:10, :12]).all() and np.isnan(raw[10:]).all() and np.isnan(raw[:, 12:]).all()
    assert isinstance(p, PatchRef)


def test_random_dihedral_aligned_and_complete():
    x = torch.arange(16.0).reshape(1, 4, 4)
    m = x > 5
    seen = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        xa, ma, none = random_dihedral([x, m, None], generator=g)
        assert none is None and xa.shape == x.shape
        assert torch.equal(ma, xa > 5)  # the same transform on every tensor
        seen.add(tuple(xa.flatten().tolist()))
    assert len(seen) == 8
