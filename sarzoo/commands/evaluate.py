"""``sarzoo eval``: quality of a trained checkpoint against its input, the clean truth and the classical reference."""
from __future__ import annotations

import argparse

NAME = "eval"
HELP = "evaluate a checkpoint: PSNR, SSIM, ENL ratio, EPI per image and on average, vs the classical reference"
DESCRIPTION = (
    "Evaluate a training checkpoint (best.pt/last.pt). Without --data it uses the checkpoint's own data "
    "(its validation split; synthetic data also yields metrics against the clean reflectivity). Metrics "
    "are reported on full scenes (reconstructed by tiling patches) and on patches, always next to the "
    "dimension-matched classical reference (area downsampling to the latent's count of numbers, bicubic "
    "back). Preprocessing is always the checkpoint's clip range; --set data.domain/data.nodata only change how "
    "raw values of --data files are read. Exit status 2 with a one-paragraph message on bad input."
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
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                   help="override a data key of the checkpoint's recipe (e.g. data.domain=db, data.nodata=0)")
    p.add_argument("--overlap", type=int, default=0, metavar="PX",
                   help="tile overlap in pixels for full scenes (default 0: non-overlapping tiles, so the model "
                        "uses the same count of latent numbers as the reference; > 0 blends seams but spends more)")
    p.add_argument("--no-scenes", action="store_true", help="patches only (skip full-scene reconstruction)")
    p.add_argument("--no-patches", action="store_true", help="full scenes only (skip the patch-level figures)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="patches per forward pass (default 16)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default auto")


def run(args) -> int:
    from sarzoo.evaluate import run_eval  # torch loads here, never at `sarzoo --help`

    return run_eval(args)
