"""Bjøntegaard deltas: how much rate a curve saves against an anchor at equal quality, and how much
quality it gains at equal rate.

Why a package and which method: ``bjontegaard`` (FAU, maintained, the implementation of Herglotz
et al.'s study of BD interpolation) computes both; its Akima interpolation of log-rate as a
function of quality is the one that study found closest to the truth, and it needs no fourth-order
fit that swings between points. The classic VCEG-M33 cubic fit needs 4 points, and fewer points
say little about a curve's shape, so a curve here needs ``MIN_POINTS`` (docs/rd.md).

- **BD-rate** (%): the mean over the overlapping quality range of ``rate_test / rate_anchor − 1``
  in the log domain; negative = the curve needs fewer bits than the anchor for the same quality.
- **BD-<metric>** (e.g. BD-PSNR, dB): the mean gain in that metric over the overlapping log-rate range.

A curve whose quality does not rise strictly with rate (a model checkpoint that spends more bits for a
worse picture) has no single rate for a given quality: BD is undefined there and reported as such.
Against the clean truth (synthetic data) quality is *expected* to peak and fall: past some rate a codec
spends its bits on reproducing speckle, which moves it away from the clean scene. There (``rising_part``)
each curve is cut at its peak and BD uses the rising part.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

__all__ = ["MIN_POINTS", "METHOD", "bd", "prepare"]

#: Fewest points a curve needs for a BD figure.
MIN_POINTS = 4
#: Interpolation of the ``bjontegaard`` package.
METHOD = "akima"


def prepare(rates: Sequence[float], values: Sequence[float | None],
            rising_part: bool = False) -> tuple[list[float], list[float], str | None]:
    """The points of one curve ready for BD, sorted by rate: ``(rates, values, why_not)``.

    Undefined points (None, NaN, ±inf, a rate ≤ 0) are left out; exact repeats of a point (JPEG 2000
    targets below a small image's header floor all give the same codestream) count once; with
    ``rising_part`` the points after the best value are left out. ``why_not`` says why the curve cannot
    take part, else None."""
    pts = sorted({(float(r), float(v)) for r, v in zip(rates, values)
                  if r is not None and v is not None and math.isfinite(r) and r > 0 and math.isfinite(v)})
    if rising_part and pts:
        best = max(range(len(pts)), key=lambda i: (pts[i][1], -i))
        pts = pts[:best + 1]
    if len(pts) < MIN_POINTS:
        return [], [], f"n/a (needs ≥ {MIN_POINTS} points, has {len(pts)})"
    rs, vs = [p[0] for p in pts], [p[1] for p in pts]
    if any(b <= a for a, b in zip(rs, rs[1:])) or any(b <= a for a, b in zip(vs, vs[1:])):
        return [], [], "n/a (quality does not rise strictly with rate)"
    return rs, vs, None


def bd(anchor_rates: Sequence[float], anchor_values: Sequence[float | None], test_rates: Sequence[float],
       test_values: Sequence[float | None], rising_part: bool = False) -> dict[str, Any]:
    """``{"bd_rate": %, "bd_value": Δ, "overlap_rate": f, "overlap_value": f, "note": str|None}`` of a
    test curve against an anchor; undefined figures are None with the reason in ``note``.

    ``overlap_*``: the share of the two curves' joint range (in log-rate, and in the metric) that
    both cover; BD extrapolates nothing, it averages over that overlap only. ``rising_part``: each curve
    up to its best value only (quality against the clean truth).
    """
    import bjontegaard

    out: dict[str, Any] = {"bd_rate": None, "bd_value": None, "overlap_rate": None, "overlap_value": None,
                           "note": None}
    ar, av, why_a = prepare(anchor_rates, anchor_values, rising_part)
    tr, tv, why_t = prepare(test_rates, test_values, rising_part)
    if why_t or why_a:
        out["note"] = why_t or f"anchor: {why_a}"
        return out
    lar, ltr = [math.log10(r) for r in ar], [math.log10(r) for r in tr]
    out["overlap_rate"] = _overlap(lar, ltr)
    out["overlap_value"] = _overlap(av, tv)
    if not out["overlap_rate"] and not out["overlap_value"]:
        out["note"] = "n/a (the curves do not overlap)"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns on a small overlap; the report states it
        if out["overlap_value"]:
            out["bd_rate"] = _finite(bjontegaard.bd_rate(ar, av, tr, tv, METHOD, require_matching_points=False,
                                                         min_overlap=0))
        if out["overlap_rate"]:
            out["bd_value"] = _finite(bjontegaard.bd_psnr(ar, av, tr, tv, METHOD, require_matching_points=False,
                                                          min_overlap=0))
    if out["bd_rate"] is None or out["bd_value"] is None:
        out["note"] = "partly n/a (the curves overlap in only one of rate and quality)"
    return out


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    span = max(max(a), max(b)) - min(min(a), min(b))
    return max(0.0, hi - lo) / span if span > 0 else 0.0


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
