"""What a run records: a JSON-lines log, TensorBoard events and PNG previews.

``log.jsonl`` has one JSON object per line with an ``event`` field: ``start``, ``resume``,
``step`` (every ``train.log_every_steps``), ``epoch``, ``nonfinite``, ``checkpoint``, ``stop``.
After a resume, records of steps beyond the checkpoint from the interrupted process are
superseded by the ones that follow the ``resume`` record (same ``step`` numbers).

TensorBoard (``tb/``): all scalars use the global optimizer step as x-axis (epoch-level ones are
written at the step that ends the epoch; ``epoch`` itself is a scalar too), so a resumed run
purges the interrupted run's events beyond its checkpoint (``purge_step`` = checkpoint step + 1;
the trainer flushes the writer before every checkpoint, so nothing up to that step is missing).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from sarzoo.files import jsonable


class RunLog:
    def __init__(self, run_dir: Path, purge_step: int | None = None, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._jsonl = None
        self.writer = None
        if not enabled:
            return
        self._jsonl = open(self.run_dir / "log.jsonl", "a", encoding="utf-8")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge_step, flush_secs=30)

    # -- JSON lines ------------------------------------------------------------------------
    def event(self, event: str, **fields: Any) -> None:
        if self._jsonl is None:
            return
        rec = {"event": event, "time": round(time.time(), 3), **jsonable(fields)}
        self._jsonl.write(json.dumps(rec) + "\n")
        self._jsonl.flush()

    # -- TensorBoard -----------------------------------------------------------------------
    def scalars(self, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            v = jsonable(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(k, v, step)

    def image(self, tag: str, img: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, img, step, dataformats="CHW")

    def histograms(self, model: torch.nn.Module, step: int) -> None:
        if self.writer is None:
            return
        for name, p in model.named_parameters():
            self.writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), step)
            if p.grad is not None and torch.isfinite(p.grad).all():
                self.writer.add_histogram(f"grads/{name}", p.grad.detach().float().cpu(), step)

    def hparams(self, hparams: dict[str, Any], metrics: list[str]) -> None:
        """The HPARAMS tab: this run's settings, linked to scalar tags that are logged each epoch."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams as _hp

        clean = {}
        for k, v in hparams.items():
            if v is None:
                v = "null"
            if isinstance(v, (list, tuple, dict)):
                v = json.dumps(v)
            clean[k] = v
        exp, ssi, sei = _hp(clean, {m: float("nan") for m in metrics})
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()
        if self._jsonl is not None:
            self._jsonl.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
