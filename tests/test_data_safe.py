"""Sentinel-1 SAFE products: small real products (``_safe_product``) read through GDAL's SAFE driver.

Calibrated values are checked against ESA's formula σ0 = DN² / A² with A interpolated by a slow
reference written separately from the reader; every broken product must end in one
``SarzooError`` naming the product (or its file), never a traceback.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sarzoo.data.readers import expand_paths, open_file, open_sources
from sarzoo.data.safe import SafeScene
from sarzoo.errors import SarzooError
from tests._safe_product import reference_gain, write_product, zip_product

LUT = {"sigma0": "sigmaNought", "beta0": "betaNought", "gamma0": "gamma"}


def expected(prod, swath, pol, calibration, rows, cols):
    """ESA's formula pixel by pixel: |DN|² / A², or |DN|² uncalibrated."""
    z = prod.samples[(swath, pol)]
    out = np.empty((len(rows), len(cols)))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            power = float(abs(complex(z[r, c])) ** 2)
            out[i, j] = power if calibration == "none" else \
                power / reference_gain(prod.luts[(swath, pol)][LUT[calibration]], r, c) ** 2
    return out


@pytest.fixture(scope="module")
def grd(tmp_path_factory):
    return write_product(tmp_path_factory.mktemp("grd"))


@pytest.mark.parametrize("calibration", ["sigma0", "beta0", "gamma0", "none"])
def test_dual_pol_grd_is_one_calibrated_two_channel_scene(grd, calibration):
    (s,) = open_file(grd.path, channels=2, calibration=calibration)
    assert isinstance(s, SafeScene) and s.pols == ["VV", "VH"] and s.channels == 2 and s.shape == (30, 40)
    a = s.read(0, 0, 30, 40)
    assert a.shape == (2, 30, 40) and a.dtype == np.float32
    for k, pol in enumerate(("VV", "VH")):
        np.testing.assert_allclose(a[k], expected(grd, "IW", pol, calibration, range(30), range(40)), rtol=1e-6)
    assert (a[:, :, :2] == 0).all()  # the swath border stays 0: no-data for preprocessing


def test_windows_anywhere_are_the_same_pixels(grd):
    (s,) = open_file(grd.path, channels=2)
    whole = s.read(0, 0, 30, 40)
    for r, c, h, w in [(0, 0, 1, 1), (29, 39, 1, 1), (7, 11, 13, 17), (20, 25, 10, 15), (10, 0, 5, 40)]:
        np.testing.assert_array_equal(s.read(r, c, h, w), whole[:, r:r + h, c:c + w])
        np.testing.assert_allclose(s.read(r, c, h, w)[1], expected(grd, "IW", "VH", "sigma0", range(r, r + h),
                                                                   range(c, c + w)), rtol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        s.read(25, 30, 10, 10)


def test_scenes_pickle_into_dataloader_workers(grd):
    import pickle

    (s,) = open_file(grd.path, channels=2, multilook=[2, 2])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(s)).read(1, 2, 3, 4), s.read(1, 2, 3, 4))


def test_bands_choose_polarisations_in_order(grd):
    (s,) = open_file(grd.path, channels=2, bands=["vh", "VV"])
    assert s.pols == ["VH", "VV"]
    both = open_file(grd.path, channels=2)[0].read(3, 4, 5, 6)
    np.testing.assert_array_equal(s.read(3, 4, 5, 6), both[::-1])
    (one,) = open_file(grd.path, channels=1, bands=["VH"])
    np.testing.assert_array_equal(one.read(3, 4, 5, 6), both[1:2])  # one band: (1, h, w)


def test_zip_of_the_product_opens_too(grd, tmp_path):
    (folder,) = open_file(grd.path, channels=2)
    for compress in (False, True):
        z = zip_product(grd.path, tmp_path / f"S1A_IW_GRDH_{int(compress)}.zip", compress=compress)
        (s,) = open_file(z, channels=2)
        assert s.id == str(z)
        np.testing.assert_array_equal(s.read(5, 6, 20, 30), folder.read(5, 6, 20, 30))


def test_a_product_is_one_input_never_searched_into(grd, tmp_path):
    z = zip_product(grd.path, tmp_path / "S1A_IW_GRDH_copy.zip")
    (tmp_path / "unrelated.zip").write_bytes(b"PK")
    assert expand_paths(str(grd.path)) == [str(grd.path)]
    assert expand_paths(str(grd.path.parent)) == [str(grd.path)]
    assert expand_paths(str(tmp_path)) == [str(z)]  # a product zip is found by its name, other zips skipped
    assert expand_paths(str(grd.path.parent / "*.SAFE")) == [str(grd.path)]
    # its measurement TIFFs stay reachable by a pattern (uncalibrated amplitude DN)
    assert len(expand_paths(str(grd.path / "measurement" / "*.tiff"))) == 2
    assert len(open_sources([str(grd.path), str(z)], channels=2)) == 2


