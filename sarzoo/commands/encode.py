"""``sarzoo encode``: a scene into a code file of entropy-coded latents (docs/codec.md)."""
from __future__ import annotations

import argparse
import json

NAME = "encode"
NEEDS_TORCH = True
HELP = "encode a scene into a compressed file of the model's (entropy-coded) latents"
DESCRIPTION = (
    "Encode INPUT (GeoTIFF, PNG, .npy/.npz: one scene) with the model of CHECKPOINT into CODE: a versioned "
    "header (model digest, preprocessing, tile grid, scene shape, georeferencing), the no-data mask "
    "losslessly compressed, and the coded latents of every tile that has a valid pixel. Reports the actual "
    "bits per valid pixel (file bytes × 8 / valid pixels), the source's own bits per pixel and the speed. "
    "`sarzoo decode CODE OUT --checkpoint CHECKPOINT` writes the scene back. Exit status 2 with a "
    "one-paragraph message on bad input."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint file (e.g. runs/tiny_codec/best.pt) or run directory")
    p.add_argument("input", help="the scene: GeoTIFF (.tif), PNG, .npy or .npz with one scene")
    p.add_argument("code", help="the code file to write (e.g. scene.szc)")
    p.add_argument("--nodata", type=float, default=None, metavar="VALUE",
                   help="raw value meaning no measurement (default: the file's own; NaN and 0 in the linear "
                        "domains always are)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"],
                   help="where the encoder runs (default cpu; the file does not depend on it)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")


def run(args) -> int:
    from sarzoo.codec.files import encode_file

    r = encode_file(args.checkpoint, args.input, args.code, device=args.device, nodata=args.nodata)
    print(json.dumps(r, allow_nan=False) if args.json else format_report(r))
    return 0


def format_report(r: dict) -> str:
    mps = r["megapixels_per_second"]
    ratio = r["source_bits_per_pixel"] / r["bits_per_valid_pixel"] if r["bits_per_valid_pixel"] else float("inf")
    return "\n".join([
        f"{r['operation']:<10} {r['input']} → {r['output']} ({r['recipe']}, bottleneck {r['bottleneck']})",
        f"scene      {r['height']}×{r['width']}, {r['valid_pixels']:,} valid pixels; {r['coded_tiles']} of "
        f"{r['tiles']} tiles coded (the others hold no valid pixel: 0 bits)",
        f"size       {r['file_bytes']:,} bytes = {r['bits_per_valid_pixel']:.4f} bits per valid pixel "
        f"(tiles {r['tile_bits_per_valid_pixel']:.4f}, header and mask {r['header_bytes']:,} bytes)",
        f"source     {r['source_bits_per_pixel']} bits per pixel: {ratio:.1f}× smaller than the source's pixels",
        f"speed      {mps:.3f} megapixels/s ({r['seconds']:.2f} s)" if mps else f"speed      {r['seconds']:.2f} s",
    ])
