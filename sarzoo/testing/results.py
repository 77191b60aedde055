"""What a conformance check reports: one check's result, one case's results, and how a component
and its input are named in messages. Its own module so that the checks of every kind (layers and
stages in ``checks``, bottlenecks in ``bottleneck``) share them without importing each other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sarzoo.interfaces import KIND_ARGS, Component
from sarzoo.testing.cases import Case, StageCase


class ConformanceError(AssertionError):
    """A component failed a conformance check; the message names the check and the input."""


# -- results -----------------------------------------------------------------------------------
@dataclass
class CheckResult:
    check: str
    passed: bool
    messages: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(self.messages)


@dataclass
class CaseResult:
    component: Component
    case: Case | StageCase
    args: dict[str, Any]
    results: list[CheckResult] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def failure_messages(self) -> list[str]:
        return [m for r in self.failures for m in r.messages]


def component_label(component: Component) -> str:
    p = component.provenance
    where = f" ({p.distribution} {p.version})" if p.distribution != "?" else ""
    return f"{component.kind} '{component.name}'{where}"


def _arg_text(component: Component, args: dict[str, Any]) -> str:
    kind_args = [f"{k}={args[k]}" for k in KIND_ARGS.get(component.kind, ()) if k in args]
    defaults = component.defaults()
    opts = [f"{k}={v!r}" for k, v in args.items()
            if k not in KIND_ARGS.get(component.kind, ()) and k in defaults and v != defaults[k]]
    return ", ".join(kind_args + opts)


def describe(component: Component, case: Case | StageCase, args: dict[str, Any]) -> str:
    """``block 'x' (dist 1.0) on input (2, 8, 9, 9) with in_channels=8, out_channels=16, stride=2``"""
    if isinstance(case, StageCase):
        spec = case.spec()
        parts = [f"role={spec.role}", f"in_channels={spec.in_channels}",
                 f"out_channels={spec.out_channels}", f"depth={spec.depth}"]
        parts.append(f"stride={spec.stride}" if spec.role == "encoder" else f"scale={spec.scale}")
        parts.append("with attention" if spec.attention else "no attention")
        if spec.role == "decoder":
            parts.append("with upsample" if spec.upsample else "no upsample")
        opts = [f"{k}={v!r}" for k, v in case.options.items()]
        return f"{component_label(component)} on stage ({', '.join(parts + opts)})"
    return f"{component_label(component)} on input {case.input_shape} with {_arg_text(component, args)}"
