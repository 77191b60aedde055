"""``sarzoo rd``: JPEG 2000 and bicubic points, BD figures, the report's shape, --data, plots and errors.

Checkpoints are ``sarzoo.build`` models with random weights written with a fitted-looking clip range
(no training: a rate–distortion report measures whatever the model does), on the test recipe's 32 px
tiles and 64 px synthetic scenes. Model points go through ``sarzoo.rd.codecs._model_roundtrip``, the
one adapter to ``sarzoo.codec.roundtrip``; a test swaps it to give a model known rates.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests._train_common import TINY
from tests.conftest import run_cli

#: 10 synthetic 64 px scenes → 2 validation scenes (val_fraction 0.2), 4 tiles of 32 px each.
DATA = ["data.synthetic.n_scenes=10", "data.synthetic.size=64"]


def make_ckpt(path, latent=4, vmin=-30.0, vmax=5.0, sets=()):
    import sarzoo
    from sarzoo.checkpoint import model_payload, write
    from sarzoo.data.preprocess import Preprocessing

    model = sarzoo.build(TINY, [f"encoder.stages.2.out_channels={latent}", *DATA, *sets])
    c = int(model.input_shape[0])
    prep = Preprocessing(vmin=vmin if c == 1 else [vmin] * c, vmax=vmax if c == 1 else [vmax] * c)
    write(model_payload(model, model.recipe, prep), path)
    return path


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("rd")
    return [make_ckpt(d / f"z{c}.pt", latent=c) for c in (2, 4)]


def _image(h=64, w=64, seed=0):
    """A speckled scene as the model sees it: (1, H, W) in [0, 1] and its mask."""
    from sarzoo.data.dataset import synthetic_scenes
    from sarzoo.data.preprocess import Preprocessing

    sc = synthetic_scenes(1, max(h, w), 4, seed)[0]
    x, m = Preprocessing(vmin=-30, vmax=5).forward(sc.read(0, 0, h, w))
    return np.asarray(x, np.float32).reshape(1, h, w), np.asarray(m).reshape(1, h, w)[0]


# --- codecs ------------------------------------------------------------------------------------

def test_jpeg2000_rate_is_the_codestreams_real_size_and_rises_with_the_target(tmp_path):
    import rasterio

    from sarzoo.metrics import psnr
    from sarzoo.rd.codecs import jp2_decode, jp2_encode, jpeg2000

    x, m = _image(96, 80)
    bits, quality = [], []
    for rate in (0.25, 0.5, 1.0, 2.0, 4.0):
        data = jp2_encode(x, m, rate)
        assert data[:4] == b"\xff\x4f\xff\x51"  # a raw J2K codestream: SOC, SIZ; no JP2 boxes or metadata
        y, b = jpeg2000(x, m, rate)
        assert b == 8 * len(data)  # the rate is the bytes produced, not the target
        assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
        # the bytes are a JPEG 2000 file any reader decodes to the same image
        f = tmp_path / f"r{rate}.j2k"
        f.write_bytes(data)
        with pytest.warns(rasterio.errors.NotGeoreferencedWarning), rasterio.open(f) as ds:
            np.testing.assert_array_equal(ds.read().astype(np.float32) / 65535, y)
        np.testing.assert_array_equal(jp2_decode(data), y)
        bits.append(b / x[0].size)
        quality.append(psnr(x, y))
    assert all(b > a for a, b in zip(bits, bits[1:])), bits
    assert all(b > a for a, b in zip(quality, quality[1:])), quality
    assert 0.5 * 4.0 < bits[-1] < 1.5 * 4.0  # above a small image's header floor the target is met closely


def test_jpeg2000_fills_nodata_with_the_valid_mean_and_codes_small_or_odd_images():
    from sarzoo.rd.codecs import _filled, jp2_resolutions, jpeg2000

    x, m = _image(37, 50)
    m = m.copy()
    m[:10, :20] = False
    x[0][~m] = 0.0  # no-data as the model gets it (fill 0)
    f = _filled(x, m)
    assert np.allclose(f[0][~m], x[0][m].mean()) and np.array_equal(f[0][m], x[0][m])
    y, bits = jpeg2000(x, m, 1.0)
    assert y.shape == (1, 37, 50) and bits > 0
    assert jp2_resolutions(37, 50) == 4 and jp2_resolutions(4096, 4096) == 6 and jp2_resolutions(3, 3) == 1


def test_bicubic_is_evals_reference_and_counts_16_bits_per_kept_number():
    from sarzoo.metrics import classical_reference
    from sarzoo.rd.codecs import bicubic

    x, m = _image(64, 64)
    y, bits = bicubic(x, m, 4.0)
    np.testing.assert_array_equal(y, classical_reference(x, round(x.size / 16)))  # eval's 16× reference
    assert bits == 16 * 16 * 16
    assert bicubic(x, m, 2.0)[1] == 32 * 32 * 16


# --- BD figures --------------------------------------------------------------------------------

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNRS = [20.0, 23.0, 25.5, 28.0, 30.0]


def test_bd_of_a_curve_against_itself_is_zero_and_against_a_shifted_copy_the_shift():
    from sarzoo.rd.curves import bd

    same = bd(RATES, PSNRS, RATES, PSNRS)
    assert same["bd_rate"] == pytest.approx(0, abs=1e-9) and same["bd_value"] == pytest.approx(0, abs=1e-9)
    cheaper = bd(RATES, PSNRS, [r * 0.8 for r in RATES], PSNRS)  # the same quality for 20 % fewer bits
    assert cheaper["bd_rate"] == pytest.approx(-20.0, abs=1e-6) and cheaper["note"] is None
    better = bd(RATES, PSNRS, RATES, [p + 1.5 for p in PSNRS])  # 1.5 dB more at every rate
    assert better["bd_value"] == pytest.approx(1.5, abs=1e-9) and better["bd_rate"] < 0


def test_bd_needs_four_rising_overlapping_points():
    from sarzoo.rd.curves import bd

    assert bd(RATES, PSNRS, RATES[:3], PSNRS[:3])["note"] == "n/a (needs ≥ 4 points, has 3)"
    assert bd(RATES, PSNRS, [0.5], [21.0])["bd_rate"] is None
    assert "rise" in bd(RATES, PSNRS, RATES[:4], [20, 24, 23, 26])["note"]
    apart = bd(RATES, PSNRS, [10, 20, 40, 80], [40, 41, 42, 43])
    assert apart["bd_rate"] is None and "overlap" in apart["note"]
    # repeated points (JPEG 2000 targets under a small image's header floor) count once
    assert bd(RATES + [0.1], PSNRS + [20.0], RATES, PSNRS)["bd_rate"] == pytest.approx(0, abs=1e-9)
    assert bd([0.1, 0.2, 0.3, None], [1, 2, 3, 4], RATES, PSNRS)["note"].startswith("anchor: n/a")


def test_bd_against_the_clean_truth_uses_each_curves_rising_part():
    """Against the clean truth a codec's quality peaks (then it spends bits on speckle): cut at the peak."""
    from sarzoo.rd.curves import bd, prepare

    peaked = PSNRS[:4] + [27.0, 26.0]
    assert prepare(RATES + [3.2], peaked, rising_part=True)[:2] == (RATES[:4], PSNRS[:4])
    assert "rise" in prepare(RATES + [3.2], peaked)[2]
    b = bd(RATES + [3.2], peaked, RATES, [p + 1 for p in PSNRS], rising_part=True)
    assert b["bd_value"] == pytest.approx(1.0, abs=1e-9)


