"""Where and how training runs, in one place: the fast path, the GradScaler, workers, and which process this is.

The fast path itself (precision, memory format, compilation, checkpointing) is core's
``sarzoo.fastpath.FastPath``, shared with evaluation, reconstruction and ``sarzoo bench``; this
adds what only training has: the GradScaler of fp16 autocast, DataLoader workers and pinning, and
which process this is (``sarzoo.train.distributed.World``). Several processes change this file and
the data order (``train.data.epoch_batches``), not the training loop: the loop runs whatever
``prepare_model`` returns (the model in ``DistributedDataParallel``, its BatchNorms synchronised
with ``train.sync_bn``), takes its shard of every step by ``rank``/``world_size``, and writes
checkpoints, logs and previews only where ``is_main``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

from sarzoo.device import pick_device
from sarzoo.fastpath import FastPath
from sarzoo.train import distributed, sync_bn
from sarzoo.train.distributed import World


@dataclass
class Runtime:
    device: torch.device
    fast: FastPath           # the training step's
    infer: FastPath          # validation's and the preview's: same precision and layout, never compiled
    scaler: Any              # torch.amp.GradScaler (fp16 autocast) or None
    num_workers: int
    world: World = dataclasses.field(default_factory=World)   # which process this is; rank 0 writes
    sync_bn: bool = False    # train.sync_bn: BatchNorm statistics over all processes' batches

    @classmethod
    def create(cls, device: str | torch.device | None, runtime: dict[str, Any] | None, num_workers: int | None,
               world: World | None = None, sync_bn: bool = False) -> "Runtime":
        """``runtime`` is the recipe's resolved ``runtime:`` section (None: everything automatic);
        ``device`` a ``--device`` choice, or the device ``distributed.start`` gave this process."""
        dev = device if isinstance(device, torch.device) else pick_device(device)
        fast = FastPath.for_device(runtime, dev, training=True)
        infer = FastPath.for_device(runtime, dev, training=False)
        scaler = torch.amp.GradScaler(dev.type) if fast.amp == "fp16" else None
        if num_workers is None:
            num_workers = 0 if dev.type == "cpu" else max(0, min(4, (os.cpu_count() or 1) - 1))
        return cls(dev, fast, infer, scaler, int(num_workers), world or World(), bool(sync_bn))

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def world_size(self) -> int:
        return self.world.world_size

    @property
    def amp(self) -> str:
        """The resolved precision: off | bf16 | fp16 (recorded in checkpoints)."""
        return self.fast.amp

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step runs: ``model`` itself on the device in the fast path's memory
        format (moved in place), or its compiled form. Checkpoints, parameters and buffers are read
        from ``model``, so a wrapper returned here (``torch.compile``, DDP) never changes the
        state-dict keys of a checkpoint. With several processes the model is wrapped in DDP first and
        the wrapper compiled (PyTorch's order: DDP's optimiser splits the graph at its buckets)."""
        if not self.world.distributed:
            return self.fast.prepare(model)
        if self.sync_bn:
            sync_bn.convert(model, self.device)
        self._ddp = distributed.wrap(dataclasses.replace(self.fast, compile=False).prepare(model), self.world,
                                     self.device)
        if not self.fast.compile:
            return self._ddp
        return torch.compile(self._ddp, mode=None if self.fast.compile_mode == "default" else self.fast.compile_mode)

    def compile_now(self, net: torch.nn.Module, model: torch.nn.Module,
                    probe: Callable[[torch.nn.Module], Any]) -> torch.nn.Module:
        out = self.fast.compile_now(net, model, probe)
        if not self.world.distributed:
            return out
        # every process runs the same graph or none does (their collectives must match); the eager
        # fallback is still the DDP wrapper, not the bare model
        if self.world.any(out is model, self.device):
            return self._ddp
        return out

    def autocast(self):
        return self.fast.autocast()

    @property
    def is_main(self) -> bool:
        """The process that writes the run directory (checkpoints, logs, previews) and talks to the user."""
        return self.rank == 0

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch on the device; images in the model's memory format."""
        return {k: (self.fast.input(v) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    def describe(self) -> str:
        text = self.fast.describe()
        if self.world.distributed:
            text += f"; {self.world.describe()}" + (", synchronised BatchNorm" if self.sync_bn else "")
        return text
