"""One mode measured in its own process: ``python -m sarzoo.bench.worker`` reads a JSON spec on
stdin and prints one JSON result line (prefixed ``RESULT_PREFIX``) on stdout.

Why a process per mode: on a CPU the only honest peak-memory figure is the process's own peak
resident size, and a process that has already run another mode (or compiled something) keeps
that high-water mark and much of that memory (allocator arenas, compiled code). A fresh process
also gives every mode the same cold start: no mode inherits another's caches or autotuning.

Memory, CPU: the baseline is the resident size right after the imports (plugins included: planning
loads them), before the model exists; after warm-up (and compilation) the kernel's high-water mark
is reset (``/proc/self/clear_refs``, "5"), the timed training steps run, and ``VmHWM`` is read
before inference starts. The figure
reported is that peak minus the baseline: weights, gradients, optimizer state, activations and
whatever the allocator keeps. ``ru_maxrss`` is reported too; it cannot be reset and, in a child
started by ``vfork``, may even start at its parent's size, so it is the fallback only where
``/proc`` is missing. Memory, CUDA: the caching allocator's statistics
(``reset_peak_memory_stats`` after warm-up, ``max_memory_allocated`` after the steps).

Timing: warm-up steps (and the compile probe) are timed apart; then ``repeats`` repetitions of
``steps`` steps, synchronised on CUDA, each step exactly the trainer's (``rt.to_device`` of a
host batch, then ``TrainStep``). Inference: eval mode, ``no_grad``, through the mode's inference
fast path (``fastpath.for_inference`` + ``fastpath.forward``), the same batch.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from typing import Any

RESULT_PREFIX = "SARZOO_BENCH_RESULT "


# -- memory -----------------------------------------------------------------------------------------

def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)   # bytes on macOS, KiB on Linux


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class CpuMemory:
    """Peak resident size of this process during the training phase, less its size after imports."""

    def __init__(self) -> None:
        rss = _status_kb("VmRSS")
        self.proc = rss is not None
        self.baseline_mb = rss / 1024.0 if rss is not None else _maxrss_mb()
        self.reset = False

    def start(self) -> None:
        self.reset = self.proc and _reset_high_water_mark()

    def stop(self) -> dict[str, Any]:
        hwm = _status_kb("VmHWM") if self.reset else None
        peak = hwm / 1024.0 if hwm is not None else _maxrss_mb()
        method = ("CPU: peak resident set size (VmHWM) of this mode's own process during the timed training "
                  "steps (high-water mark reset after warm-up and compilation), minus its resident size "
                  "after imports, before the model was built" if hwm is not None else
                  "CPU: ru_maxrss of this mode's own process since it started (compilation and warm-up "
                  "included: the high-water mark could not be reset), minus its size after imports")
        return {"peak_memory_mb": max(peak - self.baseline_mb, 0.0), "peak_memory_abs_mb": peak,
                "baseline_memory_mb": self.baseline_mb, "ru_maxrss_mb": _maxrss_mb(), "memory_method": method}


class CudaMemory:
    """The caching allocator's peak of allocated memory during the training phase."""

    def __init__(self, torch, device) -> None:
        self.torch, self.device = torch, device
        self.baseline_mb = torch.cuda.memory_allocated(device) / 2**20

    def start(self) -> None:
        self.torch.cuda.synchronize(self.device)
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict[str, Any]:
        c = self.torch.cuda
        c.synchronize(self.device)
        peak = c.max_memory_allocated(self.device) / 2**20
        return {"peak_memory_mb": max(peak - self.baseline_mb, 0.0), "peak_memory_abs_mb": peak,
                "baseline_memory_mb": self.baseline_mb,
                "peak_reserved_mb": c.max_memory_reserved(self.device) / 2**20, "ru_maxrss_mb": _maxrss_mb(),
                "memory_method": "CUDA: torch.cuda.max_memory_allocated during the timed training steps "
                                 "(reset_peak_memory_stats after warm-up and compilation), minus what was "
                                 "allocated before the model was built"}


# -- timing -----------------------------------------------------------------------------------------

