"""``sarzoo train``: train a recipe on the embedded synthetic SAR data or on your files."""
from __future__ import annotations

import argparse

NAME = "train"
HELP = "train a recipe (embedded synthetic SAR data, or --data files); checkpoints, TensorBoard, resume"
DESCRIPTION = (
    "Train the autoencoder a recipe describes. Training settings come from the recipe's train: section "
    "(the seeds' defaults: Adam, warm-up, ReduceLROnPlateau, early stopping, clipping, mixed precision, "
    "MSE + SSIM loss) and can be overridden with --set train.KEY=VALUE. Without --data the deterministic "
    "synthetic SAR dataset is used. The run directory (default runs/<recipe name>, or runs/<name>-2, -3 … "
    "if taken) receives recipe.yaml, last.pt/best.pt, tb/ (TensorBoard), log.jsonl and previews/. "
    "Ctrl-C or SIGTERM finishes the current step, writes last.pt and prints the exact command that resumes "
    "(exit status 130/143). Exit status 2: bad input, or training stopped by train.max_nonfinite NaN/Inf "
    "losses in a row (the last good checkpoint is kept)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file (or the name of a built-in recipe, e.g. tiny)")
    p.add_argument("--data", nargs="+", action="extend", metavar="PATH",
                   help="training data: files, directories (recursive) or globs of GeoTIFF/TIFF/PNG/.npy/.npz "
                        "(default: the recipe's data.paths, else embedded synthetic SAR); split by scene")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default runs/<recipe name>, numbered -2, -3 … when it exists); "
                        "an existing run is never overwritten")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable), e.g. --set train.lr=3e-4 --set data.domain=amplitude")
    p.add_argument("--resume", metavar="auto|PATH",
                   help="continue a run: 'auto' = the latest run of this recipe (or --out's) if any, else start "
                        "fresh; or a checkpoint file / run directory. Exact: continues mid-epoch where it stopped")
    p.add_argument("--epochs", type=int, metavar="N", help="shortcut for --set train.epochs=N")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps in total (train.max_steps)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to train (default auto: cuda if available)")
    p.add_argument("--seed", type=int, metavar="N", help="seed of init, data order and augmentation (train.seed)")


def run(args) -> int:
    from sarzoo.errors import SarzooError

    for flag, v in (("--epochs", args.epochs), ("--max-steps", args.max_steps)):
        if v is not None and v < 1:
            raise SarzooError(f"{flag} must be at least 1, got {v}")
    from sarzoo.train.run import run_training

    return run_training(args)
