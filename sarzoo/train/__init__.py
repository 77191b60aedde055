"""Training: the ``train:`` recipe section, loss, trainer, checkpoints, logging.

Import-light (no torch at import): ``sarzoo.schema`` imports ``sarzoo.train.config``. The heavy
names load on first attribute access.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "Trainer": "sarzoo.train.trainer",
    "ReconstructionLoss": "sarzoo.train.loss",
    "train_defaults": "sarzoo.train.config",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarzoo.train' has no attribute {name!r}")
