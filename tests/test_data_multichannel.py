"""Multi-channel (dual-pol) data: every way a scene of several bands arrives, per-channel preprocessing,
the union of the bands' no-data, per-scene clip ranges, and the errors at the door.

Real files written in ``tmp_path`` (multi-band and per-polarisation GeoTIFFs, ``.npy``/``.npz``) and
in-memory scenes; nothing is mocked.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarzoo.data.bands import StackScene, assemble, band_key
from sarzoo.data.dataset import build_datasets, open_scenes
from sarzoo.data.preprocess import Preprocessing
from sarzoo.data.readers import ArrayScene, MemoryScene, RasterScene, open_file, open_sources
from sarzoo.errors import RecipeError, SarzooError

rasterio = pytest.importorskip("rasterio")

#: VV about 10 dB brighter than VH, as over land.
LEVELS = np.array([0.1, 0.01], np.float32)[:, None, None]


def dualpol(shape=(40, 48), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(4, 0.25, (2, *shape)).astype(np.float32) * LEVELS


def write_tif(path, data, nodata=None):
    data = data[None] if data.ndim == 2 else data
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                dtype=data.dtype.name)
    if nodata is not None:
        prof["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(data)
    return path


def cfg(paths, **kw):
    return {"paths": [str(p) for p in paths], "patch_size": 16, "min_valid": 0, "val_fraction": 0, **kw}


# --- readers: the shapes a dual-pol scene comes in -----------------------------------------------

def test_multiband_geotiff_is_one_scene(tmp_path):
    data = dualpol()
    p = write_tif(tmp_path / "s1_dual.tif", data)
    (s,) = open_file(p, channels=2)
    assert isinstance(s, RasterScene) and s.channels == 2 and s.shape == (40, 48)
    np.testing.assert_array_equal(s.read(3, 5, 7, 9), data[:, 3:10, 5:14])
    (one,) = open_file(p)  # without channels: band 1, as before
    assert one.channels == 1 and one.read(0, 0, 2, 2).shape == (1, 2, 2)


def test_per_band_nodata_of_a_geotiff(tmp_path):
    data = dualpol((8, 8))
    data[0, 0, 0] = -1.0
    p = write_tif(tmp_path / "nd.tif", data, nodata=-1.0)
    (s,) = open_file(p, channels=2)
    got = s.read(0, 0, 8, 8)
    assert np.isnan(got[0, 0, 0]) and np.isfinite(got[1]).all()


def test_per_polarisation_files_form_one_scene_in_band_order(tmp_path):
    data = dualpol()
    # the VH file sorts first: channels still follow data.bands
    write_tif(tmp_path / "s1a-iw-grd-vh-20200101-001.tiff", data[1])
    write_tif(tmp_path / "s1a-iw-grd-vv-20200101-001.tiff", data[0])
    write_tif(tmp_path / "s1a-iw-grd-VH-20200113-001.tiff", data[1] * 2)
    write_tif(tmp_path / "s1a-iw-grd-Vv-20200113-001.tiff", data[0] * 2)
    scenes = open_scenes({"paths": [str(tmp_path / "*.tiff")], "nodata": None, "bands": ["VV", "VH"],
                          "synthetic": None, "seed": 0}, channels=2)
    assert len(scenes) == 2 and all(isinstance(s, StackScene) and s.channels == 2 for s in scenes)
    a, b = sorted(scenes, key=lambda s: s.id)
    assert a.id.endswith("s1a-iw-grd-VV+VH-20200101-001.tiff") and a.group == a.id
    np.testing.assert_array_equal(a.read(2, 3, 5, 6), data[:, 2:7, 3:9])
    np.testing.assert_array_equal(b.read(0, 0, 40, 48), data * 2)


def test_band_key_rules():
    assert band_key("s1-vv-001.tiff", ["VV", "VH"]) == ("s1-{}-001.tiff", 0)
    assert band_key("x_VH.tif", ["VV", "VH"]) == ("x_{}.tif", 1)
    assert band_key("vh.npy", ["VV", "VH"]) == ("{}.npy", 1)
    assert band_key("vvh-001.tif", ["VV", "VH"]) is None      # a token, not a substring
    with pytest.raises(SarzooError, match="more than one band"):
        band_key("vv-vh.tif", ["VV", "VH"])


def test_missing_band_names_the_files(tmp_path):
    write_tif(tmp_path / "s1-vv-001.tiff", dualpol()[0])
    with pytest.raises(SarzooError) as e:
        build_datasets(cfg([tmp_path], bands=["VV", "VH"]), channels=2)
    msg = str(e.value)
    assert "s1-vv-001.tiff" in msg and "VH" in msg and "s1-vh-001.tiff" in msg


def test_bands_of_different_sizes_name_the_files(tmp_path):
    write_tif(tmp_path / "a_vv.tif", dualpol((40, 48))[0])
    write_tif(tmp_path / "a_vh.tif", dualpol((40, 40))[1])
    with pytest.raises(SarzooError, match=r"differ in size .*a_vv.tif 40×48.*a_vh.tif 40×40"):
        build_datasets(cfg([tmp_path], bands=["VV", "VH"]), channels=2)


def test_single_band_file_in_a_two_channel_recipe(tmp_path):
    p = write_tif(tmp_path / "plain.tif", dualpol()[0])
    with pytest.raises(SarzooError, match=r"plain.tif: holds 1 band\(s\) but the recipe's input.channels is 2"):
        build_datasets(cfg([p]), channels=2)
    q = write_tif(tmp_path / "three.tif", np.concatenate([dualpol(), dualpol()[:1]]))
    with pytest.raises(SarzooError, match="has 3 bands, more than the recipe's input.channels = 2"):
        build_datasets(cfg([q]), channels=2)


def test_arrays_follow_the_documented_rule(tmp_path):
    data = dualpol((16, 20))
    np.save(tmp_path / "scene.npy", data)                       # (C, H, W): one 2-band scene
    (s,) = open_file(tmp_path / "scene.npy", channels=2)
    assert isinstance(s, ArrayScene) and s.channels == 2
    np.testing.assert_array_equal(s.read(1, 2, 3, 4), data[:, 1:4, 2:6])
    assert len(open_file(tmp_path / "scene.npy", channels=1)) == 2  # one channel: (N, H, W) frames, as always

    stack = np.stack([data, data * 3])                          # (N, C, H, W): N scenes
    np.savez(tmp_path / "stack.npz", s=stack)
    scenes = open_file(tmp_path / "stack.npz", channels=2)
    assert len(scenes) == 2 and {x.group for x in scenes} == {str(tmp_path / "stack.npz")}
    np.testing.assert_array_equal(scenes[1].read(0, 0, 16, 20), data * 3)

    np.save(tmp_path / "three.npy", np.ones((3, 8, 8), np.float32))
    with pytest.raises(SarzooError, match=r"shape \(3, 8, 8\) does not hold the recipe's input.channels = 2"):
        open_file(tmp_path / "three.npy", channels=2)
    np.save(tmp_path / "four_d.npy", np.ones((2, 2, 8, 8), np.float32))
    with pytest.raises(SarzooError, match="need input.channels = C > 1"):
        open_file(tmp_path / "four_d.npy")


def test_per_band_arrays_pair_too(tmp_path):
    data = dualpol((8, 8))
    np.save(tmp_path / "tile_vv.npy", data[0])
    np.save(tmp_path / "tile_vh.npy", data[1])
    (s,) = assemble(open_sources([tmp_path], channels=2), 2, ["VV", "VH"])
    assert s.id.endswith("tile_VV+VH.npy")
    np.testing.assert_array_equal(s.read(0, 0, 8, 8), data)
    np.save(tmp_path / "stack_vv.npy", np.ones((3, 8, 8), np.float32))  # (N, H, W) is not a band of a 2-channel scene
    with pytest.raises(SarzooError, match="stack_vv.npy: shape \\(3, 8, 8\\)"):
        open_sources([tmp_path], channels=2)


def test_memory_scene_channels():
    s = MemoryScene("m", dualpol((8, 8)), clean=dualpol((8, 8)))
    assert s.channels == 2 and s.read(0, 0, 4, 4).shape == s.read_clean(0, 0, 4, 4).shape == (2, 4, 4)
    with pytest.raises(SarzooError, match="does not match"):
        MemoryScene("m", dualpol((8, 8)), clean=np.ones((8, 8)))


def test_bands_must_match_input_channels():
    from sarzoo import config

    with pytest.raises(RecipeError, match=r"data.bands.*3 band\(s\).*input.channels is 2"):
        config.load_with_origins("tiny_dualpol", ["data.bands=[VV, VH, HH]"])
    with pytest.raises(RecipeError, match="distinct"):
        config.load_with_origins("tiny_dualpol", ["data.bands=[VV, vv]"])
    with pytest.raises(RecipeError, match=r"data.clip.vmin.*3 bounds"):
        config.load_with_origins("tiny_dualpol", ["data.clip.vmin=[-20, -25, -30]"])
    r = config.load_with_origins("tiny_dualpol", ["data.clip.mode=fixed", "data.clip.vmin=[-20, -30]"]).recipe
    assert r["data"]["clip"]["vmin"] == [-20.0, -30.0] and r["data"]["bands"] == ["VV", "VH"]


# --- preprocessing per channel -------------------------------------------------------------------

def test_percentile_range_is_fitted_per_channel(tmp_path):
    data = dualpol((64, 64))
    np.save(tmp_path / "d.npy", data)
    split = build_datasets(cfg([tmp_path / "d.npy"], bands=["VV", "VH"]), channels=2)
    prep = split.preprocessing
    assert prep.channels == 2 and prep.bands == ["VV", "VH"]
    db = 10 * np.log10(data)
    for c in range(2):
        lo, hi = np.percentile(db[c], [1, 99])
        assert prep.vmin[c] == pytest.approx(lo, abs=0.1) and prep.vmax[c] == pytest.approx(hi, abs=0.1)
    assert prep.vmin[0] > prep.vmin[1] + 5  # VH is darker: one shared range would waste its dynamic range
    item = split.train[0]
    assert item["x"].shape == item["mask"].shape == (2, 16, 16)
    d = prep.to_dict()
    assert d["vmin"] == prep.vmin and isinstance(d["vmin"][0], float) and d["bands"] == ["VV", "VH"]
    assert Preprocessing.from_dict(d) == prep


def test_fixed_bounds_number_or_list(tmp_path):
    np.save(tmp_path / "d.npy", dualpol())
    one = build_datasets(cfg([tmp_path / "d.npy"], clip={"mode": "fixed", "vmin": -30, "vmax": 0}), channels=2)
    assert one.preprocessing.vmin == [-30.0, -30.0] and one.preprocessing.vmax == [0.0, 0.0]
    two = build_datasets(cfg([tmp_path / "d.npy"], clip={"mode": "fixed", "vmin": [-20, -30], "vmax": [0, -5]}),
                         channels=2)
    assert two.preprocessing.vmin == [-20.0, -30.0] and two.preprocessing.vmax == [0.0, -5.0]


def test_no_data_is_the_union_of_the_bands():
    raw = dualpol((6, 6))
    raw[0, 1, 1] = np.nan      # missing in VV only
    raw[1, 2, 3] = 0.0         # missing in VH only (a zero intensity is no-data)
    prep = Preprocessing(vmin=[-20.0, -30.0], vmax=[0.0, -10.0])
    x, m = prep.forward(raw)
    assert m.shape == (2, 6, 6) and (m[0] == m[1]).all()
    assert not m[:, 1, 1].any() and not m[:, 2, 3].any() and m.sum() == 2 * (36 - 2)
    assert (x[:, 1, 1] == 0).all() and (x[:, 2, 3] == 0).all()
    xt, mt = prep.forward(torch.from_numpy(raw))
    assert torch.equal(mt, torch.from_numpy(m)) and torch.allclose(xt, torch.from_numpy(x), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(lo=st.lists(st.floats(-60, 10), min_size=2, max_size=4), span=st.floats(1, 50), seed=st.integers(0, 99))
def test_forward_inverse_round_trip_per_channel(lo, span, seed):
    """Inside each channel's own clip range, inverse(forward(raw)) gives raw back (float precision)."""
    c = len(lo)
    rng = np.random.default_rng(seed)
    prep = Preprocessing(domain="db", vmin=lo, vmax=[v + span for v in lo])
    raw = (np.asarray(lo)[:, None, None] + rng.uniform(0, span, (c, 5, 7))).astype(np.float64)
    x, m = prep.forward(raw)
    assert m.all() and x.min() >= 0 and x.max() <= 1
    np.testing.assert_allclose(prep.inverse(x.astype(np.float64)), raw, atol=1e-4 * max(1.0, span))
    for k in range(c):  # channel k alone reads its own band the same way
        np.testing.assert_allclose(prep.channel(k).forward(raw[k])[0], x[k], atol=1e-6)


