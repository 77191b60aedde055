"""``sarzoo reconstruct``: a whole scene of any size through a checkpoint, window by window, into a file.

The work is ``sarzoo.inference.run.reconstruct_file`` (a library call returning a report); this
module parses the flags, draws the progress bar, prints the report and owns the exit status.
Torch loads in ``run`` only, so ``sarzoo --help`` stays instant.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

NAME = "reconstruct"
NEEDS_TORCH = True
HELP = "reconstruct a whole scene of any size (GeoTIFF, .npy) window by window, in bounded memory"
DESCRIPTION = (
    "Run a scene through a trained checkpoint and write the reconstruction in the input's domain "
    "(intensity, amplitude or dB). The scene is read and written block by block (rasterio windows; a .npy is "
    "memory-mapped in and written with positioned writes), so memory is bounded by the block and the tile batch, "
    "not the scene. Tiles lie "
    "on one global grid, reflect-padded at the scene's borders, and overlapping tiles are blended with a "
    "raised-cosine ramp. GeoTIFF in, GeoTIFF out: same size, CRS, transform, no-data value and band descriptions, "
    "tiled and deflate-compressed (--cog: Cloud-Optimised, with overviews); .npy in, .npy out. No-data pixels stay "
    "no-data: the input's nodata value, or NaN where it declares none. OUTPUT is written to a temporary file "
    "beside it and renamed when complete. Exit status 2 with a one-paragraph message on bad input, 130 on Ctrl-C "
    "(143 on SIGTERM), nothing left under OUTPUT's name. See docs/reconstruct.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (e.g. runs/tiny/best.pt) or run directory")
    p.add_argument("input", help="the scene: GeoTIFF (.tif), .npy ((H, W) or (C, H, W)), or any single scene "
                                 "sarzoo's readers take (a Sentinel-1 SAFE product with one swath, .npz, PNG)")
    p.add_argument("output", help="where to write it: .tif/.tiff (GeoTIFF) or .npy")
    p.add_argument("--tile", type=int, metavar="PX", help="tile side (default: the model's patch size); a multiple "
                                                          "of the model's input multiple (its encoder's total stride)")
    p.add_argument("--overlap", type=int, metavar="PX", help="overlap of neighbouring tiles (default: a quarter of "
                                                             "the tile, on the input multiple); 0 for tiles side "
                                                             "by side")
    p.add_argument("--batch", type=int, default=16, metavar="N", help="tiles per forward pass (default 16)")
    p.add_argument("--block", type=int, default=None, metavar="PX",
                   help="output block side (default 2048, rounded to the tile stride and GeoTIFF tiles): memory "
                        "grows with its square, the output does not change")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")
    p.add_argument("--cog", action="store_true", help="write a Cloud-Optimised GeoTIFF (GDAL's COG driver, with "
                                                      "overviews)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists (once the new one is "
                                                            "complete; never the input)")
    p.add_argument("--domain", choices=["intensity", "amplitude", "db"],
                   help="what the input holds (default: the checkpoint's data domain); the output is in the same")
    p.add_argument("--nodata", type=float, metavar="VALUE",
                   help="the input's no-data value (default: the file's own); written at no-data pixels")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="runtime.KEY=VALUE",
                   help="override a runtime key of the checkpoint (e.g. runtime.amp=off for fp32)")
    p.add_argument("--report", action="store_true", help="print a report after the run, with the seam metric")
    p.add_argument("--json", action="store_true", help="print one JSON object (the report, seam metric included)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")


class _Terminated(BaseException):
    """SIGTERM as an exception, so the temporary output is removed on the way out."""


def _runtime(overrides: list[str]) -> dict[str, Any] | None:
    from sarzoo.config.source import normalise_overrides
    from sarzoo.errors import SarzooError

    out = {}
    for key, value in normalise_overrides(overrides):
        section, _, name = key.partition(".")
        if section != "runtime" or not name or "." in name:
            raise SarzooError(f"--set {key}: only runtime.KEY=VALUE overrides apply to reconstruction (the model "
                              f"and its preprocessing are the checkpoint's; see --domain and --nodata)")
        out[name] = value
    return out or None


def _progress(quiet: bool):
    """A tqdm bar on stderr (tiles/s) when it is a terminal; None otherwise."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bars = []

    def start(total: int):
        bar = tqdm(total=total, unit="tile", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                   desc="reconstruct")
        bars.append(bar)
        return bar.update

    return start, bars


