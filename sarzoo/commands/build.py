"""``sarzoo build``: validate a recipe, build it, run one forward pass and report what it is."""
from __future__ import annotations

import argparse
import json
import sys

NAME = "build"
NEEDS_TORCH = True
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
                   help="write the initial weights and the resolved recipe to FILE: a sarzoo checkpoint without "
                        "training state (sarzoo.load opens it; torch.load(weights_only=True) reads it)")
    p.add_argument("--print-recipe", action="store_true",
                   help="print the fully resolved recipe (YAML, or JSON with --json) and exit")


def _summarise(stage) -> str:
    """``interp + preact×2 + cbam×2`` from a stage's planned layers."""
    counts: dict[str, int] = {}
    for layer in stage.layers:
        counts[layer.component.name] = counts.get(layer.component.name, 0) + 1
    return " + ".join(f"{n}×{c}" if c > 1 else n for n, c in counts.items())


def run(args) -> int:
    from sarzoo import config
    from sarzoo.plan import make_plan

    extra = {"input.size": list(args.input_size)} if args.input_size else None
    loaded = config.load_with_origins(args.recipe, list(args.overrides), extra=extra)
    recipe = loaded.recipe
    if args.print_recipe:
        print(json.dumps(recipe, indent=2) if args.json else config.dump(recipe), end="" if not args.json else "\n")
        return 0
    plan = make_plan(recipe, loaded.raw)

    from torch.utils.flop_counter import FlopCounterMode

    from sarzoo.budget import estimate_memory, memory_budget
    from sarzoo.model import build_model, verify

    model = build_model(plan, verify_shapes=False).eval()  # refuses a model over the memory budget first
    estimate = estimate_memory(plan)
    budget, budget_from = memory_budget()
    counter = FlopCounterMode(display=False)
    real, (x_hat, z) = verify(model, plan, counter)
    flops = int(counter.get_total_flops())

    rows = []
    for part, stages, module in (("encoder", plan.encoder, model.encoder), ("decoder", plan.decoder, model.decoder)):
        for st in stages:
            params = sum(p.numel() for p in getattr(module, st.name).parameters())
            rows.append({"stage": f"{part}.{st.name}", "component": _summarise(st),
                         "output_shape": list(real[f"{part}.{st.name}"]), "params": params})
        if part == "encoder" and plan.bottleneck is not None and plan.bottleneck.component.name != "none":
            rows.append({"stage": "bottleneck", "component": plan.bottleneck.component.name,
                         "output_shape": list(real.get("bottleneck", plan.latent_shape)),
                         "params": sum(p.numel() for p in model.bottleneck.parameters())})
    counts = model.count_parameters()
    report = {
        "name": recipe["name"],
        "description": recipe["description"],
        "input_shape": list(plan.input_shape),
        "latent_shape": list(plan.latent_shape),
        "output_shape": list(x_hat.shape[1:]),
        "params": counts,
        "compression_ratio": plan.compression_ratio,   # input numbers per latent number, not bits
        "latent": model.latent_bits(),                 # numbers and bits per pixel at storage precision
        "bottleneck": recipe.get("bottleneck"),
        "total_stride": plan.total_stride,
        "flops_per_image": flops,
        "memory": {"estimate_bytes": estimate.bytes, "parameters": estimate.parameters,
                   "activations": estimate.activations, "budget_bytes": budget, "budget_from": budget_from},
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
    out.write(f"parameters   {_fmt_int(p['total'])} (encoder {_fmt_int(p['encoder'])}, "
              f"decoder {_fmt_int(p['decoder'])}"
              + (f", bottleneck {_fmt_int(p['bottleneck'])}" if p.get("bottleneck") else "") + ")\n")
    from sarzoo.codec.rates import describe_latent

    latent = "×".join(map(str, r["latent_shape"]))
    bn = r.get("bottleneck") or {"type": "none"}
    out.write(f"latent       {latent}: {describe_latent(r['latent'])} (bottleneck {bn['type']}); "
              f"{r['compression_ratio']:g}× fewer numbers than the input, total stride {r['total_stride']}\n")
    out.write(f"FLOPs/image  {r['flops_per_image'] / 1e9:.2f} GFLOP ({_fmt_int(r['flops_per_image'])})\n")
    from sarzoo.budget import human_bytes

    mem = r["memory"]
    budget = "unlimited" if mem["budget_bytes"] is None else human_bytes(mem["budget_bytes"])
    out.write(f"memory       ~{human_bytes(mem['estimate_bytes'])} to train at batch 1 (16 B/parameter + "
              f"8 B/activation); budget {budget} ({mem['budget_from']})\n")
    if r.get("output"):
        out.write(f"written      {r['output']}\n")
