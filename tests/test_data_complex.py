"""Complex (SLC) input read as intensity |z|², and multilooking (``data.multilook``) as a windowed view."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sarzoo.config import resolve_section
from sarzoo.data.complex import MultilookScene, block_mean
from sarzoo.data.readers import MemoryScene, open_file, open_sources
from sarzoo.errors import RecipeError, SarzooError


def slc(shape, seed=0, dtype=np.complex64):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)


def reference_looks(intensity, az, rg):
    """Crop to whole blocks, then average each az × rg block (the documented edge rule)."""
    h, w = intensity.shape[-2] // az * az, intensity.shape[-1] // rg * rg
    i = intensity[..., :h, :w].astype(np.float64)
    return i.reshape(*i.shape[:-2], h // az, az, w // rg, rg).mean(axis=(-3, -1))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("container", ["npy", "npz", "stack"])
def test_complex_arrays_are_intensity(tmp_path, dtype, container):
    z = slc((3, 9, 11) if container == "stack" else (9, 11), dtype=dtype)
    p = tmp_path / f"slc.{'npz' if container == 'npz' else 'npy'}"
    np.savez(p, z=z) if container == "npz" else np.save(p, z)
    scenes = open_file(p)
    frames = z if container == "stack" else z[None]
    assert len(scenes) == len(frames)
    for s, f in zip(scenes, frames):
        np.testing.assert_allclose(s.read(2, 3, 5, 6)[0], np.abs(f[2:7, 3:9]) ** 2, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["complex_int16", "complex64", "complex128"])  # GDAL CInt16, CFloat32/64
def test_complex_geotiffs_are_intensity(tmp_path, dtype):
    z = (slc((12, 10)) * 100).round().astype(np.complex64)
    p = tmp_path / "slc.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", driver="GTiff", width=10, height=12, count=1, dtype=dtype) as dst:
            dst.write(z, 1)
    (s,) = open_file(p)
    np.testing.assert_allclose(s.read(0, 0, 12, 10)[0], np.abs(z) ** 2, rtol=1e-6)


@pytest.mark.parametrize("domain", ["db", "amplitude"])
def test_complex_input_needs_the_intensity_domain(tmp_path, domain):
    np.save(tmp_path / "slc.npy", slc((8, 8)))
    with pytest.raises(SarzooError, match=r"slc\.npy.*complex.*data\.domain is '" + domain):
        open_sources(str(tmp_path / "slc.npy"), domain=domain)
    np.save(tmp_path / "real.npy", np.ones((8, 8), np.float32))
    open_sources(str(tmp_path / "real.npy"), domain=domain)  # real data: any domain


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 23), w=st.integers(1, 23), az=st.integers(1, 5), rg=st.integers(1, 5),
       data=st.data())
def test_multilook_is_the_block_mean_of_intensity_on_any_window(tmp_path_factory, h, w, az, rg, data):
    assume(h >= az and w >= rg)
    z = slc((h, w), seed=h * 100 + w)
    p = tmp_path_factory.mktemp("ml") / "slc.npy"
    np.save(p, z)
    (s,) = open_file(p, multilook=[az, rg])
    assert s.shape == (h // az, w // rg)
    if (az, rg) != (1, 1):  # [1, 1] is no multilook: the file's own scene
        assert isinstance(s, MultilookScene)
        assert isinstance(s.base._array(), np.memmap)  # still windows of a memory map, never a full load
    full = reference_looks(np.abs(z) ** 2, az, rg)
    r = data.draw(st.integers(0, s.height - 1))
    c = data.draw(st.integers(0, s.width - 1))
    wh = data.draw(st.integers(1, s.height - r))
    ww = data.draw(st.integers(1, s.width - c))
    np.testing.assert_allclose(s.read(r, c, wh, ww)[0], full[r:r + wh, c:c + ww], rtol=1e-5)


def test_edges_crop_to_whole_blocks(tmp_path):
    z = slc((10, 13))
    np.save(tmp_path / "slc.npy", z)
    (s,) = open_file(tmp_path / "slc.npy", multilook=[3, 4])
    assert s.shape == (3, 3)  # rows 9 and columns 12 dropped: every pixel has exactly 12 looks
    np.testing.assert_allclose(s.read(2, 2, 1, 1)[0, 0, 0], (np.abs(z[6:9, 8:12]) ** 2).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        s.read(2, 2, 2, 1)


def test_no_data_is_left_out_of_a_block():
    a = np.array([[1.0, 3.0, np.nan, np.nan],
                  [0.0, 2.0, np.nan, np.nan]], np.float32)
    np.testing.assert_allclose(block_mean(a, 2, 2), [[2.0, np.nan]])  # 0 is no-data in intensity
    np.testing.assert_allclose(block_mean(np.zeros((2, 2), np.float32), 2, 2, "db"), [[0.0]])  # 0 dB is valid


@pytest.mark.parametrize("domain", ["intensity", "amplitude", "db"])
def test_real_data_multilooks_in_linear_intensity_whatever_its_domain(domain):
    i = np.random.default_rng(3).gamma(1.0, 1.0, (6, 8)) + 0.01
    raw = {"intensity": i, "amplitude": np.sqrt(i), "db": 10 * np.log10(i)}[domain].astype(np.float32)
    s = MultilookScene(MemoryScene("m", raw, clean=i), [2, 4], domain)
    back = {"intensity": lambda v: v, "amplitude": np.square, "db": lambda v: 10 ** (v / 10)}[domain]
    np.testing.assert_allclose(back(s.read(0, 0, 3, 2)[0].astype(np.float64)), reference_looks(i, 2, 4), rtol=1e-5)
    np.testing.assert_allclose(s.read_clean(1, 1, 2, 1)[0], reference_looks(i, 2, 4)[1:3, 1:2], rtol=1e-5)


def test_multichannel_windows_keep_their_channels():
    i = np.arange(1, 49, dtype=np.float32).reshape(6, 8)
    s = MultilookScene(MemoryScene("two", np.stack([i, 2 * i])), [3, 2])
    out = s.read(0, 0, 2, 4)
    assert s.channels == 2 and out.shape == (2, 2, 4)
    np.testing.assert_allclose(out[1], 2 * reference_looks(i, 3, 2))


@pytest.mark.parametrize("value", [0, -1, [2, 0], [1, 2, 3], "2x2", [2.5, 1], True])
def test_bad_multilook_values_are_recipe_errors(value):
    with pytest.raises(RecipeError, match="data.multilook"):
        resolve_section("data", {"multilook": value})


def test_multilook_larger_than_the_scene(tmp_path):
    np.save(tmp_path / "small.npy", slc((4, 30)))
    with pytest.raises(SarzooError, match=r"small\.npy.*4 × 30.*data\.multilook = \[5, 1\]"):
        open_sources(str(tmp_path / "small.npy"), multilook=[5, 1])


def test_complex_multilooked_data_through_build_datasets(tmp_path):
    from sarzoo.data import build_datasets

    np.save(tmp_path / "slc.npy", slc((64, 128)) * 0.1)
    train, val, prep, cfg = build_datasets({"paths": [str(tmp_path / "slc.npy")], "multilook": [2, 4],
                                            "patch_size": 16, "min_valid": 0.0})
    assert cfg["multilook"] == [2, 4]
    assert train[0]["x"].shape == (1, 16, 16)
    assert {p.region.scene.shape for p in train.patches} == {(32, 32)}
    with pytest.raises(SarzooError, match="data.domain"):
        build_datasets({"paths": [str(tmp_path / "slc.npy")], "domain": "db", "patch_size": 16})
