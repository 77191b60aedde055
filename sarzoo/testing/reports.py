"""Conformance of a whole component (many cases) and of a whole installed distribution (every
component it provides, and whether its entry-point declarations say what it provides), with the
report text ``sarzoo check-plugin`` prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch

from sarzoo.errors import SarzooError
from sarzoo.interfaces import Component
from sarzoo.testing.cases import Case, StageCase, sample_cases, sample_stage_cases
from sarzoo.testing.checks import CaseResult, check_case, checks_of, component_label


# -- a whole component / distribution ----------------------------------------------------------
@dataclass
class ComponentReport:
    component: Component
    cases: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ran(self) -> list[CaseResult]:
        return [c for c in self.cases if c.skipped is None]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.ran) and all(c.ok for c in self.cases)

    def failed_checks(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.cases:
            for r in c.failures:
                out.setdefault(r.check, []).extend(r.messages)
        return out

    def as_dict(self) -> dict[str, Any]:
        comp = self.component
        return {"kind": comp.kind, "name": comp.name, "qualified_name": comp.qualified_name,
                "ok": self.ok, "cases": len(self.cases), "ran": len(self.ran),
                "skipped": [c.skipped for c in self.cases if c.skipped is not None],
                "problems": list(self.problems),
                "failed_checks": self.failed_checks()}


def check_component(component: Component, cases: Sequence[Case | StageCase] | None = None, *,
                    n_cases: int = 12, seed: int = 0, max_size: int = 33,
                    device: str | torch.device = "cpu") -> ComponentReport:
    """Every check on ``cases`` (default: ``sample_cases(component, n_cases, seed)``)."""
    report = ComponentReport(component)
    if cases is None:
        if component.kind == "stage":
            cases = sample_stage_cases(component, n_cases, seed)
        else:
            cases = sample_cases(component, n_cases, seed, max_size=max_size)
    for i, case in enumerate(cases):
        report.cases.append(check_case(component, case, seed=seed + i, device=device))
    if not report.ran:
        report.problems.append(f"[contract] {component_label(component)}: no case could run: the contract "
                               "rejected every sampled argument combination")
    return report


def components_of(target: Any, registry=None) -> tuple[list[Component], list[str]]:
    """The components a target provides, and why some may be missing.

    ``target``: a distribution name (installed, found through its entry points), a plugin module
    or object with a ``sarzoo_components`` hookimpl (registered privately, nothing installed), a
    ``Component`` or a list of them."""
    from sarzoo.registry import Registry, get_registry, normalize

    if isinstance(target, Component):
        return [target], []
    if isinstance(target, (list, tuple)) and all(isinstance(c, Component) for c in target):
        return list(target), []
    if isinstance(target, str):
        try:
            reg = registry or get_registry()
        except SarzooError as exc:
            return [], [str(exc)]
        records = reg.records(target)
        if not records:
            known = ", ".join(reg.distributions()) or "(none)"
            return [], [f"no installed distribution '{target}' provides sarzoo plugins (is it "
                        f"installed in this environment? `pip install -e .` in its folder); "
                        f"distributions with plugins: {known}"]
        problems = [f"plugin '{r.name}' from {r.distribution} {r.version} {r.status}: {r.error}"
                    for r in records if r.status in ("failed", "disabled")
                    or (r.status == "shadowed" and not r.components)]
        comps = [c for c in reg.components()
                 if normalize(c.provenance.distribution) == normalize(target)]
        return comps, problems
    reg = Registry(entry_points=[], strict=False, disabled=set())
    name = getattr(target, "__name__", type(target).__name__)
    rec = reg.register_plugin(target, name=name, distribution="<local>",
                              version=str(getattr(target, "__version__", "?")))
    if rec.status == "failed":
        return [], [f"plugin '{name}' failed: {rec.error}"]
    return reg.components(), []


@dataclass
class DistributionReport:
    distribution: str
    version: str
    records: list[Any]
    reports: list[ComponentReport]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.reports) and all(r.ok for r in self.reports)

    def as_dict(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "version": self.version, "ok": self.ok,
                "plugins": [r.as_dict() for r in self.records], "problems": list(self.problems),
                "components": [r.as_dict() for r in self.reports]}


def declaration_problems(records: Iterable[Any]) -> list[str]:
    """A distribution that declares names (``sarzoo.components``) must declare exactly what it
    provides, or the names of a failed plugin would be misattributed."""
    out = []
    for rec in records:
        if not rec.declared or rec.status not in ("ok", "shadowed") or not rec.components:
            continue
        declared, provided = set(rec.declared), set(rec.components)
        for k, n in sorted(declared - provided):
            out.append(f"[declaration] plugin '{rec.name}' declares {k}.{n} in the sarzoo.components "
                       "entry points but does not provide it")
        for k, n in sorted(provided - declared):
            out.append(f"[declaration] plugin '{rec.name}' provides {k} '{n}' but does not declare it: "
                       f"add \"{k}.{n}\" = \"{rec.module}\" to [project.entry-points.\"sarzoo.components\"]")
    return out


def check_distribution(distribution: str, *, n_cases: int = 12, seed: int = 0, max_size: int = 33,
                       only: Sequence[str] | None = None, device: str = "cpu",
                       registry=None) -> DistributionReport:
    """Conformance of every component an installed distribution provides."""
    from sarzoo.registry import get_registry

    reg = registry or get_registry()
    comps, problems = components_of(distribution, reg)
    records = reg.records(distribution)
    if only:
        wanted = set(only)
        comps = [c for c in comps if c.name in wanted or f"{c.kind}:{c.name}" in wanted]
        missing = wanted - {c.name for c in comps} - {f"{c.kind}:{c.name}" for c in comps}
        problems += [f"{distribution} provides no component '{m}'" for m in sorted(missing)]
    elif records and not comps and not problems:
        problems.append(f"{distribution} provides no component")
    problems += declaration_problems(records)
    reports = [check_component(c, n_cases=n_cases, seed=seed, max_size=max_size, device=device)
               for c in comps]
    version = records[0].version if records else "?"
    name = records[0].distribution if records else distribution
    return DistributionReport(name, version, records, reports, problems)


def format_report(report: ComponentReport | DistributionReport, *, max_per_check: int = 3) -> str:
    """Human-readable: one line per component, then each failed check with the inputs it failed on."""
    if isinstance(report, DistributionReport):
        lines = [f"{report.distribution} {report.version}"]
        for rec in report.records:
            extra = f": {rec.error}" if rec.error else ""
            lines.append(f"  plugin {rec.name} ({rec.value}): {rec.status}{extra}")
        for r in report.reports:
            lines.append(_component_lines(r, max_per_check, indent="  "))
        for p in report.problems:
            lines.append(f"  FAIL  {p}")
        n_ok = sum(r.ok for r in report.reports)
        lines.append(f"{len(report.reports)} component(s): {n_ok} passed, "
                     f"{len(report.reports) - n_ok} failed"
                     + (f"; {len(report.problems)} other problem(s)" if report.problems else ""))
        return "\n".join(lines)
    return _component_lines(report, max_per_check, indent="")


def _component_lines(r: ComponentReport, max_per_check: int, indent: str) -> str:
    comp = r.component
    checks = checks_of(comp)
    skipped = len(r.cases) - len(r.ran)
    counts = f"{len(r.ran)} case(s)" + (f", {skipped} rejected by the contract" if skipped else "")
    head = f"{indent}{'PASS' if r.ok else 'FAIL'}  {comp.kind} {comp.name}  ({counts})"
    if r.ok:
        return head + ": " + ", ".join(checks)
    lines = [head]
    failed = r.failed_checks()
    for check in checks:
        msgs = failed.get(check)
        if not msgs:
            continue
        n_inputs = sum(1 for c in r.cases if any(f.check == check for f in c.failures))
        lines.append(f"{indent}      {check}: failed on {n_inputs} of {len(r.ran)} input(s)")
        for m in msgs[:max_per_check]:
            lines.append(f"{indent}        {m}")
        if len(msgs) > max_per_check:
            lines.append(f"{indent}        ... and {len(msgs) - max_per_check} more")
    for p in r.problems:
        lines.append(f"{indent}      {p}")
    return "\n".join(lines)
