"""``sarzoo list``: every registered component with its kind, provider and options."""
from __future__ import annotations

import argparse
import json

from sarzoo.interfaces import KINDS

NAME = "list"
HELP = "list registered components (blocks, attention, upsample, stages) and where they come from"



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("-v", "--verbose", action="store_true", help="also show each component's options")


def _option_text(opt) -> str:
    text = f"{opt.default!r}"
    if opt.choices is not None:
        text += f" ({'|'.join(map(str, opt.choices))})"
    return text


def run(args) -> int:
    from sarzoo.registry import get_registry

    reg = get_registry()
    comps = reg.components(args.kind)
    if args.json:
        items = [{"kind": c.kind, "name": c.name, "qualified_name": c.qualified_name,
                  "distribution": c.provenance.distribution, "version": c.provenance.version,
                  "plugin": c.provenance.plugin, "module": c.provenance.module,
                  "description": c.description,
                  "options": {k: {"default": o.default, "doc": o.doc,
                                  "choices": list(o.choices) if o.choices is not None else None,
                                  "min": o.min, "max": o.max}
                              for k, o in c.options.items()}}
                 for c in comps]
        print(json.dumps(items, indent=2))
        return 0
    rows = [(c.kind, c.name, f"{c.provenance.distribution} {c.provenance.version}", c.description)
            for c in comps]
    if not rows:
        print("no components registered")
    else:
        w = [max(len(r[i]) for r in rows + [("kind", "name", "provider", "")]) for i in range(3)]
        print(f"{'kind'.ljust(w[0])}  {'name'.ljust(w[1])}  {'provider'.ljust(w[2])}  description")
        for c, r in zip(comps, rows):
            print(f"{r[0].ljust(w[0])}  {r[1].ljust(w[1])}  {r[2].ljust(w[2])}  {r[3]}")
            if args.verbose:
                for k, o in c.options.items():
                    print(f"{'':{w[0] + w[1] + w[2] + 6}}  {k} = {_option_text(o)}  {o.doc}")
    for (kind, name), comps in reg.collisions().items():
        if args.kind in (None, kind):
            print(f"note: {kind} '{name}' is provided by {len(comps)} distributions; recipes must "
                  "use " + " or ".join(f"'{c.qualified_name}'" for c in comps))
    return 0
