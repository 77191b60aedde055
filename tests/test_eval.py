"""``sarzoo eval``: figures on a checkpoint trained for a few steps, tiling, --data, errors.

One real training run (a subprocess of the CLI, as a user runs it) feeds the module; everything
else runs in-process to stay fast. The tiny recipe's data is shrunk to six 96 px scenes.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import RECIPES, run_cli

#: Six 96 px scenes → 5 training scenes (20 patches, 5 steps of 4) and 1 validation scene (4 patches).
#: Single-look speckle: over the generator's −30..+10 dB at 4 looks, the speckled input itself is closer to
#: the clean scene than the 16× classical reference is (the reference blurs bright points and thin lines);
#: at one look the reference's averaging clearly wins, which one check below relies on.
SMALL_DATA = ["--set", "data.synthetic.n_scenes=6", "--set", "data.synthetic.size=96", "--set", "data.stride=64",
              "--set", "data.synthetic.looks=1",
              "--set", "train.batch_size=4", "--set", "train.histogram_every=0", "--set", "train.preview_samples=1",
              "--set", "train.warmup.epochs=0", "--set", "train.lr=0.003",
              "--set", "runtime.amp='off'"]  # fp32 like eval, so the figures compare exactly


def train_small(out, epochs: int = 1, extra=()):
    r = run_cli("train", RECIPES / "tiny.yaml", "--out", out, "--epochs", epochs, "--device", "cpu",
                *SMALL_DATA, *extra, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_small(tmp_path_factory.mktemp("evalrun") / "run")


def _eval(*args, **kw):
    from sarzoo.evaluation import evaluate

    return evaluate(*args, **kw)


def _finite(v):
    return v is not None and math.isfinite(v)


def _check_block(b, with_enl=True):
    assert 0 < b["psnr"] < 80
    assert 0 <= b["ssim"] <= 1
    assert -1 <= b["epi"] <= 1
    if with_enl:
        assert b["enl_ratio"] is None or b["enl_ratio"] > 0


def test_cli_json_on_checkpoint(run_dir):
    best = run_dir / "best.pt"
    assert best.is_file()
    r = run_cli("eval", best, "--json", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)  # exactly one JSON object on stdout
    for k in ("psnr", "ssim", "enl_ratio", "epi", "n_images", "reference"):
        assert k in rep, k
    assert set(rep["reference"]) >= {"psnr", "ssim", "enl_ratio", "epi"}
    _check_block(rep)
    _check_block(rep["reference"])
    assert rep["n_images"] == 1 and rep["level"] == "scenes"
    assert rep["data"]["source"] == "synthetic" and rep["data"]["split"] == "val"
    # synthetic data has a clean truth: model, reference and speckled input measured against it
    assert set(rep["clean"]) == {"model", "reference", "input"}
    assert rep["clean"]["reference"]["psnr"] > rep["clean"]["input"]["psnr"]  # averaging removes speckle
    img = rep["scenes"]["images"][0]
    assert img["shape"] == [96, 96] and "reference" in img
    assert rep["patches"]["n_images"] == 4

    # the patch level is exactly what training validated on: same figures as the checkpoint's
    ck = torch.load(best, weights_only=True)
    assert rep["patches"]["reference"]["psnr"] == pytest.approx(ck["reference"]["psnr"], abs=1e-4)
    assert rep["patches"]["psnr"] == pytest.approx(ck["metrics"]["psnr"], abs=1e-3)
    # ... against the clean truth too: validation and eval share metrics.batch_metrics
    assert rep["patches"]["clean"]["model"]["ssim"] == pytest.approx(ck["metrics"]["ssim_clean"], abs=1e-3)
    assert rep["patches"]["clean"]["reference"]["psnr"] == pytest.approx(ck["reference"]["psnr_clean"], abs=1e-4)
    assert rep["patches"]["clean"]["input"]["psnr"] == pytest.approx(ck["reference"]["psnr_clean_input"], abs=1e-4)
    assert rep["epoch"] == ck["epoch"]


def test_text_report_and_run_dir_argument(run_dir, capsys):
    from sarzoo.cli import main

    assert main(["eval", str(run_dir), "--no-patches"]) == 0  # a run directory means its best.pt
    out = capsys.readouterr().out
    assert "best.pt" in out
    assert "classical reference" in out and "full scenes" in out and "verdict" in out
    assert "against the clean reflectivity" in out


def test_heldout_profile_scenes(run_dir):
    """--heldout: scenes of the generator's held-out profile at the checkpoint's scene size, read with the
    checkpoint's preprocessing, reported like any evaluation."""
    rep = _eval(run_dir / "best.pt", heldout=3)
    assert rep["data"]["source"] == "synthetic" and rep["data"]["split"] == "heldout"
    assert "held-out" in rep["data"]["description"] and rep["n_images"] == 3
    imgs = rep["scenes"]["images"]
    assert all("heldout" in i["id"] for i in imgs) and [i["shape"] for i in imgs] == [[96, 96]] * 3
    assert rep["patches"]["n_images"] == 3 * 4
    _check_block(rep)
    _check_block(rep["reference"])
    assert set(rep["clean"]) == {"model", "reference", "input"}
    assert rep["data"]["preprocessing"] == torch.load(run_dir / "best.pt", weights_only=True)["preprocessing"]
    own = _eval(run_dir / "best.pt", patches=False)
    assert own["data"]["split"] == "val" and own["psnr"] != rep["psnr"]
    again = _eval(run_dir / "best.pt", heldout=3, patches=False)
    assert again["psnr"] == pytest.approx(rep["psnr"], abs=1e-9)   # the same scenes every time


