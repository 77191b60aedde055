"""Dual-polarisation end to end, as a user runs it: ``sarzoo train tiny_dualpol --data <VV/VH files>``,
then ``sarzoo eval`` on its checkpoint (per-band figures, 2-band reconstructions); and the same with
``data.clip.mode: per_scene`` on data whose scale the model never saw.

Real GeoTIFFs in ``tmp_path`` (per-polarisation pairs named like Sentinel-1 measurement files, and
one 2-band file), real subprocesses of the CLI; nothing is mocked.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from tests.conftest import run_cli

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1"}
#: 3 scenes of 128 px → 2 training scenes (8 patches of 64 px, 2 steps of 4) and 1 validation scene.
SMALL = ["--set", "train.batch_size=4", "--set", "runtime.amp=off", "--set", "train.histogram_every=0",
         "--set", "train.preview_samples=1", "--device", "cpu"]


def _write(path, data):
    data = data[None] if data.ndim == 2 else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                           dtype="float32", crs="EPSG:32633",
                           transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4600000.0)) as dst:
            dst.write(data.astype(np.float32))


def _scene(seed, gain=1.0):
    rng = np.random.default_rng(seed)
    clean = np.kron(rng.uniform(0.3, 3.0, (2, 8, 8)), np.ones((16, 16)))  # blocks with edges
    return (clean * rng.gamma(4, 0.25, (2, 128, 128)) * np.array([0.1, 0.01])[:, None, None] * gain)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dualpol")
    for k in range(2):
        s = _scene(k)
        _write(d / f"s1a-iw-grd-vv-2020010{k}t0600-001.tiff", s[0])
        _write(d / f"s1a-iw-grd-vh-2020010{k}t0600-001.tiff", s[1])
    _write(d / "other-acquisition-dual.tif", _scene(7))      # a 2-band file joins them as a third scene
    return d


def _train(out, data_dir, *extra):
    r = run_cli("train", "tiny_dualpol", "--data", data_dir, "--max-steps", 2, "--out", out, *SMALL, *extra, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    return _train(tmp_path_factory.mktemp("dualrun") / "run", data_dir)


def test_train_records_per_band_preprocessing_and_validation(run_dir):
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    prep = ck["preprocessing"]
    assert prep["bands"] == ["VV", "VH"] and len(prep["vmin"]) == len(prep["vmax"]) == 2
    assert prep["vmin"][0] > prep["vmin"][1] + 5   # each polarisation has its own range (VH ~10 dB darker)
    assert ck["recipe"]["input"]["channels"] == 2 and ck["recipe"]["data"]["bands"] == ["VV", "VH"]
    epochs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()
              if '"event": "epoch"' in line]
    val = epochs[-1]["val"]
    assert {"psnr", "psnr/VV", "psnr/VH", "ssim/VH", "enl_ratio/VV", "epi/VH"} <= set(val)
    assert val["psnr"] == pytest.approx((val["psnr/VV"] + val["psnr/VH"]) / 2)


def test_eval_reports_every_band_and_writes_two_band_reconstructions(run_dir, tmp_path):
    r = run_cli("eval", run_dir / "best.pt", "--json", "--save-images", tmp_path / "imgs", env=ENV)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_images"] == 1 and rep["data"]["preprocessing"]["bands"] == ["VV", "VH"]
    for block in (rep, rep["scenes"], rep["patches"], rep["scenes"]["images"][0]):
        assert set(block["channels"]) == {"VV", "VH"}
        for band in ("VV", "VH"):
            b = block["channels"][band]
            assert set(b) >= {"psnr", "ssim", "enl_ratio", "epi", "reference"} and 0 < b["psnr"] < 80
        assert block["psnr"] == pytest.approx((block["channels"]["VV"]["psnr"] + block["channels"]["VH"]["psnr"]) / 2)
        assert block["reference"]["ssim"] == pytest.approx(
            (block["channels"]["VV"]["reference"]["ssim"] + block["channels"]["VH"]["reference"]["ssim"]) / 2)
    # the patch level is exactly what validation logged, band by band
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    assert rep["patches"]["channels"]["VH"]["psnr"] == pytest.approx(ck["metrics"]["psnr/VH"], abs=1e-3)
    img = rep["scenes"]["images"][0]
    with rasterio.open(img["reconstruction"]) as src:
        assert src.count == 2 and src.descriptions == ("VV", "VH") and src.crs is not None
        rec = src.read()
        tags = src.tags()
    assert rec.shape == (2, 128, 128) and np.isfinite(rec).all() and (rec > 0).all()
    assert rec[0].mean() > 3 * rec[1].mean()                 # each band back in its own range
    assert tags["SARZOO_CLIP_MODE"] == "global"
    from sarzoo.commands.evaluate import format_report

    text = format_report(rep)  # what `sarzoo eval` prints without --json
    assert "VV: model" in text and "VH: reference" in text
    assert "VV -" in text and "VH -" in text  # the per-band clip ranges in the header


def test_load_and_reconstruct_a_dualpol_scene(run_dir, tmp_path):
    import sarzoo
    from sarzoo import checkpoint
    from sarzoo.errors import SarzooError

    model, prep = sarzoo.load(run_dir / "best.pt")
    assert prep.channels == 2 and prep.band_names() == ["VV", "VH"]
    raw = _scene(5)[:, :100, :90].astype(np.float32)
    raw[1, 10, 20] = 0.0                                   # no-data in VH only
    out = sarzoo.load(run_dir / "best.pt").reconstruct(raw)
    assert out.shape == raw.shape and out.dtype == np.float32
    assert np.isnan(out[:, 10, 20]).all() and np.isfinite(out).sum() == 2 * (100 * 90 - 1)
    with pytest.raises(SarzooError, match=r"expected \(\.\.\., 2, H, W\)"):
        sarzoo.load(run_dir / "best.pt").reconstruct(raw[0])
    # a checkpoint whose clip range does not fit the model's channels is refused, naming the key
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    ck["preprocessing"]["vmin"], ck["preprocessing"]["vmax"] = -20.0, 0.0
    ck["preprocessing"].pop("bands")
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(SarzooError, match=r"bad.pt: key 'preprocessing.vmin'.*1 channel\(s\), the model takes 2"):
        checkpoint.read(tmp_path / "bad.pt")


def test_per_scene_model_refits_every_scene(tmp_path, data_dir):
    """Uncalibrated data: a per_scene model reads a 40 dB brighter scene in that scene's own range, says
    which range in the JSON and in the saved GeoTIFF, and inverts it exactly on output."""
    run = _train(tmp_path / "run", data_dir, "--set", "data.clip.mode=per_scene")
    ck = torch.load(run / "best.pt", weights_only=True)
    assert ck["preprocessing"]["mode"] == "per_scene" and ck["preprocessing"]["low"] == 1.0
    bright = _scene(11, gain=1e4)
    _write(tmp_path / "dn_vv.tif", bright[0])
    _write(tmp_path / "dn_vh.tif", bright[1])
    r = run_cli("eval", run / "best.pt", "--data", tmp_path / "dn_v?.tif", "--json", "--save-images",
                tmp_path / "imgs", env=ENV)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["warnings"] == [] and "warning" not in r.stderr   # the clip-range warning does not apply
    (sid, rng), = rep["data"]["scene_clip_db"].items()
    assert sid.endswith("dn_VV+VH.tif")
    db = 10 * np.log10(bright)
    for c in range(2):
        lo, hi = np.percentile(db[c], [1, 99])
        assert rng["vmin"][c] == pytest.approx(lo, abs=0.05) and rng["vmax"][c] == pytest.approx(hi, abs=0.05)
    assert rng["vmin"][0] > ck["preprocessing"]["vmin"][0] + 30   # far outside what training saw
    img = rep["scenes"]["images"][0]
    assert img["clip_db"] == rng and set(img["channels"]) == {"VV", "VH"}
    with rasterio.open(img["reconstruction"]) as src:
        tags, rec = src.tags(), src.read()
    assert tags["SARZOO_CLIP_MODE"] == "per_scene"
    assert [float(v) for v in tags["SARZOO_CLIP_VMIN"].split(",")] == pytest.approx(rng["vmin"], abs=1e-5)
    out_db = 10 * np.log10(rec)
    for c in range(2):  # the output lies in the scene's own range: its scale was inverted, not the training one's
        assert rng["vmin"][c] - 1e-3 <= out_db[c].min() and out_db[c].max() <= rng["vmax"][c] + 1e-3
    # the notebook API refits the same way, and gives the same reconstruction as eval wrote
    import sarzoo

    loaded = sarzoo.load(run / "best.pt", runtime={"amp": "off"})
    assert loaded.scene_preprocessing(bright.astype(np.float32)).vmin == pytest.approx(rng["vmin"], abs=1e-6)
    np.testing.assert_allclose(loaded.reconstruct(bright.astype(np.float32)), rec, rtol=1e-4)


def test_synthetic_dualpol_trains_on_the_generators_vv_vh_pairs(tmp_path):
    """Without --data a dual-pol recipe trains on synthetic VV/VH pairs: two clip ranges, the
    cross-polarised one lower (VH is 5–12 dB below VV in the generator)."""
    r = run_cli("train", "tiny_dualpol", "--max-steps", 1, "--device", "cpu", "--set", "data.synthetic.n_scenes=12",
                env=ENV, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    from sarzoo import checkpoint

    prep = checkpoint.read(tmp_path / "runs" / "tiny_dualpol" / "last.pt")["preprocessing"]
    assert prep["bands"] == ["VV", "VH"] and len(prep["vmin"]) == len(prep["vmax"]) == 2
    assert prep["vmax"][1] < prep["vmax"][0] and prep["vmin"][1] < prep["vmin"][0]
