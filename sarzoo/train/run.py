"""``sarzoo train``'s preparation: from command-line arguments to a run ready to train.

Order matters for "nothing already written is lost": the recipe is validated, the data opened and
checked (every file, before any training) and the run directory chosen *before* anything is
written. An existing run directory is never written into unless the run is being resumed. Nothing
here prints: decisions the user should hear of go to the command's observer, as they are made.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarzoo.errors import SarzooError

if TYPE_CHECKING:
    from sarzoo.train.observer import Observer
    from sarzoo.train.trainer import Trainer

RUN_ARTIFACTS = ("last.pt", "best.pt", "recipe.yaml", "log.jsonl", "tb")
DEFAULT_RUNS = Path("runs")
#: keys that may differ between a checkpoint's recipe and the resuming command
# how a run computes (runtime.*: precision, layout, compile, checkpointing) may change too: it is the
# same training, on another machine or with another speed/memory trade
# and so may the batch per process and the micro-batches per step: with another number of processes,
# they keep the patches per step (the run continues from the same patch of the epoch either way)
RESUME_MAY_CHANGE = {"description", "train.epochs", "train.max_steps", "train.batch_size", "train.accumulate",
                     "runtime.*"}


# --- run directories -------------------------------------------------------------------------

def is_run_dir(p: Path) -> bool:
    return p.is_dir() and any((p / a).exists() for a in RUN_ARTIFACTS)


def new_run_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``… : the first that does not exist yet, created atomically."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 100_000):
        cand = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise SarzooError(f"no free run directory name next to {base}")


def runs_of(base: Path) -> list[Path]:
    """``base`` and ``base-N`` directories that hold a last.pt, most recently written first."""
    if not base.parent.is_dir():
        return []
    found = []
    for p in base.parent.iterdir():
        if p.name == base.name or (p.name.startswith(base.name + "-") and p.name[len(base.name) + 1:].isdigit()):
            if (p / "last.pt").is_file():
                found.append(p)
    return sorted(found, key=lambda p: (p / "last.pt").stat().st_mtime, reverse=True)


# --- recipe comparison -------------------------------------------------------------------------

def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): d}


def recipe_differences(old: dict, new: dict, ignore=RESUME_MAY_CHANGE) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k in ignore or any(p.endswith(".*") and k.startswith(p[:-1]) for p in ignore):
            continue
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            diffs.append(f"{k}: {a.get(k, '<absent>')!r} in the checkpoint, {b.get(k, '<absent>')!r} now")
    return diffs


# --- the run -----------------------------------------------------------------------------------

def plan_run(args):
    """The recipe with the command's overrides, resolved and planned: the one load → resolve → plan."""
    from sarzoo import config
    from sarzoo.plan import make_plan

    flags = {"data.paths": [_abs_path(p) for p in args.data] if args.data else None,
             "train.epochs": args.epochs, "train.max_steps": args.max_steps, "train.seed": args.seed}
    loaded = config.load_with_origins(args.recipe, list(args.overrides or []),
                                      extra={k: v for k, v in flags.items() if v is not None})
    return make_plan(loaded.recipe, loaded.raw)


def _abs_path(p: str) -> str:
    p = os.path.expanduser(p)
    return p if os.path.isabs(p) else os.path.abspath(p)


