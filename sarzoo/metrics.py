"""Image-quality metrics for SAR autoencoders (SPEC §3), and the classical reference.

All functions take images in the model domain, [0, 1] (numpy arrays or torch tensors, shape
(H, W), (C, H, W) or (N, C, H, W)); ``mask`` is a boolean array of the same shape where False
marks no-data pixels that must not count. Batch results are means over images; per-image
values that are undefined (NaN) are skipped in that mean.

Multi-channel images (dual-pol VV+VH): ``compute_metrics``/``batch_metrics`` measure every channel
on its own (its own clip range for ENL) and report the mean over channels, with the per-channel
figures under ``"channels"`` by band name; one channel gives exactly the single-channel figures.

The exact definitions, including how ENL blocks are chosen and in which domain ENL is
computed, are documented in ``docs/metrics.md``; keep the two in step.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "enl", "enl_ratio", "enl_blocks", "epi", "classical_reference",
           "reference_size", "compute_metrics", "batch_metrics", "flatten_channels", "band_names",
           "channels_of", "ENL_BLOCK", "ENL_FRACTION"]

#: ENL is measured on non-overlapping blocks of this side (SPEC §3).
ENL_BLOCK = 25
#: Share of the qualifying blocks (lowest coefficient of variation first) used for ENL.
ENL_FRACTION = 0.25

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def _t(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    """As a 4-D (N, C, H, W) tensor; float64 unless ``dtype`` says otherwise."""
    t = torch.as_tensor(x)
    while t.dim() < 4:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise ValueError(f"expected an image of 2 to 4 dimensions, got shape {tuple(t.shape)}")
    if dtype is not None:
        t = t.to(dtype)
    elif t.dtype != torch.bool:
        t = t.to(torch.float64)
    return t


def _mask(mask: Any, like: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = _t(mask, torch.bool).to(like.device)
    return m.expand_as(like) if m.shape != like.shape else m


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")


def _nanmean(values: list[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return float(sum(ok) / len(ok)) if ok else float("nan")


# --- PSNR --------------------------------------------------------------------------------

def psnr(x: Any, y: Any, mask: Any = None, data_range: float = 1.0) -> float:
    """``10·log10(data_range² / MSE)`` per image over valid pixels, averaged over the batch.

    Identical images give ``inf``; an image with no valid pixel is skipped (NaN if all are).
    """
    xt = _t(x)
    yt = _t(y).to(xt.device)
    _check_pair(xt, yt)
    m = _mask(mask, xt)
    d2 = (xt - yt) ** 2
    if m is None:
        mse = d2.mean(dim=(1, 2, 3))
    else:  # per-image mean over valid pixels; 0/0 -> NaN for an image with none
        mse = (d2 * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))
    vals = 10.0 * torch.log10(data_range ** 2 / mse)  # mse == 0 -> inf
    return _nanmean(vals.tolist())


# --- SSIM --------------------------------------------------------------------------------

def _win_size(h: int, w: int, win_size: int) -> int:
    """The window actually used: ``win_size``, or the largest odd size that fits the image."""
    fit = min(h, w, win_size)
    return fit if fit % 2 == 1 else fit - 1


def ssim(x: Any, y: Any, mask: Any = None, data_range: float = 1.0, win_size: int = 11) -> float:
    """SSIM as pytorch-msssim computes it (Gaussian window 11, σ 1.5, non-negative).

    Images smaller than the window are evaluated with the largest odd window that fits
    (pytorch-msssim would silently skip the smoothing along that axis instead, which turns
    SSIM into a per-pixel comparison there). With a ``mask``, the SSIM map is averaged over
    the window positions whose whole window is valid (NaN if there is none).
    """
    from pytorch_msssim import ssim as _ssim

    xt = torch.as_tensor(x)
    dtype = xt.dtype if xt.is_floating_point() else torch.float32
    xt = _t(xt, dtype)
    yt = _t(y, dtype).to(xt.device)
    _check_pair(xt, yt)
    win = _win_size(xt.shape[-2], xt.shape[-1], win_size)
    if mask is None:
        return float(_ssim(xt, yt, data_range=data_range, size_average=True, win_size=win,
                           nonnegative_ssim=True))
    return _masked_ssim(xt, yt, _mask(mask, xt), data_range, win)


def masked_ssim_per_image(x: torch.Tensor, y: torch.Tensor, valid_px: torch.Tensor, win: int,
                          data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image SSIM over window positions lying entirely on valid pixels, and whether an image
    has any such window. Differentiable: the training loss and the metric share this one
    definition, so what is optimised is what is reported."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

    c = x.shape[1]
    g = _fspecial_gauss_1d(win, 1.5).repeat([c, 1, 1, 1]).to(x.device, x.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu1, mu2 = gaussian_filter(x, g), gaussian_filter(y, g)
    s11 = gaussian_filter(x * x, g) - mu1 ** 2
    s22 = gaussian_filter(y * y, g) - mu2 ** 2
    s12 = gaussian_filter(x * y, g) - mu1 * mu2
    smap = ((2 * mu1 * mu2 + c1) / (mu1 ** 2 + mu2 ** 2 + c1)) * ((2 * s12 + c2) / (s11 + s22 + c2))
    # A window position counts only if every pixel under its window is valid (erosion).
    valid = (-F.max_pool2d(-(valid_px.to(x.dtype)), kernel_size=win, stride=1) > 0.5).to(x.dtype)
    n = valid.sum(dim=(1, 2, 3))
    per = (smap * valid).sum(dim=(1, 2, 3)) / n.clamp_min(1)
    return torch.relu(per), n > 0


def _masked_ssim(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, data_range: float, win: int) -> float:
    per, has = masked_ssim_per_image(x, y, m, win, data_range)
    return _nanmean([float(v) if ok else float("nan") for v, ok in zip(per.tolist(), has.tolist())])


# --- ENL ---------------------------------------------------------------------------------

def enl(intensity: Any, mask: Any = None) -> float:
    """Equivalent number of looks ``mean(I)² / var(I)`` of linear intensity (population variance).

    Only meaningful on a homogeneous region; NaN if there are fewer than two valid pixels,
    ``inf`` for a constant region.
    """
    t = _t(intensity).flatten()
    if mask is not None:
        t = t[_t(mask, torch.bool).flatten().to(t.device)]
    if t.numel() < 2:
        return float("nan")
    var = float(t.var(unbiased=False))
    mean = float(t.mean())
    return float("inf") if var == 0 else mean * mean / var


def enl_blocks(intensity: Any, mask: Any = None, block: int = ENL_BLOCK,
               fraction: float = ENL_FRACTION) -> list[tuple[int, int]]:
    """``(row, col)`` of the homogeneous blocks of one image, by the rule in docs/metrics.md.

    Tile from the top-left into non-overlapping ``block × block`` blocks (a remainder strip is
    ignored); keep blocks that are fully valid and have mean > 0 and variance > 0; sort them by
    coefficient of variation std/mean (ascending, ties by position); take the first
    ``ceil(fraction · n)`` of them (at least one). Empty if no block qualifies.
    """
    t = _t(intensity)
    if t.shape[0] != 1 or t.shape[1] != 1:
        raise ValueError(f"enl_blocks works on one single-channel image, got shape {tuple(t.shape)}")
    img = t[0, 0]
    h, w = img.shape
    nb_r, nb_c = h // block, w // block
    if nb_r == 0 or nb_c == 0:
        return []
    crop = img[:nb_r * block, :nb_c * block]
    blocks = crop.reshape(nb_r, block, nb_c, block).permute(0, 2, 1, 3).reshape(nb_r, nb_c, -1)
    mean = blocks.mean(-1)
    std = blocks.std(-1, unbiased=False)
    ok = (mean > 0) & (std > 0) & torch.isfinite(mean) & torch.isfinite(std)
    if mask is not None:
        mm = _t(mask, torch.bool)[0, 0].to(img.device)[:nb_r * block, :nb_c * block]
        full = mm.reshape(nb_r, block, nb_c, block).permute(0, 2, 1, 3).reshape(nb_r, nb_c, -1).all(-1)
        ok &= full
    cands = [(float(std[r, c] / mean[r, c]), r, c) for r in range(nb_r) for c in range(nb_c) if bool(ok[r, c])]
    if not cands:
        return []
    cands.sort()
    k = max(1, math.ceil(fraction * len(cands)))
    return [(r * block, c * block) for _, r, c in cands[:k]]


def _as_prep(preprocessing: Any) -> Any:
    if isinstance(preprocessing, dict):
        from sarzoo.data.preprocess import Preprocessing

        return Preprocessing.from_dict(preprocessing)
    return preprocessing


def _to_intensity(x01: torch.Tensor, preprocessing: Any) -> torch.Tensor:
    if preprocessing is None:
        return x01
    return _as_prep(preprocessing).inverse(x01, domain="intensity")


def enl_ratio(input_db01: Any, recon_db01: Any, preprocessing: Any = None, mask: Any = None,
              block: int = ENL_BLOCK, fraction: float = ENL_FRACTION) -> float:
    """Mean over the input's homogeneous blocks of ``ENL(recon_block) / ENL(input_block)``.

    Both images are first mapped back to linear intensity with ``preprocessing.inverse``
    (a ``Preprocessing`` or its ``to_dict()``, or a list of one per image; None means they
    already are linear intensity).
    Blocks are chosen on the input only (``enl_blocks``), so both ENLs use the same pixels.
    Per-image values are averaged over a batch; NaN when no block qualifies (image smaller
    than a block, or no fully valid block). > 1 means the reconstruction is smoother.
    """
    xt, yt = _t(input_db01), _t(recon_db01)
    _check_pair(xt, yt)
    m = _mask(mask, xt)
    yt = yt.to(xt.device)
    if isinstance(preprocessing, (list, tuple)):
        if len(preprocessing) != xt.shape[0]:
            raise ValueError(f"{len(preprocessing)} preprocessings for {xt.shape[0]} images")
        preps = [_as_prep(p) for p in preprocessing]   # one per image (scenes with their own range)
        xi = torch.stack([_to_intensity(xt[n], preps[n]) for n in range(xt.shape[0])])
        yi = torch.stack([_to_intensity(yt[n], preps[n]) for n in range(xt.shape[0])])
    else:
        xi, yi = _to_intensity(xt, preprocessing), _to_intensity(yt, preprocessing)
    out = []
    for n in range(xt.shape[0]):
        for ch in range(xt.shape[1]):
            mi = None if m is None else m[n, ch]
            sel = enl_blocks(xi[n, ch], mi, block, fraction)
            ratios = []
            for r, c in sel:
                e_in = enl(xi[n, ch, r:r + block, c:c + block])
                e_out = enl(yi[n, ch, r:r + block, c:c + block])
                ratios.append(e_out / e_in)
            out.append(_nanmean(ratios) if ratios else float("nan"))
    return _nanmean(out)


# --- EPI ---------------------------------------------------------------------------------

def epi(ref: Any, out: Any, mask: Any = None) -> float:
    """Edge preservation index (Sattar et al. 1997), the correlation of Laplacian responses.

    ``d = H*img − mean(H*img)`` with the 3×3 Laplacian H, evaluated without padding (the border
    row/column is left out rather than invented), and ``EPI = Σd1·d2 / sqrt(Σd1²·Σd2²)`` over
    the positions whose whole 3×3 neighbourhood is valid. 1 = edges kept exactly (up to a
    positive scale); NaN when an image has no edge response at all (constant).
    """
    rt, ot = _t(ref), _t(out)
    _check_pair(rt, ot)
    ot = ot.to(rt.device)
    n, c = rt.shape[:2]
    k = _LAPLACIAN.to(rt.device, rt.dtype).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    if rt.shape[-1] < 3 or rt.shape[-2] < 3:
        return float("nan")
    h1, h2 = F.conv2d(rt, k, groups=c), F.conv2d(ot, k, groups=c)
    m = _mask(mask, rt)
    valid = None if m is None else (-F.max_pool2d(-(m.to(rt.dtype)), 3, stride=1) > 0.5)
    vals = []
    for i in range(n):
        a, b = h1[i], h2[i]
        if valid is not None:
            a, b = a[valid[i]], b[valid[i]]
        if a.numel() == 0:
            vals.append(float("nan"))
            continue
        d1, d2 = a - a.mean(), b - b.mean()
        den = math.sqrt(float((d1 * d1).sum()) * float((d2 * d2).sum()))
        vals.append(float("nan") if den == 0 else float((d1 * d2).sum()) / den)
    return _nanmean(vals)


# --- classical reference ------------------------------------------------------------------

def reference_size(shape: tuple[int, ...], latent_numel: int) -> tuple[int, int]:
    """Downsampled (h, w) holding about ``latent_numel`` numbers for an image ``(C, H, W)``.

    The factor ``s = sqrt(C·H·W / latent_numel)`` is applied to both sides (aspect kept):
    1×256×256 with a 16×16×16 latent gives s = 4, i.e. 64×64.
    """
    c, h, w = (1, *shape) if len(shape) == 2 else tuple(shape[-3:])
    if latent_numel < 1:
        raise ValueError(f"latent_numel must be >= 1, got {latent_numel}")
    s = math.sqrt(c * h * w / latent_numel)
    return (min(h, max(1, round(h / s))), min(w, max(1, round(w / s))))


def classical_reference(x: Any, latent_numel: int) -> Any:
    """Dimension-matched baseline: area-downsample to ``reference_size``, bicubic back, clamp.

    ``latent_numel`` is the count of numbers in one image's latent (e.g. 16·16·16). A model
    that cannot beat this at equal size is not worth its parameters (SPEC §3). Returns the
    same type and shape as ``x``.
    """
    is_tensor = isinstance(x, torch.Tensor)
    orig = torch.as_tensor(x)
    t = _t(orig, orig.dtype if orig.is_floating_point() else torch.float32)
    size = reference_size(tuple(t.shape[1:]), latent_numel)
    small = F.adaptive_avg_pool2d(t, size)
    up = F.interpolate(small, size=t.shape[-2:], mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    up = up.reshape(orig.shape)
    return up if is_tensor else up.cpu().numpy()


# --- all together --------------------------------------------------------------------------

def channels_of(x: Any) -> int:
    """Channels of an image or batch: 1 for ``(H, W)``, else its axis −3 (``(C, H, W)``, ``(N, C, H, W)``)."""
    shape = tuple(x.shape)
    return 1 if len(shape) < 3 else int(shape[-3])


def _channel(a: Any, c: int) -> Any:
    """Channel ``c`` of an image or batch (kept 4-D: (N, 1, H, W)); a one-channel mask serves all."""
    if a is None:
        return None
    t = torch.as_tensor(a)
    while t.dim() < 4:
        t = t.unsqueeze(0)
    return t if t.shape[1] == 1 else t[:, c:c + 1]


def _channel_prep(preprocessing: Any, c: int) -> Any:
    if preprocessing is None:
        return None
    if isinstance(preprocessing, (list, tuple)):
        return [_as_prep(p).channel(c) for p in preprocessing]
    return _as_prep(preprocessing).channel(c)


def band_names(channels: int, preprocessing: Any = None, bands: Any = None) -> list[str]:
    """Names of the channels in reports: ``bands``, else the preprocessing's, else ``band1``, ``band2``…"""
    if bands is not None:
        names = [str(b) for b in bands]
    else:
        p = preprocessing[0] if isinstance(preprocessing, (list, tuple)) and preprocessing else preprocessing
        p = _as_prep(p)
        names = p.band_names() if p is not None and getattr(p, "channels", 1) == channels else \
            [f"band{i + 1}" for i in range(channels)]
    if len(names) != channels:
        raise ValueError(f"{len(names)} band names {names} for {channels} channels")
    return names


