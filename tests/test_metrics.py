"""Metrics against hand-computed values (SPEC §3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as ref_ssim

from sarzoo import metrics as M
from sarzoo.data.preprocess import Preprocessing
from sarzoo.data.synthetic import SyntheticSAR


def _pair(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size, size, generator=g)
    y = (x + 0.1 * torch.randn(1, 1, size, size, generator=g)).clamp(0, 1)
    return x, y


# --- PSNR ------------------------------------------------------------------------------

def test_psnr_known_pair_exact():
    x = np.zeros((32, 32))
    y = np.full((32, 32), 0.1)  # MSE = 0.01 -> 20 dB
    assert M.psnr(x, y) == pytest.approx(20.0, abs=1e-12)
    y[:16] = 0.0  # MSE = 0.005
    assert M.psnr(x, y) == pytest.approx(10 * math.log10(1 / 0.005), abs=1e-12)


def test_psnr_data_range_identical_and_mask():
    x = np.zeros((8, 8))
    y = np.full((8, 8), 25.5)
    assert M.psnr(x, y, data_range=255.0) == pytest.approx(20.0)
    assert M.psnr(x, x) == math.inf
    # Errors only in masked-out pixels do not count.
    y = np.zeros((8, 8))
    y[:, :4] = 1.0
    mask = np.ones((8, 8), bool)
    mask[:, :4] = False
    assert M.psnr(x, y, mask=mask) == math.inf
    y[0, 4] = 0.5  # one valid pixel wrong: MSE = 0.25 / 32
    assert M.psnr(x, y, mask=mask) == pytest.approx(10 * math.log10(32 / 0.25))
    assert math.isnan(M.psnr(x, y, mask=np.zeros((8, 8), bool)))


def test_psnr_batch_is_mean_of_images():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])
    assert M.psnr(x, y) == pytest.approx((20.0 + 40.0) / 2)


# --- SSIM ------------------------------------------------------------------------------

def test_ssim_identical_is_one():
    x, _ = _pair()
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(x, x, mask=torch.ones_like(x, dtype=torch.bool)) == pytest.approx(1.0, abs=1e-6)


def test_ssim_matches_pytorch_msssim():
    x, y = _pair(1)
    expected = float(ref_ssim(x, y, data_range=1.0, win_size=11, nonnegative_ssim=True))
    assert M.ssim(x, y) == pytest.approx(expected, abs=1e-7)
    assert M.ssim(x[0, 0].numpy(), y[0, 0].numpy()) == pytest.approx(expected, abs=1e-6)
    assert 0.0 < expected < 1.0


def test_ssim_full_mask_equals_unmasked():
    x, y = _pair(2)
    full = torch.ones_like(x, dtype=torch.bool)
    assert M.ssim(x, y, mask=full) == pytest.approx(M.ssim(x, y), abs=1e-6)


def test_ssim_mask_ignores_invalid_region():
    x, y = _pair(3)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., :, 32:] = False
    y2 = y.clone()
    y2[..., :, 32:] = 1 - y2[..., :, 32:]  # garbage in the no-data half
    assert M.ssim(x, y2, mask=mask) == pytest.approx(M.ssim(x, y, mask=mask), abs=1e-7)
    assert math.isnan(M.ssim(x, y, mask=torch.zeros_like(mask)))


def test_ssim_small_image_uses_fitting_window():
    x, y = _pair(4, size=7)
    expected = float(ref_ssim(x, y, data_range=1.0, win_size=7, nonnegative_ssim=True))
    assert M.ssim(x, y) == pytest.approx(expected, abs=1e-7)
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-6)


# --- ENL -------------------------------------------------------------------------------

@pytest.mark.parametrize("looks", [1, 4, 8])
def test_enl_of_gamma_speckle_is_looks(looks):
    g = np.random.default_rng(looks).gamma(looks, 1.0 / looks, size=(128, 128))
    assert M.enl(g) == pytest.approx(looks, rel=0.08)
    assert M.enl(3.0 * g) == pytest.approx(M.enl(g))  # scale-free


def test_enl_hand_computed():
    a = np.array([1.0, 3.0])  # mean 2, population var 1
    assert M.enl(a) == pytest.approx(4.0)
    assert M.enl(np.ones(5)) == math.inf
    assert math.isnan(M.enl(np.ones(1)))


def test_enl_blocks_rule():
    rng = np.random.default_rng(0)
    img = np.ones((75, 100))
    # 3×4 = 12 blocks; give each a distinct CV; the quartile = 3 lowest-CV blocks.
    cvs = rng.permutation(12) + 1.0
    for k in range(12):
        r, c = divmod(k, 4)
        blk = rng.gamma(4, 0.25, (25, 25))
        blk = (blk - blk.mean()) / blk.std() * (cvs[k] * 0.05) + 1.0
        img[r * 25:(r + 1) * 25, c * 25:(c + 1) * 25] = blk
    chosen = M.enl_blocks(img)
    order = np.argsort(cvs)[:3]
    assert chosen == [(int(k // 4) * 25, int(k % 4) * 25) for k in order]
    # A mask invalidating one pixel of the best block removes that block.
    mask = np.ones_like(img, bool)
    r0, c0 = chosen[0]
    mask[r0 + 3, c0 + 7] = False
    assert chosen[0] not in M.enl_blocks(img, mask)
    assert M.enl_blocks(np.ones((24, 100))) == []


def test_enl_ratio_identity_and_smoothing():
    g = np.random.default_rng(1).gamma(4, 0.25, size=(100, 100))
    assert M.enl_ratio(g, g) == pytest.approx(1.0)
    # Halve every block's deviation from its own mean: variance /4, mean kept -> ENL ×4.
    blocks = g.reshape(4, 25, 4, 25)
    smooth = (0.5 * blocks + 0.5 * blocks.mean(axis=(1, 3), keepdims=True)).reshape(100, 100)
    assert M.enl_ratio(g, smooth) == pytest.approx(4.0, rel=1e-6)


def test_enl_ratio_undoes_preprocessing():
    prep = Preprocessing(domain="intensity", vmin=-30.0, vmax=10.0)
    g = np.random.default_rng(2).gamma(4, 0.25, size=(100, 100))
    x01, _ = prep.forward(g)
    # In linear intensity this is a pure scaling, which leaves ENL unchanged; in the [0, 1]
    # dB domain it is an offset, which would change mean²/var.
    y01, _ = prep.forward(2.0 * g)
    assert M.enl_ratio(x01, y01, prep) == pytest.approx(1.0, rel=1e-4)
    assert M.enl_ratio(x01, y01, prep.to_dict()) == pytest.approx(1.0, rel=1e-4)
    assert M.enl_ratio(x01, y01) != pytest.approx(1.0, rel=1e-2)


def test_enl_ratio_nan_when_no_block():
    x = np.random.default_rng(0).random((20, 20))
    assert math.isnan(M.enl_ratio(x, x))
    y = np.random.default_rng(0).random((50, 50))
    assert math.isnan(M.enl_ratio(y, y, mask=np.zeros((50, 50), bool)))


# --- EPI -------------------------------------------------------------------------------

def test_epi_self_is_one_and_affine_invariant():
    x, y = _pair(5)
    assert M.epi(x, x) == pytest.approx(1.0)
    assert M.epi(x, 0.5 * x + 0.2) == pytest.approx(1.0)
    assert M.epi(x, 1 - x) == pytest.approx(-1.0)
    assert 0.0 < M.epi(x, y) < 1.0


def test_epi_hand_computed():
    ref = np.zeros((3, 4))
    ref[1, 1] = 1.0  # Laplacian responses (valid): [-4, 1]
    out = np.zeros((3, 4))
    out[1, 2] = 1.0  # responses: [1, -4]
    d1 = np.array([-4.0, 1.0]) - (-1.5)
    d2 = np.array([1.0, -4.0]) - (-1.5)
    expected = (d1 * d2).sum() / math.sqrt((d1 ** 2).sum() * (d2 ** 2).sum())
    assert M.epi(ref, out) == pytest.approx(expected)


def test_epi_mask_and_constant():
    x, y = _pair(6)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[..., 40:, :] = False
    y2 = y.clone()
    y2[..., 40:, :] = 0.0
    assert M.epi(x, y2, mask) == pytest.approx(M.epi(x, y, mask))
    z = torch.full_like(x, 0.3)
    assert math.isnan(M.epi(x, z))


# --- classical reference ----------------------------------------------------------------

def test_reference_size():
    assert M.reference_size((1, 256, 256), 16 * 16 * 16) == (64, 64)
    assert M.reference_size((256, 256), 4096) == (64, 64)
    assert M.reference_size((1, 64, 128), 512) == (16, 32)


def test_classical_reference_shape_and_area_factor():
    x = torch.rand(2, 1, 256, 256)
    ref = M.classical_reference(x, 4096)
    assert ref.shape == x.shape and ref.dtype == x.dtype
    assert float(ref.min()) >= 0.0 and float(ref.max()) <= 1.0
    # An image constant on 4×4 cells survives area down / bicubic up almost unchanged
    # where it is smooth; a piecewise-constant 64×64 image downsampled by 4 is exact.
    cells = torch.rand(1, 1, 64, 64)
    up = torch.nn.functional.interpolate(cells, scale_factor=4, mode="nearest")
    small = torch.nn.functional.adaptive_avg_pool2d(up, (64, 64))
    assert torch.allclose(small, cells)
    assert isinstance(M.classical_reference(x[0, 0].numpy(), 4096), np.ndarray)


def test_classical_reference_beats_constant():
    prep = Preprocessing(vmin=-28.0, vmax=0.0)
    _, clean = SyntheticSAR(1, 128, 4, seed=3).scene(0)
    x, _ = prep.forward(clean)
    ref = M.classical_reference(x, 16 * 8 * 8)
    const = np.full_like(x, x.mean())
    assert M.psnr(x, ref) > M.psnr(x, const) + 5.0
    assert M.ssim(x, ref) > M.ssim(x, const)


def test_compute_metrics_keys():
    x, y = _pair(7)
    out = M.compute_metrics(x, (y, None), preprocessing=Preprocessing())
    assert set(out) == {"psnr", "ssim", "enl_ratio", "epi"}
    assert all(isinstance(v, float) for v in out.values())
    same = M.compute_metrics(x, x)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-6) and same["epi"] == pytest.approx(1.0)
    assert same["enl_ratio"] == pytest.approx(1.0) and same["psnr"] == math.inf


# --- several channels (dual-pol) -------------------------------------------------------------

def _dual(seed=0, n=2, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, size, size, generator=g)
    y = (x + 0.05 * torch.randn(n, 2, size, size, generator=g) * torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)).clamp(0, 1)
    return x, y


def test_channels_measured_alone_and_averaged():
    x, y = _dual()
    mask = torch.ones(2, 2, 64, 64, dtype=torch.bool)
    mask[:, :, :5] = False
    prep = Preprocessing(vmin=[-20.0, -30.0], vmax=[0.0, -8.0], bands=["VV", "VH"])
    out = M.compute_metrics(x, y, mask, prep)
    assert set(out) == {"psnr", "ssim", "enl_ratio", "epi", "channels"} and set(out["channels"]) == {"VV", "VH"}
    for c, band in enumerate(("VV", "VH")):
        alone = M.compute_metrics(x[:, c:c + 1], y[:, c:c + 1], mask[:, c:c + 1], prep.channel(c))
        assert out["channels"][band] == pytest.approx(alone)
    for k in ("psnr", "ssim", "enl_ratio", "epi"):
        assert out[k] == pytest.approx((out["channels"]["VV"][k] + out["channels"]["VH"][k]) / 2)
    assert out["channels"]["VV"]["psnr"] > out["channels"]["VH"]["psnr"] + 5  # VH got 3× the noise
    # ENL in each channel's own intensity: VH's clip range differs from VV's, so the ratio does too
    assert out["channels"]["VH"]["enl_ratio"] != pytest.approx(
        M.enl_ratio(x[:, 1:], y[:, 1:], prep.channel(0), mask[:, 1:]))
    named = M.compute_metrics(x, y, bands=["HH", "HV"])
    assert set(named["channels"]) == {"HH", "HV"}
    assert set(M.compute_metrics(x, y)["channels"]) == {"band1", "band2"}
    assert M.flatten_channels(out)["psnr/VH"] == out["channels"]["VH"]["psnr"]


def test_single_channel_figures_unchanged_by_the_channel_split():
    x, y = _pair(3)
    prep = Preprocessing()
    out = M.batch_metrics(x, y, None, prep, clean=x)
    assert set(out) == {"psnr", "ssim", "enl_ratio", "epi", "psnr_clean", "ssim_clean", "epi_clean"}
    assert out["psnr"] == M.psnr(x, y) and out["ssim"] == M.ssim(x, y) and out["epi"] == M.epi(x, y)
    assert out["enl_ratio"] == M.enl_ratio(x, y, prep)


def test_preprocessing_per_image_for_enl():
    """Scenes with their own clip range (per_scene): each image's ENL is measured in its own intensity."""
    x, y = _pair(5, 75)
    x2, y2 = _pair(6, 75)
    p1, p2 = Preprocessing(vmin=-25.0, vmax=0.0), Preprocessing(vmin=-10.0, vmax=30.0)
    both = M.enl_ratio(torch.cat([x, x2]), torch.cat([y, y2]), [p1, p2])
    assert both == pytest.approx((M.enl_ratio(x, y, p1) + M.enl_ratio(x2, y2, p2)) / 2)
    assert both != pytest.approx(M.enl_ratio(torch.cat([x, x2]), torch.cat([y, y2]), p1))


def test_classical_reference_of_two_channels_keeps_the_count_of_numbers():
    x = torch.rand(1, 2, 256, 256)
    ref = M.classical_reference(x, 16 * 16 * 16)
    assert ref.shape == x.shape
    h, w = M.reference_size((2, 256, 256), 4096)
    assert (h, w) == (45, 45) and abs(2 * h * w - 4096) < 100   # both bands together: the latent's 4096 numbers
