"""``Field``: how one recipe key is declared (type, default, bounds, one-line meaning).

Its own module so that the sections' declarations can live in modules of their own
(``schema`` for the model, ``train:`` and ``runtime:``; ``data_keys`` for ``data:``) without
importing each other. Import-light: ``sarzoo --help`` and the docs test read it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REQUIRED = object()


@dataclass
class Field:
    """One recipe key. ``type``: a value type of ``sarzoo.config.values.check`` (int, float, bool,
    str, size2, range, paths, numbers, any), ``section`` (``children``), ``list`` (of ``item``: sections or
    plain values), or ``ref:KIND`` /
    ``step:KIND`` (a component reference; a step also carries out_channels and stride)."""

    type: str
    doc: str
    default: Any = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    children: dict[str, "Field"] = field(default_factory=dict)
    item: "Field | None" = None
    min_items: int = 0
    max_items: int = 1_000
