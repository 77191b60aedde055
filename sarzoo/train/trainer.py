"""The training loop (SPEC §2): Adam, linear warm-up, ReduceLROnPlateau, early stopping, gradient
clipping, mixed precision, MSE + (1 − SSIM) loss, checkpoints, exact resume, signals, NaN guard.

State that decides what happens next (model, optimizer, schedulers, scaler, counters, best value,
early-stopping count, the running sums of the current epoch, RNG states) is all in the
checkpoint, and the data order is a pure function of (seed, epoch): resuming from any checkpoint,
mid-epoch included, continues exactly as the uninterrupted run would have (bitwise on CPU).
"""
from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sarzoo import __version__
from sarzoo.errors import SarzooError
from sarzoo import checkpoint as ckpt_mod
from sarzoo.train.rng import rng_state, set_rng_state
from sarzoo.train.data import (SeededAugment, check_sizes, collate, epoch_batches, preview_indices,
                               train_loader, val_loader)
from sarzoo.images import triple_grid, write_png
from sarzoo.train.logbook import RunLog
from sarzoo.train.loss import ReconstructionLoss
from sarzoo.train.progress import Progress
from sarzoo.train.runtime import Runtime

METRIC_KEYS = ("loss", "mse", "ssim", "psnr")


class NonFiniteWeights(Exception):
    """The weights themselves went NaN/Inf: writing them would replace the last good checkpoint."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


@dataclass
class TrainResult:
    run_dir: Path
    exit_code: int
    reason: str                      # completed | early_stopping | max_steps | signal | nonfinite
    epoch: int
    step: int
    best: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Train the model of a resolved recipe on prepared datasets, writing into ``run_dir``.

    ``train_ds``/``val_ds`` are ``sarzoo.data.PatchDataset``-like (items ``x``, ``mask``,
    optional ``clean``); ``preprocessing`` is stored in every checkpoint. ``resume`` is a loaded
    checkpoint to continue from.
    """

    def __init__(self, recipe: dict[str, Any], run_dir: str | os.PathLike, train_ds, val_ds, preprocessing, *,
                 device: str | None = None, resume: dict[str, Any] | None = None, progress: bool | None = None,
                 resume_hint: Callable[[Path], str] | None = None, say: Callable[[str], None] | None = None,
                 data_info: dict[str, Any] | None = None):
        from sarzoo.builder import instantiate, make_plan

        self.recipe = recipe
        self.cfg = recipe["train"]
        self.run_dir = Path(run_dir)
        self.preprocessing = preprocessing
        self.resume_hint = resume_hint
        self.data_info = data_info or {}
        self.progress = Progress(progress)
        self._say = say
        cfg = self.cfg

        self.rt = Runtime.create(device, cfg["amp"], cfg["num_workers"])
        self.seed = int(cfg["seed"])
        seed_everything(self.seed)
        self.plan = make_plan(recipe)
        self.model = instantiate(self.plan).to(self.rt.device)
        self.latent_numel = math.prod(self.plan.latent_shape)

        opt_cfg = cfg["optimizer"]
        opt_cls = torch.optim.AdamW if opt_cfg["type"] == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=cfg["lr"], betas=(opt_cfg["beta1"], opt_cfg["beta2"]),
                                 eps=opt_cfg["eps"], weight_decay=opt_cfg["weight_decay"])
        pl = cfg["plateau"]
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=pl["factor"], patience=pl["patience"], min_lr=pl["min_lr"])
        self.loss_fn = ReconstructionLoss.from_config(cfg["loss"])

        self.train_ds = SeededAugment(train_ds, self.seed, augment=getattr(train_ds, "augment", False))
        self.val_ds = val_ds
        self.batch_size = int(cfg["batch_size"])
        self.steps_per_epoch = check_sizes(len(train_ds), self.batch_size)
        self.warmup_steps = int(round(cfg["warmup"]["epochs"] * self.steps_per_epoch))
        self.preview_idx = preview_indices(len(val_ds), cfg["preview_samples"])

        # progress counters and decision state (all checkpointed)
        self.epoch = 0                 # epochs completed
        self.step = 0                  # optimizer steps attempted (skipped non-finite ones included)
        self.batch_in_epoch = 0        # batches of the current epoch consumed
        self.best = {"value": math.inf, "epoch": None, "step": None, "metric": "val_loss" if len(val_ds) else "train_loss"}
        self.bad_epochs = 0
        self.nonfinite = {"total": 0, "in_a_row": 0}
        self.accum = self._zero_accum()
        self.last_val: dict[str, Any] = {}
        self.reference: dict[str, Any] = {}
        self._signal: int | None = None
        self._resumed_from = None
        self._resumed_amp: str | None = None
        self._saved_step: int | None = None   # step of the newest last.pt on disk (for messages)
        if resume is not None:
            self._load_state(resume)

    # -- helpers ---------------------------------------------------------------------------
    def say(self, line: str) -> None:
        if self._say is not None:
            self._say(line)
        else:
            self.progress.write(line)

    @staticmethod
    def _zero_accum() -> dict[str, float]:
        return {**dict.fromkeys(METRIC_KEYS, 0.0), "n": 0, "time": 0.0}

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def max_steps(self) -> int | None:
        return self.cfg["max_steps"]

    @property
    def epochs(self) -> int:
        return int(self.cfg["epochs"])

    # -- checkpoint state ------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        return {
            **ckpt_mod.model_payload(self.model, self.recipe, self.preprocessing, kind="training"),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {"plateau": self.plateau.state_dict()},
            "scaler": self.rt.scaler.state_dict() if self.rt.scaler is not None else None,
            "amp": self.rt.amp,
            "epoch": self.epoch,
            "step": self.step,
            "batch_in_epoch": self.batch_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "n_train": len(self.train_ds),
            "n_val": len(self.val_ds),
            "best": dict(self.best),
            "early_stopping": {"bad_epochs": self.bad_epochs},
            "nonfinite": dict(self.nonfinite),
            "accum": dict(self.accum),
            "metrics": dict(self.last_val),
            "reference": dict(self.reference),
            "data": dict(self.data_info),
            "rng": rng_state(),
        }

    def _load_state(self, ck: dict[str, Any]) -> None:
        if ck.get("n_train") != len(self.train_ds) or ck.get("steps_per_epoch") != self.steps_per_epoch:
            raise SarzooError(f"{ck.get('_path')}: the training data changed since this checkpoint "
                              f"({ck.get('n_train')} patches then, {len(self.train_ds)} now; batch size "
                              f"{self.batch_size}): resuming would not continue the same run. Start a new run.")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.plateau.load_state_dict(ck["scheduler"]["plateau"])
        if self.rt.scaler is not None and ck.get("scaler"):
            self.rt.scaler.load_state_dict(ck["scaler"])
        self.epoch, self.step, self.batch_in_epoch = int(ck["epoch"]), int(ck["step"]), int(ck["batch_in_epoch"])
        self.best = dict(ck["best"])
        self.bad_epochs = int(ck["early_stopping"]["bad_epochs"])
        self.nonfinite = dict(ck["nonfinite"])
        self.accum = dict(ck["accum"])
        self.last_val = dict(ck.get("metrics") or {})
        self.reference = dict(ck.get("reference") or {})
        set_rng_state(ck["rng"])
        self._resumed_from = ck.get("_path")
        self._saved_step = self.step
        self._resumed_amp = ck.get("amp")

    def _weights_finite(self) -> bool:
        with torch.no_grad():
            return all(bool(torch.isfinite(t).all()) for t in self.model.state_dict().values()
                       if t.is_floating_point())

    def save(self, name: str = "last.pt") -> Path:
        """Write a checkpoint; refuses (NonFiniteWeights) rather than overwrite a good one with NaN weights.

        A step whose loss and gradients were finite can still leave NaN/Inf weights (e.g. Adam with
        ``eps`` 0), and ``last.pt`` is what the user falls back to."""
        if not self._weights_finite():
            self.log.event("checkpoint_refused", file=name, epoch=self.epoch, step=self.step,
                           reason="non-finite weights")
            raise NonFiniteWeights(f"the model's weights became non-finite (NaN/Inf) by step {self.step}")
        # events up to this step reach the disk before a checkpoint says they happened: after a
        # kill, the resumed run (purging only steps beyond the checkpoint) leaves no gap
        self.log.flush()
        path = ckpt_mod.write(self.payload(), self.run_dir / name)
        if name == "last.pt":
            self._saved_step = self.step
        self.log.event("checkpoint", file=name, epoch=self.epoch, step=self.step, batch_in_epoch=self.batch_in_epoch)
        return path

    def _kept_checkpoint(self) -> str:
        last = self.run_dir / "last.pt"
        if last.exists():
            at = f" (step {self._saved_step})" if self._saved_step is not None else ""
            return f"the last good checkpoint {last}{at} is kept"
        return "no checkpoint had been written yet"

    # -- signals ---------------------------------------------------------------------------
    def _install_signals(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum, _frame):
            self._signal = signum
            name = signal.Signals(signum).name
            print(f"\nsarzoo train: {name} received: finishing the current step and writing a checkpoint "
                  f"(send it again to abort without saving)", file=sys.stderr, flush=True)
            # a second signal takes the default action
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                old[s] = signal.signal(s, handler)
            except (ValueError, OSError):
                pass
        return old

    @staticmethod
    def _restore_signals(old) -> None:
        for s, h in old.items():
            try:
                signal.signal(s, h)
            except (ValueError, OSError):
                pass

    # -- one step --------------------------------------------------------------------------
    def _set_warmup_lr(self) -> None:
        if self.step > self.warmup_steps or self.warmup_steps == 0:
            return
        f = self.cfg["warmup"]["start_factor"]
        lr = self.cfg["lr"] * (f + (1.0 - f) * self.step / self.warmup_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def _train_step(self, batch: dict[str, Any]) -> dict[str, float] | None:
        """One optimizer step; None if the loss or gradients were not finite (step skipped)."""
        x, mask = batch["x"], batch["mask"]
        self._set_warmup_lr()
        buffers = [b.detach().clone() for b in self.model.buffers()]
        self.optimizer.zero_grad(set_to_none=True)
        with self.rt.autocast():
            x_hat, _ = self.model(x)
        loss, parts = self.loss_fn(x_hat, x, mask)
        clip = self.cfg["grad_clip"]
        params = [p for p in self.model.parameters() if p.requires_grad]
        ok = bool(torch.isfinite(loss))
        grad_norm = float("nan")
        if ok:
            scaler = self.rt.scaler
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(self.optimizer)
                gn = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
                grad_norm = float(gn)
                scaler.step(self.optimizer)  # skips by itself on inf/NaN gradients (fp16 overflow)
                scaler.update()
            else:
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
                grad_norm = float(gn)
                ok = math.isfinite(grad_norm)
                if ok:
                    self.optimizer.step()
        if not ok:
            with torch.no_grad():  # the bad forward must not leave NaN in BatchNorm statistics
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        mse = float(parts["mse"])
        return {"loss": float(loss.detach()), "mse": mse, "ssim": float(parts["ssim"]),
                "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf, "grad_norm": grad_norm}

    # -- validation ------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, reference: bool = False) -> dict[str, float] | None:
        """Mean validation metrics of the model (or, with ``reference``, of the classical reference).

        In fp32 whatever ``train.amp`` says: autocast is for training speed, and the numbers stored
        in checkpoints must be the ones ``sarzoo eval`` reproduces. Returns None if interrupted by
        a signal."""
        from sarzoo import metrics as M

        if len(self.val_ds) == 0:
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}

        def add(k, v, n):
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                return
            sums[k] = sums.get(k, 0.0) + float(v) * n
            counts[k] = counts.get(k, 0) + n

        try:
            for batch in val_loader(self.val_ds, max(self.batch_size, 1), self.rt):
                if self._signal is not None:
                    return None
                batch = self.rt.to_device(batch)
                x, mask = batch["x"], batch["mask"]
                n = x.shape[0]
                if reference:
                    x_hat = M.classical_reference(x.float(), self.latent_numel)
                else:
                    x_hat = self.model(x)[0].float()
                loss, parts = self.loss_fn(x_hat, x, mask)
                add("loss", float(loss), n)
                add("mse", float(parts["mse"]), n)
                for k, v in M.batch_metrics(x, x_hat, mask, self.preprocessing, batch.get("clean")).items():
                    add(k, v, n)
                if "clean" in batch:
                    if reference:
                        add("psnr_clean_input", M.psnr(batch["clean"], x, mask), n)
        finally:
            self.model.train()
        return {k: sums[k] / counts[k] for k in sums}

    @torch.no_grad()
    def preview(self) -> torch.Tensor | None:
        if not self.preview_idx:
            return None
        batch = self.rt.to_device(collate([self.val_ds[i] for i in self.preview_idx]))
        self.model.eval()
        try:
            x_hat = self.model(batch["x"])[0].float()
        finally:
            self.model.train()
        return triple_grid(batch["x"], x_hat, mask=batch["mask"])

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ckpt_mod.remove_partial(self.run_dir, ".pt")
        resumed = self._resumed_from is not None
        # the checkpoint's own step was logged before it was written: purge only what came after
        self.log = RunLog(self.run_dir, purge_step=self.step + 1 if resumed else None)
        old_handlers = self._install_signals()
        try:
            return self._fit(resumed)
        finally:
            self._restore_signals(old_handlers)
            self.log.close()

    def _start_messages(self, resumed: bool) -> None:
        counts = self.model.count_parameters()
        lat = "×".join(map(str, self.plan.latent_shape))
        self.say(f"model      {self.recipe['name']}: {counts['total']:,} parameters, latent {lat} "
                 f"({self.plan.compression_ratio:g}× compression)")
        self.say(f"device     {self.rt.describe()}")
        self.say(f"schedule   {self.epochs} epochs × {self.steps_per_epoch} steps (batch {self.batch_size})"
                 + (f", at most {self.max_steps} steps" if self.max_steps else "")
                 + f"; lr {self.cfg['lr']:g}, warm-up {self.warmup_steps} steps")
        if resumed:
            self.say(f"resumed    {self._resumed_from}: epoch {self.epoch + 1}, batch {self.batch_in_epoch}/"
                     f"{self.steps_per_epoch}, step {self.step}")
            if self._resumed_amp not in (None, self.rt.amp):
                # train.amp=auto resolves per machine; the run goes on, but not bit for bit as before
                self.say(f"note       the checkpoint trained with amp {self._resumed_amp}, this machine uses "
                         f"{self.rt.amp} (train.amp={self.cfg['amp']}): training continues, not bitwise as before")
        if len(self.val_ds) == 0:
            # val_fraction 0, or a single scene whose held-out strip is thinner than a patch
            self.say("note       no validation patches (data.val_fraction is 0, or the held-out part is "
                     "smaller than a patch: give more scenes or raise data.val_fraction): best.pt, the "
                     "plateau scheduler and early stopping follow the training loss")
        ref = self.reference
        if ref:
            line = (f"reference  classical (area-down to the latent size, bicubic up) on validation: "
                    f"PSNR {_fmt(ref.get('psnr'), '.2f')} dB, SSIM {_fmt(ref.get('ssim'))}")
            if "psnr_clean" in ref:
                line += f"; vs clean PSNR {_fmt(ref.get('psnr_clean'), '.2f')} dB"
            self.say(line)

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

    def _fit(self, resumed: bool) -> TrainResult:
        if not self.reference and len(self.val_ds):
            self.reference = self.validate(reference=True) or {}
        self._start_messages(resumed)
        if resumed:
            self.log.event("resume", checkpoint=self._resumed_from, epoch=self.epoch, step=self.step,
                           batch_in_epoch=self.batch_in_epoch)
        else:
            self.log.event("start", recipe=self.recipe["name"], device=str(self.rt.device), amp=self.rt.amp,
                           n_train=len(self.train_ds), n_val=len(self.val_ds), steps_per_epoch=self.steps_per_epoch,
                           reference=self.reference, data=self.data_info)
            self.log.hparams(self._hparams(), ["val/loss", "val/psnr", "val/ssim", "val/enl_ratio", "val/epi"])
            self.log.scalars({f"reference/{k}": v for k, v in self.reference.items()}, 0)

        reason = "completed"
        stop_message = None
        try:
            while True:
                if self.epoch >= self.epochs:
                    reason = "completed"
                    break
                if self.max_steps is not None and self.step >= self.max_steps:
                    reason = "max_steps"
                    break
                status = self._run_epoch_steps()
                if status is not None:
                    reason, stop_message = status
                    break
                # the epoch's batches are all done: validate and decide
                status = self._end_epoch()
                if status is not None:
                    reason, stop_message = status
                    break
            # leave a complete picture on disk
            if reason in ("max_steps", "signal"):
                self.save("last.pt")
        except NonFiniteWeights as exc:
            reason = "nonfinite"
            stop_message = (f"training stopped: {exc}; {self._kept_checkpoint()}. Lower train.lr (or raise "
                            f"train.optimizer.eps) and start a new run.")
        self.log.event("stop", reason=reason, epoch=self.epoch, step=self.step, message=stop_message)
        self.log.flush()
        return self._finish(reason, stop_message)

    def _run_epoch_steps(self) -> tuple[str, str | None] | None:
        cfg = self.cfg
        batches = epoch_batches(len(self.train_ds), self.batch_size, self.seed, self.epoch)
        todo = batches[self.batch_in_epoch:]
        if self.max_steps is not None:
            todo = todo[:max(0, self.max_steps - self.step)]
        if not todo:
            return ("max_steps", None) if self.batch_in_epoch < self.steps_per_epoch else None
        bar = self.progress.bar(self.steps_per_epoch, self.batch_in_epoch, f"epoch {self.epoch + 1}/{self.epochs}")
        every = cfg["checkpoint_every_steps"]
        t_last = time.perf_counter()
        try:
            for batch in train_loader(self.train_ds, todo, self.rt):
                if self._signal is not None:  # arrived between steps (validation, a checkpoint write)
                    return "signal", None
                batch = self.rt.to_device(batch)
                out = self._train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                now = time.perf_counter()
                self.accum["time"] += now - t_last
                t_last = now
                if out is None:
                    self.nonfinite["total"] += 1
                    self.nonfinite["in_a_row"] += 1
                    self.log.event("nonfinite", epoch=self.epoch, step=self.step, in_a_row=self.nonfinite["in_a_row"],
                                   total=self.nonfinite["total"])
                    self.log.scalars({"train/nonfinite_total": self.nonfinite["total"],
                                      "train/nonfinite_in_a_row": self.nonfinite["in_a_row"]}, self.step)
                    self.progress.write(f"warning: non-finite loss or gradient at step {self.step}: step skipped "
                                        f"({self.nonfinite['in_a_row']} in a row, {self.nonfinite['total']} in total)")
                    if self.nonfinite["in_a_row"] >= cfg["max_nonfinite"]:
                        keep = self._kept_checkpoint()
                        hint = ("The weights themselves are NaN/Inf (a bad update): lower train.lr or raise "
                                "train.optimizer.eps." if not self._weights_finite() else
                                "Check the input data for NaN/Inf values, or lower train.lr (with train.amp=fp16, "
                                "activations overflow above 65504).")
                        return "nonfinite", (f"training stopped: {self.nonfinite['in_a_row']} non-finite (NaN/Inf) "
                                             f"losses in a row at step {self.step} (train.max_nonfinite = "
                                             f"{cfg['max_nonfinite']}); {keep}. {hint}")
                else:
                    self.nonfinite["in_a_row"] = 0
                    for k in METRIC_KEYS:
                        self.accum[k] += out[k]
                    self.accum["n"] += 1
                    n = max(self.accum["n"], 1)
                    bar.set_postfix_str(f"loss {self.accum['loss'] / n:.4f} psnr {self.accum['psnr'] / n:.2f} "
                                        f"ssim {self.accum['ssim'] / n:.3f} lr {self.lr:.2g}", refresh=False)
                    if self.step % cfg["log_every_steps"] == 0:
                        self.log.event("step", epoch=self.epoch, step=self.step, lr=self.lr, **out)
                        self.log.scalars({f"step/{k}": v for k, v in out.items()}, self.step)
                bar.update(1)
                # no periodic checkpoint inside a NaN streak: last.pt stays the one from before it
                if (every and self.step % every == 0 and self.batch_in_epoch < self.steps_per_epoch
                        and self.nonfinite["in_a_row"] == 0):
                    self.save("last.pt")
                ckpt_mod.fault_point("step", self.step)
                if self._signal is not None:
                    return "signal", None
        finally:
            bar.close()
        if self.batch_in_epoch < self.steps_per_epoch:
            return "max_steps", None
        return None

    def _end_epoch(self) -> tuple[str, str | None] | None:
        cfg = self.cfg
        t0 = time.perf_counter()
        val = self.validate()
        if val is None:  # interrupted during validation: the epoch's steps are done, validation is not
            return "signal", None
        n = max(self.accum["n"], 1)
        train = {k: self.accum[k] / n for k in METRIC_KEYS} if self.accum["n"] else {}
        monitor = val.get("loss") if val else train.get("loss", math.inf)
        improved = monitor is not None and monitor < self.best["value"] - cfg["early_stopping"]["min_delta"]
        if improved:
            self.best = {"value": float(monitor), "epoch": self.epoch + 1, "step": self.step,
                         "metric": self.best["metric"], "psnr": val.get("psnr"), "ssim": val.get("ssim")}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        lr_before = self.lr
        if self.step >= self.warmup_steps and monitor is not None and math.isfinite(monitor):
            self.plateau.step(monitor)
        epoch_time = self.accum["time"] + (time.perf_counter() - t0)
        self.last_val = dict(val)
        finished_epoch = self.epoch + 1
        self.epoch += 1
        self.batch_in_epoch = 0
        self.accum = self._zero_accum()
        self.save("last.pt")
        if improved:
            self.save("best.pt")

        # records
        scal = {f"train/{k}": v for k, v in train.items()}
        scal.update({f"val/{k}": v for k, v in val.items()})
        scal.update({"lr": lr_before, "epoch": finished_epoch, "train/nonfinite_total": self.nonfinite["total"]})
        self.log.scalars(scal, self.step)
        self.log.event("epoch", epoch=finished_epoch, step=self.step, lr=lr_before, train=train, val=val,
                       best=self.best, improved=improved, seconds=round(epoch_time, 3),
                       nonfinite=self.nonfinite["total"])
        grid = self.preview()
        if grid is not None:
            self.log.image("val/original|reconstruction|abs_diff_x4", grid, self.step)
            write_png(self.run_dir / "previews" / f"epoch_{finished_epoch:04d}.png", grid)
        he = cfg["histogram_every"]
        if he and (finished_epoch % he == 0 or finished_epoch == 1):
            self.log.histograms(self.model, self.step)
        self.log.flush()
        ref = self.reference
        line = (f"epoch {finished_epoch:>3}/{self.epochs}  train loss {_fmt(train.get('loss'), '.4f')} "
                f"psnr {_fmt(train.get('psnr'), '.2f')}")
        if val:
            line += (f" | val loss {_fmt(val.get('loss'), '.4f')} psnr {_fmt(val.get('psnr'), '.2f')} "
                     f"ssim {_fmt(val.get('ssim'))}")
            if ref.get("psnr") is not None:
                line += f" (ref {_fmt(ref.get('psnr'), '.2f')})"
        line += f" | lr {lr_before:.2g} | {epoch_time:.1f}s" + (" *best" if improved else "")
        self.say(line)

        es = cfg["early_stopping"]["patience"]
        if es and self.bad_epochs >= es:
            return "early_stopping", (f"early stopping: no validation-loss improvement for {self.bad_epochs} epochs "
                                      f"(train.early_stopping.patience = {es})")
        if self._signal is not None:
            return "signal", None
        return None

    def _finish(self, reason: str, message: str | None) -> TrainResult:
        last, best = self.run_dir / "last.pt", self.run_dir / "best.pt"
        code = 0
        if reason == "signal":
            name = signal.Signals(self._signal).name
            hint = self.resume_hint(last) if self.resume_hint else f"--resume {last}"
            print(f"sarzoo train: stopped by {name} at epoch {self.epoch + 1}, step {self.step}: checkpoint written "
                  f"to {last}. Resume with:\n  {hint}", file=sys.stderr, flush=True)
            code = 128 + int(self._signal)
        elif reason == "nonfinite":
            print(f"sarzoo train: error: {message}", file=sys.stderr, flush=True)
            code = 2
        else:
            if message:
                self.say(message)
            what = {"completed": f"finished {self.epoch} epochs", "max_steps": f"reached {self.step} steps",
                    "early_stopping": f"stopped early after {self.epoch} epochs"}[reason]
            self.say(f"done       {what} ({self.step} steps)")
            if best.exists() and self.best.get("epoch"):
                b = self.best
                line = (f"best       {best} (epoch {b['epoch']}): val PSNR {_fmt(b.get('psnr'), '.2f')} dB, "
                        f"SSIM {_fmt(b.get('ssim'))}")
                if self.reference.get("psnr") is not None and b.get("psnr") is not None:
                    d = b["psnr"] - self.reference["psnr"]
                    line += f"; classical reference {self.reference['psnr']:.2f} dB ({d:+.2f} dB)"
                self.say(line)
            self.say(f"last       {last}")
        return TrainResult(self.run_dir, code, reason, self.epoch, self.step, dict(self.best), dict(self.last_val),
                           dict(self.reference))
