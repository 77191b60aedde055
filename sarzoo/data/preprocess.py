"""SAR radiometric preprocessing: raw values -> dB -> clipped -> [0, 1], and back.

SAR pixel values span five orders of magnitude and carry multiplicative speckle, so networks
are trained on a clipped decibel scale. The exact clip range must travel with every model
(checkpoint) or reconstructions come back at the wrong scale; that is why ``Preprocessing``
serialises to plain Python types only (``torch.load(weights_only=True)`` accepts nothing else).

Percentile clip ranges are estimated by ``DbHistogram``: a fixed-bin histogram over dB that is
fed window by window, so the memory used does not grow with the size of the training set.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable

import numpy as np

from sarzoo.errors import SarzooError

DOMAINS = ("intensity", "amplitude", "db")

#: Histogram range and resolution for percentile estimation (dB). Anything outside lands in
#: the edge bins; 0.01 dB is far below what matters for a clip bound.
HIST_DB_MIN = -150.0
HIST_DB_MAX = 150.0
HIST_BIN_DB = 0.01


#: Warn when more than this share of the valid pixels of one file fall outside the clip range:
#: the model then sees mostly 0 or 1 (e.g. uncalibrated Sentinel-1 digital numbers, 15..55 dB,
#: against a model trained on σ0 from −26 to −2 dB: every pixel saturates) and its output is
#: meaningless. The percentile clip itself cuts 2 % of the training pixels, so 50 % is far off.
CLIP_WARN_FRACTION = 0.5


class ClipRangeWarning(UserWarning):
    """Most of a file's valid pixels fall outside the model's clip range (its output is garbage)."""


def clip_counts(x01: Any, mask: Any) -> tuple[int, int, int]:
    """``(valid, below, above)``: valid pixels of a preprocessed ``x01`` that sit at the clip range's
    bounds (0 or 1 after clipping). Counted on values already read: no extra pass over the data."""
    x = np.asarray(x01.detach().cpu() if _is_torch(x01) else x01)
    m = np.asarray(mask.detach().cpu() if _is_torch(mask) else mask, dtype=bool)
    v = x[m]
    return int(v.size), int(np.count_nonzero(v <= 0.0)), int(np.count_nonzero(v >= 1.0))


def clip_warning(where: str, valid: int, below: int, above: int, prep: "Preprocessing",
                 threshold: float = CLIP_WARN_FRACTION) -> str | None:
    """One line saying that ``where``'s values mostly fall outside the clip range, with the remedy;
    None when at most ``threshold`` of its valid pixels were clipped."""
    if valid <= 0 or (below + above) / valid <= threshold:
        return None
    if prep.per_scene:  # each scene's own percentiles: clipping is what low/high ask for
        return None
    return (f"{where}: {(below + above) / valid:.0%} of the valid pixels fall outside the model's clip range "
            f"{prep.range_text()} ({below / valid:.0%} below, {above / valid:.0%} above, "
            f"read as domain '{prep.domain}'), so the model sees saturated input and its output means little; "
            f"calibrate the data to σ0, or say how to read it (--set data.domain=intensity|amplitude|db), or "
            f"retrain (fit the clip range) on data like this")


def _check_domain(domain: str) -> str:
    d = str(domain).lower()
    if d not in DOMAINS:
        raise SarzooError(f"unknown data domain {domain!r}: expected one of {', '.join(DOMAINS)}")
    return d


def _is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch")


def valid_mask(raw: Any, domain: str, nodata: float | None = None) -> Any:
    """True where ``raw`` holds a measurement.

    NaN/inf and the declared ``nodata`` value are always no-data. In the linear domains an
    exact zero is no-data too (a measured intensity is never exactly zero, and zero is the
    fill value of Sentinel-1 GRD borders); in dB a zero is a valid 1.0 intensity, so a dB
    product that uses 0 as fill must declare ``nodata: 0``.
    """
    domain = _check_domain(domain)
    if _is_torch(raw):
        import torch

        m = torch.isfinite(raw)
        if domain != "db":
            m &= raw != 0
        if nodata is not None and np.isfinite(nodata):
            m &= raw != nodata
        return m
    raw = np.asarray(raw)
    m = np.isfinite(raw)
    if domain != "db":
        m &= raw != 0
    if nodata is not None and np.isfinite(nodata):
        m &= raw != nodata
    return m


def to_db(raw: Any, domain: str, eps: float = 1e-10) -> Any:
    """Raw values of ``domain`` in dB: ``10·log10(max(I, eps))`` of the linear intensity I.

    Negative intensities (thermal-noise-removed products have some) are floored at ``eps``
    rather than rejected: they are real, very dark measurements. No-data is not handled here.
    """
    domain = _check_domain(domain)
    if _is_torch(raw):
        import torch

        raw = raw.to(torch.float64) if not raw.is_floating_point() else raw
        if domain == "db":
            return raw
        inten = raw * raw if domain == "amplitude" else raw
        return 10.0 * torch.log10(torch.clamp(inten, min=eps))
    raw = np.asarray(raw)
    if not np.issubdtype(raw.dtype, np.floating):
        raw = raw.astype(np.float64)
    if domain == "db":
        return raw
    with np.errstate(invalid="ignore", over="ignore"):
        inten = raw * raw if domain == "amplitude" else raw
        return 10.0 * np.log10(np.maximum(inten, eps))


class DbHistogram:
    """Streaming percentile estimator over dB values (bounded memory, exact counts per bin).

    Why a histogram and not reservoir sampling: it is deterministic, mergeable across scenes,
    and its error is bounded by the bin width (0.01 dB) instead of by chance.
    """

    def __init__(self, lo: float = HIST_DB_MIN, hi: float = HIST_DB_MAX, bin_width: float = HIST_BIN_DB):
        self.lo, self.hi, self.bin_width = float(lo), float(hi), float(bin_width)
        self.n_bins = int(round((self.hi - self.lo) / self.bin_width))
        self.counts = np.zeros(self.n_bins, dtype=np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def update(self, db_values: np.ndarray) -> None:
        """Add finite dB values (any shape); values outside the range go to the edge bins."""
        v = np.asarray(db_values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        idx = np.floor((v - self.lo) / self.bin_width).astype(np.int64)
        np.clip(idx, 0, self.n_bins - 1, out=idx)
        self.counts += np.bincount(idx, minlength=self.n_bins)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100), linearly interpolated inside the bin that holds it."""
        total = self.total
        if total == 0:
            raise SarzooError("cannot compute clip percentiles: the training data has no valid pixel")
        target = float(q) / 100.0 * total
        cum = np.cumsum(self.counts)
        # the first bin holding the target (q = 0: the first bin holding anything)
        i = int(np.searchsorted(cum, target, side="left")) if target > 0 else int(np.argmax(self.counts > 0))
        i = min(max(i, 0), self.n_bins - 1)
        before = cum[i - 1] if i > 0 else 0
        in_bin = self.counts[i]
        frac = 0.0 if in_bin == 0 else (target - before) / in_bin
        frac = min(max(frac, 0.0), 1.0)
        return self.lo + (i + frac) * self.bin_width


