"""Where and how the model runs, in one place: device, precision, and which process this is.

Everything that depends on it (device choice, autocast dtype, GradScaler, preparing the model,
moving batches, DataLoader workers and pinning, rank and world size) lives here, so the fast path
(``channels_last``, ``torch.compile``) and multi-process training (DDP) change this file and the
data order (``train.data.epoch_batches``), not the training loop: the loop runs whatever
``prepare_model`` returns, takes its shard of every epoch by ``rank``/``world_size``, and writes
checkpoints, logs and previews only where ``is_main``.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch

from sarzoo.device import cpu_has_native_bf16, pick_device
from sarzoo.errors import SarzooError


@dataclass
class Runtime:
    device: torch.device
    amp: str                 # resolved: off | bf16 | fp16
    scaler: Any              # torch.amp.GradScaler or None
    num_workers: int
    rank: int = 0            # this process among world_size; only rank 0 writes (is_main)
    world_size: int = 1

    @classmethod
    def create(cls, device: str | None, amp: str, num_workers: int | None) -> "Runtime":
        dev = pick_device(device)
        amp = (amp or "auto").lower()
        if amp == "auto":
            if dev.type == "cuda":
                amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                # CPU bf16 autocast pays off only with native bf16 units (about 2x faster on the tiny
                # recipe with AMX); elsewhere it is emulated and slower than fp32.
                amp = "bf16" if cpu_has_native_bf16() else "off"
        if amp == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SarzooError("train.amp=bf16: this GPU does not support bfloat16; use fp16 or auto")
        scaler = None
        if amp == "fp16":
            scaler = torch.amp.GradScaler(dev.type)
        if num_workers is None:
            num_workers = 0 if dev.type == "cpu" else max(0, min(4, (os.cpu_count() or 1) - 1))
        return cls(dev, amp, scaler, int(num_workers))

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training step and validation run: today ``model`` moved to the device (in place).

        Checkpoints, parameters and buffers are read from ``model`` itself, so a wrapper returned
        here (``torch.compile``, DDP) never changes the state-dict keys of a checkpoint."""
        return model.to(self.device)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def is_main(self) -> bool:
        """The process that writes the run directory (checkpoints, logs, previews) and talks to the user."""
        return self.rank == 0

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        nb = self.device.type == "cuda"
        return {k: (v.to(self.device, non_blocking=nb) if isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()}

    def describe(self) -> str:
        precision = {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}[self.amp]
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        else:
            n = torch.get_num_threads()
            where += f" ({n} thread{'' if n == 1 else 's'})"
        return f"{where}, {precision}"
