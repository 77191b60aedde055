"""The measured modes: each one a set of ``runtime:`` overrides laid over the recipe's own section.

Why overrides of the recipe's section, not hand-built settings: ``fast`` must be exactly what
``sarzoo train`` runs by default (the recipe's automatic choices, decided by
``FastPath.for_device``), and every other mode must differ from its reference in the named
optimisation only, so its contribution is visible. The reference is ``eager-fp32``: contiguous
(NCHW) fp32, no compilation, no checkpointing, no cuDNN autotuning. Each optimisation is then
measured alone on top of it, and ``fast`` with the two that it leaves off by default.
"""
from __future__ import annotations

from typing import Any

from sarzoo.errors import SarzooError

#: The reference: everything off.
EAGER = {"amp": "off", "channels_last": False, "compile": False, "checkpoint": False, "cudnn_benchmark": False}

#: Every mode name, in report order, and what it measures (for --help and the docs).
DESCRIPTIONS = {
    "eager-fp32": "contiguous (NCHW) fp32, no compile, no checkpointing: the reference",
    "channels_last": "eager-fp32 + NHWC memory format",
    "amp": "eager-fp32 + autocast in the device's automatic dtype (bf16 on any CPU, even without native "
           "bf16, so its cost is visible; bf16 or fp16 on CUDA)",
    "compile": "eager-fp32 + torch.compile (compiled up front, checked, eager fallback with the reason)",
    "checkpoint": "eager-fp32 + per-stage activation checkpointing",
    "cudnn_benchmark": "eager-fp32 + cuDNN autotuning (CUDA only)",
    "fast": "the recipe's automatic choices: exactly what `sarzoo train` runs by default",
    "fast+checkpoint": "fast + activation checkpointing",
    "fast+compile": "fast + torch.compile (only where fast does not already compile)",
}


def auto_amp(device) -> str:
    """The autocast dtype the ``amp`` mode measures: what ``amp: auto`` picks on a GPU (bf16 where
    supported, else fp16); bf16 on every CPU, native or not."""
    if device.type == "cuda":
        from sarzoo.fastpath import resolve_amp

        return resolve_amp("auto", device)
    return "bf16"


def mode_table(runtime: dict[str, Any] | None, device) -> dict[str, dict[str, Any]]:
    """Mode name → the full ``runtime:`` section it runs with, for ``device`` (a ``torch.device``).

    ``runtime`` is the recipe's resolved section (``None``: all automatic)."""
    from sarzoo.fastpath import FastPath

    base = dict(runtime or {})
    eager = {**base, **EAGER}
    table = {
        "eager-fp32": eager,
        "channels_last": {**eager, "channels_last": True},
        "amp": {**eager, "amp": auto_amp(device)},
        "compile": {**eager, "compile": True},
        "checkpoint": {**eager, "checkpoint": True},
    }
    if device.type == "cuda":
        table["cudnn_benchmark"] = {**eager, "cudnn_benchmark": True}
    table["fast"] = base
    table["fast+checkpoint"] = {**base, "checkpoint": True}
    if not FastPath.for_device(base, device, training=True).compile:
        table["fast+compile"] = {**base, "compile": True}
    return table


def select(table: dict[str, dict[str, Any]], names: list[str] | None, device) -> dict[str, dict[str, Any]]:
    """The modes ``--modes`` asks for, in the table's order (all of them when ``names`` is empty); an
    unknown or, on this device, unmeasurable name is a user error naming the known ones."""
    if not names:
        return dict(table)
    known = ", ".join(table)
    for name in names:
        if name in table:
            continue
        if name in DESCRIPTIONS:
            why = ("fast already compiles there" if name == "fast+compile" else "it is CUDA only")
            raise SarzooError(f"--modes {name}: not measured on {device.type} ({why}); the modes there are: {known}")
        from sarzoo.errors import did_you_mean

        raise SarzooError(f"--modes {name}: unknown mode.{did_you_mean(name, table)} The modes are: {known}")
    wanted = set(names)
    return {name: rt for name, rt in table.items() if name in wanted}