MODES = ("global", "per_scene")


def _bounds_list(v: Any) -> list[float] | float:
    if isinstance(v, (list, tuple, np.ndarray)):
        return [float(x) for x in np.asarray(v, dtype=np.float64).ravel()]
    return float(v)


@dataclass
class Preprocessing:
    """Raw SAR values <-> model input in [0, 1] with a validity mask, channel by channel.

    ``vmin``/``vmax`` are the clip range in dB: one number (one channel), or a list of one per
    channel (a multi-channel model: VV and VH have their own ranges); ``fill`` is the [0, 1] value
    written into no-data pixels (the mask tells the loss/metrics to ignore them); ``nodata`` is an
    extra raw value meaning "no measurement" besides NaN (and zero in the linear domains).
    ``mode`` ``per_scene``: the range is refitted on every scene (its ``low``/``high`` percentiles,
    ``refit``); ``vmin``/``vmax`` are then one scene's range, or in a checkpoint the training
    scenes' pooled range, kept for information only. ``bands`` names the channels (reports).
    """

    domain: str = "intensity"
    vmin: float | list[float] = -25.0
    vmax: float | list[float] = 0.0
    eps: float = 1e-10
    fill: float = 0.0
    nodata: float | None = None
    mode: str = "global"
    low: float = 1.0
    high: float = 99.0
    bands: list[str] | None = None

    def __post_init__(self) -> None:
        self.domain = _check_domain(self.domain)
        lo, hi = _bounds_list(self.vmin), _bounds_list(self.vmax)
        n = max(len(v) if isinstance(v, list) else 1 for v in (lo, hi))
        if self.bands is not None:
            self.bands = [str(b) for b in self.bands]
            if n == 1 and len(self.bands) > 1:
                n = len(self.bands)
            if len(self.bands) != n:
                raise SarzooError(f"preprocessing names {len(self.bands)} band(s) {self.bands} for {n} channel(s)")
        los = lo if isinstance(lo, list) else [lo] * n
        his = hi if isinstance(hi, list) else [hi] * n
        if len(los) != n or len(his) != n or n < 1:
            raise SarzooError(f"invalid clip range: vmin {lo} and vmax {hi} must give one bound per channel, "
                              f"as many of each")
        for a, b in zip(los, his):
            if not (np.isfinite(a) and np.isfinite(b) and b > a):
                raise SarzooError(f"invalid clip range: vmin={a} dB must be below vmax={b} dB")
        # one channel keeps plain numbers (the format of every single-channel checkpoint)
        self.vmin, self.vmax = (los[0], his[0]) if n == 1 else (los, his)
        self.eps, self.fill = float(self.eps), float(self.fill)
        self.nodata = None if self.nodata is None else float(self.nodata)
        if self.mode not in MODES:
            raise SarzooError(f"unknown preprocessing mode {self.mode!r}: expected one of {', '.join(MODES)}")
        self.low, self.high = float(self.low), float(self.high)
        if not 0.0 <= self.low < self.high <= 100.0:
            raise SarzooError(f"invalid clip percentiles low={self.low}, high={self.high}: need "
                              f"0 <= low < high <= 100")

    # -- channels ------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return len(self.vmin) if isinstance(self.vmin, list) else 1

    @property
    def per_scene(self) -> bool:
        return self.mode == "per_scene"

    def band_names(self) -> list[str]:
        """The channels' names: ``bands``, else ``band1``, ``band2``… (metric reports)."""
        return list(self.bands) if self.bands else [f"band{i + 1}" for i in range(self.channels)]

    def channel(self, c: int) -> "Preprocessing":
        """Channel ``c`` alone, as a single-channel preprocessing (per-channel metrics)."""
        if self.channels == 1:
            return self
        return replace(self, vmin=self.vmin[c], vmax=self.vmax[c],
                       bands=None if self.bands is None else [self.bands[c]])

    def with_range(self, vmin: Any, vmax: Any) -> "Preprocessing":
        """The same reading with another clip range (a scene's own, for ``per_scene``)."""
        return replace(self, vmin=_bounds_list(vmin), vmax=_bounds_list(vmax))

    def refit(self, raw_chunks: Iterable[Any]) -> "Preprocessing":
        """This preprocessing with the clip range of ``raw_chunks`` (raw ``(C, h, w)`` windows of one
        scene): its ``low``/``high`` percentiles per channel over the pixels valid in every band."""
        hists = channel_histograms(raw_chunks, self)
        if any(h.total == 0 for h in hists):
            raise SarzooError("the data has no valid pixel to fit a clip range from (every pixel is no-data "
                              "in some band); check the inputs and data.nodata")
        return self.with_range(*range_from_histograms(hists, self.low, self.high))

    def range_text(self, unit: bool = True) -> str:
        """The clip range for people: ``-26.00..-2.00 dB``, per band when there are several."""
        if self.per_scene:
            pooled = ("" if self.channels == 1 else " per channel")
            return f"each scene's own {self.low:g}..{self.high:g} percentiles{pooled}"
        db = " dB" if unit else ""
        if self.channels == 1:
            return f"{self.vmin:.2f}..{self.vmax:.2f}{db}"
        return ", ".join(f"{b} {a:.2f}..{z:.2f}{db}" for b, a, z in zip(self.band_names(), self.vmin, self.vmax))

    def check_shape(self, like: Any) -> None:
        """``SarzooError`` unless ``like`` (an array, or anything with a shape) holds this preprocessing's
        channels on axis −3; checked before a long run rather than at its first window."""
        self._bounds(like)

    def _bounds(self, like: Any) -> tuple[Any, Any]:
        """``(vmin, vmax)`` broadcastable against ``like`` (channels on axis −3)."""
        if self.channels == 1:
            return self.vmin, self.vmax
        shape = np.shape(like)
        if len(shape) < 3 or shape[-3] != self.channels:
            raise SarzooError(f"the preprocessing has {self.channels} channels ({', '.join(self.band_names())}) "
                              f"but the data has shape {tuple(shape)}; expected (..., {self.channels}, H, W)")
        lo = np.asarray(self.vmin, dtype=np.float64).reshape(-1, 1, 1)
        hi = np.asarray(self.vmax, dtype=np.float64).reshape(-1, 1, 1)
        if _is_torch(like):
            import torch

            return (torch.as_tensor(lo, device=like.device), torch.as_tensor(hi, device=like.device))
        return lo, hi

    # -- forward -------------------------------------------------------------------------
    def mask(self, raw: Any, nodata: float | None = None) -> Any:
        """Validity mask of ``raw``; ``nodata`` (e.g. the file's own value) adds to ``self.nodata``.

        With several channels a pixel is valid only where every band is (the union of the bands'
        no-data): a model fed half a pixel would invent the other half."""
        m = valid_mask(raw, self.domain, self.nodata)
        if nodata is not None and np.isfinite(nodata) and nodata != self.nodata:
            m = m & (raw != nodata)
        if self.channels > 1:
            self._bounds(raw)  # the shape check
            if _is_torch(m):
                m = m.all(dim=-3, keepdim=True).expand(m.shape).contiguous()
            else:
                m = np.broadcast_to(m.all(axis=-3, keepdims=True), m.shape).copy()
        return m

    def forward(self, raw: Any, nodata: float | None = None) -> tuple[Any, Any]:
        """``(x01, mask)``: float32 in [0, 1] and bool (False = no-data, filled with ``fill``)."""
        m = self.mask(raw, nodata)
        db = to_db(raw, self.domain, self.eps)
        lo, hi = self._bounds(raw)
        span = hi - lo  # python floats for one channel: the arithmetic stays in the data's dtype
        if _is_torch(raw):
            import torch

            if self.channels == 1:
                x = ((torch.clamp(db, lo, hi) - lo) / span).to(torch.float32)
            else:
                lo, hi = lo.to(db.dtype), hi.to(db.dtype)
                x = ((torch.minimum(torch.maximum(db, lo), hi) - lo) / (hi - lo)).to(torch.float32)
            x = torch.where(m, x, torch.full_like(x, self.fill))
            return x, m
        with np.errstate(invalid="ignore"):
            x = ((np.clip(db, lo, hi) - lo) / span).astype(np.float32)
        x = np.where(m, x, np.float32(self.fill)).astype(np.float32, copy=False)
        return x, m

    __call__ = forward

    # -- inverse -------------------------------------------------------------------------
    def inverse(self, x01: Any, domain: str | None = None) -> Any:
        """Model-domain values back to ``domain`` (default: the declared input domain).

        Values are clamped to [0, 1] first: a decoder output outside it has no meaning beyond
        the clip range. Clipped extremes stay clipped; the inverse cannot recover them.
        """
        domain = _check_domain(domain or self.domain)
        lo, hi = self._bounds(x01)
        if _is_torch(x01):
            import torch

            xf = x01 if x01.is_floating_point() else x01.to(torch.float32)
            if self.channels > 1:
                lo, hi = lo.to(xf.dtype), hi.to(xf.dtype)
            db = lo + torch.clamp(xf, 0.0, 1.0) * (hi - lo)  # python floats for one channel
            if domain == "db":
                return db
            inten = torch.pow(10.0, db / 10.0)
            return torch.sqrt(inten) if domain == "amplitude" else inten
        xf = np.asarray(x01)
        if not np.issubdtype(xf.dtype, np.floating):
            xf = xf.astype(np.float64)
        if self.channels > 1:  # per-channel bounds in the data's own precision, as one channel's are
            lo, hi = lo.astype(xf.dtype), hi.astype(xf.dtype)
        db = lo + np.clip(xf, 0.0, 1.0) * (hi - lo)
        if domain == "db":
            return db
        inten = np.power(10.0, db / 10.0)
        return np.sqrt(inten) if domain == "amplitude" else inten

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain ``str``/``float``/``list``/``None`` values only, safe for ``torch.load(weights_only=True)``.

        Keys at their default (``mode`` global, its percentiles, no ``bands``) are left out, so a
        single-channel preprocessing is stored exactly as before multi-channel models existed."""
        d = asdict(self)
        if self.mode == "global":
            for k in ("mode", "low", "high"):
                d.pop(k)
        if self.bands is None:
            d.pop("bands")

        def plain(v: Any) -> Any:
            if isinstance(v, (float, np.floating)):
                return float(v)
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        return {k: plain(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        """Inverse of ``to_dict``; unknown keys are an error (a newer checkpoint format)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SarzooError(f"unknown preprocessing parameters {sorted(unknown)}")
        return cls(**dict(d))


