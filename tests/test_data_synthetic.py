"""Synthetic scenes: the speckle, texture and σ0 statistics docs/data.md promises, determinism, dual-pol,
the held-out profile, and the recipe keys that set them."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarzoo.data.synthetic import HELDOUT, TRAIN, SyntheticSAR, box_enl, intensity_correlation, speckle, trigamma
from sarzoo.data.synthetic.speckle import amplitude_correlation, speckle_channels
from sarzoo.data.synthetic.texture import texture
from sarzoo.errors import SarzooError


def homogeneous(clean: np.ndarray, min_pixels: int = 400) -> list[np.ndarray]:
    """Masks of the constant-valued regions of a clean scene (the untextured regions and features)."""
    values, inverse, counts = np.unique(clean, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(clean.shape)
    return [inverse == j for j in np.flatnonzero(counts >= min_pixels)]


def pooled(ds: SyntheticSAR, fn) -> np.ndarray:
    """``fn(speckled[region], clean value)`` over every homogeneous region of every scene, concatenated."""
    out = []
    for i in range(len(ds)):
        s, c = ds.scene(i)
        out += [fn(s[m], c[m][0]) for m in homogeneous(c)]
    return np.concatenate(out)


def enl(x: np.ndarray) -> float:
    return float(x.mean() ** 2 / x.var())


# --- determinism ---------------------------------------------------------------------------------

def test_deterministic_and_independent_of_count_and_order():
    a = SyntheticSAR(4, 64, seed=11)
    b = SyntheticSAR(9, 64, seed=11)
    for i in (3, 0, 2, 1):   # order does not matter either
        sa, ca = a.scene(i)
        sb, cb = b.scene(i)
        np.testing.assert_array_equal(sa, sb)
        np.testing.assert_array_equal(ca, cb)
        assert a.params(i) == b.params(i)
    assert not np.array_equal(a.scene(0)[1], a.scene(1)[1])
    assert not np.array_equal(a.scene(0)[1], SyntheticSAR(1, 64, seed=12).scene(0)[1])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31), i=st.integers(0, 20), looks=st.floats(1, 8), corr=st.floats(0, 2))
def test_scene_depends_on_seed_index_and_parameters_only(seed, i, looks, corr):
    kw = dict(looks=looks, seed=seed, correlation=corr)
    s, c = SyntheticSAR(i + 1, 32, **kw).scene(i)
    s2, c2 = SyntheticSAR(i + 5, 32, **kw).scene(i)
    np.testing.assert_array_equal(s, s2)
    # the clean reflectivity has its own stream: changing looks or correlation leaves it as it is
    np.testing.assert_array_equal(c, SyntheticSAR(i + 1, 32, seed=seed, looks=2.0, correlation=0.0).scene(i)[1])
    assert s.dtype == c.dtype == np.float32 and s.shape == c.shape == (32, 32)
    assert np.isfinite(s).all() and (s > 0).all() and (c > 0).all()


# --- speckle: looks ----------------------------------------------------------------------------

@pytest.mark.parametrize("looks", [1, 1.5, 2.7, 4, 6.3])
def test_white_speckle_enl_of_homogeneous_regions_is_the_looks(looks):
    ds = SyntheticSAR(8, 128, looks, seed=1, correlation=0)
    assert all(ds.params(i).psf == "white" and ds.params(i).looks == looks for i in range(8))
    x = pooled(ds, lambda s, c: s / s.mean())
    assert x.size > 20_000
    assert enl(x) == pytest.approx(looks, rel=0.05)


@pytest.mark.parametrize("looks, corr", [(1, 0), (2.3, 0), (4, 0), (1, 1.0), (3, 0.8), (2.5, 1.2)])
def test_log_intensity_variance_is_trigamma(looks, corr):
    """var(ln I) of L-look speckle is ψ1(L), white or correlated (each pixel stays Gamma(L))."""
    ds = SyntheticSAR(8, 128, looks, seed=2, correlation=corr)
    lnx = pooled(ds, lambda s, c: np.log(s / c))
    assert lnx.var() == pytest.approx(trigamma(looks), rel=0.05)
    assert lnx.mean() == pytest.approx(math.log(1 / looks) + _digamma(looks), abs=0.03)


def _digamma(x: float) -> float:
    """E[ln G], G ~ Gamma(x): the mean of the log-speckle is ψ(x) − ln x (a test-only series)."""
    acc = 0.0
    while x < 8:
        acc -= 1 / x
        x += 1
    return acc + math.log(x) - 1 / (2 * x) - 1 / (12 * x * x) + 1 / (120 * x ** 4)


def test_trigamma():
    assert trigamma(1.0) == pytest.approx(math.pi ** 2 / 6, rel=1e-10)
    assert trigamma(0.5) == pytest.approx(math.pi ** 2 / 2, rel=1e-10)
    assert trigamma(100.0) == pytest.approx(1 / 100 + 1 / 2e4 + 1 / 6e6, rel=1e-9)
    with pytest.raises(ValueError):
        trigamma(0)


@given(st.floats(0.05, 50))
def test_trigamma_recurrence(x):
    assert trigamma(x) == pytest.approx(trigamma(x + 1) + 1 / x ** 2, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(looks=st.floats(1, 12), psf=st.sampled_from(["white", "gaussian", "sinc"]), w=st.floats(0, 3),
       seed=st.integers(0, 2**32 - 1))
def test_speckle_is_positive_finite_deterministic(looks, psf, w, seed):
    width = (1 + w, 1 + w / 2) if psf == "sinc" else (w, w)
    g = speckle(np.random.default_rng(seed), (64, 48), looks, psf, width)
    assert g.shape == (64, 48) and g.dtype == np.float32
    assert np.isfinite(g).all() and (g > 0).all()
    np.testing.assert_array_equal(g, speckle(np.random.default_rng(seed), (64, 48), looks, psf, width))


# --- speckle: spatial correlation ---------------------------------------------------------------

@pytest.mark.parametrize("looks, psf, width", [
    (1.0, "gaussian", (1.0, 1.0)),
    (2.5, "gaussian", (1.2, 1.2)),
    (4.0, "gaussian", (0.6, 0.6)),
    (3.0, "sinc", (2.0, 2.6)),
])
def test_correlated_speckle_enl_relation(looks, psf, width):
    """Per-pixel ENL stays L; the ENL of a k×k box mean is k²·L/(1 + (L/⌈L⌉)(F − 1)) < k²·L."""
    rng = np.random.default_rng(3)
    n, k = 256, 8
    g = np.stack([speckle(rng, (n, n), looks, psf, width) for _ in range(6)])
    assert enl(g) == pytest.approx(looks, rel=0.05)
    boxes = g.reshape(6, n // k, k, n // k, k).mean(axis=(2, 4))
    expected = box_enl(looks, psf, width, k, (n, n))
    assert expected < 0.6 * k * k * looks   # the correlation costs at least 40 % of the white figure here
    assert enl(boxes) == pytest.approx(expected, rel=0.08)
    lag1 = np.corrcoef(g[:, :, :-1].ravel(), g[:, :, 1:].ravel())[0, 1]
    assert lag1 == pytest.approx(intensity_correlation(looks, psf, width, (0, 1), (n, n)), abs=0.02)
    down = np.corrcoef(g[:, :-1, :].ravel(), g[:, 1:, :].ravel())[0, 1]
    assert down == pytest.approx(intensity_correlation(looks, psf, width, (1, 0), (n, n)), abs=0.02)


def test_box_enl_of_white_speckle_and_gaussian_limit():
    assert box_enl(3.0, "white", (0, 0), 5, (64, 64)) == pytest.approx(25 * 3.0)
    # large boxes, Gaussian PSF σ: about k²/(2πσ²) independent samples per box
    sigma, k = 1.2, 32
    assert box_enl(2.0, "gaussian", (sigma, sigma), k, (256, 256)) == pytest.approx(
        k * k * 2.0 / (2 * math.pi * sigma ** 2), rel=0.1)
    rho = amplitude_correlation(128, "gaussian", 1.0)
    assert rho[0] == pytest.approx(1.0) and rho[1] == pytest.approx(math.exp(-1 / 4), rel=1e-3)


# --- texture and σ0 ------------------------------------------------------------------------------

@pytest.mark.parametrize("nu", [1.0, 2.5, 10.0])
def test_gamma_texture_moments(nu):
    z = np.random.default_rng(4).standard_normal(400_000).astype(np.float32)
    t = texture(z, np.full(z.shape, nu), "gamma")
    assert t.mean() == pytest.approx(1.0, abs=0.01)
    assert t.var() == pytest.approx(1 / nu, rel=0.03)
    assert (t > 0).all()
    inv = texture(z, np.full(z.shape, 6.0), "inverse_gamma")
    assert inv.mean() == pytest.approx(1.0, abs=0.01) and inv.var() == pytest.approx(1 / 4, rel=0.1)


def test_textured_and_homogeneous_regions():
    ds = SyntheticSAR(6, 128, seed=5, texture=2.0, texture_fraction=0.5)
    hom, tex = 0, 0
    for i in range(len(ds)):
        _, c = ds.scene(i)
        hom += sum(int(m.sum()) for m in homogeneous(c))
        tex += c.size - sum(int(m.sum()) for m in homogeneous(c, 2))
    assert hom > 0.2 * 6 * 128 * 128 and tex > 0.2 * 6 * 128 * 128
    flat = SyntheticSAR(6, 128, seed=5, texture_fraction=0.0)
    assert sum(int(m.sum()) for i in range(6) for m in homogeneous(flat.scene(i)[1])) > 0.9 * 6 * 128 * 128


def test_sigma0_spans_the_documented_range():
    ds = SyntheticSAR(16, 128, seed=6)
    db = np.concatenate([10 * np.log10(ds.scene(i)[1]).ravel() for i in range(len(ds))])
    assert np.mean(db < -20) > 0.08       # water (−30..−20 dB), rivers, roads
    assert np.mean(db > 0) > 0.02         # towns up to +5 dB, bright lines, points
    assert np.mean((db >= -30) & (db <= 10)) > 0.99
    assert np.percentile(db, 0.5) < -25 and np.percentile(db, 99.9) > 5
    assert db.max() > 10                  # point targets reach +5..+20 dB


def test_scene_content():
    speckled, clean = SyntheticSAR(1, 128, seed=5).scene(0)
    assert speckled.shape == clean.shape == (128, 128)
    db = 10 * np.log10(clean)
    assert db.max() > 4.0  # bright point targets
    assert np.unique(np.round(db, 3)).size > 50  # several regions and texture
    assert max(int(m.sum()) for m in homogeneous(clean)) > 500  # homogeneous regions exist
    assert np.abs(np.diff(db, axis=1)).max() > 3.0  # sharp edges


# --- dual polarisation -----------------------------------------------------------------------------

def test_dual_pol_pairs():
    one, two = SyntheticSAR(4, 96, seed=7), SyntheticSAR(4, 96, seed=7, channels=2)
    ratios, water, bright = [], [], []
    for i in range(4):
        s2, c2 = two.scene(i)
        s1, c1 = one.scene(i)
        assert s2.shape == c2.shape == (2, 96, 96) and s2.dtype == np.float32
        np.testing.assert_array_equal(s2[0], s1)   # VV is the one-channel scene
        np.testing.assert_array_equal(c2[0], c1)
        r = 10 * np.log10(c2[0] / c2[1])           # VV − VH, dB
        assert r.min() >= 5 - 1e-3 and r.max() <= 12 + 1e-3
        vv = 10 * np.log10(c2[0])
        water.append(r[vv < -22])
        bright.append(r[(vv > -12) & (vv < -6)])
        ratios.append(r)
    # VH weakest relative to VV over water, strongest over vegetation
    assert np.concatenate(water).mean() > np.concatenate(bright).mean() + 2
    item = two[1]
    assert item["speckled"].shape == (2, 96, 96) and item["clean"].dtype == torch.float32
    assert one[1]["speckled"].shape == (1, 96, 96)


@pytest.mark.parametrize("looks, coherence", [(1.0, 0.5), (2.5, 0.3), (3.0, 0.2)])
def test_channel_correlation(looks, coherence):
    """Two channels sharing a fraction γ of their scatterers: speckle intensity correlation γ²·L/⌈L⌉."""
    rng = np.random.default_rng(8)
    g = np.stack([speckle_channels(rng, (128, 128), looks, "gaussian", (0.8, 0.8), 2, coherence)
                  for _ in range(6)])
    r = np.corrcoef(g[:, 0].ravel(), g[:, 1].ravel())[0, 1]
    assert r == pytest.approx(coherence ** 2 * looks / math.ceil(looks), abs=0.03)
    assert enl(g[:, 1]) == pytest.approx(looks, rel=0.06)


def test_dual_pol_scene_speckle_correlation_is_small():
    ds = SyntheticSAR(6, 128, seed=9, channels=2, correlation=0.0)
    for i in range(len(ds)):
        s, c = ds.scene(i)
        p = ds.params(i)
        assert TRAIN.coherence[0] <= p.coherence <= TRAIN.coherence[1]
        r = np.corrcoef((s[0] / c[0]).ravel(), (s[1] / c[1]).ravel())[0, 1]
        assert r == pytest.approx(p.coherence ** 2 * p.looks / math.ceil(p.looks), abs=0.04)
        assert r < 0.2


# --- held-out profile -------------------------------------------------------------------------------

def _corr_length(p) -> float:
    """Σ_d ρ1(d)² on the narrower axis: the effective correlation length of the speckle, px."""
    return min(float(np.sum(amplitude_correlation(128, p.psf, w) ** 2)) for w in p.width)


def test_heldout_profile_differs_from_training():
    train, held = SyntheticSAR(16, 64, seed=3), SyntheticSAR(16, 64, seed=3, profile="heldout")
    tp = [train.params(i) for i in range(16)]
    hp = [held.params(i) for i in range(16)]
    # looks and speckle correlation outside the training ranges, another PSF, anisotropic
    assert max(p.looks for p in tp) <= TRAIN.looks[1] < min(p.looks for p in hp)
    assert max(_corr_length(p) for p in tp) < min(_corr_length(p) for p in hp)
    assert {p.psf for p in hp} == {"sinc"} and all(p.width[0] != p.width[1] for p in hp)
    assert min(p.texture_correlation for p in hp) > TRAIN.texture_correlation[1]
    assert HELDOUT.texture_family == "inverse_gamma" != TRAIN.texture_family
    assert HELDOUT.class_mix != TRAIN.class_mix
    # its own seed stream and ids: no scene is a training scene
    assert held.scene_id(0) != train.scene_id(0) and "heldout" in held.scene_id(0)
    assert not np.array_equal(held.scene(0)[1], train.scene(0)[1])
    # the held-out keys are fixed: the train ranges given to it are ignored
    other = SyntheticSAR(16, 64, looks=2, correlation=0, seed=3, profile="heldout")
    np.testing.assert_array_equal(other.scene(2)[0], held.scene(2)[0])


def test_heldout_scenes_measure_as_documented():
    held = SyntheticSAR(6, 256, seed=4, profile="heldout")
    standardised, lags = [], []
    for i in range(len(held)):
        s, c = held.scene(i)
        p = held.params(i)
        x = np.concatenate([s[m] / c[m] for m in homogeneous(c)])
        standardised.append((x - 1) * math.sqrt(p.looks))   # variance 1 if the ENL is the scene's looks
        g = s / c
        lag = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
        lags.append(lag - intensity_correlation(p.looks, p.psf, p.width, (0, 1), (256, 256)))
    z = np.concatenate(standardised)
    assert z.mean() == pytest.approx(0, abs=0.03) and z.var() == pytest.approx(1, rel=0.05)
    assert np.abs(lags).max() < 0.04


# --- arguments and recipe keys ------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(n_scenes=0), dict(size=4), dict(looks=0), dict(looks=[3, 2]), dict(looks="many"), dict(correlation=-1),
    dict(texture=0.5), dict(texture_fraction=2), dict(channels=3), dict(profile="test"), dict(seed=-1),
])
def test_bad_arguments(kw):
    with pytest.raises(SarzooError):
        SyntheticSAR(**{"n_scenes": 1, "size": 32, **kw})


def test_sizes_and_torch_items():
    assert SyntheticSAR(1, (32, 48)).scene(0)[0].shape == (32, 48)
    ds = SyntheticSAR(6, 32, 4, seed=1)
    item = ds[2]
    assert item["speckled"].shape == (1, 32, 32) and item["speckled"].dtype == torch.float32
    assert item["scene"] == ds.scene_id(2)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["clean"].shape == (3, 1, 32, 32)
    with pytest.raises(IndexError):
        ds.scene(6)


def test_recipe_keys():
    from sarzoo.config import resolve_section
    from sarzoo.data.dataset import build_datasets

    syn = resolve_section("data", None)["synthetic"]
    assert syn["looks"] == [1.0, 5.0] and syn["correlation"] == [0.0, 1.2] and syn["profile"] == "train"
    c = resolve_section("data", {"synthetic": {"looks": 4, "correlation": [0.5, 1], "texture": 3}})
    assert c["synthetic"]["looks"] == 4.0 and c["synthetic"]["correlation"] == [0.5, 1.0]
    assert resolve_section("data", c) == c
    split = build_datasets({"synthetic": {"n_scenes": 3, "size": 64, "profile": "heldout"},
                            "patch_size": 32, "val_fraction": 0.34})
    assert all("heldout" in s for s in split.train.scene_ids + split.val.scene_ids)


@pytest.mark.parametrize("value, key", [
    ({"looks": [3, 1]}, "data.synthetic.looks"),
    ({"looks": [1, 2, 3]}, "data.synthetic.looks"),
    ({"looks": 0.5}, "data.synthetic.looks"),
    ({"looks": [1, "x"]}, "data.synthetic.looks"),
    ({"correlation": [0, 40]}, "data.synthetic.correlation"),
    ({"correlation": float("nan")}, "data.synthetic.correlation"),
    ({"texture": [0.5, 2]}, "data.synthetic.texture"),
    ({"texture_fraction": 1.5}, "data.synthetic.texture_fraction"),
    ({"profile": "test"}, "data.synthetic.profile"),
])
def test_bad_recipe_keys_are_named(value, key):
    from sarzoo.config import resolve_section
    from sarzoo.errors import RecipeError

    with pytest.raises(RecipeError) as exc:
        resolve_section("data", {"synthetic": value})
    assert exc.value.key == key and key in str(exc.value)


@given(lo=st.floats(-5, 50, allow_nan=False), hi=st.floats(-5, 50, allow_nan=False))
def test_range_values(lo, hi):
    from sarzoo.config.values import Invalid, check

    if 0 <= lo <= hi <= 16:
        assert check([lo, hi], "range", min=0, max=16) == [lo, hi]
    else:
        with pytest.raises(Invalid):
            check([lo, hi], "range", min=0, max=16)
