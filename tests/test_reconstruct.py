"""The windowed reconstruction engine (``sarzoo.inference``): tile geometry, blending, block independence,
bounded reads, the seam metric, and tiled against whole-image reconstruction on a trained model.

The command line (``sarzoo reconstruct``) has its own module, ``test_reconstruct_cli.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._reconstruct_common import speckled, train_tiny
from tests._train_common import one_torch_thread

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def conv(tmp_path_factory):
    """``tiny`` without attention after 20 steps, loaded in fp32, with its preprocessing."""
    import sarzoo

    ck = train_tiny(tmp_path_factory.mktemp("conv") / "run", 20, "encoder.stage.attention=null")
    return sarzoo.load(ck, runtime={"amp": "off"})


# --- geometry ----------------------------------------------------------------------------------

def test_blend_weights_are_a_smooth_partition_of_unity():
    from sarzoo.inference import blend_weights
    from sarzoo.inference.tiles import BLEND_FLOOR

    assert (blend_weights(64, 0) == 1).all()
    w = blend_weights(64, 16)
    assert w.shape == (64,) and w.max() == 1.0 and w.min() >= BLEND_FLOOR
    np.testing.assert_allclose(w, w[::-1])
    # two tiles overlapping by 16 px: the ramps sum to 1 there (stride 48)
    np.testing.assert_allclose(w[48:] + w[:16], 1.0, atol=1e-12)
    assert (w[16:48] == 1).all()
    # smooth: the ramp meets the flat middle without a kink (a linear ramp's last step is 1/17)
    assert np.abs(np.diff(w[:17])).max() < 0.1 and w[15] > 0.99
    # an overlap over half the tile still gives positive weights everywhere
    assert (blend_weights(32, 24) > 0).all()


@given(length=st.integers(1, 400), tile_m=st.integers(1, 12), overlap_m=st.integers(0, 11),
       a=st.integers(0, 399), n=st.integers(1, 120))
@settings(max_examples=300, deadline=None)
def test_grid_covers_every_pixel_and_finds_the_tiles_of_any_window(length, tile_m, overlap_m, a, n):
    from sarzoo.inference.tiles import BLEND_FLOOR, TileGrid

    m = 8
    tile, overlap = tile_m * m, min(overlap_m, tile_m - 1) * m
    g = TileGrid(tile, overlap, m)
    starts = [g.start(k) for k in range(g.count(length))]
    assert starts[0] == -overlap and all(s % m == 0 for s in starts)     # aligned on the input multiple
    assert starts[-1] + tile >= length + overlap                       # reaches past the far border
    assert g.count(length) == 1 or starts[-2] + tile < length + overlap  # and no tile more than needed
    a = min(a, length - 1)
    b = min(length, a + n)
    brute = [k for k, s in enumerate(starts) if s < b and s + tile > a]
    assert list(g.touching(length, a, b)) == brute
    ws = g.weight_sum(length, 0, length)
    assert (ws > 0).all()
    if overlap * 2 <= tile:  # the raised-cosine ramps are then a partition of unity on the scene (but the floor)
        np.testing.assert_allclose(ws, 1.0, atol=2 * BLEND_FLOOR)
    assert set(g.edges(length)) == {p for s in starts for p in (s, s + tile) if 0 < p < length}


def test_tile_and_overlap_must_keep_tiles_on_the_input_multiple(conv):
    from sarzoo.errors import SarzooError
    from sarzoo.inference.tiles import default_overlap, input_multiple, tile_grid

    model = conv.model
    assert input_multiple(model) == 8 == model.plan.total_stride
    g = tile_grid(model)
    assert (g.tile, g.overlap, g.stride) == (64, 0, 64)
    assert default_overlap(64, 8) == 16 and default_overlap(16, 8) == 0
    for kw, needle in [({"tile": 60}, "tile 60 px is not a multiple of 8.*use 56 or 64"),
                       ({"tile": 4}, "tile 4 px is not a multiple of 8.*use 8"),
                       ({"overlap": 12}, "overlap 12 px is not a multiple of 8.*use 8 or 16"),
                       ({"overlap": 64}, r"overlap must be in \[0, 56\] px for 64 px tiles"),
                       ({"overlap": -8}, r"overlap must be in \[0, 56\]"),
                       ({"tile": 64.0}, "whole number")]:
        with pytest.raises(SarzooError, match=needle):
            tile_grid(model, **kw)


def test_block_layout_aligns_blocks_on_the_stride_and_geotiff_tiles():
    import math

    from sarzoo.inference.tiles import TileGrid

    for tile, overlap, m in [(64, 0, 8), (64, 16, 8), (64, 24, 8), (256, 8, 8), (32, 8, 8), (1001, 0, 1),
                             (1000, 8, 8), (1200, 0, 16)]:
        g = TileGrid(tile, overlap, m)
        unit = math.lcm(g.stride, 16)
        for want in (1, 48, 100, 2048, 5000):
            block, file_tile = g.block_layout(want)
            assert file_tile % 16 == 0 and block % file_tile == 0 and block >= file_tile, (tile, overlap, want)
            # near the request: never the 16,016 px blocks lcm(1001, 16) would force
            assert block <= 1.5 * max(want, 512) + 16, (tile, overlap, want, block)
            if unit <= max(want, 512):   # on the stride wherever that keeps the block near the request
                assert block % g.stride == 0 and file_tile <= max(512, unit), (tile, overlap, want)


# --- the engine ---------------------------------------------------------------------------------

class CountingSource:
    """A scene that records every window read from it."""

    def __init__(self, a: np.ndarray):
        self.a = a[None] if a.ndim == 2 else a
        self.channels, self.height, self.width = self.a.shape
        self.reads: list[tuple[int, int]] = []

    def read(self, row, col, h, w):
        assert 0 <= row and 0 <= col and row + h <= self.height and col + w <= self.width
        self.reads.append((h, w))
        return self.a[:, row:row + h, col:col + w].copy()


def _run(model, a, grid, block, prep=None, batch=16):
    from sarzoo.data.readers import iter_blocks
    from sarzoo.inference.engine import reconstruct_blocks

    src = CountingSource(a)
    out = np.full(src.a.shape, np.nan, np.float32)
    sizes = []
    with one_torch_thread():
        for blk in reconstruct_blocks(model, src, grid, iter_blocks(src.height, src.width, block), prep=prep,
                                      batch_size=batch):
            h, w = blk.shape
            assert np.isnan(out[:, blk.row:blk.row + h, blk.col:blk.col + w]).all()  # each pixel once
            out[:, blk.row:blk.row + h, blk.col:blk.col + w] = blk.y
            sizes.append((h, w))
    assert not np.isnan(out).any()
    return out, src, sizes


@given(h=st.integers(1, 150), w=st.integers(1, 150), overlap=st.sampled_from([0, 16, 32]),
       block=st.integers(24, 200), batch=st.integers(1, 9), seed=st.integers(0, 3))
@FAST
def test_output_does_not_depend_on_block_or_batch_size_and_any_scene_size_works(conv, h, w, overlap, block, batch,
                                                                               seed):
    from sarzoo.inference.tiles import TileGrid

    g = TileGrid(64, overlap, 8)
    x = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    one, _, _ = _run(conv.model, x, g, 10_000)             # the whole scene in one block
    small, _, sizes = _run(conv.model, x, g, block, batch=batch)
    assert len(sizes) == -(-h // block) * -(-w // block)
    np.testing.assert_allclose(small, one, atol=1e-6, rtol=0)
    assert one.min() >= 0 and one.max() <= 1


def test_blocks_of_one_stride_give_the_same_output_as_one_block(conv):
    """The issue's wording: block size 1 × stride against a large block."""
    from sarzoo.inference.tiles import TileGrid

    g = TileGrid(64, 16, 8)
    x, _ = conv.preprocessing.forward(speckled(200, 170, seed=2))
    one, _, _ = _run(conv.model, x, g, 4096)
    per_stride, _, sizes = _run(conv.model, x, g, g.stride)
    assert len(sizes) == 5 * 4
    np.testing.assert_allclose(per_stride, one, atol=1e-6, rtol=0)
    assert one.std() > 0.02  # a model whose output is not trivially constant