def channel_histograms(raw_chunks: Iterable[Any], prep: Preprocessing) -> list[DbHistogram]:
    """One ``DbHistogram`` per channel of the pixels of ``raw_chunks`` valid in every band (``prep.mask``)."""
    hists = [DbHistogram() for _ in range(prep.channels)]
    for raw in raw_chunks:
        raw = np.asarray(raw)
        m = prep.mask(raw)
        if not m.any():
            continue
        if prep.channels == 1:
            hists[0].update(to_db(raw[m], prep.domain, prep.eps))
            continue
        for c, h in enumerate(hists):
            h.update(to_db(raw[c][m[c]], prep.domain, prep.eps))
    return hists


def range_from_histograms(hists: list[DbHistogram], low: float, high: float) -> tuple[Any, Any]:
    """``(vmin, vmax)`` per channel (plain numbers for one channel) from ``channel_histograms``."""
    if not (0.0 <= low < high <= 100.0):
        raise SarzooError(f"invalid clip percentiles low={low}, high={high}: need 0 <= low < high <= 100")
    los, his = [], []
    for h in hists:
        a, b = _widen(h.percentile(low), h.percentile(high))
        los.append(a)
        his.append(b)
    return (los[0], his[0]) if len(hists) == 1 else (los, his)


def _widen(vmin: float, vmax: float) -> tuple[float, float]:
    if vmax - vmin < 0.1:
        mid = 0.5 * (vmin + vmax)
        vmin, vmax = mid - 0.5, mid + 0.5
    return float(vmin), float(vmax)


def fit_percentiles(db_chunks: Iterable[np.ndarray], low: float, high: float) -> tuple[float, float]:
    """Percentile clip range ``(vmin, vmax)`` of streamed dB values (valid pixels only).

    A range narrower than 0.1 dB (constant data) is widened to 1 dB around its centre, so the
    scaling neither divides by zero nor turns quantisation noise into full-scale contrast.
    """
    hist = DbHistogram()
    for chunk in db_chunks:
        hist.update(chunk)
    return range_from_histograms([hist], low, high)
