"""``sarzoo check-plugin DIST``: run sarzoo's conformance checks on every component of a plugin."""
from __future__ import annotations

import argparse
import json

NAME = "check-plugin"
NEEDS_TORCH = True
HELP = "run the conformance checks on every component of an installed distribution"
DESCRIPTION = (HELP + " (shape contract, construction, forward, output shape, finite outputs, "
               "gradients to the input and every parameter, eval-mode determinism) on sampled "
               "inputs: odd and even sizes, channels 1-64, strides 1-4, scales 1-3, batch 1-3. "
               "Prints a report per component; exit status 1 when a check fails, 2 when the "
               "distribution is not installed.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("distribution", help="distribution name, e.g. sarzoo-eca-convnext (or sarzoo)")
    p.add_argument("--component", action="append", default=[], metavar="NAME",
                   help="only this component (NAME or KIND:NAME; repeatable)")
    p.add_argument("--cases", type=int, default=12, metavar="N",
                   help="sampled inputs per component (default 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled inputs (default 0)")
    p.add_argument("--max-size", type=int, default=33, metavar="PX",
                   help="largest input height/width (default 33)")
    p.add_argument("--device", default="cpu", help="torch device to run on (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")


def run(args) -> int:
    from sarzoo.errors import PluginError, SarzooError
    from sarzoo.registry import get_registry

    if args.cases < 1:
        raise SarzooError(f"--cases must be >= 1, got {args.cases}")
    if args.max_size < 5:
        raise SarzooError(f"--max-size must be >= 5, got {args.max_size}")
    reg = get_registry()
    if not reg.records(args.distribution):
        known = ", ".join(reg.distributions()) or "(none)"
        raise PluginError(f"no installed distribution '{args.distribution}' provides sarzoo plugins "
                          f"(entry-point group 'sarzoo.plugins'). Distributions with plugins: "
                          f"{known}. Install it first, e.g. `pip install -e PATH`.")
    from sarzoo.testing.reports import check_distribution, format_report

    report = check_distribution(args.distribution, n_cases=args.cases, seed=args.seed,
                                max_size=args.max_size, only=args.component or None,
                                device=args.device, registry=reg)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