def test_heldout_on_a_checkpoint_trained_on_files(run_dir, tmp_path):
    """Held-out scenes are linear intensity, whatever the checkpoint's files held: its clip range is kept,
    its domain and nodata are not (amplitude DN with nodata 0 would misread every synthetic pixel)."""
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    ck["recipe"]["data"].update(paths=[str(tmp_path / "gone.tif")], domain="amplitude", nodata=0.0)
    ck["preprocessing"].update(domain="amplitude", nodata=0.0)
    files = tmp_path / "files.pt"
    torch.save(ck, files)
    rep = _eval(files, heldout=2, patches=False)
    assert rep["data"]["split"] == "heldout" and rep["n_images"] == 2
    pp = rep["data"]["preprocessing"]
    assert pp["domain"] == "intensity" and pp["nodata"] is None
    assert (pp["vmin"], pp["vmax"]) == (ck["preprocessing"]["vmin"], ck["preprocessing"]["vmax"])
    same = _eval(run_dir / "best.pt", heldout=2, patches=False)
    assert rep["psnr"] == pytest.approx(same["psnr"], abs=1e-9)


def test_heldout_flag(run_dir, capsys):
    import argparse

    from sarzoo.cli import main
    from sarzoo.commands import evaluate as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    assert parser.parse_args(["ck.pt", "--heldout"]).heldout == 32
    assert parser.parse_args(["ck.pt"]).heldout is None
    assert main(["eval", str(run_dir), "--heldout", "2", "--no-patches", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_images"] == 2 and rep["data"]["split"] == "heldout"
    for bad, needle in ((["--heldout", "0"], "--heldout takes a count"),
                        (["--heldout", "2", "--data", "x.npy"], "combined with --data"),
                        (["--heldout", "--split", "val"], "combined with --split")):
        assert main(["eval", str(run_dir), *bad]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and err.count("\n") == 1


def _speckled(h, w, seed=0, level=0.05):
    rng = np.random.default_rng(seed)
    clean = np.full((h, w), level, np.float32)
    clean[:, w // 2:] *= 4
    return (clean * rng.gamma(4, 0.25, size=(h, w))).astype(np.float32)


def test_eval_on_npy_files(run_dir, tmp_path, capsys):
    scene = tmp_path / "scene.npy"
    np.save(scene, _speckled(150, 130))
    stack = tmp_path / "stack.npy"
    np.save(stack, np.stack([_speckled(64, 64, seed=s) for s in range(3)]))
    rep = _eval(run_dir / "best.pt", [str(scene), str(stack)])
    assert rep["data"]["source"] == "files" and rep["data"]["split"] == "all"
    assert rep["n_images"] == 4 and rep["patches"]["n_images"] == 9 + 3  # 3×3 grid on 150×130, 1 per frame
    shapes = sorted(tuple(i["shape"]) for i in rep["scenes"]["images"])
    assert shapes == [(64, 64)] * 3 + [(150, 130)]
    _check_block(rep)
    _check_block(rep["reference"])
    assert "clean" not in rep  # files carry no clean truth
    assert capsys.readouterr() == ("", "")  # evaluation returns a report; printing is the command's


def test_eval_geotiff_with_nodata_and_saved_images(run_dir, tmp_path):
    rasterio = pytest.importorskip("rasterio")

    a = _speckled(100, 90, seed=3)
    a[:30, :20] = -9999.0
    tif = tmp_path / "s1.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=100, width=90, count=1, dtype="float32", nodata=-9999.0,
                       crs="EPSG:32633", transform=rasterio.Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(a, 1)
    out = tmp_path / "imgs"
    rep = _eval(run_dir / "best.pt", [str(tif)], save_images=out)
    img = rep["scenes"]["images"][0]
    assert img["shape"] == [100, 90]
    _check_block(img)
    with rasterio.open(img["reconstruction"]) as src:
        rec = src.read(1)
        assert src.crs.to_epsg() == 32633  # georeferencing kept
        assert src.nodata == -9999.0      # no-data as sarzoo reconstruct writes it: the input's value
    assert rec.shape == (100, 90)
    assert (rec[:30, :20] == -9999.0).all() and np.isfinite(rec).all()
    assert (rec[30:, 20:] > 0).all()  # back in linear intensity
    assert (out / "metrics.json").is_file() and img["png"].endswith(".png")
    assert open(img["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    # no-data is masked: filling it with another value does not change the figures
    b = a.copy()
    b[:30, :20] = np.nan
    np.save(tmp_path / "same.npy", b)
    rep2 = _eval(run_dir / "best.pt", [str(tmp_path / "same.npy")])
    assert rep2["psnr"] == pytest.approx(rep["psnr"], abs=1e-6)


def test_windows_keep_memory_bounded_without_changing_tiling(run_dir, tmp_path):
    """A scene cut into windows (as a huge scene would be) tiles exactly as the whole scene."""
    scene = tmp_path / "big.npy"
    np.save(scene, _speckled(200, 140, seed=5))
    whole = _eval(run_dir / "best.pt", [str(scene)])
    out = tmp_path / "win"
    windowed = _eval(run_dir / "best.pt", [str(scene)], window=128, patches=False, save_images=out)
    assert windowed["n_images"] == 2  # 2 windows down, each reported; the 12 px remainder across is merged
    ids = [i["id"] for i in windowed["scenes"]["images"]]
    assert ids[0].endswith("[0:128, 0:140]") and ids[1].endswith("[128:200, 0:140]")
    rec = np.load(windowed["scenes"]["images"][0]["reconstruction"])
    assert rec.shape == (200, 140)
    from sarzoo import load

    model, prep = load(run_dir / "best.pt")
    direct = load(run_dir / "best.pt").reconstruct(np.load(scene))
    np.testing.assert_allclose(rec, direct, rtol=1e-5)
    assert whole["n_images"] == 1


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing.pt", "no such checkpoint"),
    (lambda p: (p / "junk.pt").write_bytes(b"\x00garbage" * 50) and p / "junk.pt", "junk.pt"),
    (lambda p: (p / "scene.tif").write_bytes(b"II*\x00" + bytes(64)) and p / "scene.tif",
     "scene.tif: not a sarzoo checkpoint (not a file written by torch.save"),
    (lambda p: torch.save({"weights": torch.zeros(2)}, p / "other.pt") or p / "other.pt",
     "other.pt: not a sarzoo checkpoint (no sarzoo format marker)"),
    (lambda p: p, "without best.pt or last.pt"),
])
def test_bad_checkpoints_exit_2_without_traceback(tmp_path, capsys, make, needle):
    from sarzoo.cli import main

    path = make(tmp_path)
    assert main(["eval", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert err.startswith("sarzoo eval: error:") and err.count("\n") == 1


def test_bad_checkpoint_leaves_a_save_images_directory_byte_identical(run_dir, tmp_path, capsys):
    """Issue 9: a damaged checkpoint is refused before ``--save-images DIR`` is touched."""
    import hashlib

    from sarzoo.cli import main

    out = tmp_path / "figures"
    out.mkdir()
    (out / "000_scene.png").write_bytes(b"an earlier evaluation's figure")
    (out / "metrics.json").write_text('{"psnr": 30.0}\n')

    def sums():
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
                for p in sorted(out.rglob("*"))}

    before = sums()
    ck = torch.load(run_dir / "best.pt", weights_only=True)
    damaged = [("weights", {**ck, "model": {**ck["model"], "decoder.head.conv.bias": torch.zeros(2)}},
                "key 'model.decoder.head.conv.bias'"),
               ("recipe", {**ck, "recipe": {**ck["recipe"], "input": "big"}}, "key 'input'"),
               ("epoch", {**ck, "epoch": 2.5}, "key 'epoch'")]
    for name, payload, needle in damaged:
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        assert main(["eval", str(path), "--save-images", str(out), "--json"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and needle in err and "Traceback" not in err, err
        assert sums() == before


def test_bad_data_and_options_exit_2(run_dir, tmp_path, capsys):
    from sarzoo.cli import main

    best = str(run_dir / "best.pt")
    cases = [
        ["eval", best, "--data", str(tmp_path / "nope.npy")],
        ["eval", best, "--overlap", "64"],
        ["eval", best, "--set", "train.lr=1"],
        ["eval", best, "--no-scenes", "--no-patches"],
    ]
    (tmp_path / "file").write_text("x")
    cases.append(["eval", best, "--save-images", str(tmp_path / "file")])
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err, argv


def test_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    r = run_cli("eval", bad)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "bad.pt" in r.stderr


def test_domain_override_decides_which_pixels_are_valid(run_dir, tmp_path):
    """0 is no-data for intensity but a valid 0 dB: with --set data.domain=db a patch full of zeros
    must be evaluated, not dropped by the min_valid filter read the checkpoint's (intensity) way."""
    rng = np.random.default_rng(3)
    db = rng.uniform(-20.0, -3.0, size=(128, 128)).astype(np.float32)
    db[:64, :64] = 0.0  # one whole 64 px patch of exactly 0 dB
    np.save(tmp_path / "scene_db.npy", db)
    rep = _eval(run_dir / "best.pt", [str(tmp_path / "scene_db.npy")], overrides=["data.domain=db"],
                device="cpu")
    assert rep["patches"]["n_images"] == 4


def test_reconstruct_rejects_a_batch_size_below_one(run_dir):
    import sarzoo
    from sarzoo.errors import SarzooError

    model, _ = sarzoo.load(run_dir / "best.pt")
    with pytest.raises(SarzooError, match="batch_size must be at least 1"):
        sarzoo.reconstruct(model, np.zeros((64, 64), np.float32), batch_size=0)


def test_summarise_weighs_batches_and_skips_undefined_values():
    from sarzoo.evaluation.figures import summarise

    def fig(psnr, ref_psnr=20.0):
        return {"psnr": psnr, "ssim": 0.5, "enl_ratio": float("nan"), "epi": 0.1,
                "reference": {"psnr": ref_psnr, "ssim": 0.4, "enl_ratio": 2.0, "epi": 0.0}}

    s = summarise([fig(10.0), fig(20.0), fig(float("nan"))], weights=[3, 1, 4])
    assert s["n_images"] == 8
    assert s["psnr"] == pytest.approx((3 * 10.0 + 20.0) / 4)  # a NaN drops out with its weight
    assert s["enl_ratio"] is None and s["reference"]["psnr"] == pytest.approx(20.0)
    assert "clean" not in s
    per_image = summarise([fig(10.0), fig(20.0)])
    assert per_image["n_images"] == 2 and per_image["psnr"] == pytest.approx(15.0)


def test_evaluation_and_inference_stay_below_training_and_the_cli():
    """Evaluation is a library: it may use core and data, never the trainer or the command line
    (a lazy import inside a function counts too, hence reading the sources)."""
    import ast
    from pathlib import Path

    import sarzoo

    root = Path(sarzoo.__file__).parent
    files = [*sorted((root / "inference").glob("*.py")), *sorted((root / "evaluation").glob("*.py"))]
    assert len(files) > 8
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)  # `from sarzoo import train` too
                     else [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(("sarzoo.train", "sarzoo.commands", "sarzoo.cli")), (f.name, name)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                pytest.fail(f"{f.name} prints; only sarzoo/commands/ may")


def _uncalibrated(tmp_path, name="s1_dn.npy"):
    """Uncalibrated values, 30..50 dB read as intensity: far above any σ0 clip range."""
    rng = np.random.default_rng(5)
    p = tmp_path / name
    np.save(p, (10.0 ** rng.uniform(3.0, 5.0, size=(96, 96))).astype(np.float32))
    return p


def test_clip_warning_names_the_file_fractions_and_remedy(run_dir, tmp_path, capsys):
    from sarzoo.data.preprocess import ClipRangeWarning

    bad = _uncalibrated(tmp_path)
    good = tmp_path / "good.npy"
    np.save(good, _speckled(96, 96))
    with pytest.warns(ClipRangeWarning) as caught:
        rep = _eval(run_dir / "best.pt", [str(bad), str(good)], device="cpu")
    msgs = [str(w.message) for w in caught if issubclass(w.category, ClipRangeWarning)]
    assert len(msgs) == 1 and rep["warnings"] == msgs  # the good file gets none
    assert msgs[0].startswith(f"{bad}: 100% of the valid pixels") and "100% above" in msgs[0]
    assert "calibrate" in msgs[0] and "data.domain" in msgs[0] and "retrain" in msgs[0]
    with pytest.warns(ClipRangeWarning):  # patches only: counted on the patches read
        assert len(_eval(run_dir / "best.pt", [str(bad)], scenes=False, device="cpu")["warnings"]) == 1
    assert capsys.readouterr() == ("", "")  # evaluation prints nothing


def test_clip_warning_is_one_stderr_line_of_the_command(run_dir, tmp_path):
    bad = _uncalibrated(tmp_path)
    r = run_cli("eval", run_dir / "best.pt", "--data", bad, "--no-patches", "--json", "--device", "cpu",
                env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"warning: {bad}: ") and "outside" in lines[0], r.stderr
    assert json.loads(r.stdout)["warnings"] == [lines[0][len("warning: "):]]


def test_loaded_reconstruct_warns_on_saturated_input(run_dir, tmp_path):
    import warnings

    import sarzoo
    from sarzoo.data.preprocess import ClipRangeWarning

    loaded = sarzoo.load(run_dir / "best.pt")
    with pytest.warns(ClipRangeWarning, match="the input: 100% of the valid pixels"):
        loaded.reconstruct(np.load(_uncalibrated(tmp_path)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClipRangeWarning)
        loaded.reconstruct(_speckled(64, 64))
