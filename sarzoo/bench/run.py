"""``sarzoo bench``'s orchestration: the recipe, the machine's peaks, the loader, every mode in its
own process, and (on request) the numerics check, into one report dict.

Why this order: the checks that can refuse (recipe, ``--size``, ``--device``, ``--modes``, the
numbers) all run before anything is measured, so a typo costs nothing; then the cheap,
machine-wide figures (GEMM peaks, FLOPs, loader), then the modes one after another (never two at
once: they would share the cores). Everything the report says about a mode comes from its own
process (``sarzoo.bench.worker``); the ratios and utilisations are computed here, once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sarzoo.errors import SarzooError

#: progress(event, **fields): "mode_start" (index, total, name) and "mode_done" (+ result), "stage"
Progress = Callable[..., None]


def _positive(flag: str, value: int | None, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise SarzooError(f"{flag} must be at least {minimum}, got {value}")


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or None


def device_info(dev) -> dict[str, Any]:
    """What the figures were measured on: the device, its name, threads and instruction set."""
    import torch

    from sarzoo.bench.peaks import cpu_has_native_fp16
    from sarzoo.device import cpu_has_native_bf16

    threads = torch.get_num_threads()
    info: dict[str, Any] = {"type": dev.type, "cpu": _cpu_model(), "threads": threads,
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "cpu_native_bf16": cpu_has_native_bf16(), "cpu_native_fp16": cpu_has_native_fp16()}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info.update(gpu=props.name, gpu_memory_mb=props.total_memory / 2**20, cuda=torch.version.cuda,
                    tf32_convolutions=bool(torch.backends.cudnn.allow_tf32))
        info["describe"] = f"{dev} ({props.name}, CUDA {torch.version.cuda}); host {info['cpu']}"
    else:
        info["describe"] = (f"cpu ({info['cpu'] or 'unknown CPU'}, {threads} thread{'' if threads == 1 else 's'}, "
                            f"{info['cpu_capability']}{', native bf16' if info['cpu_native_bf16'] else ''})")
    return info


def measure_mode(spec: dict[str, Any]) -> dict[str, Any]:
    """One mode measured by ``python -m sarzoo.bench.worker`` in a fresh process; a crash or a kill
    (out of memory) is returned as ``{"error": ...}`` rather than raised."""
    from sarzoo.bench.worker import RESULT_PREFIX

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent.parent)   # where this sarzoo is imported from
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sarzoo.bench.worker"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_s"] = wall
            return result
    last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    why = (f"killed by signal {-proc.returncode} (out of memory?)" if proc.returncode < 0
           else f"exited with status {proc.returncode}")
    return {"error": f"the measuring process {why}: {last[0].strip()}", "process_s": wall}


def _load(recipe: str, overrides: list[str], size: tuple[int, int] | None):
    from sarzoo import config
    from sarzoo.plan import make_plan

    extra = {"input.size": [int(size[0]), int(size[1])]} if size else None
    try:
        loaded = config.load_with_origins(recipe, list(overrides), extra=extra)
        return loaded.recipe, make_plan(loaded.recipe, loaded.raw)
    except SarzooError as exc:
        if size and getattr(exc, "key", None) == "input.size":   # the flag, not the key it stands for
            raise SarzooError(f"--size {size[0]} {size[1]}: {exc.reason}") from None
        raise


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _mode_entry(result: dict[str, Any], runtime: dict[str, Any], flops: dict[str, Any],
                peaks: dict[str, float], dev) -> dict[str, Any]:
    from sarzoo.bench.peaks import peak_for, utilization

    if "error" in result:
        return {"runtime": runtime, **result}
    key, peak = peak_for(result["amp"], peaks, dev)
    ikey, ipeak = peak_for(result["infer_amp"], peaks, dev)
    return {"runtime": runtime, **result,
            "peak_dtype": key, "flop_utilization": utilization(result["train_images_per_s"], flops["train"], peak),
            "infer_peak_dtype": ikey,
            "infer_flop_utilization": utilization(result["infer_images_per_s"], flops["infer"], ipeak)}


def run_bench(recipe: str, *, overrides: list[str] | None = None, batch: int = 4,
              size: tuple[int, int] | None = None, steps: int = 3, repeats: int = 3, warmup: int = 1,
              device: str = "auto", modes: list[str] | None = None, workers: int | None = None,
              loader: bool = True, numerics_steps: int | None = None, threads: int | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """The whole benchmark of ``recipe`` as one JSON-able dict (see docs/performance.md, ``sarzoo bench``).
    ``numerics_steps`` adds the numerics check with that many steps; ``threads`` sets torch's
    intra-op threads everywhere (default: torch's own choice, one per core)."""
    say = progress or (lambda *_a, **_k: None)
    for flag, value in (("--batch", batch), ("--steps", steps), ("--repeats", repeats), ("--warmup", warmup),
                        ("--numerics-steps", numerics_steps), ("--threads", threads)):
        _positive(flag, value)
    _positive("--workers", workers, 0)
    if size is not None:
        for side in size:
            _positive("--size", side)
    r, plan = _load(recipe, overrides or [], size)

    import torch

    from sarzoo.bench.modes import mode_table, select
    from sarzoo.device import pick_device

    dev = pick_device(device)
    table = select(mode_table(r["runtime"], dev), list(modes or []), dev)
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(r, plan, dev, table, say, batch=batch, steps=steps, repeats=repeats, warmup=warmup,
                        workers=workers, loader=loader, numerics_steps=numerics_steps, threads=threads)
    finally:
        torch.set_num_threads(saved_threads)


def _measure(r: dict[str, Any], plan, dev, table: dict[str, dict[str, Any]], say: Progress, *, batch: int,
             steps: int, repeats: int, warmup: int, workers: int | None, loader: bool, numerics_steps: int | None,
             threads: int | None) -> dict[str, Any]:
    """Everything measured, once the inputs are known to be good (``run_bench``'s second half)."""
    import torch

    from sarzoo.bench.loader import loader_throughput
    from sarzoo.bench.peaks import flops_per_image, gemm_peaks

    info = device_info(dev)
    report: dict[str, Any] = {"recipe": r["name"], "batch": batch, "size": list(r["input"]["size"]),
                              "steps": steps, "repeats": repeats, "warmup": warmup, "threads": info["threads"],
                              "device": info["describe"], "device_info": info, "torch": torch.__version__}

    say("stage", what="GEMM peaks and FLOPs")
    peaks = gemm_peaks(dev)
    flops = flops_per_image(plan, r["train"]["loss"])
    report.update(flops_per_image=flops["train"], infer_flops_per_image=flops["infer"], flops_method=flops["method"],
                  gemm_peak_gflops=peaks["gflops"], gemm_median_gflops=peaks["median_gflops"],
                  gemm_method=peaks["method"])
    if loader:
        say("stage", what="the training data loader")
        report["loader"] = loader_throughput(r, str(dev), workers)

    report["modes"] = {}
    for i, (name, runtime) in enumerate(table.items()):
        say("mode_start", index=i + 1, total=len(table), name=name)
        spec = {"recipe": r, "runtime": runtime, "device": str(dev), "batch": batch, "steps": steps,
                "repeats": repeats, "warmup": warmup, "threads": threads}
        entry = _mode_entry(measure_mode(spec), runtime, flops, peaks["gflops"], dev)
        report["modes"][name] = entry
        say("mode_done", index=i + 1, total=len(table), name=name, result=entry)

    report["summary"] = summary(report)
    if numerics_steps:
        from sarzoo.bench.numerics import numerics

        say("stage", what=f"numerics: {numerics_steps} steps in eager-fp32 and in fast")
        report["numerics"] = numerics(r, steps=numerics_steps, device=str(dev))
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """fast against eager-fp32 (training and inference), and the loader against fast training."""
    modes = report.get("modes", {})
    eager, fast = modes.get("eager-fp32", {}), modes.get("fast", {})
    out: dict[str, Any] = {
        "fast_vs_eager_fp32_train": _ratio(fast.get("train_images_per_s"), eager.get("train_images_per_s")),
        "fast_vs_eager_fp32_infer": _ratio(fast.get("infer_images_per_s"), eager.get("infer_images_per_s")),
    }
    for entry in modes.values():
        for k, ref in (("train_images_per_s", "speedup_vs_eager_fp32"),
                       ("infer_images_per_s", "infer_speedup_vs_eager_fp32")):
            entry[ref] = _ratio(entry.get(k), eager.get(k))
    ld = report.get("loader")
    if ld:
        out["loader_vs_fast_train"] = _ratio(ld["images_per_s"], fast.get("train_images_per_s"))
        if "files" in ld:
            out["loader_files_vs_fast_train"] = _ratio(ld["files"]["images_per_s"], fast.get("train_images_per_s"))
    out["failed_modes"] = [name for name, e in modes.items() if "error" in e]
    return out