def test_slc_swaths_are_scenes_and_multilook(tmp_path):
    prod = write_product(tmp_path, kind="SLC", pols=("VV",), swaths=("IW1", "IW2"), shape=(20, 24))
    scenes = open_file(prod.path, channels=1, bands=["VV"])
    assert [s.id for s in scenes] == [f"{prod.path}:IW1", f"{prod.path}:IW2"]
    assert {s.group for s in scenes} == {str(prod.path)}  # one product, one side of the split
    for s, swath in zip(scenes, ("IW1", "IW2")):
        np.testing.assert_allclose(s.read(0, 0, 20, 24)[0], expected(prod, swath, "VV", "sigma0", range(20), range(24)),
                                   rtol=1e-6)
    (ml, _) = open_file(prod.path, channels=1, multilook=[2, 4])
    assert ml.shape == (10, 6)
    full = expected(prod, "IW1", "VV", "sigma0", range(20), range(24))
    full[full == 0] = np.nan  # exact zeros are no-data, left out of a block
    np.testing.assert_allclose(ml.read(0, 0, 10, 6)[0], np.nanmean(full.reshape(10, 2, 6, 4), axis=(1, 3)), rtol=1e-5)


def test_single_pol_product_trains_through_build_datasets(tmp_path):
    from sarzoo.data import build_datasets

    prod = write_product(tmp_path, pols=("VV", "VH"), shape=(64, 96))
    train, val, prep, cfg = build_datasets({"paths": [str(prod.path)], "bands": ["VV"], "patch_size": 32,
                                            "val_fraction": 0.3, "min_valid": 0.5})
    assert len(train) and len(val)
    item = train[0]
    assert item["x"].shape == (1, 32, 32) and bool(item["mask"].any())
    assert cfg["calibration"] == "sigma0"
    reg = train.patches[0].region  # the clip range is fitted on the training part's calibrated σ0, in dB
    vv = open_file(prod.path, channels=1, bands=["VV"])[0].read(reg.row, reg.col, reg.height, reg.width)
    db = 10 * np.log10(vv[vv > 0])
    assert abs(prep.vmin - np.percentile(db, 1)) < 0.05 and abs(prep.vmax - np.percentile(db, 99)) < 0.05


def test_cli_trains_on_a_product(tmp_path):
    from tests._train_common import TINY, run_sarzoo

    prod = write_product(tmp_path, pols=("VV", "VH"), shape=(64, 96))
    res = run_sarzoo(["train", TINY, "--data", prod.path, "--set", "data.bands=[VV]", "--max-steps", "1",
                      "--out", tmp_path / "run"])
    assert res.returncode == 0, res.stderr
    ckpt = next((tmp_path / "run").rglob("last.pt"))
    res = run_sarzoo(["eval", ckpt, "--json", "--no-patches", "--save-images", tmp_path / "eval"])
    assert res.returncode == 0, res.stderr  # the checkpoint's recipe reopens the product, VV, σ0
    assert str(prod.path) in res.stdout
    res = run_sarzoo(["train", TINY, "--data", prod.path, "--max-steps", "1", "--out", tmp_path / "run2"])
    assert res.returncode == 2 and "input.channels is 1" in res.stderr and "data.bands" in res.stderr


# --- errors -----------------------------------------------------------------------------------------

