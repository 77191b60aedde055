"""The rate–distortion figure: bits per valid pixel (log axis) against PSNR, SSIM, ENL ratio and EPI,
and against the clean truth's PSNR on synthetic data; one line per curve.

Why matplotlib's object API with the Agg canvas, not ``pyplot``: no global backend or figure state,
so a report made inside a notebook or a GUI session neither opens a window nor changes the user's
backend. The PNG comes back as bytes; the command writes it atomically (``sarzoo.files``).
"""
from __future__ import annotations

import io
import math
from typing import Any

__all__ = ["PANELS", "render_png"]

#: (figure key, axis label, reference line or None) of every panel, in order.
PANELS = (("psnr", "PSNR (dB) against the input", None),
          ("ssim", "SSIM against the input", None),
          ("enl_ratio", "ENL ratio (1 = speckle kept)", 1.0),
          ("epi", "EPI (edge preservation)", None),
          ("psnr_clean", "PSNR (dB) against the clean truth", None))

_STYLE = {"model": {"marker": "o", "linestyle": "-"}, "jpeg2000": {"marker": "s", "linestyle": "-", "color": "black"},
          "bicubic": {"marker": "^", "linestyle": "--", "color": "grey"}}


def _ok(v: Any) -> bool:
    return v is not None and math.isfinite(v)


def render_png(report: dict[str, Any], dpi: int = 110) -> bytes:
    """The figure of a ``rd_report`` dict as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = report["curves"]
    panels = [p for p in PANELS if any(p[0] in q for c in curves for q in c["points"])]
    cols = 3 if len(panels) > 4 else 2
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 4.0 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (key, label, ref) in zip(axes, panels):
        for c in curves:
            pts = [(q["bpp"], q[key]) for q in c["points"] if _ok(q.get(key)) and _ok(q["bpp"]) and q["bpp"] > 0
                   and (key != "enl_ratio" or q[key] > 0)]
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=c["name"], **_STYLE[c["codec"]])
        if ref is not None:
            ax.axhline(ref, color="tab:green", linewidth=0.8, linestyle=":")
        if key == "psnr_clean" and report.get("input") and _ok(report["input"].get("psnr")):
            ax.axhline(report["input"]["psnr"], color="tab:red", linewidth=0.8, linestyle=":",
                       label="speckled input (uncoded)")
        ax.set_xscale("log")
        if key == "enl_ratio":  # from far below 1 (noisier) to far above (smoothed): ratios read on a log axis
            ax.set_yscale("log")
        ax.set_xlabel("bits per valid pixel")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"rate–distortion: {report['data']['description']}", fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
