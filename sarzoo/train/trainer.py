"""The training loop (SPEC §2): epochs of steps, validation, checkpoints, until a reason to stop.

The loop only sequences the units: the optimizer and schedule (``optim``), one step with its
non-finite policy (``step``), the decision state and its checkpoint (``state``), validation and the
preview (``validation``), signals (``signals``); what depends on the device and on which process
this is comes from the ``Runtime``. It writes the run's record (checkpoints, ``log.jsonl``,
TensorBoard, previews) only where ``Runtime.is_main``, tells an ``Observer`` what happens, and
returns a ``TrainResult`` saying why it stopped; what the user reads is the command's business.

The data order is a pure function of (seed, epoch) and all other state is in the checkpoint, so a
run resumed from any checkpoint, mid-epoch included, continues exactly as the uninterrupted run
would have (bitwise on CPU).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from sarzoo import checkpoint
from sarzoo.images import write_png
from sarzoo.plan import Plan
from sarzoo.train.assembly import assemble_step, compile_step, probe_input
from sarzoo.train.data import SeededAugment, check_sizes, epoch_batches, grouped, train_loader
from sarzoo.train.logbook import RunLog
from sarzoo.train.observer import (
    EpochRecord,
    Observer,
    RunInfo,
    StepRecord,
    TrainResult,
    early_stopping_message,
    kept_checkpoint,
    nonfinite_streak_message,
    nonfinite_weights_message,
)
from sarzoo.train.optim import Schedule
from sarzoo.train.runtime import Runtime
from sarzoo.train.signals import SignalStop
from sarzoo.train.state import TrainingParts, TrainState, checkpoint_step_batch, restore, training_payload
from sarzoo.train.step import NonFiniteWeights, weights_finite
from sarzoo.train.validation import Validation

Stop = tuple[str, "str | None"]   # (reason, message)


class Trainer:
    """Train the model of a plan (its ``recipe`` is the resolved recipe) on prepared datasets.

    ``train_ds``/``val_ds`` are ``sarzoo.data.PatchDataset``-like (items ``x``, ``mask``, optional
    ``clean``); ``preprocessing`` is stored in every checkpoint. ``resume`` is a loaded checkpoint
    to continue from. Everything that can refuse (a batch larger than the data, a checkpoint of
    other data) does so here, before ``fit`` writes anything.
    """

    def __init__(self, plan: Plan, train_ds, val_ds, preprocessing, runtime: Runtime, *,
                 resume: dict[str, Any] | None = None, data_info: dict[str, Any] | None = None):
        recipe = plan.recipe
        self.plan, self.recipe, self.cfg, self.rt = plan, recipe, recipe["train"], runtime
        cfg = self.cfg
        self.seed = int(cfg["seed"])
        parts = assemble_step(plan, runtime, self.seed)   # the same assembly as `sarzoo bench`'s
        self.model, optimizer, loss_fn = parts.model, parts.optimizer, parts.loss_fn

        self.train_ds = SeededAugment(train_ds, self.seed, augment=getattr(train_ds, "augment", False))
        self.val_ds = val_ds
        self.batch_size = int(cfg["batch_size"])
        self.accumulate = int(cfg["accumulate"])
        self.step_batch = self.batch_size * self.accumulate * runtime.world_size   # patches per optimizer step
        self.steps_per_epoch = check_sizes(len(train_ds), self.batch_size, runtime.world_size, self.accumulate)
        self.epochs, self.max_steps = int(cfg["epochs"]), cfg["max_steps"]
        self.schedule = Schedule(optimizer, cfg, self.steps_per_epoch)
        self.train_step = parts.step
        patch = int(recipe["data"]["patch_size"])
        self.net = compile_step(parts, runtime, probe_input(self.batch_size, recipe["input"]["channels"], patch, patch))
        self.validation = Validation(self.model, val_ds, loss_fn, runtime, self.batch_size, preprocessing,
                                     math.prod(self.plan.latent_shape), cfg["preview_samples"])
        self.parts = TrainingParts(self.model, optimizer, self.schedule, runtime, recipe, preprocessing,
                                   {"steps_per_epoch": self.steps_per_epoch, "n_train": len(train_ds),
                                    "n_val": len(val_ds), "step_batch": self.step_batch,
                                    "world_size": runtime.world_size}, dict(data_info or {}))
        self.state = TrainState.fresh(has_validation=len(val_ds) > 0)
        self.resumed_from: str | None = None
        self.resumed_amp: str | None = None
        self.resumed_step_batch: int | None = None
        self.saved_step: int | None = None    # step of the newest last.pt on disk (for messages)
        if resume is not None:
            self.state = restore(resume, self.parts)
            self.resumed_from, self.resumed_amp = resume.get("_path"), resume.get("amp")
            self.resumed_step_batch = checkpoint_step_batch(resume)
            self.saved_step = self.state.step

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, run_dir: str | Path, observer: Observer | None = None) -> TrainResult:
        """Train in ``run_dir`` until done, stopped early, ``max_steps``, a signal, or non-finite losses."""
        self.run_dir = Path(run_dir)
        self.obs = observer if observer is not None and self.rt.is_main else Observer()
        if self.rt.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.remove_partial(self.run_dir, ".pt")
        # the checkpoint's own step was logged before it was written: purge only what came after
        purge = self.state.step + 1 if self.resumed_from is not None else None
        self.log = RunLog(self.run_dir, purge_step=purge, enabled=self.rt.is_main)
        try:
            with SignalStop(self.obs.on_signal, relayed=self.rt.world.launched) as self.signals:
                result = self._run()
                self.obs.on_stop(result)
        finally:
            self.log.close()
        return result

    def _run(self) -> TrainResult:
        st = self.state
        if not st.reference and len(self.val_ds):
            st.reference = self.validation.run(reference=True, interrupted=self._interrupted) or {}
        self.obs.on_start(self._info())
        self._log_start()
        try:
            reason, message = self._train()
            if reason in ("max_steps", "signal"):
                self._save("last.pt")  # leave a complete picture on disk
        except NonFiniteWeights as exc:
            reason, message = "nonfinite", nonfinite_weights_message(exc, self._kept())
        self.log.event("stop", reason=reason, epoch=st.epoch, step=st.step, message=message)
        self.log.flush()
        return TrainResult(self.run_dir, reason, st.epoch, st.step, dict(st.best), dict(st.last_val),
                           dict(st.reference), message, self.signals.received if reason == "signal" else None)

    def _train(self) -> Stop:
        st = self.state
        while st.epoch < self.epochs:
            if self.max_steps is not None and st.step >= self.max_steps:
                return "max_steps", None
            stop = self._train_epoch() or self._end_epoch()
            if stop is not None:
                return stop
        return "completed", None

    def _train_epoch(self) -> Stop | None:
        """The epoch's remaining steps (all of them, or up to ``max_steps``)."""
        st = self.state
        todo = epoch_batches(len(self.train_ds), self.batch_size, self.seed, st.epoch, rank=self.rt.rank,
                             world_size=self.rt.world_size, accumulate=self.accumulate, start=st.samples_in_epoch)
        if self.max_steps is not None:
            todo = todo[:max(0, self.max_steps - st.step)]
        if not todo:
            return ("max_steps", None) if self._epoch_unfinished() else None
        self.obs.on_steps_begin(st.epoch + 1, self.epochs, st.batch_in_epoch, self.steps_per_epoch)
        every = self.cfg["checkpoint_every_steps"]
        t_last = time.perf_counter()
        try:
            for micro in grouped(train_loader(self.train_ds, todo, self.rt), self.accumulate):
                if self._interrupted():  # arrived between steps (validation, a checkpoint write)
                    return "signal", None
                self.schedule.before_step(self._position())
                out = self.train_step([self.rt.to_device(b) for b in micro])
                now = time.perf_counter()
                st.count_step(out, now - t_last, self.step_batch)
                t_last = now
                record = StepRecord(st.epoch + 1, st.step, out, st.running_means(), self.schedule.lr,
                                    st.nonfinite["in_a_row"], st.nonfinite["total"])
                if out is None:
                    self._log_nonfinite()
                    self.obs.on_nonfinite(record)
                    if st.nonfinite["in_a_row"] >= self.cfg["max_nonfinite"]:
                        return "nonfinite", nonfinite_streak_message(
                            st.nonfinite["in_a_row"], st.step, self.cfg["max_nonfinite"], self._kept(),
                            weights_finite(self.model))
                elif st.step % self.cfg["log_every_steps"] == 0:
                    self.log.event("step", epoch=st.epoch, step=st.step, lr=record.lr, **out)
                    self.log.scalars({f"step/{k}": v for k, v in out.items()}, st.step)
                self.obs.on_step(record)
                # no periodic checkpoint inside a NaN streak: last.pt stays the one from before it
                if every and st.step % every == 0 and self._epoch_unfinished() and st.nonfinite["in_a_row"] == 0:
                    self._save("last.pt")
                checkpoint.fault_point("step", st.step)
                if self._interrupted():
                    return "signal", None
        finally:
            self.obs.on_steps_end()
        return ("max_steps", None) if self._epoch_unfinished() else None

    def _epoch_unfinished(self) -> bool:
        """Another whole step of this epoch's data is left."""
        return len(self.train_ds) - self.state.samples_in_epoch >= self.step_batch

    def _end_epoch(self) -> Stop | None:
        """Validate, judge (best, early stopping, plateau), checkpoint and record the finished epoch."""
        st, cfg = self.state, self.cfg
        t0 = time.perf_counter()
        val = self.validation.run(interrupted=self._interrupted)
        if val is None:  # interrupted during validation: the epoch's steps are done, validation is not
            return "signal", None
        train = st.running_means()
        monitor = val.get("loss") if val else train.get("loss", math.inf)
        improved = st.judge(monitor, cfg["early_stopping"]["min_delta"], val)
        lr = self.schedule.lr
        self.schedule.after_epoch(self._position(), monitor)
        seconds = st.accum["time"] + (time.perf_counter() - t0)
        st.next_epoch(val)
        self._save("last.pt")
        if improved:
            self._save("best.pt")
        record = EpochRecord(st.epoch, self.epochs, st.step, lr, train, val, st.best, improved, seconds,
                             st.nonfinite["total"], st.reference)
        self._log_epoch(record)
        self.obs.on_epoch(record)
        patience = cfg["early_stopping"]["patience"]
        if patience and st.bad_epochs >= patience:
            return "early_stopping", early_stopping_message(st.bad_epochs, patience)
        return ("signal", None) if self._interrupted() else None

    # -- checkpoints ---------------------------------------------------------------------------
    def _save(self, name: str) -> None:
        """Write a checkpoint; refuses (NonFiniteWeights) rather than overwrite a good one with NaN weights.

        A step whose loss and gradients were finite can still leave NaN/Inf weights (e.g. Adam with
        ``eps`` 0), and ``last.pt`` is what the user falls back to."""
        st = self.state
        if not weights_finite(self.model):
            self.log.event("checkpoint_refused", file=name, epoch=st.epoch, step=st.step,
                           reason="non-finite weights")
            raise NonFiniteWeights(f"the model's weights became non-finite (NaN/Inf) by step {st.step}")
        # events up to this step reach the disk before a checkpoint says they happened: after a
        # kill, the resumed run (purging only steps beyond the checkpoint) leaves no gap
        self.log.flush()
        if self.rt.is_main:
            checkpoint.write(training_payload(st, self.parts), self.run_dir / name)
        if name == "last.pt":
            self.saved_step = st.step
        self.log.event("checkpoint", file=name, epoch=st.epoch, step=st.step, batch_in_epoch=st.batch_in_epoch)

    def _kept(self) -> str:
        return kept_checkpoint(self.run_dir, self.saved_step)

    def _interrupted(self) -> bool:
        """A stop signal arrived, in any process: all of them stop at the same step (a collective), and
        each records the signal, also one that only another process received (one machine's torchrun
        stopped, a ``kill`` of one process)."""
        sig = self.rt.world.max(self.signals.received or 0, self.rt.device)
        if sig and self.signals.received is None:
            self.signals.received = sig
        return bool(sig)

    def _position(self) -> float:
        """Where the run is, in this run's steps: the step count itself unless a resume changed the
        patches per step; the schedule follows the data seen, not the steps taken."""
        st = self.state
        return st.epoch * self.steps_per_epoch + st.samples_in_epoch / self.step_batch

    # -- what the observer and the record get ----------------------------------------------------
    def _info(self) -> RunInfo:
        st, cfg = self.state, self.cfg
        return RunInfo(self.recipe["name"], self.model.count_parameters()["total"], tuple(self.plan.latent_shape),
                       self.plan.compression_ratio, self.rt.describe(), self.rt.amp, self.recipe["runtime"]["amp"],
                       self.epochs,
                       self.steps_per_epoch, self.batch_size, self.max_steps, cfg["lr"], self.schedule.warmup_steps,
                       len(self.val_ds), dict(st.reference), st.epoch, st.step, st.batch_in_epoch,
                       self.resumed_from, self.resumed_amp, self.schedule.kind, self.accumulate,
                       self.rt.world_size, self.resumed_step_batch, self.model.latent_bits(),
                       float(cfg["rate"]["lmbda"]))

    def _log_start(self) -> None:
        st = self.state
        if self.resumed_from is not None:
            self.log.event("resume", checkpoint=self.resumed_from, epoch=st.epoch, step=st.step,
                           batch_in_epoch=st.batch_in_epoch)
            return
        self.log.event("start", recipe=self.recipe["name"], device=str(self.rt.device), amp=self.rt.amp,
                       n_train=len(self.train_ds), n_val=len(self.val_ds), steps_per_epoch=self.steps_per_epoch,
                       reference=st.reference, data=self.parts.data_info)
        self.log.hparams(self._hparams(), ["val/loss", "val/psnr", "val/ssim", "val/enl_ratio", "val/epi"])
        self.log.scalars({f"reference/{k}": v for k, v in st.reference.items()}, 0)

    def _hparams(self) -> dict[str, Any]:
        def flat(d, prefix):
            out = {}
            for k, v in d.items():
                if isinstance(v, dict):
                    out.update(flat(v, f"{prefix}{k}."))
                else:
                    out[f"{prefix}{k}"] = v
            return out
        hp = flat(self.cfg, "train.")
        hp.update({"recipe": self.recipe["name"], "params": self.model.count_parameters()["total"],
                   "patch_size": self.recipe["data"].get("patch_size"), "amp_resolved": self.rt.amp,
                   "n_train": len(self.train_ds), "n_val": len(self.val_ds)})
        return hp

    def _log_nonfinite(self) -> None:
        st, nf = self.state, self.state.nonfinite
        self.log.event("nonfinite", epoch=st.epoch, step=st.step, in_a_row=nf["in_a_row"], total=nf["total"])
        self.log.scalars({"train/nonfinite_total": nf["total"], "train/nonfinite_in_a_row": nf["in_a_row"]}, st.step)

    def _log_epoch(self, r: EpochRecord) -> None:
        scal = {f"train/{k}": v for k, v in r.train.items()}
        scal.update({f"val/{k}": v for k, v in r.val.items()})
        scal.update({"lr": r.lr, "epoch": r.epoch, "train/nonfinite_total": r.nonfinite_total})
        self.log.scalars(scal, r.step)
        self.log.event("epoch", epoch=r.epoch, step=r.step, lr=r.lr, train=r.train, val=r.val, best=r.best,
                       improved=r.improved, seconds=round(r.seconds, 3), nonfinite=r.nonfinite_total)
        grid = self.validation.preview() if self.rt.is_main else None
        if grid is not None:
            self.log.image("val/original|reconstruction|abs_diff_x4", grid, r.step)
            write_png(self.run_dir / "previews" / f"epoch_{r.epoch:04d}.png", grid)
        every = self.cfg["histogram_every"]
        if every and (r.epoch % every == 0 or r.epoch == 1):
            self.log.histograms(self.model, r.step)
        self.log.flush()
