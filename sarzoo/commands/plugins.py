"""``sarzoo plugins``: every plugin found, where it comes from, what it provides and its status."""
from __future__ import annotations

import argparse
import json

NAME = "plugins"
HELP = "list every plugin: distribution, version, components, status (ok, failed with reason, shadowed)"
DESCRIPTION = (HELP + ". A plugin that fails to import or register is listed with its reason and "
               "does not stop the others; two distributions providing the same name are both "
               "listed as shadowed, and recipes must then use the qualified name DIST:NAME. "
               "SARZOO_DISABLE_PLUGINS=a,b (plugin or distribution names, DIST:PLUGIN, or 'all' "
               "third-party) turns plugins off; SARZOO_STRICT_PLUGINS=1 makes any failure an error.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per plugin")


def _components_text(pairs) -> str:
    by_kind: dict[str, list[str]] = {}
    for kind, name in pairs:
        by_kind.setdefault(kind, []).append(name)
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in by_kind.items())


def run(args) -> int:
    import logging

    from sarzoo.errors import PluginError
    from sarzoo.registry import Registry, _env_flag

    logging.getLogger("sarzoo.plugins").setLevel(logging.ERROR)  # the table says it all
    # Never strict here: this is the command to diagnose failures with, so it lists them all and
    # only then, under SARZOO_STRICT_PLUGINS, turns them into an error (exit status 2).
    reg = Registry(strict=False)
    records = reg.records()
    _print(args, records)
    failed = reg.failed_plugins()
    if failed and _env_flag("SARZOO_STRICT_PLUGINS"):
        raise PluginError(f"{len(failed)} plugin(s) failed and SARZOO_STRICT_PLUGINS is set: "
                          + ", ".join(f"'{r.name}' from {r.distribution} {r.version}" for r in failed))
    return 0


def _print(args, records) -> None:
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return
    if not records:
        print("no plugins found in the entry-point group 'sarzoo.plugins'")
        return
    rows = []
    for r in records:
        if r.components:
            comps = _components_text(r.components)
        elif r.declared:
            comps = f"(declared: {_components_text(r.declared)})"
        else:
            comps = "-"
        rows.append((r.distribution, r.version, r.name, r.status, comps))
    head = ("distribution", "version", "plugin", "status", "components")
    w = [max(len(x[i]) for x in rows + [head]) for i in range(4)]
    print("  ".join(h.ljust(w[i]) if i < 4 else h for i, h in enumerate(head)).rstrip())
    for r, row in zip(records, rows):
        print("  ".join(c.ljust(w[i]) if i < 4 else c for i, c in enumerate(row)).rstrip())
        if r.error:
            print(f"    {r.status}: {r.error}")
        for c in r.collisions:
            print(f"    collision: {c}")
    counts: dict[str, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    dists = len({r.distribution for r in records})
    print(f"\n{len(records)} plugin(s) from {dists} distribution(s): "
          + ", ".join(f"{n} {s}" for s, n in counts.items()))