def test_reads_stay_within_one_block_and_its_halo(conv):
    """Bounded memory, exercised: a scene of 36 blocks never has more than one block + halo read at once."""
    from sarzoo.inference.tiles import TileGrid

    g = TileGrid(64, 16, 8)
    block = 48
    x = np.random.default_rng(0).random((280, 260), dtype=np.float32)
    _, src, sizes = _run(conv.model, x, g, block)
    assert len(sizes) == 6 * 6 and len(src.reads) == len(sizes)      # one read per block
    assert all(h <= block + 2 * g.tile and w <= block + 2 * g.tile for h, w in src.reads), src.reads
    assert max(h * w for h, w in sizes) <= block * block
    assert sum(h * w for h, w in src.reads) < 12 * x.size  # the halos cost a bounded multiple, not the scene


def test_tiled_and_whole_image_reconstructions_agree(conv):
    """Seams: on a scene small enough to run whole, the tiled reconstruction (overlapping tiles, raised-cosine
    blend) agrees with one pass of the whole (reflect-padded) image to a mean absolute error < 1e-3."""
    from sarzoo.inference import reconstruct

    model, prep = conv
    x, _ = prep.forward(speckled(160, 160, seed=0))
    p = 32
    with torch.no_grad(), one_torch_thread():
        whole = model(torch.from_numpy(np.pad(x, p, mode="reflect"))[None, None])[0][0, 0].numpy()[p:-p, p:-p]
    assert whole.std() > 0.02                                  # not trivially constant
    mae = {}
    with one_torch_thread():
        for tile, overlap in [(128, 32), (128, 0), (64, 32), (64, 0)]:
            y = reconstruct(model, x, overlap=overlap, tile=tile)
            mae[tile, overlap] = float(np.abs(y - whole).mean())
    assert mae[128, 32] < 1e-3, mae
    # overlap is what closes the gap: without it the tile edges show
    assert mae[128, 0] > 2 * mae[128, 32] and mae[64, 0] > 2 * mae[64, 32], mae


