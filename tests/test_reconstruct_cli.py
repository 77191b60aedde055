"""``sarzoo reconstruct`` as a user runs it: real files, real subprocesses.

GeoTIFF and ``.npy`` round trips (georeferencing, no-data, band descriptions, tags), Cloud-Optimised
output, multi-channel and per-scene checkpoints, the bounded-memory path on a scene of many
blocks, the same figures as the notebook API and ``sarzoo eval``, every refusal (exit 2, one
paragraph, nothing written) and Ctrl-C (exit 130, nothing left behind).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tests._reconstruct_common import speckled, train_tiny, write_geotiff
from tests._train_common import run_sarzoo, sarzoo_cmd, subprocess_env

rasterio = pytest.importorskip("rasterio")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("recon") / "run", 20)


def recon(*args, timeout=240):
    return run_sarzoo(["reconstruct", *map(str, args)], timeout=timeout)


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def test_geotiff_round_trip_keeps_georeferencing_nodata_and_bands(ckpt, tmp_path):
    import sarzoo

    a = speckled(150, 130, seed=1)
    a[:20, :30] = -9999.0
    src = write_geotiff(tmp_path / "scene.tif", a, nodata=-9999.0, descriptions=["VV"])
    out = tmp_path / "out" / "recon.tif"
    out.parent.mkdir()
    r = recon(ckpt, src, out, "--overlap", 16, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["shape"] == [150, 130] and rep["format"] == "geotiff" and rep["nodata"] == -9999.0
    assert rep["seams"]["seam_ratio"] is not None and r.stderr == ""   # no progress bar without a terminal
    with rasterio.open(src) as s, rasterio.open(out) as o:
        assert (o.width, o.height, o.count) == (s.width, s.height, s.count)
        assert o.crs == s.crs and o.transform == s.transform and o.nodata == -9999.0
        assert o.descriptions == ("VV",) and o.dtypes == ("float32",)
        assert o.profile["tiled"] and o.profile["compress"] == "deflate"
        assert o.tags()["SARZOO_DOMAIN"] == "intensity" and o.tags()["SARZOO_CLIP_MODE"] == "global"
        rec = o.read(1)
    assert (rec[:20, :30] == -9999.0).all()                        # no-data stays no-data
    valid = np.ones(a.shape, bool)
    valid[:20, :30] = False
    assert np.isfinite(rec[valid]).all() and (rec[valid] > 0).all()  # linear intensity, like the input
    # the notebook API on the same pixels gives the same numbers (one engine)
    loaded = sarzoo.load(ckpt, runtime={"amp": "off"})
    same = loaded.reconstruct(np.where(valid, a, np.nan).astype(np.float32), overlap=16)
    np.testing.assert_allclose(rec[valid], same[valid], rtol=1e-5)
    assert leftovers(out.parent) == []


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_npy_round_trip_and_nan_nodata(ckpt, tmp_path):
    a = speckled(90, 110, seed=2)
    a[5:9, 50:60] = np.nan
    a[40, 40] = 0.0  # no-data in the intensity domain
    np.save(tmp_path / "scene.npy", a)
    r = recon(ckpt, tmp_path / "scene.npy", tmp_path / "recon.npy", "--overlap", 0, "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    rec = np.load(tmp_path / "recon.npy")
    assert rec.shape == a.shape and rec.dtype == np.float32
    bad = ~np.isfinite(a) | (a == 0)
    assert np.isnan(rec[bad]).all() and np.isfinite(rec[~bad]).all()
    # .npy in, GeoTIFF out (no georeferencing to keep; NaN marks no-data)
    r = recon(ckpt, tmp_path / "scene.npy", tmp_path / "recon.tif", "--overlap", 0)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"wrote {tmp_path / 'recon.tif'}: 90 × 110 × 1")
    with rasterio.open(tmp_path / "recon.tif") as o:
        assert np.isnan(o.nodata) and o.crs is None
        np.testing.assert_allclose(o.read(1), rec, equal_nan=True)


def test_domains_round_trip(ckpt, tmp_path):
    """Amplitude in, amplitude out; dB in, dB out: the same reconstruction in each domain."""
    a = speckled(70, 70, seed=3)
    np.save(tmp_path / "i.npy", a)
    np.save(tmp_path / "a.npy", np.sqrt(a))
    np.save(tmp_path / "d.npy", 10 * np.log10(a))
    outs = {}
    for name, dom in (("i", "intensity"), ("a", "amplitude"), ("d", "db")):
        r = recon(ckpt, tmp_path / f"{name}.npy", tmp_path / f"{name}_out.npy", "--domain", dom, "--quiet")
        assert r.returncode == 0, r.stderr
        outs[name] = np.load(tmp_path / f"{name}_out.npy")
    np.testing.assert_allclose(outs["a"] ** 2, outs["i"], rtol=1e-4)
    np.testing.assert_allclose(10 ** (outs["d"] / 10), outs["i"], rtol=1e-4)


def test_cog_output_is_a_valid_cloud_optimised_geotiff(ckpt, tmp_path):
    src = write_geotiff(tmp_path / "big.tif", speckled(600, 560, seed=4), nodata=0.0)
    out = tmp_path / "cog.tif"
    r = recon(ckpt, src, out, "--cog", "--overlap", 0, "--batch", 64, "--report")
    assert r.returncode == 0, r.stderr
    assert "Cloud-Optimised GeoTIFF" in r.stdout and "seams" in r.stdout
    with rasterio.open(out) as o, rasterio.open(src) as s:
        assert o.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert o.profile["tiled"] and o.block_shapes[0] == (512, 512)
        assert o.overviews(1), "a COG of a 600 px scene has an overview"
        assert o.crs == s.crs and o.transform == s.transform and o.nodata == 0.0
        assert o.tags()["SARZOO_CLIP_VMIN"]
    assert leftovers(tmp_path) == []


def test_many_blocks_give_the_one_block_result(ckpt, tmp_path):
    """The bounded-memory path on a scene larger than the block budget (--block 48: 25 blocks of 48 px, each
    read with its halo only; the engine test counts the reads) writes what one block writes."""
    src = write_geotiff(tmp_path / "s.tif", speckled(230, 200, seed=5))
    for name, block in (("small", 48), ("one", 4096)):
        r = recon(ckpt, src, tmp_path / f"{name}.tif", "--block", block, "--overlap", 16, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["block"] == block if name == "small" else True
    with rasterio.open(tmp_path / "small.tif") as a, rasterio.open(tmp_path / "one.tif") as b:
        assert a.block_shapes[0] == (48, 48)
        np.testing.assert_allclose(a.read(1), b.read(1), rtol=2e-6)


def test_eval_measures_what_reconstruct_writes(ckpt, tmp_path):
    """One tiling implementation: eval's saved full-scene reconstruction is reconstruct's output."""
    a = speckled(140, 120, seed=6)
    np.save(tmp_path / "s.npy", a)
    r = run_sarzoo(["eval", ckpt, "--data", tmp_path / "s.npy", "--overlap", "16", "--no-patches", "--json",
                    "--save-images", tmp_path / "imgs"])
    assert r.returncode == 0, r.stderr
    saved = json.loads(r.stdout)["scenes"]["images"][0]["reconstruction"]
    r = recon(ckpt, tmp_path / "s.npy", tmp_path / "r.npy", "--overlap", 16, "--quiet")
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(saved), np.load(tmp_path / "r.npy"), rtol=1e-6)


def test_multichannel_checkpoint_reads_multiband_inputs(tmp_path):
    ck = train_tiny(tmp_path / "dual", 2, recipe="tiny_dualpol")
    a = speckled(80, 70, seed=7, channels=2)
    a[1, 3, 4] = 0.0                                           # no-data in VH only: the pixel in both bands
    src = write_geotiff(tmp_path / "vvvh.tif", a, nodata=0.0, descriptions=["VV", "VH"])
    r = recon(ck, src, tmp_path / "out.tif")
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "out.tif") as o:
        assert o.count == 2 and o.descriptions == ("VV", "VH") and o.tags(2)["SARZOO_BAND"] == "VH"
        rec = o.read()
    assert (rec[:, 3, 4] == 0.0).all() and (rec[:, 5:, 5:] > 0).all()
    np.save(tmp_path / "vvvh.npy", a)
    r = recon(ck, tmp_path / "vvvh.npy", tmp_path / "out.npy")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "out.npy").shape == (2, 80, 70)
    # a single-band input to a two-channel model is refused, naming the file
    write_geotiff(tmp_path / "vv.tif", a[0])
    r = recon(ck, tmp_path / "vv.tif", tmp_path / "x.tif")
    assert r.returncode == 2 and "vv.tif: has 1 band(s) but the checkpoint's model takes 2 channel(s) (VV+VH)" \
        in r.stderr and "gdal_merge.py -separate" in r.stderr
    assert not (tmp_path / "x.tif").exists()


def test_per_scene_checkpoint_uses_the_scenes_own_range(tmp_path):
    ck = train_tiny(tmp_path / "ps", 2, "data.clip.mode=per_scene")
    bright = speckled(100, 90, seed=8) * 1e4                  # 40 dB above anything trained on
    src = write_geotiff(tmp_path / "dn.tif", bright)
    r = recon(ck, src, tmp_path / "out.tif", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["warnings"] == [] and "warning" not in r.stderr
    lo, hi = np.percentile(10 * np.log10(bright), [1, 99])
    assert rep["preprocessing"]["vmin"] == pytest.approx(lo, abs=0.05)
    assert rep["preprocessing"]["vmax"] == pytest.approx(hi, abs=0.05)
    with rasterio.open(tmp_path / "out.tif") as o:
        tags, rec = o.tags(), o.read(1)
    assert tags["SARZOO_CLIP_MODE"] == "per_scene" and float(tags["SARZOO_CLIP_VMIN"]) == pytest.approx(lo, abs=0.05)
    db = 10 * np.log10(rec)
    assert lo - 0.06 <= db.min() and db.max() <= hi + 0.06       # mapped back with the scene's own range


def test_clip_range_warning_on_uncalibrated_input(ckpt, tmp_path):
    np.save(tmp_path / "dn.npy", speckled(64, 64) * 1e6)
    r = recon(ckpt, tmp_path / "dn.npy", tmp_path / "o.npy", "--quiet")
    assert r.returncode == 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {tmp_path / 'dn.npy'}: ") and "outside" in lines[0]


def _error(code, err, *needles):
    assert code == 2, (code, err)
    assert err.startswith("sarzoo reconstruct: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_bad_input_is_one_paragraph_exit_2_and_writes_nothing(ckpt, tmp_path, capsys):
    """Every refusal through the command line's own entry point (in this process, to keep it quick; the
    first and the last case also as a subprocess)."""
    from sarzoo.cli import main

    good = write_geotiff(tmp_path / "good.tif", speckled(64, 64))
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + bytes(100))
    (tmp_path / "notes.txt").write_text("hello")
    write_geotiff(tmp_path / "two.tif", speckled(64, 64, channels=2))
    (tmp_path / "exists.tif").write_bytes(b"precious")
    out = tmp_path / "out.tif"
    cases = [
        ((ckpt, tmp_path / "missing.tif", out), ["missing.tif: no such input file"]),
        ((ckpt, tmp_path / "junk.tif", out), ["junk.tif: cannot read raster file"]),
        ((ckpt, tmp_path / "notes.txt", out), ["notes.txt: unsupported file type '.txt'"]),
        ((ckpt, tmp_path / "two.tif", out), ["two.tif: has 2 bands"]),
        ((ckpt, good, out, "--tile", 60), ["--tile 60 px is not a multiple of 8", "use 56 or 64"]),
        ((ckpt, good, out, "--overlap", 64), ["--overlap must be in [0, 56] px for 64 px tiles"]),
        ((ckpt, good, out, "--overlap", 12), ["--overlap 12 px is not a multiple of 8"]),
        ((ckpt, good, out, "--batch", 0), ["--batch must be at least 1"]),
        ((ckpt, good, tmp_path / "exists.tif"), ["exists.tif: exists; pass --overwrite"]),
        ((ckpt, good, good, "--overwrite"), ["good.tif: is the input"]),
        ((ckpt, good, tmp_path / "nodir" / "o.tif"), ["its directory", "does not exist"]),
        ((ckpt, good, tmp_path / "o.png"), ["o.png: unknown output type '.png'"]),
        ((ckpt, good, tmp_path / "o.npy", "--cog"), ["--cog writes a Cloud-Optimised GeoTIFF"]),
        ((ckpt, good, out, "--set", "train.lr=1"), ["--set train.lr: only runtime.KEY=VALUE"]),
        ((tmp_path / "nope.pt", good, out), ["nope.pt"]),
    ]
    if os.access("/proc", os.W_OK):  # root may "write" anywhere, but not make files in /proc
        cases.append(((ckpt, good, "/proc/recon.tif"), ["/proc/recon.tif: cannot write in /proc"]))
    for args, needles in cases:
        code = main(["reconstruct", *map(str, args)])
        _error(code, capsys.readouterr().err, *needles)
        assert not out.exists() and leftovers(tmp_path) == [], args
    for args, needles in (cases[0], cases[-1]):
        r = recon(*args)
        _error(r.returncode, r.stderr, *needles)
    assert (tmp_path / "exists.tif").read_bytes() == b"precious"
    with rasterio.open(good) as g:
        assert g.read(1).shape == (64, 64)                    # the input untouched


def test_overwrite_replaces_only_a_complete_output(ckpt, tmp_path):
    src = write_geotiff(tmp_path / "s.tif", speckled(64, 64))
    (tmp_path / "o.tif").write_bytes(b"old")
    r = recon(ckpt, src, tmp_path / "o.tif", "--overwrite")
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "o.tif") as o:
        assert o.shape == (64, 64)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_exits_cleanly_and_leaves_nothing(ckpt, tmp_path, sig, status):
    src = tmp_path / "s.npy"
    np.save(src, speckled(1500, 1500))
    out = tmp_path / "o.tif"
    # small tiles at a large overlap: minutes of work, so the signal lands in the middle of it
    proc = subprocess.Popen(sarzoo_cmd(["reconstruct", ckpt, src, out, "--overlap", 48, "--batch", 1]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.monotonic() + 120
        while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert leftovers(tmp_path), "the run never started writing"
        time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err and ("interrupted" in err or "terminated" in err), err
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_sentinel1_product_through_the_scene_readers(ckpt, tmp_path):
    """Anything sarzoo's readers open as one scene reconstructs: here a (cut-down) calibrated GRD product."""
    from tests._safe_product import write_product

    prod = write_product(tmp_path, pols=("VV",), shape=(64, 96))
    r = recon(ckpt, prod.path, tmp_path / "grd.npy", "--overlap", 0)
    assert r.returncode == 0, r.stderr
    rec = np.load(tmp_path / "grd.npy")
    dn = prod.samples[next(iter(prod.samples))]
    assert rec.shape == dn.shape
    assert np.isnan(rec[dn == 0]).all() and np.isfinite(rec[dn != 0]).all()   # the swath border stays no-data