# --- the report --------------------------------------------------------------------------------

def test_cli_table_json_plot_and_out(ckpts, tmp_path):
    png, out = tmp_path / "rd.png", tmp_path / "out"
    r = run_cli("rd", *ckpts, "--jp2-rates", "0.5,1", "2", "--bicubic-factors", "2", "4", "--json", "--plot", png,
                "--out", out, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # exactly one JSON object
    assert [c["name"] for c in rep["curves"]] == ["train_tiny32", "JPEG 2000", "bicubic"]
    model, jp2, bic = rep["curves"]
    assert model["codec"] == "model" and len(model["points"]) == 2  # one recipe: one curve, a point each
    assert [p["target_bpp"] for p in jp2["points"]] == [0.5, 1.0, 2.0]
    assert [p["factor"] for p in bic["points"]] == [4.0, 2.0]  # sorted by rate
    d = rep["data"]
    assert d["source"] == "synthetic" and d["split"] == "val" and d["n_images"] == 2
    assert d["valid_pixels"] == 2 * 64 * 64
    for c in rep["curves"]:
        for p in c["points"]:
            assert p["bpp"] == pytest.approx(p["bits"] / d["valid_pixels"])
            assert set(p) >= {"psnr", "ssim", "enl_ratio", "epi", "psnr_clean", "ssim_clean", "epi_clean"}
            assert 0 < p["psnr"] < 80
            assert p["epi"] is None or -1 <= p["epi"] <= 1  # None: a random-weight model's flat output
    assert bic["points"][0]["bpp"] == pytest.approx(16 / 16)  # 1/16 of the numbers at 16 bits
    assert model["bd"]["psnr"]["note"] == "n/a (needs ≥ 4 points, has 2)" and model["bd"]["psnr"]["bd_rate"] is None
    assert set(model["bd"]) == {"psnr", "ssim", "psnr_clean"}
    assert set(rep["input"]) == {"psnr", "ssim", "epi"}
    assert json.loads((out / "rd.json").read_text()) == rep
    assert "JPEG 2000" in (out / "rd.txt").read_text() and "BD against JPEG 2000" in (out / "rd.txt").read_text()
    import matplotlib.image

    for f in (png, out / "rd.png"):
        img = matplotlib.image.imread(f)
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600


def test_model_and_bicubic_points_are_what_eval_reports(ckpts):
    """rd measures what eval measures: the model point is eval's full-scene figures on the same images (up
    to the difference between the decoded bitstream, decoded in float32 on the codec's tiles, and eval's
    fast-path reconstruction: a few hundredths of a dB), the bicubic point at the model's compression is
    eval's classical reference exactly."""
    from sarzoo.evaluation import evaluate
    from sarzoo.rd import rd_report

    ev = evaluate(ckpts[1], patches=False, device="cpu")
    rep = rd_report([ckpts[1]], jp2_rates=[], bicubic_factors=[4.0], device="cpu")
    assert [c["name"] for c in rep["curves"]] == ["train_tiny32", "bicubic"]
    model, bic = rep["curves"][0]["points"][0], rep["curves"][1]["points"][0]
    # a random-weight model's output is nearly flat: its ENL ratio and EPI divide by a near-zero variance
    # and do not survive the float32/bf16 difference, so only PSNR and SSIM compare
    for k in ("psnr", "ssim"):
        assert model[k] == pytest.approx(ev[k], rel=5e-3, abs=1e-3), k
    for k in ("psnr", "ssim", "enl_ratio", "epi"):
        assert bic[k] == pytest.approx(ev["reference"][k], rel=1e-9, abs=1e-12), k
    assert model["psnr_clean"] == pytest.approx(ev["clean"]["model"]["psnr"], rel=5e-3)
    assert rep["input"]["psnr"] == pytest.approx(ev["clean"]["input"]["psnr"], rel=1e-9)
    assert model["latent_shape"] == ev["latent_shape"] and model["checkpoint"] == ev["checkpoint"]


def test_a_curve_of_four_checkpoints_gets_bd_figures(tmp_path, monkeypatch):
    """Four checkpoints of one recipe form one curve; a 'model' that is JPEG 2000 at the anchor's own rates
    has BD-rate 0 against it (the adapter is swapped: the real bits are the bitstream codec's)."""
    from sarzoo.rd import codecs, rd_report

    rates = {1: 0.25, 2: 0.5, 3: 1.0, 4: 2.0}
    paths = [make_ckpt(tmp_path / f"c{c}.pt", latent=c) for c in rates]
    monkeypatch.setattr(codecs, "_model_roundtrip",
                        lambda model, x, m: codecs.jpeg2000(x, m, rates[model.latent_shape[0]]))
    rep = rd_report(curves=[("as-jp2", paths)], jp2_rates=list(rates.values()), bicubic_factors=[], device="cpu")
    curve = rep["curves"][0]
    assert curve["name"] == "as-jp2" and len(curve["points"]) == 4
    for k in ("psnr", "ssim"):
        b = curve["bd"][k]
        assert b["bd_rate"] == pytest.approx(0, abs=1e-6) and b["bd_value"] == pytest.approx(0, abs=1e-9), k
        assert b["overlap_rate"] == pytest.approx(1.0)
    b = curve["bd"]["psnr_clean"]  # against the clean truth JPEG 2000 peaks early: too few rising points, or 0
    assert (b["note"] or "").startswith("n/a") or b["bd_rate"] == pytest.approx(0, abs=1e-6)
    from sarzoo.rd.report import format_table

    assert "as-jp2 (4 points): PSNR: BD-rate +0.0 %" in format_table(rep)


def test_geotiff_data_with_nodata(ckpts, tmp_path):
    """--data: a GeoTIFF's scenes whole; the rate is per valid pixel, no-data out of it and of every metric."""
    import rasterio

    from sarzoo.rd import rd_report

    rng = np.random.default_rng(1)
    a = (0.05 * rng.gamma(4, 0.25, size=(48, 72))).astype(np.float32)
    a[:, 36:] *= 4
    a[:16, :24] = -9999.0
    tif = tmp_path / "s1.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=48, width=72, count=1, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32633", transform=rasterio.Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(a, 1)
    rep = rd_report([ckpts[0]], [str(tif)], jp2_rates=[1.0], bicubic_factors=[4.0], device="cpu")
    valid = 48 * 72 - 16 * 24
    assert rep["data"]["source"] == "files" and rep["data"]["valid_pixels"] == valid
    bic = rep["curves"][2]["points"][0]
    assert bic["bits"] == 12 * 18 * 16 and bic["bpp"] == pytest.approx(12 * 18 * 16 / valid)
    assert "psnr_clean" not in bic and "input" not in rep  # files carry no clean truth
    assert all(math.isfinite(c["points"][0]["psnr"]) for c in rep["curves"])


def test_two_channel_data_and_clip_warnings(tmp_path, recwarn):
    """Dual-pol: JPEG 2000 codes both bands as one codestream's components, bicubic keeps the latent's count
    over both; and files far outside the clip range get eval's ClipRangeWarning, in the report too."""
    from sarzoo.data.preprocess import ClipRangeWarning
    from sarzoo.rd import rd_report

    two = make_ckpt(tmp_path / "two.pt", sets=["input.channels=2"])
    rep = rd_report([two], jp2_rates=[2.0], bicubic_factors=[4.0], device="cpu")
    assert rep["data"]["channels"] == 2 and rep["data"]["valid_pixels"] == 2 * 64 * 64
    jp2, bic = rep["curves"][1]["points"][0], rep["curves"][2]["points"][0]
    assert 1.0 < jp2["bpp"] < 3.0 and bic["bpp"] == pytest.approx(2 * 16 * 16 * 16 / (64 * 64))
    assert rep["warnings"] == []

    hot = tmp_path / "hot.npy"
    np.save(hot, np.full((64, 64), 1e6, np.float32) * np.random.default_rng(0).gamma(4, 0.25, (64, 64)))
    one = make_ckpt(tmp_path / "one.pt")
    rep = rd_report([one], [str(hot)], jp2_rates=[1.0], bicubic_factors=[], device="cpu")
    assert len(rep["warnings"]) == 1 and "hot.npy" in rep["warnings"][0] and "clip range" in rep["warnings"][0]
    assert any(issubclass(w.category, ClipRangeWarning) for w in recwarn)


# --- errors ------------------------------------------------------------------------------------

def _refused(argv, capsys, needle, tmp_path=None):
    from sarzoo.cli import main

    before = sorted(p.name for p in tmp_path.iterdir()) if tmp_path else None
    assert main(["rd", *map(str, argv)]) == 2, argv
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.startswith("sarzoo rd: error:"), err
    assert err.count("\n") == 1, err
    if tmp_path:
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
    return err


def test_bad_checkpoints_rates_and_outputs_exit_2(ckpts, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 50)
    png = tmp_path / "o.png"
    _refused([junk, "--plot", png], capsys, "junk.pt", tmp_path)
    _refused([tmp_path / "missing.pt"], capsys, "no such checkpoint")
    _refused([], capsys, "no checkpoint given")
    _refused([ckpts[0], ckpts[0]], capsys, "given twice")
    for bad, needle in ((["0"], "--jp2-rates: '0' is not a target rate"), (["abc"], "'abc' is not a number"),
                        (["-1"], "--jp2-rates"), (["16"], "below the uncompressed 16 bits per pixel"),
                        (["0.5", "0.5"], "given twice")):
        _refused([ckpts[0], "--jp2-rates", *bad, "--plot", png], capsys, needle, tmp_path)
    _refused([ckpts[0], "--bicubic-factors", "1"], capsys, "--bicubic-factors: '1' is not a downsampling factor")
    _refused([ckpts[0], "--plot", tmp_path / "o.jpg"], capsys, "ending in .png")
    (tmp_path / "afile").write_text("x")
    _refused([ckpts[0], "--out", tmp_path / "afile"], capsys, "not a directory")
    _refused(["--curve", "nameonly"], capsys, "expected NAME=CKPT")
    _refused(["--curve", f"JPEG 2000={ckpts[0]}"], capsys, "a curve needs a name of its own")
    untrained = tmp_path / "untrained.pt"
    run = run_cli("build", TINY, "--output", untrained, env={"OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    _refused([untrained], capsys, "untrained model file")


def test_checkpoints_that_see_other_images_are_refused(ckpts, tmp_path, capsys):
    other_clip = make_ckpt(tmp_path / "clip.pt", vmin=-25.0, vmax=0.0)
    _refused([ckpts[0], other_clip], capsys, "clip range")
    other_data = make_ckpt(tmp_path / "data.pt", sets=["data.seed=3"])
    _refused([ckpts[0], other_data], capsys, "is not the images of")
    two = make_ckpt(tmp_path / "two.pt", sets=["input.channels=2"])
    _refused([ckpts[0], two], capsys, "takes 2-channel images")


def test_no_valid_pixel_is_refused(ckpts, tmp_path, capsys):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((40, 40), np.float32))  # zeros are no-data in linear intensity
    _refused([ckpts[0], "--data", empty, "--jp2-rates", "1", "--json"], capsys, "no valid pixel")


def test_without_a_jpeg2000_driver_the_error_says_so(ckpts, tmp_path):
    png = tmp_path / "o.png"
    r = run_cli("rd", ckpts[0], "--plot", png, env={"GDAL_SKIP": "JP2OpenJPEG", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and "JPEG 2000 is not available" in r.stderr and "GDAL_SKIP" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not png.exists()
    # without JPEG 2000 points the report still runs
    r = run_cli("rd", ckpts[0], "--jp2-rates", "--bicubic-factors", "4", "--json",
                env={"GDAL_SKIP": "JP2OpenJPEG", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [c["name"] for c in rep["curves"]] == ["train_tiny32", "bicubic"]
    assert "no JPEG 2000 points" in rep["curves"][0]["bd"]["psnr"]["note"]


def test_help_stays_light():
    """`sarzoo rd --help` imports neither torch nor matplotlib (the command loads them in run)."""
    import subprocess
    import sys

    code = ("import sys; from sarzoo.cli import make_parser; make_parser(); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'rasterio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_rd_counts_only_the_images_it_measures(ckpts, tmp_path):
    """An image with no valid pixel is skipped and not counted."""
    from sarzoo.rd import rd_report

    rng = np.random.default_rng(2)
    a = (0.05 * rng.gamma(4, 0.25, size=(80, 70))).astype(np.float32)
    a[:32, :32] = np.nan   # the first of the 2 × 2 windows of 32 px (remainders merged) is all no-data
    np.save(tmp_path / "s.npy", a)
    rep = rd_report([ckpts[0]], [str(tmp_path / "s.npy")], jp2_rates=[], bicubic_factors=[], device="cpu",
                    window=32)
    assert rep["data"]["n_images"] == 3 and rep["data"]["valid_pixels"] == 80 * 70 - 32 * 32