def _per_channel(fn: Any, x: Any, y: Any, mask: Any, preprocessing: Any, clean: Any,
                 bands: Any) -> dict[str, Any]:
    """``fn`` (one channel's figures) on every channel; the mean over channels of each figure (NaN left
    out), and the per-channel figures under ``"channels"``. One channel: ``fn`` itself, unchanged."""
    c = channels_of(x)
    if c == 1:
        return fn(x, y, mask, preprocessing, clean)
    per = {name: fn(_channel(x, i), _channel(y, i), _channel(mask, i), _channel_prep(preprocessing, i),
                    _channel(clean, i))
           for i, name in enumerate(band_names(c, preprocessing, bands))}
    first = next(iter(per.values()))
    out: dict[str, Any] = {k: _nanmean([d[k] for d in per.values()]) for k in first}
    out["channels"] = per
    return out


def _single(x: Any, y: Any, mask: Any, preprocessing: Any, clean: Any) -> dict[str, float]:
    out = {
        "psnr": psnr(x, y, mask),
        "ssim": ssim(x, y, mask),
        "enl_ratio": enl_ratio(x, y, preprocessing, mask),
        "epi": epi(x, y, mask),
    }
    if clean is not None:
        out["psnr_clean"] = psnr(clean, y, mask)
        out["ssim_clean"] = ssim(clean, y, mask)
        out["epi_clean"] = epi(clean, y, mask)
    return out