def test_complex_input_is_read_as_intensity(ckpt, tmp_path):
    rng = np.random.default_rng(9)
    amp = np.sqrt(speckled(70, 60, seed=9))
    z = (amp * np.exp(1j * rng.uniform(0, 2 * np.pi, amp.shape))).astype(np.complex64)
    np.save(tmp_path / "slc.npy", z)
    np.save(tmp_path / "inten.npy", (np.abs(z) ** 2).astype(np.float32))
    for name in ("slc", "inten"):
        r = recon(ckpt, tmp_path / f"{name}.npy", tmp_path / f"{name}_out.npy", "--quiet")
        assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "slc_out.npy"), np.load(tmp_path / "inten_out.npy"), rtol=1e-5)


def test_progress_bar_on_a_terminal_counts_tiles(ckpt, tmp_path, monkeypatch, capsys):
    import io
    import sys

    from sarzoo.cli import main

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    src = write_geotiff(tmp_path / "s.tif", speckled(100, 100))
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert main(["reconstruct", str(ckpt), str(src), str(tmp_path / "o.tif"), "--overlap", "0"]) == 0
    bar = term.getvalue()
    assert "reconstruct" in bar and "4/4" in bar and "tile/s" in bar, bar
    assert main(["reconstruct", str(ckpt), str(src), str(tmp_path / "q.tif"), "--quiet"]) == 0
    assert term.getvalue() == bar and capsys.readouterr().out.count("wrote ") == 1   # --quiet: no bar, no line
