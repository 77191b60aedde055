"""Readers: every supported format, windowed reads, nodata, and up-front validation."""
from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

from sarzoo.data.readers import ArrayScene, RasterScene, expand_paths, iter_blocks, open_file, open_sources  # noqa: E402
from sarzoo.errors import SarzooError  # noqa: E402


def write_raster(path, data, driver="GTiff", nodata=None, tiled=False, block=16, georef=False, **kw):
    """Write a one-band raster with rasterio (the library the readers use)."""
    profile = dict(driver=driver, width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name)
    if nodata is not None:
        profile["nodata"] = nodata
    if tiled:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if georef:
        profile.update(crs="EPSG:32633", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0))
    profile.update(kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)
    return path


@pytest.fixture
def geotiff(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.gamma(4, 0.25, (100, 90)).astype(np.float32) * 0.1
    data[:7, :] = -9999.0
    data[50, 60] = -9999.0
    path = write_raster(tmp_path / "s1_vv.tif", data, nodata=-9999.0, tiled=True, block=16, georef=True,
                        compress="deflate")
    return path, data


def test_geotiff_tiled_windowed_nodata(geotiff):
    path, data = geotiff
    (scene,) = open_file(path)
    assert isinstance(scene, RasterScene)
    assert scene.shape == (100, 90) and scene.nodata == -9999.0
    with rasterio.open(path) as src:
        assert src.block_shapes == [(16, 16)]  # really tiled, so windows touch a few tiles
    expected = np.where(data == -9999.0, np.nan, data)
    for r, c, h, w in [(0, 0, 100, 90), (5, 3, 20, 17), (37, 41, 33, 49), (99, 89, 1, 1), (44, 55, 16, 16)]:
        got = scene.read(r, c, h, w)
        assert got.dtype == np.float32 and got.shape == (1, h, w)  # (C, h, w), one band
        np.testing.assert_array_equal(got[0], expected[r:r + h, c:c + w])
    assert np.isnan(scene.read(50, 60, 1, 1)).all()
    with pytest.raises(ValueError):
        scene.read(90, 0, 20, 10)


def test_geotiff_reads_only_the_window(geotiff):
    """The reader asks GDAL for the window, never for the whole raster."""
    path, _ = geotiff
    (scene,) = open_file(path)
    src = scene._open()
    calls = []

    class Spy:
        def read(self, *a, **kw):
            calls.append(kw.get("window"))
            return src.read(*a, **kw)

    scene._open = Spy  # instance attribute shadows the method: reads go through the spy
    scene.read(10, 20, 16, 16)
    assert len(calls) == 1 and calls[0] is not None
    assert (int(calls[0].height), int(calls[0].width)) == (16, 16)


def test_geotiff_nodata_override_and_uint16(tmp_path):
    data = np.arange(1, 401, dtype=np.uint16).reshape(20, 20)
    data[0, :5] = 0
    data[3, 3] = 7
    path = write_raster(tmp_path / "u16.tif", data, nodata=0)
    (scene,) = open_file(path)
    got = scene.read(0, 0, 20, 20)[0]
    assert np.isnan(got[0, :5]).all() and not np.isnan(got[1:]).any()
    (scene,) = open_file(path, nodata=7)  # the override replaces the file's value
    got = scene.read(0, 0, 20, 20)[0]
    assert np.isnan(got[3, 3]) and got[0, 0] == 0.0


def test_raster_scene_pickles(geotiff):
    path, data = geotiff
    (scene,) = open_file(path)
    scene.read(10, 10, 5, 5)
    blob = pickle.dumps(scene)
    assert len(blob) < 2000  # no handle or pixel data travels with it
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(clone.read(10, 10, 5, 5)[0], data[10:15, 10:15])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png(tmp_path, dtype):
    info = np.iinfo(dtype)
    data = np.random.default_rng(1).integers(0, info.max, (24, 40), endpoint=True).astype(dtype)
    path = write_raster(tmp_path / f"img_{dtype.__name__}.png", data, driver="PNG")
    (scene,) = open_sources(str(path))
    assert scene.shape == (24, 40)
    np.testing.assert_array_equal(scene.read(0, 0, 24, 40)[0], data.astype(np.float32))
    np.testing.assert_array_equal(scene.read(3, 5, 10, 11)[0], data[3:13, 5:16].astype(np.float32))


def test_plain_16bit_tiff(tmp_path):
    data = np.random.default_rng(2).integers(0, 65535, (33, 21)).astype(np.uint16)
    path = write_raster(tmp_path / "plain.tiff", data)
    (scene,) = open_sources(path)
    assert scene.nodata is None
    np.testing.assert_array_equal(scene.read(4, 2, 20, 19)[0], data[4:24, 2:21].astype(np.float32))


def test_npy_stack_and_scene(tmp_path):
    stack = np.random.default_rng(3).random((5, 16, 16)).astype(np.float32)
    np.save(tmp_path / "patches.npy", stack)
    scenes = open_file(tmp_path / "patches.npy")
    assert len(scenes) == 5 and all(isinstance(s, ArrayScene) for s in scenes)
    assert len({s.group for s in scenes}) == 1 and len({s.id for s in scenes}) == 5
    np.testing.assert_array_equal(scenes[3].read(2, 4, 8, 8)[0], stack[3, 2:10, 4:12])

    scene2d = np.random.default_rng(4).random((30, 20))
    scene2d[0, 0] = np.nan
    np.save(tmp_path / "scene.npy", scene2d)
    (s,) = open_file(tmp_path / "scene.npy", nodata=None)
    assert s.shape == (30, 20)
    got = s.read(0, 0, 30, 20)[0]
    assert got.dtype == np.float32 and np.isnan(got[0, 0])
    np.testing.assert_allclose(got[1:], scene2d[1:].astype(np.float32))
    assert isinstance(s._array(), np.memmap)  # windows come from a memory map, not a full load


def test_npz_members(tmp_path):
    a = np.random.default_rng(5).random((3, 8, 8)).astype(np.float32)
    b = np.random.default_rng(6).random((12, 10)).astype(np.float32)
    np.savez_compressed(tmp_path / "data.npz", a=a, b=b)
    scenes = open_file(tmp_path / "data.npz")
    assert [s.id.split(":")[-1] for s in scenes] == ["a[0]", "a[1]", "a[2]", "b"]
    np.testing.assert_array_equal(scenes[1].read(0, 0, 8, 8)[0], a[1])
    np.testing.assert_array_equal(scenes[3].read(2, 3, 4, 5)[0], b[2:6, 3:8])


def test_complex_npy_is_intensity(tmp_path):
    z = (np.arange(6).reshape(2, 3) + 1j).astype(np.complex64)
    np.save(tmp_path / "slc.npy", z)
    (s,) = open_file(tmp_path / "slc.npy")
    np.testing.assert_allclose(s.read(0, 0, 2, 3)[0], np.abs(z) ** 2)


def test_expand_directory_and_glob(tmp_path):
    top = tmp_path / "scenes"
    (top / "sub").mkdir(parents=True)
    (top / "notes.xml").write_text("<xml/>")
    (top / "other.zip").write_bytes(b"PK")  # not named like a Sentinel-1 product: skipped in a search
    d = np.ones((8, 8), np.float32)
    write_raster(top / "sub" / "vv.tiff", d)
    write_raster(top / "vh.tiff", d)
    files = expand_paths(str(top))
    assert files == sorted([str(top / "sub" / "vv.tiff"), str(top / "vh.tiff")])
    assert expand_paths(str(top / "**" / "*.tiff")) == files
    assert expand_paths([str(top / "sub" / "vv.tiff"), str(top)]) == files  # de-duplicated
    assert len(open_sources(str(top))) == 2


def test_corrupt_raster_names_file(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a tiff at all" * 10)
    with pytest.raises(SarzooError, match="broken.tif"):
        open_sources([str(bad)])


def test_corrupt_among_good_fails_up_front(tmp_path, geotiff):
    path, _ = geotiff
    (tmp_path / "zz.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(SarzooError, match="zz.png"):
        open_sources(str(tmp_path))


@pytest.mark.parametrize("name,content,pattern", [
    ("truncated.npy", None, "truncated.npy"),
    ("junk.npz", b"PK\x03\x04 not a zip", "junk.npz"),
    ("photo.jpg", b"\xff\xd8\xff", "unsupported file type"),
    ("cube.npy", "4d", "cube.npy"),
    ("text.npy", "str", "text.npy"),
])
def test_bad_files_raise_sarzoo_error(tmp_path, name, content, pattern):
    p = tmp_path / name
    if content is None:
        np.save(p, np.zeros((64, 64), np.float32))
        p.write_bytes(p.read_bytes()[:200])
    elif content == "4d":
        np.save(p, np.zeros((2, 2, 2, 2)))
    elif content == "str":
        np.save(p, np.array([["a", "b"]]))
    else:
        p.write_bytes(content)
    with pytest.raises(SarzooError, match=pattern) as exc:
        open_sources(str(p))
    assert name in str(exc.value)


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(SarzooError, match="no such file"):
        open_sources(str(tmp_path / "nope.tif"))
    with pytest.raises(SarzooError, match="no supported data file"):
        open_sources(str(tmp_path))
    with pytest.raises(SarzooError, match="matches no supported"):
        open_sources(str(tmp_path / "*.tif"))


def test_band_out_of_range(geotiff):
    path, _ = geotiff
    with pytest.raises(SarzooError, match="band 2"):
        open_file(path, band=2)


def test_open_files_are_bounded(tmp_path, monkeypatch):
    from sarzoo.data import readers

    monkeypatch.setattr(readers, "_HANDLES", readers._HandleCache(3))
    data = np.arange(64, dtype=np.float32).reshape(8, 8) + 1
    for k in range(6):
        write_raster(tmp_path / f"f{k}.tif", data + k)
    scenes = open_sources(str(tmp_path))
    assert len(readers._HANDLES.items) == 3
    for k, s in enumerate(scenes):  # evicted files are reopened transparently
        np.testing.assert_array_equal(s.read(2, 2, 3, 3)[0], data[2:5, 2:5] + k)
    assert len(readers._HANDLES.items) == 3


def test_iter_blocks_cover():
    seen = np.zeros((37, 53), int)
    for r, c, h, w in iter_blocks(37, 53, block=16):
        seen[r:r + h, c:c + w] += 1
    assert (seen == 1).all()


# --- hostile inputs: checked from headers, refused with the file named (see also test_data_fuzz.py) ---

def test_non_regular_files_are_refused_without_opening(tmp_path):
    import os

    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    for p in (fifo, "/dev/zero"):  # opening either would hang or never end
        with pytest.raises(SarzooError, match="not a regular data file") as e:
            open_sources([p])
        assert str(p) in str(e.value)
        with pytest.raises(SarzooError, match="not a regular data file"):
            open_file(p)
    np.save(tmp_path / "ok.npy", np.ones((4, 4), np.float32))
    assert expand_paths(tmp_path) == [str(tmp_path / "ok.npy")]  # inside a directory it is skipped


@pytest.mark.parametrize("arr, needle", [
    (np.zeros((4, 4), bool), "bool"),
    (np.array([["a", "b"], ["c", "d"]]), "str"),
    (np.zeros((2, 2, 2, 2), np.float32), "4-D"),
    (np.zeros(5, np.float32), "1-D"),
    (np.zeros((0, 4), np.float32), "empty"),
])
def test_unsupported_arrays_are_named(tmp_path, arr, needle):
    for name in ("a.npy", "b.npz"):
        p = tmp_path / name
        np.save(p, arr) if name.endswith(".npy") else np.savez(p, x=arr)
        with pytest.raises(SarzooError, match=needle) as e:
            open_file(p)
        assert str(p) in str(e.value)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([[object(), None]], dtype=object), allow_pickle=True)
    with pytest.raises(SarzooError, match="object"):
        open_file(p)
    np.savez(tmp_path / "obj.npz", x=np.array([[1, None]], dtype=object))
    with pytest.raises(SarzooError, match="obj.npz:x.*object"):
        open_file(tmp_path / "obj.npz")


def test_truncated_npy_is_refused_from_its_header(tmp_path):
    p = tmp_path / "cut.npy"
    np.save(p, np.ones((100, 100), np.float32))
    p.write_bytes(p.read_bytes()[:5000])
    with pytest.raises(SarzooError, match=r"truncated .npy file: its header declares float32 \(100, 100\)"):
        open_file(p)


def test_npz_members_are_checked_without_decompressing(tmp_path):
    from sarzoo.data import readers

    p = tmp_path / "two.npz"
    np.savez_compressed(p, a=np.full((20, 30), 2.0, np.float32), b=np.ones((2, 8, 8), np.uint16))
    readers._NPZ_ARRAYS.clear()
    scenes = open_file(p)
    assert [s.id for s in scenes] == [f"{p}:a", f"{p}:b[0]", f"{p}:b[1]"]
    assert not readers._NPZ_ARRAYS.items  # validation read headers only
    np.testing.assert_array_equal(scenes[0].read(1, 2, 3, 4)[0], np.full((3, 4), 2.0, np.float32))
    np.testing.assert_array_equal(scenes[2].read(0, 0, 8, 8)[0], np.ones((8, 8), np.float32))
    with zipfile.ZipFile(tmp_path / "extra.npz", "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(SarzooError, match="'notes.txt' is not a .npy array"):
        open_file(tmp_path / "extra.npz")


def test_more_bands_than_channels_is_named(tmp_path):
    p = tmp_path / "vv_vh.tif"
    with rasterio.open(p, "w", driver="GTiff", width=8, height=8, count=2, dtype="float32",
                       crs="EPSG:32633", transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0)) as dst:
        dst.write(np.ones((2, 8, 8), np.float32))
    with pytest.raises(SarzooError, match="has 2 bands, more than the recipe's input.channels = 1") as e:
        open_sources([p], channels=1)
    assert str(p) in str(e.value)
    (two,) = open_sources([p], channels=2)  # a 2-channel recipe reads both bands as one scene
    assert two.shape == (8, 8) and two.channels == 2 and two.read(0, 0, 8, 8).shape == (2, 8, 8)
    from sarzoo.data import build_datasets

    with pytest.raises(SarzooError, match="2 bands"):
        build_datasets({"paths": [str(p)], "patch_size": 8, "min_valid": 0, "val_fraction": 0})