def one_paragraph(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg.strip(), msg
    for n in needles:
        assert n in msg, msg


def test_missing_polarisation(grd):
    with pytest.raises(SarzooError) as e:
        open_file(grd.path, channels=1, bands=["HH"])
    one_paragraph(e, str(grd.path), "HH", "VV, VH", "data.bands")


def test_more_or_fewer_polarisations_than_input_channels(grd):
    with pytest.raises(SarzooError) as e:
        open_file(grd.path, channels=1)
    one_paragraph(e, str(grd.path), "input.channels is 1", "data.bands: [VV]")
    with pytest.raises(SarzooError) as e:
        open_file(grd.path, channels=3)
    one_paragraph(e, str(grd.path), "input.channels is 3", "2-channel recipe")


def test_manifest_naming_a_file_outside_the_product(tmp_path):
    prod = write_product(tmp_path, pols=("VV",))
    m = prod.path / "manifest.safe"
    m.write_text(m.read_text().replace('href="./annotation/s1a', 'href="../../annotation/s1a', 1))
    with pytest.raises(SarzooError) as e:
        open_file(prod.path)
    one_paragraph(e, str(prod.path), "outside the product")


def test_product_without_calibration_tables(tmp_path):
    prod = write_product(tmp_path, calibration=False)
    for calibration in ("sigma0", "none"):
        with pytest.raises(SarzooError) as e:
            open_file(prod.path, channels=2, calibration=calibration)
        one_paragraph(e, str(prod.path), "no calibration tables")


def test_calibration_xml_without_vectors(tmp_path):
    prod = write_product(tmp_path, vectors=False)
    with pytest.raises(SarzooError) as e:
        open_file(prod.path, channels=2)
    one_paragraph(e, "calibration-s1a-iw-vv", "no calibration vectors", "data.calibration")
    assert open_file(prod.path, channels=2, calibration="none")[0].read(0, 0, 2, 2).shape == (2, 2, 2)


def test_calibration_without_the_chosen_lut(tmp_path):
    prod = write_product(tmp_path, lut_names=("sigmaNought", "dn"))
    open_file(prod.path, channels=2, calibration="sigma0")
    with pytest.raises(SarzooError) as e:
        open_file(prod.path, channels=2, calibration="gamma0")
    one_paragraph(e, "calibration-s1a-iw-vv", "<gamma>", "data.calibration: gamma0")


def test_measurement_bands_of_different_sizes(tmp_path):
    prod = write_product(tmp_path, sizes={"VH": (30, 38)})
    with pytest.raises(SarzooError) as e:
        open_file(prod.path, channels=2)
    one_paragraph(e, str(prod.path), "differ in size", "VV 30 × 40", "VH 30 × 38")
    assert open_file(prod.path, channels=1, bands=["VH"])[0].shape == (30, 38)


def test_measurement_disagreeing_with_its_annotation(tmp_path):
    prod = write_product(tmp_path, pols=("VV",))
    ann = next((prod.path / "annotation").glob("*.xml"))
    ann.write_text(ann.read_text().replace("<numberOfLines>30<", "<numberOfLines>300<"))
    with pytest.raises(SarzooError) as e:
        open_file(prod.path)
    one_paragraph(e, "measurement", "300 × 40", "broken")


@pytest.mark.parametrize("case", ["no manifest", "not xfdu", "not xml", "dtd", "missing file", "fifo", "zip"])
def test_not_a_safe_product(tmp_path, case):
    if case == "zip":
        p = tmp_path / "S1A_photos.zip"
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("a.jpg", b"\xff\xd8")
        needle = "not a zipped Sentinel-1 SAFE product"
    elif case == "no manifest":
        p = tmp_path / "S1A_GRD.SAFE"
        (p / "measurement").mkdir(parents=True)
        needle = "no manifest.safe"
    else:
        p = write_product(tmp_path, pols=("VV",)).path
        m = p / "manifest.safe"
        if case == "not xfdu":
            m.write_text("<xml/>")
            needle = "not a Sentinel-1 SAFE manifest"
        elif case == "not xml":
            m.write_bytes(b"\x00garbage<<")
            needle = "not well-formed XML"
        elif case == "dtd":
            m.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>')
            needle = "DTD"
        elif case == "missing file":
            next((p / "annotation" / "calibration").glob("*.xml")).unlink()
            needle = "cannot be accessed"
        else:
            t = next((p / "measurement").glob("*.tiff"))
            t.unlink()
            os.mkfifo(t)
            needle = "not a regular file"
    with pytest.raises(SarzooError) as e:
        open_sources([str(p)])
    one_paragraph(e, str(p), needle)


def test_domain_must_be_intensity(grd):
    with pytest.raises(SarzooError) as e:
        open_file(grd.path, channels=2, domain="db")
    one_paragraph(e, str(grd.path), "data.domain", "intensity")


def test_gdal_without_the_safe_driver(grd):
    """A real GDAL with its SAFE driver deregistered (GDAL_SKIP), as in a build without it."""
    code = ("from sarzoo.data.readers import open_file\nfrom sarzoo.errors import SarzooError\n"
            f"try:\n    open_file({str(grd.path)!r}, channels=2)\nexcept SarzooError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, GDAL_SKIP="SAFE"), cwd=Path(__file__).parent.parent)
    assert res.returncode == 0, res.stderr
    assert str(grd.path) in res.stdout and "no SAFE driver" in res.stdout, res.stdout