def _repeat(fn, steps: int, repeats: int, sync) -> list[float]:
    """Seconds of each of ``repeats`` runs of ``steps`` calls of ``fn``, synchronised around."""
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def _rates(times: list[float], steps: int, batch: int) -> dict[str, Any]:
    """The median repetition's rate, every repetition's, and their spread ((max − min) / median: how
    noisy the machine was)."""
    per_step = statistics.median(times) / steps
    each = [batch * steps / t for t in times]
    return {"images_per_s": batch / per_step, "s_per_step": per_step, "images_per_s_each": each,
            "spread": (max(each) - min(each)) * per_step / batch}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Train then infer one mode as ``spec`` says (see ``sarzoo.bench.run.measure_mode``)."""
    import torch

    from sarzoo import fastpath
    from sarzoo.plan import make_plan
    from sarzoo.train.assembly import assemble_step, compile_step
    from sarzoo.train.runtime import Runtime

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    recipe, runtime = spec["recipe"], spec["runtime"]
    plan = make_plan(recipe)   # loads the plugins: imports, part of the baseline
    memory = CudaMemory(torch, device) if cuda else CpuMemory()   # baseline: after imports, before the model

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    batch, steps, repeats, warmup = (int(spec[k]) for k in ("batch", "steps", "repeats", "warmup"))
    rt = Runtime.create(str(device), runtime, 0)
    parts = assemble_step(plan, rt, int(recipe["train"]["seed"]))
    channels, (h, w) = recipe["input"]["channels"], recipe["input"]["size"]
    x = torch.rand(batch, channels, h, w, generator=torch.Generator().manual_seed(1))
    host = {"x": x, "mask": torch.ones_like(x, dtype=torch.bool)}
    if rt.pin_memory:
        host = {k: v.pin_memory() for k, v in host.items()}

    t0 = time.perf_counter()
    compile_step(parts, rt, x)
    compile_s = time.perf_counter() - t0 if rt.fast.compile or rt.fast.compile_fallback else None
    results: list[Any] = []

    def train_step() -> None:
        results.append(parts.step(rt.to_device(host)))

    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        train_step()
    sync()
    warmup_s = time.perf_counter() - t0

    memory.start()
    results.clear()
    train_times = _repeat(train_step, steps, repeats, sync)
    mem = memory.stop()   # before inference: the peak is the training step's
    losses = [r["loss"] for r in results if r is not None]
    train = _rates(train_times, steps, batch)

    model = parts.model
    infer_fast = fastpath.for_inference(model, runtime, device)

    def infer_step() -> None:
        fastpath.forward(model, host["x"])

    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(max(1, warmup)):
            infer_step()
        sync()
        infer_warmup_s = time.perf_counter() - t0
        infer = _rates(_repeat(infer_step, steps, repeats, sync), steps, batch)

    return {
        "describe": rt.fast.describe(), "infer_describe": infer_fast.describe(),
        "amp": rt.fast.amp, "infer_amp": infer_fast.amp, "channels_last": rt.fast.channels_last,
        "compiled": rt.fast.compile, "checkpoint": rt.fast.checkpoint,
        "train_images_per_s": train["images_per_s"], "train_s_per_step": train["s_per_step"],
        "train_images_per_s_each": train["images_per_s_each"], "train_spread": train["spread"],
        "infer_images_per_s": infer["images_per_s"], "infer_s_per_step": infer["s_per_step"],
        "infer_images_per_s_each": infer["images_per_s_each"], "infer_spread": infer["spread"],
        "warmup_s": warmup_s, "infer_warmup_s": infer_warmup_s,
        "compile_s": compile_s, "compile_seconds": rt.fast.compile_seconds,
        "compile_fallback": rt.fast.compile_fallback,
        "nonfinite_steps": sum(r is None for r in results),
        "last_loss": losses[-1] if losses else None,
        "threads": torch.get_num_threads(),
        **mem,
    }


def main() -> int:
    """Read the spec, measure, print the result line; a failure is a result too (``error``)."""
    spec = json.load(sys.stdin)
    try:
        import torch  # noqa: F401 - imported before anything is measured: part of the baseline

        import sarzoo.fastpath  # noqa: F401
        import sarzoo.train.assembly  # noqa: F401

        result = measure(spec)
        code = 0
    except Exception as exc:  # reported in the bench's table; the other modes still run
        from sarzoo.errors import SarzooError, describe

        result = {"error": str(exc) if isinstance(exc, SarzooError) else describe(exc)}
        code = 1
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
