"""``sarzoo rd``: rate–distortion report of checkpoints against JPEG 2000 and the bicubic reference.

The measuring is ``sarzoo.rd``'s; this module parses the flags, prints the table or one JSON object,
and writes the plot and ``--out`` files, atomically and only once everything is measured (a refused
or failed run leaves no file behind). Torch and matplotlib load in ``run`` only, so ``sarzoo --help``
stays instant.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

#: --heldout without a count (as ``sarzoo eval``'s; a constant here so `sarzoo --help` imports nothing)
HELDOUT_SCENES = 32

NAME = "rd"
NEEDS_TORCH = True
HELP = "rate–distortion report: checkpoints vs JPEG 2000 and bicubic, bits per pixel vs PSNR/SSIM/ENL/EPI, BD-rate"
DESCRIPTION = (
    "Measure checkpoints and classical codecs on the same images and report bits per valid pixel against PSNR, "
    "SSIM, ENL ratio and EPI (and against the clean truth on synthetic data): a table, --json, a PNG plot. The "
    "images are sarzoo eval's: the first checkpoint's validation scenes by default, --data files, or --heldout "
    "scenes, read with the stored clip range; every checkpoint must see the same images. Classical points: JPEG "
    "2000 (GDAL's OpenJPEG, 16-bit, rate = the codestream's real size) at --jp2-rates, and area-downsample + "
    "bicubic (eval's classical reference, 16 bits per kept number) at --bicubic-factors. Checkpoints of one "
    "recipe form one curve (or name curves with --curve); a curve of 4 or more points gets its BD-rate and "
    "BD-PSNR against JPEG 2000. Exit status 2 with a one-paragraph message on bad input. See docs/rd.md."
)


def _list(values: list[str] | None) -> list[str]:
    """Numbers given as separate words or comma-separated (``0.1 0.2`` or ``0.1,0.2``)."""
    return [v for word in values or [] for v in word.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="*", metavar="CKPT",
                   help="checkpoint files or run directories (best.pt, else last.pt); checkpoints of one recipe "
                        "form one curve, a point each")
    p.add_argument("--curve", action="append", default=[], metavar="NAME=CKPT,CKPT,...",
                   help="a named curve of these checkpoints (repeatable); e.g. checkpoints trained at several "
                        "rate–distortion trade-offs")
    p.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                   help="measure on these files/directories/globs instead (all their scenes; no split); put it "
                        "after the checkpoints")
    p.add_argument("--split", choices=["val", "train", "all"], default=None,
                   help="which part of the first checkpoint's own data (default val; ignored with --data)")
    p.add_argument("--heldout", nargs="?", type=int, const=HELDOUT_SCENES, default=None, metavar="N",
                   help=f"measure on N (default {HELDOUT_SCENES}) scenes of the synthetic generator's held-out "
                        "profile, as sarzoo eval --heldout")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data or runtime key of the checkpoints' recipes (e.g. data.nodata=0)")
    p.add_argument("--jp2-rates", nargs="*", default=None, metavar="BPP",
                   help="JPEG 2000 target rates in bits per pixel (default 0.05 0.1 0.2 0.4 0.8 1.6 3.2; the "
                        "measured rate is reported; none: no JPEG 2000)")
    p.add_argument("--bicubic-factors", nargs="*", default=None, metavar="F",
                   help="downsampling factors per side of the bicubic reference (default 2 3 4 6 8; none: no "
                        "bicubic points)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--plot", metavar="PNG", help="write the figure (bits per pixel against every metric) here")
    p.add_argument("--out", metavar="DIR", help="write rd.json, rd.txt and rd.png into DIR")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")


def _curves(specs: list[str]) -> list[tuple[str, list[str]]]:
    from sarzoo.errors import SarzooError

    out = []
    for s in specs:
        name, eq, paths = s.partition("=")
        if not eq or not name.strip():
            raise SarzooError(f"--curve {s!r}: expected NAME=CKPT,CKPT,... (a name, '=', checkpoints separated by "
                              f"commas)")
        out.append((name.strip(), [q.strip() for q in paths.split(",") if q.strip()]))
    return out


def _check_target(path: str, flag: str, what: str) -> Path:
    """Refuse an output path that cannot be written before anything is measured."""
    from sarzoo.errors import SarzooError

    p = Path(path).expanduser()
    if flag == "--plot":
        if p.suffix.lower() != ".png":
            raise SarzooError(f"--plot {path}: the figure is a PNG; give a file name ending in .png")
        if p.is_dir():
            raise SarzooError(f"--plot {path}: is a directory; give a file name ending in .png")
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise SarzooError(f"--out {path}: exists and is not a directory")
        parent = p
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise SarzooError(f"{flag} {path}: cannot write {what} there ({probe} is not a writable directory)")
    return p


def run(args) -> int:
    """Measure, then print the table (progress on stderr) or one JSON object, then write the files."""
    from sarzoo.commands.evaluate import warnings_to_stderr
    from sarzoo.files import atomic_write_bytes, atomic_write_text
    from sarzoo.rd import rd_report
    from sarzoo.rd.report import format_table
    from sarzoo.rd.run import DEFAULT_BICUBIC_FACTORS, DEFAULT_JP2_RATES

    plot = _check_target(args.plot, "--plot", "the figure") if args.plot else None
    out = _check_target(args.out, "--out", "the report files") if args.out else None
    say = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    with warnings_to_stderr():   # ours as one line each on stderr (also with --json), as sarzoo eval prints them
        r = rd_report(args.checkpoints, args.data, curves=_curves(args.curve), split=args.split,
                      heldout=args.heldout, overrides=args.overrides,
                      jp2_rates=DEFAULT_JP2_RATES if args.jp2_rates is None else _list(args.jp2_rates),
                      bicubic_factors=DEFAULT_BICUBIC_FACTORS if args.bicubic_factors is None
                      else _list(args.bicubic_factors),
                      device=args.device, progress=say)
    table = format_table(r)
    png = _png(r) if plot or out else None
    # everything is measured and rendered: only now is anything written
    if plot:
        atomic_write_bytes(plot, png)
    if out:
        atomic_write_text(out / "rd.json", json.dumps(r, allow_nan=False, indent=1) + "\n")
        atomic_write_text(out / "rd.txt", table + "\n")
        atomic_write_bytes(out / "rd.png", png)
    if args.json:
        print(json.dumps(r, allow_nan=False))
    else:
        print(table)
        for where in [str(plot)] if plot else []:
            print(f"plot       {where}")
        if out:
            print(f"written    {out}/rd.json, rd.txt, rd.png")
    return 0


def _png(r: dict[str, Any]) -> bytes:
    from sarzoo.rd.plot import render_png

    return render_png(r)
