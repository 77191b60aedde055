"""``sarzoo encode`` / ``sarzoo decode`` as a user runs them: real files, real subprocesses.

A GeoTIFF with a CRS, a transform and a nodata value goes through a small trained codec and comes
back with all three; decoding twice gives the same bytes and equals ``roundtrip``; another model, a
truncated or a corrupted file is refused with one paragraph and exit status 2.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests._codec_common import save, scenes, trained
from tests.conftest import run_cli

ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    d = tmp_path_factory.mktemp("codec")
    ckpt = save(trained(), d / "codec.pt")
    other = save(trained(seed=1, steps=5), d / "other.pt")
    raw = scenes(1, 200, seed=3)[0][0]          # not a multiple of the 64 px tile
    raw = raw[:, :150].copy()
    raw[:70, :70] = -9999.0                     # a no-data corner (tile 0 wholly), marked by the file's nodata
    tif = d / "scene.tif"
    profile = {"driver": "GTiff", "width": 150, "height": 200, "count": 1, "dtype": "float32",
               "crs": CRS.from_epsg(32633), "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0),
               "nodata": -9999.0}
    with rasterio.open(tif, "w", **profile) as dst:
        dst.write(raw[None])
    npy = d / "scene.npy"
    np.save(npy, np.where(raw == -9999.0, np.nan, raw).astype(np.float32))
    return {"dir": d, "ckpt": ckpt, "other": other, "tif": str(tif), "npy": str(npy), "raw": raw}


def _encode(files, src, code, *extra):
    r = run_cli("encode", files["ckpt"], src, code, "--json", *extra, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_geotiff_round_trip_keeps_georeferencing(files):
    import rasterio

    d = files["dir"]
    rep = _encode(files, files["tif"], d / "scene.szc")
    size = os.path.getsize(d / "scene.szc")
    valid = int((files["raw"] != -9999.0).sum())
    assert rep["file_bytes"] == size and rep["valid_pixels"] == valid
    assert rep["bits_per_valid_pixel"] == pytest.approx(size * 8 / valid)
    assert rep["source_bits_per_pixel"] == 32 and rep["megapixels_per_second"] > 0
    assert rep["coded_tiles"] == 11 and rep["tiles"] == 12    # 4 × 3 tiles of 64 px; the corner one costs nothing
    r = run_cli("decode", d / "scene.szc", d / "out.tif", "--checkpoint", files["ckpt"], "--json", env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    with rasterio.open(files["tif"]) as a, rasterio.open(d / "out.tif") as b:
        assert a.crs == b.crs and a.transform == b.transform and b.nodata == -9999.0
        assert (a.width, a.height, b.dtypes[0]) == (b.width, b.height, "float32")
        out = b.read(1)
    nodata = files["raw"] == -9999.0
    assert (out[nodata] == -9999.0).all() and np.isfinite(out[~nodata]).all() and (out[~nodata] > 0).all()
    # the text report names the rate, the source's bits and the speed
    text = run_cli("encode", files["ckpt"], files["tif"], d / "again.szc", env=ENV).stdout
    assert "bits per valid pixel" in text and "32 bits per pixel" in text and "megapixels/s" in text


def test_decode_is_deterministic_and_is_roundtrip(files):
    import sarzoo
    from sarzoo.codec import roundtrip

    d = files["dir"]
    _encode(files, files["npy"], d / "n.szc")
    for name in ("a.npy", "b.npy"):
        r = run_cli("decode", d / "n.szc", d / name, "--checkpoint", files["ckpt"], env=ENV)
        assert r.returncode == 0, r.stdout + r.stderr
    assert (d / "a.npy").read_bytes() == (d / "b.npy").read_bytes()
    out = np.load(d / "a.npy")
    model, prep = sarzoo.load(files["ckpt"])
    raw = np.load(files["npy"])
    x, m = prep.forward(raw[None])
    x_hat, bits = roundtrip(model, x, m)
    expect = np.where(m[0], prep.inverse(x_hat)[0], np.nan).astype(np.float32)
    assert np.array_equal(out, expect, equal_nan=True)
    from sarzoo.codec.files import read_code

    assert bits == 8 * read_code(str(d / "n.szc")).tile_bytes()


def test_refusals(files):
    d = files["dir"]
    code = d / "r.szc"
    _encode(files, files["tif"], code)
    data = code.read_bytes()

    def refused(path, *, ckpt=None, out="x.tif", match):
        r = run_cli("decode", path, d / out, "--checkpoint", ckpt or files["ckpt"], env=ENV)
        assert r.returncode == 2, r.stdout + r.stderr
        assert match in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (d / out).exists()

    refused(code, ckpt=files["other"], match="another model")
    (d / "cut.szc").write_bytes(data[:-7])
    refused(d / "cut.szc", match="truncated or corrupted")
    bad = bytearray(data)
    bad[-20] ^= 0x40
    (d / "bad.szc").write_bytes(bytes(bad))
    refused(d / "bad.szc", match="CRC32")
    refused(code, out="x.png", match="unknown output type '.png'")
    refused(files["tif"], match="not a sarzoo code file")
    r = run_cli("encode", files["ckpt"], d / "missing.tif", d / "m.szc", env=ENV)
    assert r.returncode == 2 and "no such file" in r.stderr


def test_eval_reports_the_measured_rate(files):
    """Item 6: ``sarzoo eval`` gives the latent as numbers and as bits per valid pixel (measured, for an
    entropy-coded one: what ``sarzoo encode`` spends on the tiles)."""
    r = run_cli("eval", files["ckpt"], "--json", "--no-patches", "--set", "data.synthetic.n_scenes=5",
                "--set", "data.synthetic.size=128", env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    lat = rep["latent"]
    assert lat["storage"] == "entropy-coded" and lat["numbers"] == 256 and 0 < lat["bits_per_pixel"] < 3
    images = rep["scenes"]["images"]
    bits, pixels = sum(i["bits"] for i in images), sum(i["valid_pixels"] for i in images)
    assert lat["bits_per_pixel"] == pytest.approx(bits / pixels)
    text = run_cli("eval", files["ckpt"], "--no-patches", "--set", "data.synthetic.n_scenes=5",
                   "--set", "data.synthetic.size=128", env=ENV).stdout
    assert "bits per valid pixel measured" in text and "fewer numbers than the input" in text
