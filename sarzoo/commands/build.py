"""``sarzoo build``: validate a recipe, build it, run one forward pass and report what it is."""
from __future__ import annotations

import argparse
import json
import math
import sys

NAME = "build"
HELP = "validate and build a recipe; print a per-stage table, parameters, latent shape and FLOPs"
DESCRIPTION = (HELP + ". The recipe is checked against every component's contract before any weight is "
               "allocated; then one forward pass on a dummy input confirms the shapes.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file (or the name of a built-in recipe, e.g. res_cbam)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, value parsed as YAML (repeatable), e.g. --set encoder.stage.depth=3")
    p.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"),
                   help="input height and width (default: the recipe's input.size)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--output", metavar="FILE",
                   help="write the initial weights and the resolved recipe to FILE (torch.load(weights_only=True) reads it)")
    p.add_argument("--print-recipe", action="store_true",
                   help="print the fully resolved recipe (YAML, or JSON with --json) and exit")


def _summarise(stage) -> str:
    """``interp + preact×2 + cbam×2`` from a stage's planned layers."""
    counts: dict[str, int] = {}
    for layer in stage.layers:
        counts[layer.component.name] = counts.get(layer.component.name, 0) + 1
    return " + ".join(f"{n}×{c}" if c > 1 else n for n, c in counts.items())


def _checked_forward(model, plan, counter):
    """One forward pass (under ``counter``, so FLOPs come from the same pass) that compares every layer's real output with its planned shape.

    The plan trusts each component's declared contract; a third-party component whose contract
    lies would otherwise surface as a cryptic conv error several layers later. The first layer
    that disagrees is named with its plugin, distribution and version.
    """
    import torch

    from sarzoo.errors import PluginError, SarzooError

    order, seen = [], {}
    handles = []
    for part, stages, module in (("encoder", plan.encoder, model.encoder), ("decoder", plan.decoder, model.decoder)):
        for st in stages:
            stage_mod = getattr(module, st.name)
            single = st.name in ("stem", "head")
            for layer in st.layers:
                key = f"{part}.{st.name}" + ("" if single else f".{layer.name}")
                mod = stage_mod if single else getattr(stage_mod, layer.name)
                order.append((key, layer))
                handles.append(mod.register_forward_hook(
                    lambda _m, _i, out, key=key: seen.__setitem__(key, tuple(out.shape[1:]))))
            if not single:
                handles.append(stage_mod.register_forward_hook(
                    lambda _m, _i, out, key=f"{part}.{st.name}": seen.__setitem__(key, tuple(out.shape[1:]))))

    def liar(key, layer, got) -> SarzooError:
        p = layer.component.provenance
        return PluginError(
            f"{key} ({layer.component.kind} '{layer.component.name}' from {p.distribution} {p.version}, "
            f"recipe key '{layer.recipe_key}') produced {got} for an input of {tuple(layer.in_shape)}, "
            f"but its declared contract promises {tuple(layer.out_shape)}: the component's contract is "
            f"wrong. `sarzoo check-plugin {p.distribution}` runs sarzoo's conformance checks on it")

    error = out = None
    try:
        with torch.no_grad(), counter:
            out = model(torch.rand(1, *plan.input_shape))
    except Exception as exc:  # a layer fed a shape its neighbour's contract did not promise
        error = exc
    finally:
        for h in handles:
            h.remove()
    for key, layer in order:
        if key not in seen:
            if error is not None:
                raise liar(key, layer, f"an error ({type(error).__name__}: {str(error).splitlines()[0]})") from error
            continue
        if seen[key] != tuple(layer.out_shape):
            raise liar(key, layer, seen[key])
    if error is not None:
        raise error
    return seen, out


def run(args) -> int:
    from sarzoo.builder import make_plan
    from sarzoo.errors import SarzooError
    from sarzoo.recipes import dump, load_raw
    from sarzoo.schema import resolve

    overrides = list(args.overrides)
    raw = load_raw(args.recipe, overrides)
    if args.input_size:
        from sarzoo.recipes import apply_override
        apply_override(raw, "input.size", list(args.input_size))
    recipe = resolve(raw)
    if args.print_recipe:
        print(json.dumps(recipe, indent=2) if args.json else dump(recipe), end="" if not args.json else "\n")
        return 0
    plan = make_plan(recipe, raw)

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from sarzoo.model import SarAutoencoder

    model = SarAutoencoder(plan).eval()
    counter = FlopCounterMode(display=False)
    real, (x_hat, z) = _checked_forward(model, plan, counter)
    flops = int(counter.get_total_flops())

    rows = []
    for part, stages, module in (("encoder", plan.encoder, model.encoder), ("decoder", plan.decoder, model.decoder)):
        for st in stages:
            params = sum(p.numel() for p in getattr(module, st.name).parameters())
            rows.append({"stage": f"{part}.{st.name}", "component": _summarise(st),
                         "output_shape": list(real[f"{part}.{st.name}"]), "params": params})
    counts = model.count_parameters()
    report = {
        "name": recipe["name"],
        "description": recipe["description"],
        "input_shape": list(plan.input_shape),
        "latent_shape": list(plan.latent_shape),
        "output_shape": list(x_hat.shape[1:]),
        "params": counts,
        "compression_ratio": plan.compression_ratio,
        "total_stride": plan.total_stride,
        "flops_per_image": flops,
        "stages": rows,
        "components": model.provenance(),
    }
    if args.output:
        _save(args.output, model, recipe)
        report["output"] = args.output
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0


def _save(path: str, model, recipe: dict) -> None:
    from sarzoo import checkpoint

    checkpoint.write(checkpoint.model_payload(model, recipe), path)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _print_table(r: dict) -> None:
    out = sys.stdout
    out.write(f"{r['name']}: {r['description']}\n\n")
    headers = ("stage", "component", "output shape", "params")
    table = [(s["stage"], s["component"], "×".join(map(str, s["output_shape"])), _fmt_int(s["params"]))
             for s in r["stages"]]
    table.insert(0, ("input", "", "×".join(map(str, r["input_shape"])), ""))
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out.write(line + "\n" + "-" * len(line) + "\n")
    for row in table:
        out.write("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(row, widths))) + "\n")
    p = r["params"]
    out.write("\n")
    out.write(f"parameters   {_fmt_int(p['total'])} (encoder {_fmt_int(p['encoder'])}, decoder {_fmt_int(p['decoder'])})\n")
    latent = "×".join(map(str, r["latent_shape"]))
    out.write(f"latent       {latent} = {math.prod(r['latent_shape']):,} numbers; compression "
              f"{r['compression_ratio']:g}× (total stride {r['total_stride']})\n")
    out.write(f"FLOPs/image  {r['flops_per_image'] / 1e9:.2f} GFLOP ({_fmt_int(r['flops_per_image'])})\n")
    if r.get("output"):
        out.write(f"written      {r['output']}\n")
