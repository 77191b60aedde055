"""The conformance checks themselves, one case at a time; see ``sarzoo.testing`` for what each one
asserts. Cases come from ``sarzoo.testing.cases``; whole components and distributions are judged
in ``sarzoo.testing.reports``."""
from __future__ import annotations

import torch
from torch import nn

from sarzoo.errors import describe as _describe_exc
from sarzoo.interfaces import KIND_ARGS, STEP_KINDS, Component, Ref, Step, default_output_shape
from sarzoo.testing.bottleneck import BOTTLENECK_CHECKS, check_bottleneck_case
from sarzoo.testing.cases import Case, StageCase, case_args
from sarzoo.testing.results import (  # noqa: F401  (re-exported: sarzoo.testing's public names)
    CaseResult,
    CheckResult,
    ConformanceError,
    component_label,
    describe,
)

CHECKS: tuple[str, ...] = ("contract", "construct", "forward", "output_shape", "finite", "gradient",
                           "eval_determinism")
STAGE_CHECKS: tuple[str, ...] = ("stage_contract",)


def checks_of(component: Component) -> tuple[str, ...]:
    """The checks a component of this kind gets."""
    return {"stage": STAGE_CHECKS, "bottleneck": BOTTLENECK_CHECKS}.get(component.kind, CHECKS)


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
def check_case(component: Component, case: Case | StageCase, *, seed: int = 0,
               device: str | torch.device = "cpu", atol: float = 1e-6, rtol: float = 1e-5) -> CaseResult:
    """Run every check of ``CHECKS`` on one case (``STAGE_CHECKS`` for a stage component or a
    ``StageCase``). A case the contract itself rejects (``check`` returns a reason, or the size is
    not a multiple of ``input_multiple``) is skipped, not failed."""
    if component.kind == "stage" or isinstance(case, StageCase):
        return check_stage_case(component, case)  # type: ignore[arg-type]
    if component.kind == "bottleneck":
        return check_bottleneck_case(component, case, seed=seed, device=device)
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
        if step.kind not in STEP_KINDS:
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
    res = check_case(component, case, **kwargs)
    if not res.ok:
        raise ConformanceError("\n".join(res.failure_messages()))
    return res