def _find_resume(args, recipe) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run."""
    if args.resume is None:
        return None
    if args.resume == "auto":
        if args.out:
            p = Path(args.out) / "last.pt"
            # anything there that is not a regular file (a FIFO, a directory) is refused by the reader
            return p if os.path.lexists(p) else None
        found = runs_of(DEFAULT_RUNS / recipe["name"])
        return found[0] / "last.pt" if found else None
    from sarzoo.checkpoint import resolve_path

    p = resolve_path(args.resume, purpose="resume")
    if not p.exists():
        raise SarzooError(f"--resume {args.resume}: no such checkpoint file")
    if args.out and Path(args.out).resolve() != p.parent.resolve():
        raise SarzooError(f"--resume {args.resume} continues the run in {p.parent}; drop --out (or give that "
                          f"directory): a resumed run always writes where it started")
    return p


@dataclass
class PreparedRun:
    """A run ready to ``trainer.fit(run_dir)``: its directory exists and holds recipe.yaml."""

    recipe: dict[str, Any]
    run_dir: Path
    trainer: Trainer
    preprocessing: Any
    data_info: dict[str, Any]


def prepare_run(args, observer: Observer) -> PreparedRun:
    """Everything before the first step, from the command's arguments; decisions go to ``observer.on_prepare``."""
    from sarzoo import checkpoint
    from sarzoo.data.dataset import build_datasets
    from sarzoo.device import pick_device
    from sarzoo.train import distributed
    from sarzoo.train.runtime import Runtime
    from sarzoo.train.trainer import Trainer

    plan = plan_run(args)
    recipe = plan.recipe
    device = pick_device(args.device)  # an unusable --device fails here, before anything is written
    # several processes (torchrun): join them; what touches the file system is decided by rank 0 alone
    world, device = distributed.start(device)
    ckpt_path = world.from_main(lambda: _find_resume(args, recipe))
    ck = None
    if ckpt_path is not None:
        ck = checkpoint.read(ckpt_path, purpose="resume")
        stored = ck["recipe"]
        if not args.data and stored.get("data", {}).get("paths") and not recipe["data"].get("paths"):
            recipe["data"]["paths"] = stored["data"]["paths"]
        diffs = recipe_differences(stored, recipe)
        if diffs:
            raise SarzooError(f"cannot resume {ckpt_path}: the recipe differs from the one it was trained with ("
                              + "; ".join(diffs[:6]) + ("; …" if len(diffs) > 6 else "")
                              + "). A resumed run continues the same training; only the number of epochs, max "
                                "steps, runtime.* and the step's batch (train.batch_size, train.accumulate) may "
                                "change. Start a new run (without --resume) to train something else.")
        run_dir = ckpt_path.parent
    elif args.resume == "auto":
        observer.on_prepare("no_previous_run", recipe=recipe["name"])

    # data first: every input file is opened and checked before anything is written
    data_cfg = recipe["data"]
    train_ds, val_ds, prep, _ = build_datasets(copy.deepcopy(data_cfg), channels=recipe["input"]["channels"])
    if ck is not None:
        from sarzoo.data.preprocess import Preprocessing

        stored_prep = Preprocessing.from_dict(ck["preprocessing"])
        if stored_prep != prep:
            observer.on_prepare("checkpoint_preprocessing", preprocessing=stored_prep)
        prep = stored_prep
        train_ds.preprocessing = prep
        val_ds.preprocessing = prep
    data_info = {"source": "synthetic" if data_cfg["paths"] is None else "files",
                 "train_scenes": len(train_ds.scene_ids), "val_scenes": len(val_ds.scene_ids),
                 "n_train": len(train_ds), "n_val": len(val_ds), "domain": prep.domain,
                 "clip_db": [prep.vmin, prep.vmax]}

    # everything that can still refuse (batch larger than the data, …) does so before the run dir exists
    cfg = recipe["train"]
    runtime = Runtime.create(device, recipe["runtime"], cfg["num_workers"], world, cfg["sync_bn"])
    if runtime.fast.compile:
        observer.on_prepare("compiling", mode=runtime.fast.compile_mode)
    trainer = Trainer(plan, train_ds, val_ds, prep, runtime, resume=ck, data_info=data_info)

    if ck is None:
        run_dir = world.from_main(lambda: _new_run(args, recipe, observer))
    return PreparedRun(recipe, run_dir, trainer, prep, data_info)


def _new_run(args, recipe: dict[str, Any], observer: Observer) -> Path:
    """The directory of a fresh run, created, with its recipe.yaml."""
    from sarzoo.config import dump
    from sarzoo.files import atomic_write_text

    if args.out:
        run_dir = Path(args.out)
        if args.resume == "auto" and is_run_dir(run_dir):
            # --resume auto asked to continue this directory, and it has no last.pt: the earlier
            # attempt stopped before its first checkpoint, so there is nothing to continue
            observer.on_prepare("restart_in_place", run_dir=run_dir)
        elif is_run_dir(run_dir):
            raise SarzooError(f"--out {run_dir} already holds a run (checkpoints/logs): nothing was written. "
                              f"Continue it with --resume auto (or --resume {run_dir / 'last.pt'}), or choose "
                              f"another --out; omit --out to get a fresh runs/{recipe['name']}-N directory.")
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = new_run_dir(DEFAULT_RUNS / recipe["name"])
    atomic_write_text(run_dir / "recipe.yaml",
                      f"# resolved recipe of this run (rebuilds the identical model): sarzoo build "
                      f"{run_dir / 'recipe.yaml'}\n" + dump(recipe))
    return run_dir
