"""The machine's matrix-multiply peaks and the recipe's FLOPs: the two sides of "how much of the
machine does the model use".

Why measured, not looked up: a vendor's peak is rarely reachable (clocks under load, a shared
machine, a BLAS that tiles differently), and on a CPU it depends on which instructions torch's
kernels use. The peak is the best of a few timed square matrix multiplications (n = 2048 on a
CPU, 8192 on a GPU) in each dtype the hardware computes natively, measured in the same run as the
modes, so the utilisation compares like with like. fp16 is measured on CUDA always and on a CPU
only where it has native fp16 matrix support (AMX-FP16 or AVX512-FP16); emulated fp16 would make
a meaningless denominator. On CUDA, cuDNN convolutions run fp32 as TF32 by default
(``torch.backends.cudnn.allow_tf32``), so fp32 modes are divided by the TF32 peak there.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` at batch 1: matrix
multiplications and convolutions (what the GEMM peak measures), forward only for inference,
forward + loss + backward for training. Recomputation by activation checkpointing is not
counted: utilisation is *model* FLOPs per second (what is useful), as is usual.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

#: dtype name → the key its peak has in ``gemm_peak_gflops``
DTYPE_OF_AMP = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}


def cpu_has_native_fp16() -> bool:
    """AMX-FP16 or AVX512-FP16: the CPU multiplies fp16 matrices in hardware."""
    try:
        import torch.cpu as tc

        if getattr(tc, "_is_amx_fp16_supported", lambda: False)():
            return True
    except Exception:  # private probes: absent in some torch builds
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " avx512_fp16" in line for line in f)
    except OSError:
        return False


def _time_matmul(torch, n: int, dtype, device, repeats: int) -> list[float]:
    """GFLOP/s of ``repeats`` timed ``n × n`` products (after one untimed warm-up)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    cuda = device.type == "cuda"
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)
    rates = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        if cuda:
            torch.cuda.synchronize(device)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return rates


def gemm_peaks(device, n: int | None = None, repeats: int = 5) -> dict[str, Any]:
    """``{"gflops": {dtype: best GFLOP/s}, "median_gflops": {...}, "method": str}`` for ``device``."""
    import torch

    cuda = device.type == "cuda"
    n = n or (8192 if cuda else 2048)
    dtypes = {"fp32": torch.float32}
    if not cuda or torch.cuda.is_bf16_supported():
        dtypes["bf16"] = torch.bfloat16
    if cuda or cpu_has_native_fp16():
        dtypes["fp16"] = torch.float16
    best, median = {}, {}
    for name, dtype in dtypes.items():
        rates = _time_matmul(torch, n, dtype, device, repeats)
        best[name], median[name] = max(rates), statistics.median(rates)
    if cuda:
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            rates = _time_matmul(torch, n, torch.float32, device, repeats)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved
        best["tf32"], median["tf32"] = max(rates), statistics.median(rates)
    return {"gflops": best, "median_gflops": median,
            "method": f"best of {repeats} timed {n}x{n} matmuls per dtype (after one warm-up), in this run"}


def peak_for(amp: str, peaks: dict[str, float], device) -> tuple[str | None, float | None]:
    """Which peak a mode computing in ``amp`` (off | bf16 | fp16) is measured against, and its GFLOP/s."""
    key = DTYPE_OF_AMP.get(amp)
    if key == "fp32" and device.type == "cuda" and "tf32" in peaks:
        import torch

        if torch.backends.cudnn.allow_tf32:
            key = "tf32"
    return key, peaks.get(key) if key else None


def utilization(images_per_s: float | None, flops_per_image: int, peak_gflops: float | None) -> float | None:
    """Achieved model FLOP/s as a fraction of the peak (None when either side is unknown)."""
    if not images_per_s or not peak_gflops or not flops_per_image:
        return None
    return images_per_s * flops_per_image / (peak_gflops * 1e9)


def _count(torch, model, loss_fn, x, training: bool) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.train(training)
    with counter:
        if training:
            x_hat, _ = model(x)
            loss, _ = loss_fn(x_hat, x, None)   # mask all valid: the loss's unmasked path
            loss.backward()
        else:
            with torch.no_grad():
                model(x)
    return int(counter.get_total_flops())


def flops_per_image(plan, loss_cfg: dict[str, Any]) -> dict[str, Any]:
    """Training (forward + loss + backward) and inference (forward) FLOPs of one image of the plan's
    input shape: on the meta device (no memory, no compute) where every operator has a meta
    kernel, else on real CPU tensors at batch 1."""
    import torch

    from sarzoo.model import build_model
    from sarzoo.train.loss import ReconstructionLoss

    loss_fn = ReconstructionLoss.from_config(loss_cfg)
    model = build_model(plan, verify_shapes=False)
    shape = (1, *plan.input_shape)
    try:
        model.to("meta")
        x = torch.empty(shape, device="meta")
        train, infer = _count(torch, model, loss_fn, x, True), _count(torch, model, loss_fn, x, False)
        where = "meta device"
    except Exception:  # an operator of some plugin without a meta kernel: count on real tensors
        model = build_model(plan, verify_shapes=False)
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        train, infer = _count(torch, model, loss_fn, x, True), _count(torch, model, loss_fn, x, False)
        where = "CPU tensors"
    return {"train": train, "infer": infer,
            "method": f"torch.utils.flop_counter.FlopCounterMode at batch 1 on the {where}: matmuls and "
                      f"convolutions; training = forward + loss + backward, inference = forward"}
