"""The text table of a rate–distortion report (``rd_report``'s dict): one row per codec point, then the
BD figures of every model curve against JPEG 2000.

Why a module of its own rather than the command's: the same table goes to the terminal and to
``--out DIR/rd.txt``, and tests read it without a subprocess.
"""
from __future__ import annotations

from typing import Any

__all__ = ["format_table"]


def _f(v: Any, spec: str, width: int) -> str:
    if v is None:
        return format("n/a", f">{width}")
    if abs(v) >= 1e4:  # an ENL ratio of a flat output: keep the columns aligned
        return format(format(v, ".2e"), f">{width}")
    return format(v, f"{width}{spec}")


def _setting(curve: dict[str, Any], p: dict[str, Any]) -> str:
    if curve["codec"] == "jpeg2000":
        return f"target {p['target_bpp']:g} bpp"
    if curve["codec"] == "bicubic":
        return f"1/{p['factor']:g} per side"
    latent = "×".join(map(str, p["latent_shape"]))
    path = p["checkpoint"]
    return f"{latent} {path if len(path) <= 28 else '…' + path[-27:]}"


def format_table(r: dict[str, Any]) -> str:
    """The whole text report: header, the points of every curve, the speckled input, BD figures."""
    d = r["data"]
    pp = d["preprocessing"]
    clean = any("psnr_clean" in p for c in r["curves"] for p in c["points"])
    lines = [
        f"data       {d['description']}: {d['n_images']} image(s), {d['valid_pixels']:,} valid pixels, "
        f"{d['channels']} channel(s)",
        f"           {pp['domain']} → dB clipped to the first checkpoint's range → [0, 1]; no-data out of every metric",
        f"rate       {r['rate']}",
        "",
    ]
    head = f"  {'curve':<14} {'setting':<38} {'bpp':>7} {'PSNR dB':>8} {'SSIM':>6} {'ENL ratio':>9} {'EPI':>6}"
    if clean:
        head += f"   | vs clean: {'PSNR dB':>8} {'SSIM':>6} {'EPI':>6}"
    lines.append(head)
    for c in r["curves"]:
        for p in c["points"]:
            row = (f"  {c['name'][:14]:<14} {_setting(c, p)[:38]:<38} {_f(p['bpp'], '.3f', 7)} "
                   f"{_f(p['psnr'], '.2f', 8)} {_f(p['ssim'], '.3f', 6)} {_f(p['enl_ratio'], '.3f', 9)} "
                   f"{_f(p['epi'], '.3f', 6)}")
            if clean:
                row += (f"   |           {_f(p.get('psnr_clean'), '.2f', 8)} {_f(p.get('ssim_clean'), '.3f', 6)} "
                        f"{_f(p.get('epi_clean'), '.3f', 6)}")
            lines.append(row)
    if r.get("input"):
        i = r["input"]
        lines.append(f"  {'speckled input':<14} {'(uncoded, against the clean truth)':<38} {'':>7} {'':>8} {'':>6} "
                     f"{'':>9} {'':>6}   |           {_f(i['psnr'], '.2f', 8)} {_f(i['ssim'], '.3f', 6)} "
                     f"{_f(i['epi'], '.3f', 6)}")
    models = [c for c in r["curves"] if c["codec"] == "model"]
    if models:
        lines += ["", f"BD against {r['bd_anchor']} (Akima, over the overlapping range; BD-rate < 0 = fewer bits "
                      f"for the same quality):"]
        for c in models:
            n = len(c["points"])
            parts: list[str] = []
            notes: dict[str, list[str]] = {}  # one undefined reason, said once for the metrics it applies to
            for k, label, unit in (("psnr", "PSNR", "dB"), ("ssim", "SSIM", ""), ("psnr_clean", "PSNR vs clean", "dB")):
                b = (c.get("bd") or {}).get(k)
                if b is None:
                    continue
                if b["bd_rate"] is None and b["bd_value"] is None:
                    notes.setdefault(b["note"], []).append(label)
                    continue
                rate = "n/a" if b["bd_rate"] is None else f"{b['bd_rate']:+.1f} %"
                val = "n/a" if b["bd_value"] is None else f"{b['bd_value']:+.3f}{(' ' + unit) if unit else ''}"
                parts.append(f"{label}: BD-rate {rate}, BD-{label.split()[0]} {val}")
            parts += [f"{', '.join(labels)}: {note}" for note, labels in notes.items()]
            lines.append(f"  {c['name']} ({n} point{'s' if n != 1 else ''}): " + "; ".join(parts))
    return "\n".join(lines)
