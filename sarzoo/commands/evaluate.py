"""``sarzoo eval``: quality of a trained checkpoint against its input, the clean truth and the classical reference.

The evaluation itself (``sarzoo.evaluation``) returns a dict; this module turns it into the text
report or one JSON object, and is the only place that prints. Torch loads in ``run`` only, so
``sarzoo --help`` (which imports every command module) stays instant.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

#: --heldout without a count; a constant here, not an import, so `sarzoo --help` stays instant
HELDOUT_SCENES = 32

NAME = "eval"
NEEDS_TORCH = True
HELP = "evaluate a checkpoint: PSNR, SSIM, ENL ratio, EPI per image and on average, vs the classical reference"
DESCRIPTION = (
    "Evaluate a training checkpoint (best.pt/last.pt). Without --data it uses the checkpoint's own data "
    "(its validation split; synthetic data also yields metrics against the clean reflectivity). Metrics "
    "are reported on full scenes (reconstructed by tiling patches) and on patches, always next to the "
    "dimension-matched classical reference (area downsampling to the latent's count of numbers, bicubic "
    "back). Preprocessing is always the checkpoint's clip range; --set data.domain/data.nodata only change how "
    "raw values of --data files are read. --heldout [N] evaluates on synthetic scenes of the generator's held-out "
    "profile instead, to see how the model transfers. Exit status 2 with a one-paragraph message on bad input."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (e.g. runs/tiny/best.pt) or run directory (uses its best.pt, "
                                      "else last.pt)")
    p.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                   help="evaluate on these files/directories/globs instead (all their scenes; no split)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument("--save-images", metavar="DIR",
                   help="write per-scene PNGs (input | reconstruction | reference | difference) and the "
                        "reconstructions in the data's domain (.npy; GeoTIFF for GeoTIFF inputs)")
    p.add_argument("--split", choices=["val", "train", "all"], default=None,
                   help="which part of the checkpoint's own data (default val; ignored with --data)")
    p.add_argument("--heldout", nargs="?", type=int, const=HELDOUT_SCENES, default=None, metavar="N",
                   help=f"evaluate on N (default {HELDOUT_SCENES}) scenes of the synthetic generator's held-out "
                        "profile (looks, speckle correlation, texture and classes unlike training's; "
                        "docs/data.md) at the checkpoint's scene size, with its preprocessing: how the model "
                        "transfers")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a data or runtime key of the checkpoint's recipe (e.g. data.domain=db, "
                        "data.nodata=0, runtime.amp=off for fp32)")
    p.add_argument("--overlap", type=int, default=0, metavar="PX",
                   help="tile overlap in pixels for full scenes, a multiple of the model's input multiple (default 0: "
                        "non-overlapping tiles, so the model uses the same count of latent numbers as the reference; "
                        "> 0 blends seams but spends more)")
    p.add_argument("--no-scenes", action="store_true", help="patches only (skip full-scene reconstruction)")
    p.add_argument("--no-patches", action="store_true", help="full scenes only (skip the patch-level figures)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="patches per forward pass (default 16)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")


@contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """The ``ClipRangeWarning``s raised in the body, each printed once it returns as one ``warning:`` line
    on stderr (with ``--json`` too: stdout stays the JSON); any other warning as Python shows it.
    Nothing is printed when the body raises (its error is the message). ``sarzoo eval``, ``rd`` and
    ``reconstruct`` print their warnings through this one function."""
    from sarzoo.data.preprocess import ClipRangeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ClipRangeWarning)
        yield
    for w in caught:
        if issubclass(w.category, ClipRangeWarning):
            print(f"warning: {w.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def run(args) -> int:
    """Run the evaluation; print the text report (progress on stderr) or one JSON object on stdout."""
    from sarzoo.evaluation import evaluate  # torch loads here, never at `sarzoo --help`
    from sarzoo.images import DIFF_GAIN

    say = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    with warnings_to_stderr():   # ours as one line each on stderr (also with --json)
        r = evaluate(args.checkpoint, args.data, split=args.split, overrides=args.overrides, overlap=args.overlap,
                     scenes=not args.no_scenes, patches=not args.no_patches,
                     batch_size=args.batch_size, device=args.device, save_images=args.save_images, progress=say,
                     heldout=args.heldout)
    if args.json:
        print(json.dumps(r, allow_nan=False))
    else:
        print(format_report(r))
        if args.save_images:
            print(f"images     {args.save_images}: per-image PNG (input | reconstruction | reference"
                  f"{' | clean' if r.get('clean') else ''} | {DIFF_GAIN:g}×|input − reconstruction|), "
                  f"reconstructions in the data's domain, metrics.json")
    return 0


# --- text report ---------------------------------------------------------------------------------

def _f(v: Any, spec: str) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1e4:  # an ENL ratio of a flat output: keep the columns aligned
        width = int(re.match(r"[+]?(\d*)", spec).group(1) or 0)
        return format(format(v, ".2e"), f">{width}")
    return format(v, spec)


def _rows(block: dict[str, Any]) -> list[str]:
    def row(name: str, d: dict[str, Any]) -> str:
        return (f"  {name:<22} {_f(d.get('psnr'), '8.2f')} {_f(d.get('ssim'), '8.3f')} "
                f"{_f(d.get('enl_ratio'), '10.3f')} {_f(d.get('epi'), '8.3f')}")

    lines = [f"  {'':<22} {'PSNR dB':>8} {'SSIM':>8} {'ENL ratio':>10} {'EPI':>8}",
             row("model", block), row("classical reference", block["reference"])]
    for band, b in (block.get("channels") or {}).items():  # several bands: the rows above are their means
        lines += [row(f"  {band}: model"[:22], b), row(f"  {band}: reference"[:22], b["reference"])]
    if block.get("psnr") is not None and block["reference"].get("psnr") is not None:
        d = {k: (None if block.get(k) is None or block["reference"].get(k) is None
                 else block[k] - block["reference"][k]) for k in ("psnr", "ssim")}
        lines.append(f"  {'model − reference':<22} {_f(d['psnr'], '+8.2f')} {_f(d['ssim'], '+8.3f')}")
    if block.get("clean"):
        c = block["clean"]
        lines.append(f"  against the clean reflectivity:    {'PSNR dB':>8} {'SSIM':>8} {'EPI':>8}")
        for who, name in (("model", "model"), ("reference", "classical reference"), ("input", "speckled input")):
            lines.append(f"    {name:<32} {_f(c[who].get('psnr'), '8.2f')} {_f(c[who].get('ssim'), '8.3f')} "
                         f"{_f(c[who].get('epi'), '8.3f')}")
    return lines


def _clip_text(pp: dict[str, Any]) -> str:
    from sarzoo.data.preprocess import Preprocessing

    return Preprocessing.from_dict(pp).range_text(unit=False)


def _latent_text(r: dict[str, Any]) -> str:
    from sarzoo.codec.rates import describe_latent

    lat = r.get("latent")
    if not lat:
        return "?"
    return describe_latent(lat)


def format_report(r: dict[str, Any], max_rows: int = 40) -> str:
    """The text report of an ``evaluate`` dict: header, full scenes, patches, per image, verdict."""
    pp = r["data"]["preprocessing"]
    lines = [
        f"checkpoint {r['checkpoint']} ({r['recipe']}, epoch {r['epoch']}, step {r['step']})",
        f"latent     {'×'.join(map(str, r['latent_shape']))}: {_latent_text(r)}; "
        f"{r['compression_ratio']:g}× fewer numbers than the input",
        f"data       {r['data']['description']}",
        f"           {pp['domain']} → dB clipped to {_clip_text(pp)} → [0, 1]; "
        f"no-data masked out of every metric",
        f"runtime    {r['runtime']}",
        "reference  classical: area-downsample to the latent's count of numbers, bicubic back, same images",
    ]
    if "scenes" in r:
        s = r["scenes"]
        lines.append("")
        lines.append(f"full scenes: {s['n_images']} image(s), tiled with {r['data']['patch_size']} px patches, "
                     f"overlap {s['overlap']} px")
        lines += _rows(s)
    if "patches" in r:
        p = r["patches"]
        lines.append("")
        lines.append(f"patches: {p['n_images']} × {p['size']} px")
        lines += _rows(p)
    if "scenes" in r and r["scenes"]["images"]:
        imgs = r["scenes"]["images"]
        lines.append("")
        shown = "" if len(imgs) <= max_rows else f" (first {max_rows} of {len(imgs)}; --json for all)"
        lines.append(f"per image{shown}:  PSNR / SSIM / ENL ratio / EPI, model | reference")
        for it in imgs[:max_rows]:
            ref = it["reference"]
            lines.append(f"  {it['id'][-40:]:<40} {_f(it['psnr'], '6.2f')} {_f(it['ssim'], '6.3f')} "
                         f"{_f(it['enl_ratio'], '6.3f')} {_f(it['epi'], '6.3f')} | {_f(ref['psnr'], '6.2f')} "
                         f"{_f(ref['ssim'], '6.3f')} {_f(ref['enl_ratio'], '6.3f')} {_f(ref['epi'], '6.3f')}")
    lines.append("")
    b = r["beats_reference"]
    if b["psnr"] is None:
        lines.append("verdict    undefined (no valid pixels)")
    else:
        won = [k.upper() for k in ("psnr", "ssim") if b[k]]
        lost = [k.upper() for k in ("psnr", "ssim") if b[k] is False]
        lines.append(f"verdict    {r['level']}: the model beats the classical reference on "
                     f"{' and '.join(won) if won else 'nothing'}"
                     + (f"; loses on {' and '.join(lost)}" if lost else ""))
    return "\n".join(lines)