def test_notebook_api_keeps_its_names_and_shapes(conv):
    import sarzoo
    from sarzoo import inference
    from sarzoo.inference import Loaded, TileGrid, blend_weights, load, reconstruct, tile_size  # noqa: F401

    assert tile_size(conv.model) == 64 and isinstance(conv, Loaded)
    x = np.random.default_rng(0).random((70, 90), dtype=np.float32)
    y = sarzoo.reconstruct(conv.model, x, overlap=16)
    assert y.shape == x.shape and y.dtype == np.float32
    t = inference.reconstruct(conv.model, torch.from_numpy(x)[None], overlap=16)
    assert isinstance(t, torch.Tensor) and t.shape == (1, 70, 90)
    np.testing.assert_allclose(t[0].numpy(), y, atol=1e-6)
    raw = speckled(70, 90)
    raw[:5, :7] = np.nan
    r = conv.reconstruct(raw, overlap=16)
    assert np.isnan(r[:5, :7]).all() and np.isfinite(r[5:]).all() and (r[5:] > 0).all()
    rt = conv.reconstruct(torch.from_numpy(raw), overlap=16)
    assert isinstance(rt, torch.Tensor)
    np.testing.assert_allclose(rt.numpy(), r, equal_nan=True)


# --- the seam metric -----------------------------------------------------------------------------

def _seams_whole(grid, y, x, mask=None):
    from sarzoo.inference.seams import SeamMeter

    meter = SeamMeter(grid, y.shape[-2], y.shape[-1], y.shape[0])
    meter.add(0, 0, y, x, mask)
    return meter.result()


