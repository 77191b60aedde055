"""Conformance checks of ``bottleneck`` components (the protocol: ``sarzoo.interfaces.BOTTLENECK_PROTOCOL``).

A bottleneck is not a layer that maps a tensor to a tensor: it returns the quantised latent and its
likelihoods, and it writes bytes. So its checks are its own:

``construct``         the factory builds an ``nn.Module`` with ``compress``, ``decompress`` and ``entropy_coded``
``forward``           ``forward(z)`` in train mode returns ``(z_hat, likelihoods)``
``output_shape``      ``z_hat`` has the shape of ``z`` (train and eval mode)
``likelihoods``       every likelihood is finite and in (0, 1]
``gradient``          the input gets a finite, non-zero gradient through ``z_hat`` and the rate
``eval_determinism``  two eval-mode passes agree exactly (rounding must not depend on randomness)
``coding``            ``decompress(compress(z))`` equals the eval-mode ``z_hat`` exactly, twice over,
                      and with a mask of elements to code: those exactly, 0 elsewhere
"""
from __future__ import annotations

import torch
from torch import nn

from sarzoo.errors import describe as _describe_exc
from sarzoo.interfaces import BOTTLENECK_PROTOCOL, Component
from sarzoo.testing.cases import Case, case_args
from sarzoo.testing.results import CaseResult, CheckResult, describe

BOTTLENECK_CHECKS: tuple[str, ...] = ("construct", "forward", "output_shape", "likelihoods", "gradient",
                                      "eval_determinism", "coding")


def _unpack(out):
    """``(z_hat, [likelihood tensors])`` or a reason it is not that."""
    if not isinstance(out, (tuple, list)) or len(out) != 2 or not isinstance(out[0], torch.Tensor):
        return None, f"forward returned {type(out).__name__}, not (z_hat, likelihoods)"
    liks = out[1]
    if isinstance(liks, torch.Tensor):
        liks = (liks,)
    if not isinstance(liks, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in liks):
        return None, "the likelihoods are not a tuple of tensors"
    return (out[0], list(liks)), None


def check_bottleneck_case(component: Component, case: Case, *, seed: int = 0,
                          device: str | torch.device = "cpu") -> CaseResult:
    args = case_args(component, case)
    res = CaseResult(component, case, args)
    where = describe(component, case, args)
    problems: dict[str, list[str]] = {c: [] for c in BOTTLENECK_CHECKS}
    ran: list[str] = []

    def finish() -> CaseResult:
        for c in BOTTLENECK_CHECKS:
            if c in ran or problems[c]:
                res.results.append(CheckResult(c, not problems[c], [f"[{c}] {where}: {m}" for m in problems[c]]))
        return res

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _run(component, case, args, problems, ran, torch.device(device), seed)
    finally:
        torch.set_num_threads(threads)
    return finish()


