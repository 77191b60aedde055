"""``sarzoo decode``: a code file of ``sarzoo encode`` back into a scene (docs/codec.md)."""
from __future__ import annotations

import argparse
import json

NAME = "decode"
NEEDS_TORCH = True
HELP = "decode a file of `sarzoo encode` back into a scene (GeoTIFF or .npy)"
DESCRIPTION = (
    "Decode CODE with the model of --checkpoint (the one it was encoded with: any other is refused) into "
    "OUTPUT: a GeoTIFF (.tif) with the source's CRS, transform and nodata, or a .npy; float32 values in the "
    "data's domain, no-data pixels as the source's nodata (NaN when it had none). Decoding runs on the CPU "
    "and is deterministic: the same file gives the same bytes. A truncated or corrupted file is refused. "
    "Exit status 2 with a one-paragraph message on bad input."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("code", help="the code file written by `sarzoo encode`")
    p.add_argument("output", help="the scene to write: .tif/.tiff (GeoTIFF) or .npy")
    p.add_argument("--checkpoint", required=True, help="the checkpoint the code file was encoded with")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")


def run(args) -> int:
    from sarzoo.codec.files import decode_file
    from sarzoo.commands.encode import format_report

    r = decode_file(args.code, args.output, args.checkpoint)
    print(json.dumps(r, allow_nan=False) if args.json else format_report(r))
    return 0
