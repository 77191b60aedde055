"""``sarzoo bench``: the fast path's variants of a recipe measured side by side, as a table or JSON.

What is measured and how is ``sarzoo.bench``'s business (and docs/performance.md's); this module
reads the arguments, prints one progress line per mode on stderr, the report on stdout, and turns
the outcome into the exit status: 0 when every mode was measured, 1 when a mode's process failed
(its error is in the report), 2 for bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "bench"
NEEDS_TORCH = True
HELP = "measure training/inference speed, peak memory and FLOP utilisation of every fast-path mode"
DESCRIPTION = (
    "Measure a recipe's training step (forward, loss, backward, optimizer step: exactly the trainer's) and "
    "inference, in one run, for each mode: eager-fp32 (the reference), each optimisation alone "
    "(channels_last, amp, compile, checkpoint), fast (what `sarzoo train` runs by default), fast+checkpoint "
    "and fast+compile. Every mode runs in its own process, so its peak memory is its own. Also measured: "
    "the machine's matrix-multiply peaks, the FLOPs per image, and the training data loader's images/s. "
    "Warm-up and compile times are reported apart from the rates, which are medians of --repeats "
    "repetitions. See docs/performance.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe file (or the name of a built-in recipe, e.g. res_cbam)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (repeatable), e.g. --set runtime.compile_mode=max-autotune")
    p.add_argument("--batch", type=int, default=4, metavar="N", help="images per step (default 4)")
    p.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                   help="input height and width, a multiple of the encoder's total stride (default: the "
                        "recipe's input.size)")
    p.add_argument("--steps", type=int, default=3, metavar="N", help="timed steps per repetition (default 3)")
    p.add_argument("--repeats", type=int, default=3, metavar="R",
                   help="repetitions of --steps steps; rates are their median (default 3)")
    p.add_argument("--warmup", type=int, default=1, metavar="N",
                   help="untimed warm-up steps before the timed ones (default 1; compilation comes on top)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to measure (default auto: cuda if available)")
    p.add_argument("--modes", nargs="+", metavar="MODE",
                   help="measure only these modes (default: all of eager-fp32 channels_last amp compile "
                        "checkpoint [cudnn_benchmark] fast fast+checkpoint [fast+compile])")
    p.add_argument("--workers", type=int, metavar="N",
                   help="DataLoader workers for the loader measurement (default: the runtime's choice, and "
                        "2 as well when that differs)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch intra-op threads for every measurement (default: torch's choice, one per core); "
                        "on a machine shared with other jobs, fewer threads than cores measure more steadily")
    p.add_argument("--no-loader", dest="loader", action="store_false", help="skip the loader measurement")
    p.add_argument("--numerics", action="store_true",
                   help="also train eager-fp32 and fast from the same seed and compare losses and inference "
                        "PSNR (adds `numerics` to the report)")
    p.add_argument("--numerics-steps", type=int, default=100, metavar="N",
                   help="training steps of the numerics check (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def run(args) -> int:
    from sarzoo.bench.run import run_bench
    from sarzoo.files import jsonable

    report = run_bench(args.recipe, overrides=args.overrides, batch=args.batch,
                       size=tuple(args.size) if args.size else None, steps=args.steps, repeats=args.repeats,
                       warmup=args.warmup, device=args.device, modes=args.modes, workers=args.workers,
                       loader=args.loader, numerics_steps=args.numerics_steps if args.numerics else None,
                       threads=args.threads,
                       progress=_progress)
    if args.json:
        print(json.dumps(jsonable(report), indent=2))
    else:
        print_report(report, sys.stdout)
    return 1 if report["summary"]["failed_modes"] else 0


# -- what the user reads -----------------------------------------------------------------------------

def _num(v: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def _progress(event: str, **f: Any) -> None:
    if event == "stage":
        line = f"bench: {f['what']} …"
    elif event == "mode_start":
        line = f"bench [{f['index']}/{f['total']}] {f['name']} …"
    else:
        r = f["result"]
        if "error" in r:
            line = f"bench [{f['index']}/{f['total']}] {f['name']}: failed: {r['error']}"
        else:
            line = (f"bench [{f['index']}/{f['total']}] {f['name']}: {_num(r['train_images_per_s'])} train img/s, "
                    f"{_num(r['infer_images_per_s'])} infer img/s, {_num(r['peak_memory_mb'], '{:,.0f}')} MB "
                    f"({r['process_s']:.0f} s)")
    print(line, file=sys.stderr, flush=True)


def _gflops(peaks: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.1f}" for k, v in peaks.items())


def _loader_line(ld: dict[str, Any], s: dict[str, Any]) -> list[str]:
    others = [f"{r['workers']} workers: {r['images_per_s']:,.0f}" for r in ld["runs"][1:]]
    line = (f"loader    {ld['images_per_s']:,.0f} images/s with {ld['workers']} workers"
            + (f" ({'; '.join(others)})" if others else "")
            + f", {ld['patch_size']} px patches, augment {'on' if ld['augment'] else 'off'}")
    if s.get("loader_vs_fast_train"):
        line += f": {s['loader_vs_fast_train']:,.1f}× the fast training rate"
    res = ld["residency"]
    lines = [line, f"          data: {res['scenes']} training scenes ({_residency(res)})"]
    if "files" in ld:
        fr = ld["files"]
        ratio = s.get("loader_files_vs_fast_train")
        lines.append(f"          as .npy files: {fr['images_per_s']:,.0f} images/s ({_residency(fr['residency'])})"
                     + (f": {ratio:,.1f}× the fast training rate" if ratio else ""))
    return lines


def _residency(res: dict[str, Any]) -> str:
    parts = [f"{res[k]} {k.replace('_', '-')}" for k in ("memory_mapped", "streamed", "in_memory", "loaded_whole")
             if res[k]]
    if res["in_memory"]:
        parts.append(f"{res['in_memory_mb']:,.0f} MB in memory")
    return ", ".join(parts) or "no scenes"


def print_report(r: dict[str, Any], out) -> None:
    h, w = r["size"]
    out.write(f"sarzoo bench {r['recipe']}: batch {r['batch']}, {h}×{w}, medians of {r['repeats']} × {r['steps']} "
              f"steps after {r['warmup']} warm-up step{'s' if r['warmup'] != 1 else ''}\n")
    out.write(f"device    {r['device']}, torch {r['torch']}\n")
    out.write(f"peaks     GEMM GFLOP/s: {_gflops(r['gemm_peak_gflops'])} ({r['gemm_method']})\n")
    out.write(f"FLOPs     {r['flops_per_image'] / 1e6:,.1f} M per image training, "
              f"{r['infer_flops_per_image'] / 1e6:,.1f} M inference\n\n")
    head = ("mode", "train img/s", "±", "×", "infer img/s", "×", "peak MB", "util", "infer util", "warm-up s",
            "compile s")
    rows = []
    notes = []
    for name, e in r["modes"].items():
        if "error" in e:
            rows.append((name, "failed", *[""] * (len(head) - 2)))
            notes.append(f"{name}: {e['error']}")
            continue
        rows.append((name, _num(e["train_images_per_s"]), _num(e.get("train_spread"), "{:.0%}"),
                     _num(e.get("speedup_vs_eager_fp32"), "{:.2f}"),
                     _num(e["infer_images_per_s"]), _num(e.get("infer_speedup_vs_eager_fp32"), "{:.2f}"),
                     _num(e["peak_memory_mb"], "{:,.0f}"), _num(e.get("flop_utilization"), "{:.1%}"),
                     _num(e.get("infer_flop_utilization"), "{:.1%}"), _num(e["warmup_s"], "{:.1f}"),
                     _num(e["compile_s"], "{:.1f}")))
        if e.get("compile_fallback"):
            notes.append(f"{name}: torch.compile given up, measured eager: {e['compile_fallback']}")
        if e.get("nonfinite_steps"):
            notes.append(f"{name}: {e['nonfinite_steps']} timed step(s) skipped as non-finite")
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(len(head))]
    for row in [head] + rows:
        out.write("  ".join(c.ljust(wd) if i == 0 else c.rjust(wd) for i, (c, wd) in enumerate(zip(row, widths)))
                  .rstrip() + "\n")
    out.write("\n")
    for name, e in r["modes"].items():
        if "describe" in e:
            out.write(f"  {name:<16} {e['describe']}\n")
    first = next((e for e in r["modes"].values() if "memory_method" in e), None)
    if first:
        out.write(f"\nmemory    {first['memory_method']}\n")
    out.write("±         spread of the repetitions' training rates, (max − min) / median: how noisy the machine was\n")
    out.write("util      model FLOP/s ÷ the GEMM peak of the dtype the mode computes in\n")
    s = r["summary"]
    if r.get("loader"):
        out.write("\n".join(_loader_line(r["loader"], s)) + "\n")
    for note in notes:
        out.write(f"note      {note}\n")
    if s.get("fast_vs_eager_fp32_train"):
        out.write(f"\nfast vs eager-fp32: {s['fast_vs_eager_fp32_train']:.2f}× training"
                  + (f", {s['fast_vs_eager_fp32_infer']:.2f}× inference" if s.get("fast_vs_eager_fp32_infer") else "")
                  + "\n")
    if "numerics" in r:
        n = r["numerics"]
        fl = n["final_loss"]
        psnr = "-" if n["psnr_db"] is None else f"{n['psnr_db']:.1f} dB"
        out.write(f"numerics  {n['steps']} steps of {n['batch']}: final loss (mean of the last "
                  f"{n['final_loss_window']}) "
                  f"eager-fp32 {fl['eager-fp32']:.5f}, fast {fl['fast']:.5f} ({n['loss_rel_diff']:.2%} apart); "
                  f"fast inference vs fp32: PSNR {psnr}\n")