def run(args) -> int:
    from sarzoo.commands.evaluate import warnings_to_stderr
    from sarzoo.files import jsonable
    from sarzoo.inference.run import reconstruct_file

    runtime = _runtime(args.overrides)
    start, bars = _progress(args.quiet or args.json)
    old = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            raise _Terminated()

        old = signal.signal(signal.SIGTERM, on_term)
    try:
        with warnings_to_stderr():
            r = reconstruct_file(args.checkpoint, args.input, args.output, tile=args.tile, overlap=args.overlap,
                                 batch_size=args.batch, block=args.block, device=args.device, cog=args.cog,
                                 overwrite=args.overwrite, domain=args.domain, nodata=args.nodata, runtime=runtime,
                                 seams=args.report or args.json, progress=start)
    except _Terminated:
        print(f"sarzoo {NAME}: terminated; nothing written to {args.output}", file=sys.stderr)
        return 143
    finally:
        for bar in bars or ():
            bar.close()
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    if args.json:
        print(json.dumps(jsonable(r), allow_nan=False))
    elif args.report:
        print(format_report(r))
    elif not args.quiet:
        print(f"wrote {r['output']}: {r['shape'][0]} × {r['shape'][1]} × {r['channels']}, {r['tiles']} tiles in "
              f"{r['seconds']['tiles']:.1f} s ({r['tiles_per_s']:.1f} tiles/s)")
    return 0


def _f(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def format_report(r: dict[str, Any]) -> str:
    """The text report of a ``reconstruct_file`` report dict."""
    from sarzoo.data.preprocess import Preprocessing

    pp = r["preprocessing"]
    prep = Preprocessing.from_dict(pp)
    lo, hi = ([v] if not isinstance(v, list) else v for v in (prep.vmin, prep.vmax))
    clip = ", ".join(f"{n + ' ' if len(lo) > 1 else ''}{a:.2f}..{b:.2f}" for n, a, b in zip(prep.band_names(), lo, hi))
    clip += " dB" + (" (the scene's own percentiles: a per_scene checkpoint)" if prep.per_scene else "")
    fmt = {"geotiff": "GeoTIFF", "cog": "Cloud-Optimised GeoTIFF", "npy": ".npy"}[r["format"]]
    s = r["seams"] or {}
    lines = [
        f"input      {r['input']}: {r['shape'][0]} × {r['shape'][1]}, {r['channels']} channel(s), "
        f"{pp['domain']} → dB clipped to {clip} → [0, 1]",
        f"output     {r['output']} ({fmt}, float32, {pp['domain']}; no-data written as {r['nodata']}; "
        f"{1 - r['valid_fraction']:.2%} of the pixels)",
        f"tiles      {r['tile']} px every {r['stride']} px (overlap {r['overlap']} px, input multiple "
        f"{r['input_multiple']}), reflect-padded borders, raised-cosine blend; blocks {r['block']} px, "
        f"batch {r['batch']}",
        f"speed      {r['tiles']} tiles in {r['seconds']['tiles']:.1f} s: {r['tiles_per_s']:.1f} tiles/s "
        f"({r['seconds']['total']:.1f} s in all); {r['runtime']}",
        f"memory     peak resident {r['peak_rss_mb']:.0f} MB",
        f"seams      {_f(s.get('seam_ratio'), '.3f')}: median squared difference across tile borders / inside tiles "
        f"(input at the same places: {_f(s.get('input_seam_ratio'), '.3f')}; about 1: no visible grid)",
    ]
    lines += [f"warning    {w}" for w in r["warnings"]]
    return "\n".join(lines)