def test_seam_metric_sees_a_step_at_tile_edges_and_nothing_in_a_seamless_image():
    from sarzoo.inference.tiles import TileGrid

    g = TileGrid(64, 0, 8)
    rng = np.random.default_rng(0)
    noise = rng.random((1, 256, 256)).astype(np.float32) * 0.1
    assert _seams_whole(g, noise, noise)["seam_ratio"] == pytest.approx(1.0, abs=0.1)
    steps = noise + (np.add.outer(np.arange(256) // 64, np.arange(256) // 64) % 2)[None] * 0.2
    r = _seams_whole(g, steps.astype(np.float32), noise)
    assert r["seam_ratio"] > 5 and r["input_seam_ratio"] == pytest.approx(1.0, abs=0.1)
    assert r["border_pairs"] == 2 * 3 * 256   # 3 inner edges per axis, 256 pairs each
    # a lattice of the input multiple (a decoder's 8 px pattern) is not a seam: every 8th pair counts
    lattice = noise + (np.arange(256) % 8 == 0)[None, None, :] * 0.3
    assert _seams_whole(g, lattice.astype(np.float32), noise)["seam_ratio"] == pytest.approx(1.0, abs=0.1)


@given(block=st.integers(5, 120), overlap=st.sampled_from([0, 16]), holes=st.booleans())
@settings(max_examples=30, deadline=None)
def test_seam_metric_streams_over_blocks_exactly(block, overlap, holes):
    from sarzoo.data.readers import iter_blocks
    from sarzoo.inference.seams import SeamMeter
    from sarzoo.inference.tiles import TileGrid

    g = TileGrid(64, overlap, 8)
    rng = np.random.default_rng(block)
    y = rng.random((2, 150, 130)).astype(np.float32)
    x = rng.random((2, 150, 130)).astype(np.float32)
    mask = np.ones((2, 150, 130), bool)
    if holes:
        mask[:, 20:70, 30:45] = False
    whole = _seams_whole(g, y, x, mask)
    meter = SeamMeter(g, 150, 130, 2)
    for r, c, h, w in iter_blocks(150, 130, block):
        meter.add(r, c, y[:, r:r + h, c:c + w], x[:, r:r + h, c:c + w], mask[:, r:r + h, c:c + w])
    got = meter.result()
    assert got["border_pairs"] == whole["border_pairs"] and got["interior_pairs"] == whole["interior_pairs"]
    assert got["seam_ratio"] == pytest.approx(whole["seam_ratio"], rel=1e-9)
    assert got["input_seam_ratio"] == pytest.approx(whole["input_seam_ratio"], rel=1e-9)


def test_overlap_hides_the_seams_of_a_trained_model(conv):
    from sarzoo.data.readers import MemoryScene, iter_blocks
    from sarzoo.inference.engine import reconstruct_blocks
    from sarzoo.inference.seams import SeamMeter
    from sarzoo.inference.tiles import TileGrid

    model, prep = conv
    scene = MemoryScene("s", speckled(250, 250, seed=4))  # no edge of the scene falls on a tile edge
    ratios = {}
    for overlap in (0, 16, 32, 48):
        g = TileGrid(64, overlap, 8)
        meter = SeamMeter(g, 256, 256, 1)
        with one_torch_thread():
            for blk in reconstruct_blocks(model, scene, g, iter_blocks(250, 250, 96), prep=prep):
                meter.add(blk.row, blk.col, blk.y, blk.x, blk.mask)
        ratios[overlap] = meter.result()
    seam = {k: v["seam_ratio"] for k, v in ratios.items()}
    # side by side, every tile edge is a step (this briefly trained model's output is smooth inside its
    # tiles, so the step dwarfs the texture: a ratio in the thousands); the overlap blends it away
    assert seam[0] > 100 and seam[16] < seam[0] / 100 and 0.7 < seam[32] < 1.5 and 0.7 < seam[48] < 1.5, seam
    assert all(v["input_seam_ratio"] == pytest.approx(1.0, abs=0.15) for v in ratios.values()), ratios
