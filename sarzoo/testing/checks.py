"""The conformance checks themselves; see ``sarzoo.testing`` for what each one asserts."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from sarzoo.errors import SarzooError
from sarzoo.errors import describe as _describe_exc
from sarzoo.interfaces import KIND_ARGS, Component, Ref, StageSpec, Step, default_output_shape

CHECKS: tuple[str, ...] = ("contract", "construct", "forward", "output_shape", "finite", "gradient",
                           "eval_determinism")
STAGE_CHECKS: tuple[str, ...] = ("stage_contract",)


class ConformanceError(AssertionError):
    """A component failed a conformance check; the message names the check and the input."""


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
    elif component.kind == "attention":
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


def _label(component: Component) -> str:
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
        return f"{_label(component)} on stage ({', '.join(parts + opts)})"
    return f"{_label(component)} on input {case.input_shape} with {_arg_text(component, args)}"


def _kind_rule_problem(component: Component, in_shape, args, declared) -> str | None:
    if len(declared) != 3 or any(v < 1 for v in declared):
        return f"output_shape declares {declared} for input {in_shape}: not three positive sizes"
    if component.kind == "attention":
        if declared != in_shape:
            return (f"output_shape declares {declared} for input {in_shape}, but an attention must "
                    "keep its input shape")
        return None
    rule = default_output_shape(component.kind, in_shape, args)
    if declared != rule:
        if component.kind == "block":
            how = (f"a block with out_channels={args['out_channels']}, stride={args['stride']} "
                   f"must give {rule} (out_channels, ceil(H/stride), ceil(W/stride))")
        else:
            how = (f"an upsample with out_channels={args['out_channels']}, scale={args['scale']} "
                   f"must give {rule} (out_channels, H*scale, W*scale)")
        return f"output_shape declares {declared} for input {in_shape}, but {how}"
    return None


# -- the checks --------------------------------------------------------------------------------
def check_case(component: Component, case: Case, *, seed: int = 0, device: str | torch.device = "cpu",
               atol: float = 1e-6, rtol: float = 1e-5) -> CaseResult:
    """Run every check of ``CHECKS`` on one case. A case the contract itself rejects (``check``
    returns a reason, or the size is not a multiple of ``input_multiple``) is skipped, not failed."""
    if component.kind == "stage":
        return check_stage_case(component, case)  # type: ignore[arg-type]
    # The inputs are tiny: on CPU, intra-op threads cost more than they give (up to 30x on a
    # loaded 2-core machine), so one case runs single-threaded and the caller's setting returns.
    threads = torch.get_num_threads()
    if threads > 1 and torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        return _check_case(component, case, seed=seed, device=device, atol=atol, rtol=rtol)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _check_case(component: Component, case: Case, *, seed: int, device: str | torch.device,
                atol: float, rtol: float) -> CaseResult:
    args = case_args(component, case)
    res = CaseResult(component, case, args)
    where = describe(component, case, args)
    problems: dict[str, list[str]] = {c: [] for c in CHECKS}
    ran: list[str] = []

    def finish() -> CaseResult:
        for c in CHECKS:
            if c in ran or problems[c]:
                res.results.append(CheckResult(c, not problems[c],
                                               [f"[{c}] {where}: {m}" for m in problems[c]]))
        return res

    # contract ------------------------------------------------------------------------------
    ran.append("contract")
    try:
        reason = component.check(args) if component.check is not None else None
    except Exception as exc:
        problems["contract"].append(f"its check() raised {_describe_exc(exc)}")
        return finish()
    if reason:
        res.skipped = f"the contract rejects these arguments: {reason}"
        return finish()
    try:
        m = int(component.multiple(args))
    except Exception as exc:
        problems["contract"].append(f"its input_multiple() raised {_describe_exc(exc)}")
        return finish()
    if m < 1:
        problems["contract"].append(f"input_multiple() is {m}; it must be >= 1")
        return finish()
    if case.height % m or case.width % m:
        res.skipped = f"input {case.height}×{case.width} is not a multiple of input_multiple {m}"
        return finish()
    in_shape = (case.channels, case.height, case.width)
    try:
        declared = tuple(component.shape_after(in_shape, args))
    except Exception as exc:
        problems["contract"].append(f"its output_shape() raised {_describe_exc(exc)}")
        return finish()
    problem = _kind_rule_problem(component, in_shape, args, declared)
    if problem:
        problems["contract"].append(problem)
    expected = (case.batch, *declared)
    # A declared shape that already failed ``contract`` is not held against a module that follows
    # the kind's rule instead: the lie is one defect and gets one message.
    also_fine = (case.batch, *default_output_shape(component.kind, in_shape, args)) \
        if problem and component.kind != "attention" else (case.batch, *in_shape) if problem else None
    custom = component.output_shape is not None
    promise = ("its own output_shape declares" if custom else
               f"the {component.kind} contract gives")

    # construct -----------------------------------------------------------------------------
    ran.append("construct")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            module = component.factory(**args)
        except Exception as exc:
            problems["construct"].append(f"the factory raised {_describe_exc(exc)} although the contract "
                                         "accepts these arguments")
            return finish()
        if not isinstance(module, nn.Module):
            problems["construct"].append(f"the factory returned {type(module).__name__}, "
                                         "not a torch.nn.Module")
            return finish()
        module = module.to(device)
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(case.input_shape, generator=g).to(device)

        # forward, output_shape, finite (train mode) -------------------------------------------
        ran.append("forward")
        module.train()
        xg = x.clone().requires_grad_(True)
        try:
            out = module(xg)
        except Exception as exc:
            problems["forward"].append(f"forward in train mode raised {_describe_exc(exc)}")
            return finish()
        if not isinstance(out, torch.Tensor):
            problems["forward"].append(f"forward returned {type(out).__name__}, not a tensor")
            return finish()
        ran += ["output_shape", "finite"]
        if tuple(out.shape) != expected and tuple(out.shape) != also_fine:
            problems["output_shape"].append(f"forward returned {tuple(out.shape)} but {promise} "
                                            f"{expected}")
        if not torch.isfinite(out).all():
            bad = int((~torch.isfinite(out)).sum())
            problems["finite"].append(f"the train-mode output has {bad} non-finite values "
                                      "(nan or inf) for a finite input")

        # gradient --------------------------------------------------------------------------
        ran.append("gradient")
        if not out.requires_grad or out.grad_fn is None:
            problems["gradient"].append("the output does not require grad: forward breaks the "
                                        "autograd graph (detach(), .data, numpy or no_grad inside?)")
        else:
            w = torch.randn(out.shape, generator=g).to(device)
            try:
                (out * w).sum().backward()
            except Exception as exc:
                problems["gradient"].append(f"backward raised {_describe_exc(exc)}")
            else:
                if xg.grad is None:
                    problems["gradient"].append("the input received no gradient")
                elif not torch.isfinite(xg.grad).all():
                    problems["gradient"].append("the gradient w.r.t. the input is not finite")
                elif not xg.grad.any():
                    problems["gradient"].append("the gradient w.r.t. the input is exactly zero: the "
                                                "output does not depend on the input")
                missing = [n for n, p in module.named_parameters()
                           if p.requires_grad and p.grad is None]
                if missing:
                    problems["gradient"].append(
                        f"parameter{'s' if len(missing) > 1 else ''} "
                        + ", ".join(f"'{n}'" for n in missing[:6])
                        + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
                        + " received no gradient")
                nonfinite = [n for n, p in module.named_parameters()
                             if p.grad is not None and not torch.isfinite(p.grad).all()]
                if nonfinite:
                    problems["gradient"].append("non-finite gradient in parameter(s) "
                                                + ", ".join(f"'{n}'" for n in nonfinite[:6]))

        # eval mode -------------------------------------------------------------------------
        ran.append("eval_determinism")
        module.eval()
        try:
            with torch.no_grad():
                y1 = module(x)
                y2 = module(x)
        except Exception as exc:
            problems["eval_determinism"].append(f"forward in eval mode raised {_describe_exc(exc)}")
            return finish()
        if not isinstance(y1, torch.Tensor) or not isinstance(y2, torch.Tensor):
            problems["eval_determinism"].append("forward in eval mode did not return a tensor")
            return finish()
        # Eval-mode shape and finiteness are reported only where they differ from train mode,
        # so one defect gives one message per input.
        if tuple(y1.shape) not in (expected, also_fine, tuple(out.shape)):
            problems["output_shape"].append(f"in eval mode forward returned {tuple(y1.shape)} but "
                                            f"{promise} {expected}")
        if not torch.isfinite(y1).all() and not problems["finite"]:
            problems["finite"].append("the eval-mode output has non-finite values (nan or inf)")
        if y1.shape != y2.shape:
            problems["eval_determinism"].append(
                f"two eval-mode passes on the same input return shapes {tuple(y1.shape)} and "
                f"{tuple(y2.shape)}")
        elif not torch.allclose(y1, y2, rtol=rtol, atol=atol, equal_nan=True):
            diff = float((y1 - y2).abs().nan_to_num(nan=float("inf")).max())
            problems["eval_determinism"].append(
                f"two eval-mode forward passes on the same input differ (max |difference| "
                f"{diff:.3g}): in eval mode the output must not depend on randomness")
    return finish()


def check_stage_case(component: Component, case: StageCase) -> CaseResult:
    """The steps a stage component returns chain channels and resolution as its spec says."""
    spec = case.spec()
    args = {"stage": spec, **component.defaults(), **case.options}
    res = CaseResult(component, case, args)
    where = describe(component, case, args)
    msgs: list[str] = []

    def finish() -> CaseResult:
        res.results.append(CheckResult("stage_contract", not msgs,
                                       [f"[stage_contract] {where}: {m}" for m in msgs]))
        return res

    try:
        reason = component.check(args) if component.check is not None else None
    except Exception as exc:
        msgs.append(f"its check() raised {_describe_exc(exc)}")
        return finish()
    if reason:
        res.skipped = f"the contract rejects this stage: {reason}"
        return finish()
    try:
        steps = component.factory(spec, **{k: v for k, v in args.items() if k != "stage"})
    except Exception as exc:
        msgs.append(f"the factory raised {_describe_exc(exc)} although its check() accepts the stage")
        return finish()
    if not isinstance(steps, (list, tuple)):
        msgs.append(f"the factory returned {type(steps).__name__}, not a list of Steps")
        return finish()
    channels, down, up = spec.in_channels, 1, 1
    names = set()
    for step in steps:
        if not isinstance(step, Step):
            msgs.append(f"the factory returned {type(step).__name__} {step!r}, not a Step")
            return finish()
        if step.name in names:
            msgs.append(f"step name '{step.name}' is used twice")
        names.add(step.name)
        if step.kind not in KIND_ARGS:
            msgs.append(f"step '{step.name}' has kind {step.kind!r}; a stage is made of "
                        "block, attention and upsample steps")
            return finish()
        missing = [a for a in KIND_ARGS[step.kind] if a not in step.args]
        if missing or not isinstance(step.ref, Ref):
            msgs.append(f"step '{step.name}' lacks {', '.join(missing) or 'a Ref'}")
            return finish()
        takes = step.args.get("in_channels", step.args.get("channels"))
        if takes != channels:
            msgs.append(f"step '{step.name}' ({step.kind}) takes {takes} channels but receives "
                        f"{channels}")
            return finish()
        if step.kind == "block":
            channels, down = step.args["out_channels"], down * step.args["stride"]
        elif step.kind == "upsample":
            channels, up = step.args["out_channels"], up * step.args["scale"]
    if not steps:
        if spec.in_channels != spec.out_channels or spec.stride != 1 or spec.scale != 1:
            msgs.append("no steps, but the stage must change channels or resolution")
        return finish()
    if channels != spec.out_channels:
        msgs.append(f"the steps end with {channels} channels, not out_channels={spec.out_channels}")
    if spec.role == "encoder" and (down != spec.stride or up != 1):
        msgs.append(f"the steps reduce the resolution by {down}/{up}, not by stride={spec.stride}")
    if spec.role == "decoder" and (up != spec.scale or down != 1):
        msgs.append(f"the steps enlarge the resolution by {up}/{down}, not by scale={spec.scale}")
    return finish()


def assert_conforms(component: Component, case: Case | StageCase, **kwargs) -> CaseResult:
    """``check_case`` that raises ``ConformanceError`` listing every failed check."""
    res = check_stage_case(component, case) if isinstance(case, StageCase) else \
        check_case(component, case, **kwargs)
    if not res.ok:
        raise ConformanceError("\n".join(res.failure_messages()))
    return res




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
        if isinstance(case, StageCase):
            report.cases.append(check_stage_case(component, case))
        else:
            report.cases.append(check_case(component, case, seed=seed + i, device=device))
    if not report.ran:
        report.problems.append(f"[contract] {_label(component)}: no case could run: the contract "
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
    checks = STAGE_CHECKS if comp.kind == "stage" else CHECKS
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
