"""Training: the loop and its parts (optimizer and schedule, one step, state, validation, signals),
the run it belongs to, and what it records.

Builds on the core (config, plan, model, checkpoint, data, metrics); the core never imports it.
Import-light (no torch at import): the heavy names load on first attribute access.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "Trainer": "sarzoo.train.trainer",
    "ReconstructionLoss": "sarzoo.train.loss",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarzoo.train' has no attribute {name!r}")
