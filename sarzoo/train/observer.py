"""What a training run tells the outside: the observer interface, the records it passes, the result.

The loop and the run preparation only report what happens; the command (``sarzoo.commands.train``)
renders it, so wording, progress bar and exit codes live there, and a notebook or a test can watch
a run with an observer of its own. Every method of ``Observer`` does nothing; override what you
need. On a process that is not the main one (``Runtime.is_main``) the loop tells nobody.

The stop messages are made here, not by the command, because they are part of the run's record
(the ``stop`` event of ``log.jsonl`` holds them) as much as of its console output.

Torch-free: the command imports this at ``sarzoo --help`` time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunInfo:
    """What is being trained, where and how, known before the first step (``on_start``)."""

    recipe: str
    parameters: int
    latent_shape: tuple[int, ...]
    compression_ratio: float
    device: str                    # Runtime.describe()
    amp: str                       # resolved: off | bf16 | fp16
    amp_setting: str               # runtime.amp as the recipe says (auto resolves per machine)
    epochs: int
    steps_per_epoch: int
    batch_size: int
    max_steps: int | None
    lr: float
    warmup_steps: int
    n_val: int
    reference: dict[str, Any]      # the classical reference on the validation patches
    epoch: int                     # epochs completed (where a resumed run continues)
    step: int
    batch_in_epoch: int
    resumed_from: str | None = None
    resumed_amp: str | None = None
    decay: str = "plateau"          # train.schedule: plateau | cosine
    accumulate: int = 1            # micro-batches per step (train.accumulate)
    world_size: int = 1            # processes
    resumed_step_batch: int | None = None   # patches per step of the checkpoint's run
    latent: dict[str, Any] = field(default_factory=dict)   # sarzoo.codec.rates.latent_size: numbers, bits
    lmbda: float = 0.0             # train.rate.lmbda

    @property
    def step_batch(self) -> int:
        """Patches per optimizer step, all micro-batches of all processes."""
        return self.batch_size * self.accumulate * self.world_size


@dataclass
class StepRecord:
    epoch: int                     # the epoch the step belongs to, from 1
    step: int                      # steps so far, this one included
    metrics: dict[str, float] | None   # None: a non-finite step, skipped
    means: dict[str, float]        # running means of the epoch's finite steps
    lr: float
    nonfinite_in_a_row: int
    nonfinite_total: int


@dataclass
class EpochRecord:
    epoch: int                     # the epoch just finished, from 1
    epochs: int
    step: int
    lr: float                      # the rate the epoch trained with (before the plateau scheduler's verdict)
    train: dict[str, float]        # means over the epoch's finite steps (empty if none)
    val: dict[str, float]          # empty without validation patches
    best: dict[str, Any]
    improved: bool
    seconds: float
    nonfinite_total: int
    reference: dict[str, Any]


@dataclass
class TrainResult:
    run_dir: Path
    reason: str                    # completed | early_stopping | max_steps | signal | nonfinite
    epoch: int
    step: int
    best: dict[str, Any] = field(default_factory=dict)
    last_val: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    message: str | None = None     # why it stopped, for early_stopping and nonfinite
    signal: int | None = None      # the signal number, for reason "signal"


class Observer:
    def on_prepare(self, event: str, **facts: Any) -> None:
        """A decision of the run preparation: ``no_previous_run`` (recipe), ``restart_in_place``
        (run_dir), ``checkpoint_preprocessing`` (preprocessing: the checkpoint's, kept)."""

    def on_start(self, info: RunInfo) -> None:
        pass

    def on_steps_begin(self, epoch: int, epochs: int, done: int, total: int) -> None:
        """Training steps of epoch ``epoch`` (from 1) begin, ``done`` of its ``total`` already taken."""

    def on_step(self, record: StepRecord) -> None:
        pass

    def on_nonfinite(self, record: StepRecord) -> None:
        """A step was skipped (non-finite loss or gradient); ``on_step`` follows unless the run stops."""

    def on_steps_end(self) -> None:
        """The training steps of the epoch are over (done, or interrupted); validation may follow."""

    def on_epoch(self, record: EpochRecord) -> None:
        pass

    def on_signal(self, signum: int) -> None:
        """Called from the signal handler: the run stops after the current step."""

    def on_stop(self, result: TrainResult) -> None:
        pass


# --- stop messages -----------------------------------------------------------------------------

def kept_checkpoint(run_dir: Path, saved_step: int | None) -> str:
    last = run_dir / "last.pt"
    if last.exists():
        at = f" (step {saved_step})" if saved_step is not None else ""
        return f"the last good checkpoint {last}{at} is kept"
    return "no checkpoint had been written yet"


def early_stopping_message(bad_epochs: int, patience: int) -> str:
    return (f"early stopping: no validation-loss improvement for {bad_epochs} epochs "
            f"(train.early_stopping.patience = {patience})")


def nonfinite_streak_message(in_a_row: int, step: int, limit: int, kept: str, weights_ok: bool) -> str:
    hint = ("Check the input data for NaN/Inf values, or lower train.lr (with runtime.amp=fp16, activations "
            "overflow above 65504)." if weights_ok else
            "The weights themselves are NaN/Inf (a bad update): lower train.lr or raise train.optimizer.eps.")
    return (f"training stopped: {in_a_row} non-finite (NaN/Inf) losses in a row at step {step} "
            f"(train.max_nonfinite = {limit}); {kept}. {hint}")


def nonfinite_weights_message(error: Exception, kept: str) -> str:
    return (f"training stopped: {error}; {kept}. Lower train.lr (or raise train.optimizer.eps) and start "
            f"a new run.")
