"""Preprocessing: domains, no-data, clipping, streaming percentiles, inverse, serialisation."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sarzoo.data.preprocess import DbHistogram, Preprocessing, fit_percentiles, to_db, valid_mask
from sarzoo.errors import SarzooError


def _intensity_with_nodata():
    rng = np.random.default_rng(0)
    inten = rng.gamma(4, 0.25, (32, 32)) * 10 ** (rng.uniform(-3, 0.5, (32, 32)))
    inten[0, :4] = np.nan
    inten[1, :4] = 0.0
    inten[2, :4] = -9999.0  # the product's declared nodata value
    return inten


def _as_domain(inten, domain):
    with np.errstate(invalid="ignore", divide="ignore"):
        nd = inten == -9999.0
        if domain == "intensity":
            out = inten.copy()
        elif domain == "amplitude":
            out = np.sqrt(np.where(nd, 0.0, inten))
        else:
            out = 10 * np.log10(inten)  # 0 -> -inf, NaN stays NaN
        out[nd] = -9999.0
        return out


@pytest.mark.parametrize("domain", ["intensity", "amplitude", "db"])
def test_domains_agree_with_nodata(domain):
    inten = _intensity_with_nodata()
    ref_x, ref_m = Preprocessing("intensity", -25.0, 5.0, nodata=-9999.0).forward(inten)
    x, m = Preprocessing(domain, -25.0, 5.0, nodata=-9999.0).forward(_as_domain(inten, domain))
    assert x.dtype == np.float32 and m.dtype == bool and x.shape == (32, 32)
    np.testing.assert_array_equal(m, ref_m)
    assert not m[:3, :4].any() and m[3:].all()
    np.testing.assert_allclose(x, ref_x, atol=1e-6)
    assert (x[~m] == 0.0).all()
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_fixed_clip_hand_values_and_fill():
    prep = Preprocessing("intensity", vmin=-25.0, vmax=0.0, fill=0.5)
    x, m = prep.forward(np.array([0.1, 1.0, 10.0, 1e-4, 0.0, np.nan, -0.5]))
    np.testing.assert_allclose(x, [0.6, 1.0, 1.0, 0.0, 0.5, 0.5, 0.0], atol=1e-6)
    np.testing.assert_array_equal(m, [True, True, True, True, False, False, True])


def test_db_zero_is_valid_unless_declared():
    assert valid_mask(np.array([0.0, -3.0]), "db").all()
    assert not valid_mask(np.array([0.0, -3.0]), "db", nodata=0.0)[0]
    assert not valid_mask(np.array([0.0]), "amplitude")[0]


def test_file_nodata_argument():
    prep = Preprocessing("intensity")
    _, m = prep.forward(np.array([1.0, 5.0, 0.3]), nodata=5.0)
    np.testing.assert_array_equal(m, [True, False, True])


def test_torch_matches_numpy():
    inten = _intensity_with_nodata()
    prep = Preprocessing("amplitude", -20.0, 3.0, nodata=-9999.0)
    raw = _as_domain(inten, "amplitude")
    xn, mn = prep.forward(raw)
    xt, mt = prep.forward(torch.from_numpy(raw))
    assert xt.dtype == torch.float32 and mt.dtype == torch.bool
    np.testing.assert_array_equal(mt.numpy(), mn)
    np.testing.assert_allclose(xt.numpy(), xn, atol=1e-6)
    for dom in ("intensity", "amplitude", "db"):
        np.testing.assert_allclose(prep.inverse(torch.from_numpy(xn), dom).numpy(), prep.inverse(xn, dom),
                                   rtol=1e-5)


def test_inverse_known_values():
    prep = Preprocessing("amplitude", vmin=-30.0, vmax=10.0)
    x = np.array([0.0, 0.5, 1.0, 1.7, -0.2])
    np.testing.assert_allclose(prep.inverse(x, "db"), [-30.0, -10.0, 10.0, 10.0, -30.0])
    np.testing.assert_allclose(prep.inverse(x, "intensity"), [1e-3, 0.1, 10.0, 10.0, 1e-3])
    np.testing.assert_allclose(prep.inverse(x), np.sqrt([1e-3, 0.1, 10.0, 10.0, 1e-3]))  # declared domain


@settings(max_examples=60, deadline=None)
@given(x01=arrays(np.float64, (6, 5), elements=st.floats(0.0, 1.0)),
       domain=st.sampled_from(["intensity", "amplitude", "db"]),
       vmin=st.floats(-60.0, 10.0), span=st.floats(0.5, 60.0))
def test_inverse_then_forward_round_trip(x01, domain, vmin, span):
    prep = Preprocessing(domain, vmin=vmin, vmax=vmin + span)
    x, m = prep.forward(prep.inverse(x01))
    assert m.all()
    np.testing.assert_allclose(x, x01, atol=2e-5)


@settings(max_examples=60, deadline=None)
@given(db=arrays(np.float64, (4, 7), elements=st.floats(-24.9, -0.1)),
       domain=st.sampled_from(["intensity", "amplitude", "db"]))
def test_forward_then_inverse_round_trip_inside_clip(db, domain):
    prep = Preprocessing(domain, vmin=-25.0, vmax=0.0)
    inten = 10 ** (db / 10)
    raw = {"intensity": inten, "amplitude": np.sqrt(inten), "db": db}[domain]
    x, m = prep.forward(raw)
    assert m.all()
    back = prep.inverse(x)
    if domain == "db":
        np.testing.assert_allclose(back, raw, atol=1e-4)
    else:
        np.testing.assert_allclose(back, raw, rtol=1e-4)


def test_serialisation_plain_types_and_weights_only():
    prep = Preprocessing("db", vmin=-22.5, vmax=1.25, nodata=-9999, fill=0.0)
    d = prep.to_dict()
    assert all(isinstance(v, (str, float, int, type(None))) for v in d.values())
    assert Preprocessing.from_dict(d) == prep
    buf = io.BytesIO()
    torch.save({"preprocessing": d}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert Preprocessing.from_dict(loaded["preprocessing"]) == prep
    with pytest.raises(SarzooError, match="unknown preprocessing"):
        Preprocessing.from_dict({**d, "gamma": 2.0})


def test_invalid_parameters():
    with pytest.raises(SarzooError, match="domain"):
        Preprocessing("sigma0")
    with pytest.raises(SarzooError, match="vmin"):
        Preprocessing(vmin=0.0, vmax=-25.0)


def test_negative_intensity_floored_not_nodata():
    db = to_db(np.array([-1e-3, 1.0]), "intensity")
    assert db[0] == pytest.approx(-100.0) and db[1] == pytest.approx(0.0)


def test_streaming_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    scenes = [10 * np.log10(rng.gamma(4, 0.25, (64, 64)) * rng.uniform(0.01, 1.0)) for _ in range(6)]
    allv = np.concatenate([s.ravel() for s in scenes])
    hist = DbHistogram()
    for s in scenes:  # one window at a time
        for r in range(0, 64, 16):
            hist.update(s[r:r + 16])
    assert hist.total == allv.size
    for q in (1.0, 5.0, 50.0, 95.0, 99.0):
        assert hist.percentile(q) == pytest.approx(np.percentile(allv, q), abs=0.02)
    vmin, vmax = fit_percentiles(iter(scenes), 1.0, 99.0)
    assert vmin == pytest.approx(np.percentile(allv, 1.0), abs=0.02)
    assert vmax == pytest.approx(np.percentile(allv, 99.0), abs=0.02)


def test_percentiles_memory_is_bounded():
    hist = DbHistogram()
    n0 = hist.counts.nbytes
    hist.update(np.random.default_rng(0).normal(-10, 5, 200_000))
    assert hist.counts.nbytes == n0 < 1 << 20


def test_percentile_edge_cases():
    vmin, vmax = fit_percentiles([np.full(100, -7.0)], 1.0, 99.0)
    assert vmax - vmin == pytest.approx(1.0) and vmin < -7.0 < vmax
    with pytest.raises(SarzooError, match="no valid pixel"):
        fit_percentiles([np.array([np.nan])], 1.0, 99.0)
    with pytest.raises(SarzooError, match="percentiles"):
        fit_percentiles([np.zeros(3)], 99.0, 1.0)