def _detached(a: Any) -> Any:
    if isinstance(a, tuple):  # a model's (x_hat, z)
        a = a[0]
    return a.detach() if isinstance(a, torch.Tensor) else a


def compute_metrics(x: Any, x_hat: Any, mask: Any = None, preprocessing: Any = None,
                    bands: Any = None) -> dict[str, Any]:
    """``{"psnr", "ssim", "enl_ratio", "epi"}`` of a reconstruction ``x_hat`` of ``x`` (both [0, 1]).

    ``preprocessing`` (object or dict, or a list of one per image) lets ENL be measured in linear
    intensity as SPEC §3 requires; without it ENL is computed on the [0, 1] values themselves (not
    comparable with the seeds' figures: docs/metrics.md). EPI is computed on the [0, 1] values.
    With C > 1 channels every figure is the mean over channels, and ``"channels"`` maps each band
    name (``bands``, else the preprocessing's, else ``band1``…) to that channel's figures.
    """
    return batch_metrics(x, x_hat, mask, preprocessing, bands=bands)


def batch_metrics(x: Any, x_hat: Any, mask: Any = None, preprocessing: Any = None,
                  clean: Any = None, bands: Any = None) -> dict[str, Any]:
    """The figures of one batch that training validation and ``sarzoo eval`` both report.

    ``compute_metrics`` against the input, plus ``psnr_clean``/``ssim_clean``/``epi_clean``
    against the noise-free reflectivity when ``clean`` is given (synthetic data). One function
    for both, so the number a run logs for its validation split is the one ``sarzoo eval``
    reproduces. Several channels: as ``compute_metrics`` (means, and ``"channels"`` by band).
    """
    with torch.no_grad():
        return _per_channel(_single, _detached(x), _detached(x_hat), mask, preprocessing,
                            None if clean is None else _detached(clean), bands)


def flatten_channels(figures: dict[str, Any]) -> dict[str, Any]:
    """``{"psnr": …, "channels": {"VV": {"psnr": …}}}`` → ``{"psnr": …, "psnr/VV": …}``: flat scalars for
    logs and TensorBoard (whose tags then group each figure's bands)."""
    out = {k: v for k, v in figures.items() if k != "channels"}
    for band, d in (figures.get("channels") or {}).items():
        out.update({f"{k}/{band}": v for k, v in d.items()})
    return out