def _run(component, case, args, problems, ran, device, seed) -> None:
    ran.append("construct")
    try:
        module = component.factory(**args)
    except Exception as exc:
        problems["construct"].append(f"the factory raised {_describe_exc(exc)}")
        return
    if not isinstance(module, nn.Module):
        problems["construct"].append(f"the factory returned {type(module).__name__}, not a torch.nn.Module")
        return
    missing = [a for a in BOTTLENECK_PROTOCOL if not hasattr(module, a)]
    if missing:
        problems["construct"].append(f"the module lacks {', '.join(missing)} (sarzoo.interfaces.BOTTLENECK_PROTOCOL)")
        return
    module = module.to(device)
    g = torch.Generator().manual_seed(seed + 1)
    scale = torch.rand((), generator=g) * 8 + 0.5   # latents of a trained model are not unit-sized
    z = (torch.randn(case.input_shape, generator=g) * scale).to(device)

    ran.append("forward")
    module.train()
    zg = z.clone().requires_grad_(True)
    try:
        got, why = _unpack(module(zg))
    except Exception as exc:
        problems["forward"].append(f"forward in train mode raised {_describe_exc(exc)}")
        return
    if got is None:
        problems["forward"].append(why)
        return
    z_hat, liks = got
    ran += ["output_shape", "likelihoods", "gradient"]
    if z_hat.shape != z.shape:
        problems["output_shape"].append(f"z_hat has shape {tuple(z_hat.shape)}, z {tuple(z.shape)}")
    _check_likelihoods(liks, problems, "train")
    rate = sum(-torch.log2(t.float()).sum() for t in liks) if liks else torch.zeros((), device=device)
    try:
        ((z_hat * torch.randn(z_hat.shape, generator=g).to(device)).sum() + rate).backward()
    except Exception as exc:
        problems["gradient"].append(f"backward raised {_describe_exc(exc)}")
    else:
        if zg.grad is None or not zg.grad.any():
            problems["gradient"].append("the input received no (or an all-zero) gradient")
        elif not torch.isfinite(zg.grad).all():
            problems["gradient"].append("the gradient w.r.t. the input is not finite")

    ran.append("eval_determinism")
    module.eval()
    try:
        with torch.no_grad():
            a, why_a = _unpack(module(z))
            b, why_b = _unpack(module(z))
    except Exception as exc:
        problems["eval_determinism"].append(f"forward in eval mode raised {_describe_exc(exc)}")
        return
    if a is None or b is None:
        problems["eval_determinism"].append(why_a or why_b)
        return
    if a[0].shape != z.shape:
        problems["output_shape"].append(f"in eval mode z_hat has shape {tuple(a[0].shape)}, z {tuple(z.shape)}")
        return
    _check_likelihoods(a[1], problems, "eval")
    if not torch.equal(a[0], b[0]):
        problems["eval_determinism"].append("two eval-mode passes on the same input give different z_hat")

    ran.append("coding")
    keys = set(module.state_dict())
    try:
        with torch.no_grad():
            data = module.compress(z)
            again = module.compress(z)
            decoded = module.decompress(data, tuple(z.shape))
    except Exception as exc:
        problems["coding"].append(f"compress/decompress raised {_describe_exc(exc)}")
        return
    if set(module.state_dict()) != keys:
        problems["coding"].append("compress/decompress changed the module's state-dict keys (a cached module "
                                  "assigned as an attribute?): checkpoints and model digests would change")
    elif not isinstance(data, bytes):
        problems["coding"].append(f"compress returned {type(data).__name__}, not bytes (one stream for the batch)")
    elif data != again:
        problems["coding"].append("compressing the same latent twice gives different bytes")
    elif not isinstance(decoded, torch.Tensor) or decoded.shape != z.shape:
        problems["coding"].append(f"decompress returned {getattr(decoded, 'shape', type(decoded).__name__)}, "
                                  f"not {tuple(z.shape)}")
    elif not torch.equal(decoded.to(a[0]), a[0]):
        diff = float((decoded.to(a[0]) - a[0]).abs().max())
        problems["coding"].append(f"decompress(compress(z)) differs from the eval-mode z_hat (max |difference| "
                                  f"{diff:.3g}): the decoder would not see what the model was evaluated on")
    else:
        mask = torch.rand((z.shape[0], 1, *z.shape[2:]), generator=g) < 0.5
        try:
            with torch.no_grad():
                zm = z * mask.to(z)
                part = module.decompress(module.compress(zm, mask), tuple(z.shape), mask)
                want = module(zm)[0]
        except Exception as exc:
            problems["coding"].append(f"compress/decompress with a mask raised {_describe_exc(exc)}")
            return
        inside = torch.equal(part.to(want) * mask.to(want), want * mask.to(want))
        if not inside or bool(part[~mask.expand_as(part)].any()):
            problems["coding"].append("with a mask, decompress must give the eval-mode z_hat where the mask is "
                                      "True and 0 elsewhere")


def _check_likelihoods(liks, problems, mode: str) -> None:
    for i, t in enumerate(liks):
        if not torch.isfinite(t).all() or bool((t <= 0).any()) or bool((t > 1).any()):
            problems["likelihoods"].append(f"{mode}-mode likelihood tensor {i} has values outside (0, 1] "
                                           f"(min {float(t.min()):.3g}, max {float(t.max()):.3g})")
