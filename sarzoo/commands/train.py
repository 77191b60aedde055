"""``sarzoo train``: train a recipe on the embedded synthetic SAR data or on your files.

The training package reports what happens (``sarzoo.train.observer``); this module says it to the
user, every line of it, and turns the run's ``TrainResult`` into the exit status.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from sarzoo.train.observer import EpochRecord, Observer, RunInfo, StepRecord, TrainResult

NAME = "train"
NEEDS_TORCH = True
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
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train in N processes on this machine with DistributedDataParallel (torchrun's launcher; "
                        "one per GPU on CUDA, gloo on CPU); train.batch_size is per process. Same as torchrun "
                        "--standalone --nproc-per-node N -m sarzoo train …; several machines: docs/scaling.md")


def run(args) -> int:
    from sarzoo.errors import SarzooError

    for flag, v in (("--epochs", args.epochs), ("--max-steps", args.max_steps)):
        if v is not None and v < 1:
            raise SarzooError(f"{flag} must be at least 1, got {v}")
    if args.nproc is not None:
        from sarzoo.train.launch import launch
        from sarzoo.train.run import plan_run

        plan_run(args)  # a bad recipe or --set: one message here, rather than one from every process
        return launch(args.nproc, train_argv(args, nproc=False), args.device)
    from sarzoo.train import distributed
    from sarzoo.train.run import prepare_run  # torch loads here, never at `sarzoo --help`

    # several processes: the first speaks for the run, the others only say their own errors
    main = (distributed.environment() or distributed.World()).is_main
    console = Console(args) if main else Observer()
    clean = False
    try:
        prepared = prepare_run(args, console)
        world = prepared.trainer.rt.world
        if main:
            console.run_lines(prepared)
        try:
            result = prepared.trainer.fit(prepared.run_dir, console)
            world.barrier()   # every process done before rank 0 reports and the group closes
        except Exception as exc:
            # a peer lost inside DDP's backward or a synchronised BatchNorm: said as clearly as in
            # sarzoo's own collectives
            failure = world.peer_failure(exc)
            if failure is None:
                raise
            raise failure from None
        clean = True
    finally:
        distributed.stop(clean)
    code = exit_code(result)
    if code == 0 and main:
        from sarzoo.checkpoint import resolve_path

        run_dir = result.run_dir
        target = resolve_path(run_dir)  # what `sarzoo eval` will take from this directory
        console.say(f"logs       {run_dir / 'log.jsonl'}, previews in {run_dir / 'previews'}; "
                    f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}")
        console.say(f"next       sarzoo eval {target}")
    return code


def exit_code(result: TrainResult) -> int:
    """0 for a run that ended as planned, 2 for non-finite losses, 128 + signal number for a signal."""
    if result.reason == "nonfinite":
        return 2
    if result.reason == "signal":
        return 128 + int(result.signal)
    return 0


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def train_argv(args, nproc: bool = True) -> list[str]:
    """The arguments of ``sarzoo train`` that make this run (the processes ``--nproc`` starts get them)."""
    parts = [args.recipe]
    for d in args.data or []:
        parts += ["--data", d]
    for s in args.overrides or []:
        parts += ["--set", s]
    for flag, v in (("--epochs", args.epochs), ("--max-steps", args.max_steps), ("--seed", args.seed),
                    ("--out", args.out), ("--resume", args.resume)):
        if v is not None:
            parts += [flag, str(v)]
    if args.device not in (None, "auto"):
        parts += ["--device", args.device]
    local = _local_processes()
    if nproc and (args.nproc or (local or 1) > 1):
        parts += ["--nproc", str(args.nproc or local)]
    return parts


def _local_processes() -> int | None:
    """Processes of this run on this machine under torchrun; None when the run spans several machines
    (then only the user's own torchrun command can restart it)."""
    world = os.environ.get("WORLD_SIZE", "1")
    local = os.environ.get("LOCAL_WORLD_SIZE", world)
    return int(local) if world == local else None


def resume_hint(args, path: Path) -> str:
    """The command line that continues this run: the user's own arguments, with --resume."""
    argv = train_argv(argparse.Namespace(**{**vars(args), "out": None, "resume": None}))
    prefix = ["sarzoo"] if _local_processes() is not None else ["torchrun", "<your torchrun options>", "-m", "sarzoo"]
    words = [*prefix, "train", *argv, "--resume", str(path)]
    return " ".join(w if w.startswith("<") else shlex.quote(w) for w in words)


class Console(Observer):
    """What the user sees of a run: one line per event on stdout (errors on stderr), and the progress bar.

    Lines go through ``Progress.write`` so that they never break a bar that is being drawn."""

    def __init__(self, args):
        from sarzoo.train.progress import Progress

        self.args = args
        self.progress = Progress()
        self.bar = None

    def say(self, line: str) -> None:
        self.progress.write(line)

    @staticmethod
    def error(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # -- preparation ----------------------------------------------------------------------------
    def on_prepare(self, event: str, **facts: Any) -> None:
        if event == "no_previous_run":
            self.say(f"resume     no previous run of '{facts['recipe']}' with a last.pt found: starting a new run")
        elif event == "restart_in_place":
            self.say(f"resume     {facts['run_dir']} has no last.pt yet (stopped before its first checkpoint): "
                     f"starting the run afresh in it")
        elif event == "checkpoint_preprocessing":
            prep = facts["preprocessing"]
            self.say(f"note       preprocessing refitted on the data differs from the checkpoint's; using the "
                     f"checkpoint's ({prep.range_text()})")
        elif event == "compiling":
            self.say("compile    torch.compile of the model on one training batch (runtime.compile; its time is "
                     "shown on the device line; --set runtime.compile=false skips it)")

    def run_lines(self, prepared) -> None:
        paths, prep, info = prepared.recipe["data"]["paths"], prepared.preprocessing, prepared.data_info
        source = ("synthetic SAR (embedded, with clean reflectivity)" if paths is None else
                  f"{len(paths)} path(s): " + ", ".join(paths[:3]) + (" …" if len(paths) > 3 else ""))
        self.say(f"run        {prepared.run_dir}")
        self.say(f"data       {source}")
        self.say(f"           {info['n_train']} training patches from {info['train_scenes']} scenes, {info['n_val']} "
                 f"validation patches from {info['val_scenes']} scenes (split by scene), "
                 f"{prepared.recipe['data']['patch_size']} px; {prep.domain} → dB clipped to "
                 f"{prep.range_text(unit=False)} → [0, 1]")

    # -- training -------------------------------------------------------------------------------
    def on_start(self, info: RunInfo) -> None:
        from sarzoo.codec.rates import describe_latent

        lat = "×".join(map(str, info.latent_shape))
        bits = f": {describe_latent(info.latent)}" if info.latent else ""
        self.say(f"model      {info.recipe}: {info.parameters:,} parameters, latent {lat}{bits} "
                 f"({info.compression_ratio:g}× fewer numbers than the input)")
        if info.lmbda > 0:
            self.say(f"rate       loss = distortion + {info.lmbda:g} × bits per valid pixel (train.rate.lmbda)")
        self.say(f"device     {info.device}")
        shares = ([f"{info.accumulate} micro-batches"] if info.accumulate > 1 else []) + \
            ([f"{info.world_size} processes"] if info.world_size > 1 else [])
        batch = " × ".join([str(info.batch_size), *shares]) + (f" = {info.step_batch}" if shares else "")
        self.say(f"schedule   {info.epochs} epochs × {info.steps_per_epoch} steps (batch {batch})"
                 + (f", at most {info.max_steps} steps" if info.max_steps else "")
                 + f"; lr {info.lr:g}, warm-up {info.warmup_steps} steps, then "
                 + ("cosine decay to 0" if info.decay == "cosine" else "halved on validation plateaus"))
        if info.resumed_from is not None:
            self.say(f"resumed    {info.resumed_from}: epoch {info.epoch + 1}, batch {info.batch_in_epoch}/"
                     f"{info.steps_per_epoch}, step {info.step}")
            if info.resumed_step_batch not in (None, info.step_batch):
                self.say(f"note       the checkpoint's run took {info.resumed_step_batch} patches per step, this one "
                         f"{info.step_batch} (another number of processes or train.accumulate): it goes on from the "
                         f"same patch of the epoch and the schedule follows the patches seen, not bitwise as before")
            if info.resumed_amp not in (None, info.amp):
                # runtime.amp=auto resolves per machine; the run goes on, but not bit for bit as before
                self.say(f"note       the checkpoint trained with amp {info.resumed_amp}, this machine uses "
                         f"{info.amp} (runtime.amp={info.amp_setting}): training continues, not bitwise as before")
        if info.n_val == 0:
            # val_fraction 0, or a single scene whose held-out strip is thinner than a patch
            self.say("note       no validation patches (data.val_fraction is 0, or the held-out part is "
                     "smaller than a patch: give more scenes or raise data.val_fraction): best.pt, the "
                     "plateau scheduler and early stopping follow the training loss")
        ref = info.reference
        if ref:
            line = (f"reference  classical (area-down to the latent size, bicubic up) on validation: "
                    f"PSNR {_fmt(ref.get('psnr'), '.2f')} dB, SSIM {_fmt(ref.get('ssim'))}")
            if "psnr_clean" in ref:
                line += f"; vs clean PSNR {_fmt(ref.get('psnr_clean'), '.2f')} dB"
            self.say(line)

    def on_steps_begin(self, epoch: int, epochs: int, done: int, total: int) -> None:
        self.bar = self.progress.bar(total, done, f"epoch {epoch}/{epochs}")

    def on_step(self, record: StepRecord) -> None:
        if record.metrics is not None:
            m = record.means
            bpp = f" bpp {m['bpp']:.3f}" if "bpp" in m else ""
            self.bar.set_postfix_str(f"loss {m['loss']:.4f} psnr {m['psnr']:.2f} ssim {m['ssim']:.3f}{bpp} "
                                     f"lr {record.lr:.2g}", refresh=False)
        self.bar.update(1)

    def on_nonfinite(self, record: StepRecord) -> None:
        self.say(f"warning: non-finite loss or gradient at step {record.step}: step skipped "
                 f"({record.nonfinite_in_a_row} in a row, {record.nonfinite_total} in total)")

    def on_steps_end(self) -> None:
        self.bar.close()
        self.bar = None

    def on_epoch(self, r: EpochRecord) -> None:
        train, val, ref = r.train, r.val, r.reference
        line = (f"epoch {r.epoch:>3}/{r.epochs}  train loss {_fmt(train.get('loss'), '.4f')} "
                f"psnr {_fmt(train.get('psnr'), '.2f')}"
                + (f" bpp {_fmt(train['bpp'], '.3f')}" if "bpp" in train else ""))
        if val:
            bands = [k.split("/", 1)[1] for k in val if k.startswith("psnr/")]  # several channels: per band too
            per = " (" + ", ".join(f"{b} {_fmt(val[f'psnr/{b}'], '.2f')}" for b in bands) + ")" if bands else ""
            line += (f" | val loss {_fmt(val.get('loss'), '.4f')} psnr {_fmt(val.get('psnr'), '.2f')}{per} "
                     f"ssim {_fmt(val.get('ssim'))}" + (f" bpp {_fmt(val['bpp'], '.3f')}" if "bpp" in val else ""))
            if ref.get("psnr") is not None:
                line += f" (ref {_fmt(ref.get('psnr'), '.2f')})"
        line += f" | lr {r.lr:.2g} | {r.seconds:.1f}s" + (" *best" if r.improved else "")
        self.say(line)

    def on_signal(self, signum: int) -> None:
        self.error(f"\nsarzoo train: {signal.Signals(signum).name} received: finishing the current step and "
                   f"writing a checkpoint (send it again to abort without saving)")

    def on_stop(self, result: TrainResult) -> None:
        last, best = result.run_dir / "last.pt", result.run_dir / "best.pt"
        if result.reason == "signal":
            self.error(f"sarzoo train: stopped by {signal.Signals(result.signal).name} at epoch {result.epoch + 1}, "
                       f"step {result.step}: checkpoint written to {last}. Resume with:\n"
                       f"  {resume_hint(self.args, last)}")
            return
        if result.reason == "nonfinite":
            self.error(f"sarzoo train: error: {result.message}")
            return
        if result.message:
            self.say(result.message)
        what = {"completed": f"finished {result.epoch} epochs", "max_steps": f"reached {result.step} steps",
                "early_stopping": f"stopped early after {result.epoch} epochs"}[result.reason]
        self.say(f"done       {what} ({result.step} steps)")
        b, ref = result.best, result.reference
        if best.exists() and b.get("epoch"):
            line = (f"best       {best} (epoch {b['epoch']}): val PSNR {_fmt(b.get('psnr'), '.2f')} dB, "
                    f"SSIM {_fmt(b.get('ssim'))}")
            if ref.get("psnr") is not None and b.get("psnr") is not None:
                line += f"; classical reference {ref['psnr']:.2f} dB ({b['psnr'] - ref['psnr']:+.2f} dB)"
            self.say(line)
        self.say(f"last       {last}")
