"""Where a model runs: the device a user asked for, and what the CPU can do natively.

Core, not training: evaluation, inference and benchmarks pick devices too, and none of them may
import the training loop.
"""
from __future__ import annotations

import os

import torch

from sarzoo.errors import SarzooError


def pick_device(name: str | None) -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``; an unusable choice is a user error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SarzooError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise SarzooError(f"unknown device {name!r}: use auto, cpu or cuda")


def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16 present (torch's own CPU capability probes), and usable: a process whose
    kernels are capped below AVX512 (``ATEN_CPU_CAPABILITY=avx2``, or oneDNN's
    ``ONEDNN_MAX_CPU_ISA=AVX2``) runs as an AVX2-only CPU would, so it gets that CPU's fp32 choice.
    Why honour the caps: they are how an AVX2-only machine is reproduced on a newer one (the
    benchmarks in docs/performance.md), and how a user sidesteps a misbehaving bf16 kernel."""
    if not torch.backends.cpu.get_cpu_capability().upper().startswith("AVX512"):
        return False
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in {"SSE41", "AVX", "AVX2", "AVX2_VNNI",
                                                                 "AVX2_VNNI_2", "AVX512_CORE",
                                                                 "AVX512_CORE_VNNI"}:
        return False
    try:
        import torch.cpu as tc

        return bool(tc._is_amx_tile_supported() or tc._is_avx512_bf16_supported())
    except Exception:  # private probes: absent in some torch builds
        return False
