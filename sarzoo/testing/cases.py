"""The inputs of the conformance checks: cases for layer components (a tensor shape, the kind's
arguments, option overrides) and for stage components, drawn so that the contract accepts them.

Why apart from the checks: hypothesis strategies (``sarzoo.testing.strategies``) and third-party
tests build cases without running a check, and the checks run any case, sampled or hand-written.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from sarzoo.interfaces import Component, Ref, StageSpec


# -- cases -------------------------------------------------------------------------------------
@dataclass
class Case:
    """One input for a layer component: a ``(batch, channels, height, width)`` tensor, the kind's
    arguments (``out_channels`` defaults to ``channels``) and option overrides."""

    batch: int = 2
    channels: int = 8
    height: int = 9
    width: int = 9
    out_channels: int | None = None
    stride: int = 1
    scale: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.channels, self.height, self.width)


@dataclass
class StageCase:
    """One ``StageSpec`` for a stage component (its refs are placeholders: stages only arrange)."""

    role: str = "encoder"
    in_channels: int = 8
    out_channels: int = 16
    depth: int = 2
    stride: int = 2
    scale: int = 2
    attention: bool = True
    upsample: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> StageSpec:
        enc = self.role == "encoder"
        return StageSpec(role=self.role, in_channels=self.in_channels, out_channels=self.out_channels,
                         depth=self.depth, stride=self.stride if enc else 1,
                         scale=1 if enc else self.scale, block=Ref("block"),
                         attention=Ref("attention") if self.attention else None,
                         upsample=Ref("upsample") if self.upsample and not enc else None)


def case_args(component: Component, case: Case) -> dict[str, Any]:
    """Exactly what ``sarzoo.model`` would pass the factory: the kind's arguments, then all options."""
    if component.kind == "block":
        base = {"in_channels": case.channels, "out_channels": case.out_channels or case.channels,
                "stride": case.stride}
    elif component.kind in ("attention", "bottleneck"):
        base = {"channels": case.channels}
    elif component.kind == "upsample":
        base = {"in_channels": case.channels, "out_channels": case.out_channels or case.channels,
                "scale": case.scale}
    else:
        raise ValueError(f"{component.kind} components are checked with StageCase/check_stage_case")
    return {**base, **component.defaults(), **case.options}


def _sample_options(component: Component, rng: random.Random) -> dict[str, Any]:
    out = {}
    for k, opt in component.options.items():
        if opt.choices is not None and rng.random() < 0.5:
            out[k] = rng.choice(list(opt.choices))
        elif opt.type is bool and rng.random() < 0.5:
            out[k] = rng.choice([True, False])
    return out


def _contract_filter(component: Component, args: dict[str, Any]) -> tuple[bool, int]:
    """(accepted by check(), input multiple); a contract that raises is left to check_case."""
    try:
        if component.check is not None and component.check(args):
            return False, 1
    except Exception:
        return True, 1
    try:
        return True, max(1, int(component.multiple(args)))
    except Exception:
        return True, 1


def size_range(component: Component, case: Case, min_size: int, max_size: int) -> tuple[int, int]:
    """Input sizes worth testing: at least ``min_size``, a strided block's output at least 2 px
    (BatchNorm in train mode needs more than one value), an upsample's output at most 2·max."""
    lo, hi = min_size, max_size
    if component.kind == "block":
        lo = max(lo, case.stride + 1)
    if component.kind == "upsample":
        hi = max(lo, (2 * max_size) // max(case.scale, 1))
    return lo, hi


def _pick_size(rng: random.Random, m: int, lo: int, hi: int, odd: bool | None) -> int:
    cands = [k * m for k in range(max(1, math.ceil(lo / m)), hi // m + 1)]
    if not cands:
        cands = [m * max(1, math.ceil(lo / m))]
    if odd is not None:
        pref = [c for c in cands if c % 2 == int(odd)]
        cands = pref or cands
    return rng.choice(cands)


def sample_cases(component: Component, n: int = 12, seed: int = 0, *, min_size: int = 5,
                 max_size: int = 33, max_channels: int = 64, max_batch: int = 3) -> list[Case]:
    """``n`` deterministic pseudo-random cases the contract accepts: channels 1..max_channels
    (the first case has 1), strides 1-4 / scales 1-3 in turn, odd and even sizes alternately,
    batch 1..max_batch, options with choices sampled."""
    rng = random.Random(f"{seed}:{component.kind}:{component.name}")
    strides, scales = (1, 2, 1, 3, 2, 4), (2, 1, 3, 2)
    cases: list[Case] = []
    for i in range(n):
        case = None
        for attempt in range(60):
            channels = 1 if i == 0 else rng.choice((rng.randint(1, max_channels), rng.randint(1, 16)))
            out_ch = rng.choice((channels, rng.randint(1, max_channels), rng.randint(1, 16)))
            c = Case(batch=rng.randint(1, max_batch), channels=channels, out_channels=out_ch,
                     stride=strides[(i + attempt) % len(strides)],
                     scale=scales[(i + attempt) % len(scales)],
                     options=_sample_options(component, rng) if attempt < 40 else {})
            ok, m = _contract_filter(component, case_args(component, c))
            if not ok:
                continue
            lo, hi = size_range(component, c, min_size, max_size)
            odd = bool(i % 2) if (i + attempt) % 4 != 3 else None
            h = _pick_size(rng, m, lo, hi, odd)
            w = h if rng.random() < 0.5 else _pick_size(rng, m, lo, hi, None)
            case = replace(c, height=h, width=w)
            break
        if case is not None:
            cases.append(case)
    return cases


def sample_stage_cases(component: Component, n: int = 12, seed: int = 0) -> list[StageCase]:
    rng = random.Random(f"{seed}:{component.kind}:{component.name}")
    out = []
    for i in range(n):
        opts = _sample_options(component, rng)
        out.append(StageCase(role=("encoder", "decoder")[i % 2], in_channels=rng.randint(1, 64),
                             out_channels=rng.randint(1, 64), depth=rng.randint(0, 3),
                             stride=rng.randint(1, 4), scale=rng.randint(1, 4),
                             attention=rng.random() < 0.5, upsample=rng.random() < 0.8,
                             options=opts))
    return out