def test_old_single_channel_preprocessing_loads_and_is_stored_unchanged():
    old = {"domain": "intensity", "vmin": -24.5, "vmax": -1.25, "eps": 1e-10, "fill": 0.0, "nodata": None}
    p = Preprocessing.from_dict(old)
    assert p.channels == 1 and p.mode == "global" and p.to_dict() == old
    with pytest.raises(SarzooError, match="one bound per channel"):
        Preprocessing(vmin=[-20.0, -30.0], vmax=[0.0, -5.0, 1.0])
    with pytest.raises(SarzooError, match="2 band"):
        Preprocessing(vmin=[-20.0, -30.0, -1.0], vmax=0.0, bands=["VV", "VH"])
    with pytest.raises(SarzooError, match="expected \\(..., 2, H, W\\)"):
        Preprocessing(vmin=[-20.0, -30.0], vmax=[0.0, -5.0]).forward(np.ones((3, 4, 4)))


# --- per-scene clip ranges -----------------------------------------------------------------------

def test_per_scene_ranges_are_each_scenes_own(tmp_path):
    bright, dark = dualpol((32, 32), seed=1) * 100, dualpol((32, 32), seed=2)
    scenes = [MemoryScene("bright", bright), MemoryScene("dark", dark)]
    split = build_datasets({"patch_size": 16, "min_valid": 0, "val_fraction": 0.5,
                            "clip": {"mode": "per_scene", "low": 0.0, "high": 100.0}}, scenes=scenes)
    prep = split.preprocessing
    assert prep.per_scene and prep.to_dict()["mode"] == "per_scene" and prep.to_dict()["low"] == 0.0
    own = {sid: split.train.preprocessing_for(sid) for sid in ("bright", "dark")}
    for sid, data in (("bright", bright), ("dark", dark)):
        db = 10 * np.log10(data)
        np.testing.assert_allclose(own[sid].vmin, db.min(axis=(1, 2)), atol=0.011)
        np.testing.assert_allclose(own[sid].vmax, db.max(axis=(1, 2)), atol=0.011)
    assert own["bright"].vmax[0] > own["dark"].vmax[0] + 15  # ×100 = +20 dB
    # each scene's patches use its own range, training and validation alike: full contrast in both
    for ds in (split.train, split.val):
        xs = torch.stack([ds[i]["x"] for i in range(len(ds))])
        assert float(xs.amin()) == pytest.approx(0.0, abs=1e-3)
        assert float(xs.amax()) == pytest.approx(1.0, abs=1e-3)
    # round trip through a scene's own range restores it (low/high 0/100: nothing is clipped)
    x, _ = own["dark"].forward(dark)
    np.testing.assert_allclose(own["dark"].inverse(x), dark, rtol=2e-5)
    items = [split.train[0], split.val[0]]
    per = split.train.item_preprocessing([it["scene"] for it in items])
    assert isinstance(per, list) and per[0] is not per[1]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), sep=st.sampled_from("-_."), cases=st.lists(st.booleans(), min_size=8, max_size=8),
       order=st.randoms(use_true_random=False))
def test_grouping_ignores_listing_order_and_case(n, sep, cases, order):
    """Whatever the order and the case of the band tokens, scene k holds exactly its own VV then VH."""
    scenes = []
    for k in range(n):
        for b, band in enumerate(("vv", "vh")):
            tok = band.upper() if cases[2 * k + b] else band
            scenes.append(MemoryScene(f"/d/s1{sep}{tok}{sep}{k:03d}.tif", np.full((1, 4, 4), 10 * k + b, np.float32)))
    order.shuffle(scenes)
    out = assemble(scenes, 2, ["VV", "VH"])
    assert len(out) == n
    for s in out:
        k = int(s.id[-7:-4])  # the scene number before ".tif"
        assert s.id == f"/d/s1{sep}VV+VH{sep}{k:03d}.tif"
        np.testing.assert_array_equal(s.read(0, 0, 4, 4)[:, 0, 0], [10 * k, 10 * k + 1])
