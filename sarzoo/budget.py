"""The memory budget: what a model would need to train, against what the machine can give.

Computed from the plan before anything is allocated, so a recipe asking for terabytes is refused
with the figures instead of crashing the machine. ``sarzoo.plan.make_plan`` checks activations;
``sarzoo.model.build_model`` checks parameters.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sarzoo.config import keypath
from sarzoo.errors import RecipeError, SarzooError

if TYPE_CHECKING:
    from sarzoo.plan import Plan


BUDGET_ENV = "SARZOO_MEMORY_BUDGET"
#: Fraction of the machine's memory (or of the container's limit, when smaller) a model may need.
BUDGET_FRACTION = 0.5
#: Used where the machine's memory cannot be read (no ``os.sysconf``, e.g. Windows).
FALLBACK_MEMORY = 16 * 1024**3
BYTES_PER_PARAMETER = 16   # fp32 weight + gradient + Adam's two moments
BYTES_PER_ACTIVATION = 8   # fp32 output + its gradient in training (batch 1)

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4}


def human_bytes(n: float) -> str:
    """``12.3 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def parse_bytes(text: str) -> int:
    """``8GB``, ``512 MiB``, ``1.5g``, ``1000000`` → bytes (K/M/G/T are powers of 1024, with or
    without ``B``/``iB``). Raises ``ValueError``."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(text)
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(text)
    return int(value)


def machine_memory() -> int:
    """Physical memory (``SC_PHYS_PAGES × SC_PAGE_SIZE``), or the cgroup v2/v1 limit when smaller;
    ``FALLBACK_MEMORY`` where neither can be read."""
    total = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        pass
    if not total or total <= 0:
        total = FALLBACK_MEMORY
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
        break
    return total


def memory_budget() -> tuple[int | None, str]:
    """The bytes a model may need, and where that figure comes from. ``SARZOO_MEMORY_BUDGET``
    (``8GB``, ``512MiB``, or ``unlimited``) overrides the default: half the machine's memory."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if text:
        if text.lower() in ("unlimited", "none", "off"):
            return None, f"{BUDGET_ENV}={text}"
        try:
            return parse_bytes(text), f"{BUDGET_ENV}={text}"
        except ValueError:
            raise SarzooError(f"environment variable {BUDGET_ENV}={text!r} is not a size: use e.g. 8GB, "
                              f"512MiB, 2000000000 (bytes) or 'unlimited'") from None
    total = machine_memory()
    return int(total * BUDGET_FRACTION), f"{BUDGET_FRACTION:.0%} of this machine's {human_bytes(total)}"


@dataclass
class MemoryEstimate:
    """What a model needs, estimated from the plan before any weight exists.

    The rule: ``16 B × parameters`` (fp32 weights, their gradients and Adam's two moments) plus
    ``8 B × activations``, where activations are the values of the input and of every layer's
    output at the recipe's input size for one image (fp32, kept for the backward pass, plus their
    gradients). Layers' internal intermediates and larger batches are not counted, so this is a
    floor: a model refused by it cannot train, one accepted may still need more at a large batch.
    """

    parameters: int | None     # None: not counted yet (the planner, before any module exists)
    activations: int

    @property
    def bytes(self) -> int:
        return BYTES_PER_PARAMETER * (self.parameters or 0) + BYTES_PER_ACTIVATION * self.activations

    def describe(self) -> str:
        parts = []
        if self.parameters is not None:
            parts.append(f"{self.parameters:,} parameters × {BYTES_PER_PARAMETER} B = "
                         f"{human_bytes(BYTES_PER_PARAMETER * self.parameters)}")
        parts.append(f"{self.activations:,} activation values × {BYTES_PER_ACTIVATION} B = "
                     f"{human_bytes(BYTES_PER_ACTIVATION * self.activations)}")
        return " + ".join(parts)


def estimate_memory(plan: Plan, parameters: int | None = None) -> MemoryEstimate:
    return MemoryEstimate(parameters if parameters is not None else plan.parameters, plan.activations)


def check_memory(plan: Plan, parameters: int | None = None,
                 stage_parameters: dict[str, int] | None = None) -> MemoryEstimate:
    """Refuse a plan whose ``MemoryEstimate`` exceeds ``memory_budget()``, with the figures, the
    largest stage's recipe key and how to raise the budget. ``stage_parameters``: parameters by
    stage name (``encoder.stage0``), to name the right stage when the parameters dominate."""
    est = estimate_memory(plan, parameters)
    budget, origin = memory_budget()
    if budget is None or est.bytes <= budget:
        return est
    stage_parameters = stage_parameters or {}
    parts = [(f"{role}.{st.name}", st) for role, stages in (("encoder", plan.encoder), ("decoder", plan.decoder))
             for st in stages]

    def need(item):
        name, st = item
        return BYTES_PER_PARAMETER * stage_parameters.get(name, 0) + BYTES_PER_ACTIVATION * st.activations

    name, worst = max(parts, key=need)
    shape = "×".join(map(str, plan.input_shape))
    message = (f"this model would need about {human_bytes(est.bytes)} at its input size {shape} "
               f"({est.describe()}), more than the memory budget of {human_bytes(budget)} ({origin}); "
               f"the largest part is {name} ({human_bytes(need((name, worst)))}). Make the model smaller "
               f"(fewer or narrower stages, a smaller input.size), or set {BUDGET_ENV} (e.g. "
               f"{BUDGET_ENV}=64GB, or 'unlimited') to allow more")
    if plan.raw is not None:
        raise plan.raw.error(message, worst.path)
    raise RecipeError(message, key=keypath(worst.path) or None)
