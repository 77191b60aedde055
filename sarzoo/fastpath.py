"""The fast path: how a model runs on a device, decided once from the recipe's ``runtime:`` section.

Training, evaluation, reconstruction and ``sarzoo bench`` all run models through a ``FastPath``,
so what the benchmark measures is what the commands do. Each option is ``null`` (automatic) or a
user's choice; the automatic choices follow what ``sarzoo bench`` measured (docs/performance.md):

- ``channels_last``: on. oneDNN (CPU) and cuDNN (tensor cores) run NHWC convolutions fastest; on
  the 2-core CPU it alone trains the tiny recipe several times faster than NCHW.
- ``amp``: bf16 autocast where the hardware computes bf16 natively (CPUs with AMX or AVX512-BF16,
  GPUs that support it), fp16 with a GradScaler on older GPUs, fp32 elsewhere (emulated bf16 is
  slower than fp32).
- ``compile``: on for CUDA training; off on CPU, where the inductor's compile time (a minute for
  the tiny recipe on 2 cores) was not repaid. Compilation happens up front, on a probe batch, so
  its time is reported before training and a model that cannot be compiled (no C++ compiler, an
  unsupported operator in a plugin) falls back to eager with the reason, instead of failing
  mid-run. Inference never compiles: scenes come in many shapes, and each would compile anew.
- ``cudnn_benchmark``: on for CUDA (shapes are fixed within a run).
- ``checkpoint``: off; on, every stage keeps only its input for backward and recomputes its
  activations, trading about a third more compute for a fraction of the memory.
"""
from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from sarzoo.device import cpu_has_native_bf16
from sarzoo.errors import SarzooError, describe

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PRECISION_NAMES = {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}


def resolve_amp(amp: str | None, device: torch.device) -> str:
    """``runtime.amp`` for ``device``: off, bf16 or fp16 (``auto`` decided, impossible choices refused)."""
    amp = (amp or "auto").lower()
    cuda = device.type == "cuda"
    if amp == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "off"
    if amp == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise SarzooError("runtime.amp=bf16: this GPU does not support bfloat16; use fp16 or auto")
    return amp


@dataclass
class FastPath:
    """What was decided for one device; ``prepare`` applies it to a model, ``autocast`` to a forward pass."""

    device: torch.device
    amp: str = "off"                 # off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"
    cudnn_benchmark: bool = False
    checkpoint: bool = False
    compile_seconds: float | None = None     # measured by ``compile_now``
    compile_fallback: str | None = None      # why compile was given up, when it was
    notes: list[str] = field(default_factory=list)

    @classmethod
    def for_device(cls, runtime: dict[str, Any] | None, device: torch.device, *, training: bool) -> "FastPath":
        """The choices of a recipe's ``runtime:`` section (resolved; ``None`` = all automatic) on ``device``.
        ``training=False`` (evaluation, reconstruction) never checkpoints nor compiles: scenes and
        batches come in many shapes, and each would compile anew."""
        rt = dict(runtime or {})
        cuda = device.type == "cuda"

        def pick(key, auto):
            value = rt.get(key)
            return auto if value is None else bool(value)

        compile_auto = cuda
        return cls(device=device, amp=resolve_amp(rt.get("amp"), device),
                   channels_last=pick("channels_last", True),
                   compile=training and pick("compile", compile_auto),
                   compile_mode=rt.get("compile_mode") or "default",
                   cudnn_benchmark=cuda and pick("cudnn_benchmark", True),
                   checkpoint=training and bool(rt.get("checkpoint")))

    # -- applying it -------------------------------------------------------------------------------
    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES.get(self.amp)

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device in the model's memory format (a no-op when it already is)."""
        x = x.to(self.device, non_blocking=self.device.type == "cuda")
        return x.contiguous(memory_format=self.memory_format) if x.dim() == 4 else x

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` (in place) to the device and memory format, turn on checkpointing, and return
        what to run: ``model`` itself, or its compiled form. Parameters, buffers and state-dict keys
        stay ``model``'s, so checkpoints never see a wrapper."""
        model.to(self.device, memory_format=self.memory_format)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        set_stage_checkpointing(model, self.checkpoint)
        if not self.compile:
            return model
        return torch.compile(model, mode=None if self.compile_mode == "default" else self.compile_mode)

    def compile_now(self, net: nn.Module, model: nn.Module, probe: Callable[[nn.Module], torch.Tensor]) -> nn.Module:
        """Compile ``net`` (``prepare``'s result) by running ``probe`` on it once, e.g. a forward and
        backward pass on a batch of the training shape, and time it; then check it against eager
        ``model``. Compiled code that fails (no C++ compiler, an operator a plugin uses that dynamo
        cannot trace) or that computes something else (inductor has produced NaN gradients for
        bf16 models here) falls back to eager ``model`` with the reason in ``compile_fallback``.
        ``probe(module)`` returns the output it computed; the gradients it leaves are compared too.
        Its side effects on the model (BatchNorm statistics, gradients) are undone."""
        if not self.compile or net is model:
            return net
        saved = [b.detach().clone() for b in model.buffers()]

        def run(module: nn.Module) -> list[torch.Tensor]:
            try:
                out = probe(module).detach().float().flatten()
                grads = [p.grad.detach().float().flatten() for p in model.parameters() if p.grad is not None]
                return [out, torch.cat(grads) if grads else out.new_zeros(0)]
            finally:
                with torch.no_grad():
                    for b, s in zip(model.buffers(), saved):
                        b.copy_(s)
                for p in model.parameters():
                    p.grad = None

        t0 = time.perf_counter()
        try:
            got = run(net)
            self.compile_seconds = time.perf_counter() - t0
            problem = _disagreement(run(model), got)
        except Exception as exc:  # noqa: BLE001 - inductor and dynamo fail in many ways; eager still works
            problem = describe(exc)
        if problem is not None:
            self.compile, self.compile_fallback, net = False, problem, model
        return net

    def describe(self) -> str:
        where = str(self.device)
        if self.device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(self.device)})"
        else:
            n = torch.get_num_threads()
            where += f" ({n} thread{'' if n == 1 else 's'}, {torch.backends.cpu.get_cpu_capability()})"
        parts = [PRECISION_NAMES[self.amp], "channels_last" if self.channels_last else "NCHW"]
        if self.compile:
            parts.append("torch.compile" + (f" ({self.compile_seconds:.0f} s to compile)"
                                            if self.compile_seconds is not None else ""))
        elif self.compile_fallback:
            parts.append(f"eager (torch.compile given up: {self.compile_fallback})")
        if self.checkpoint:
            parts.append("activation checkpointing")
        if self.cudnn_benchmark:
            parts.append("cudnn.benchmark")
        return f"{where}, " + ", ".join(parts)


def _disagreement(eager: list[torch.Tensor], compiled: list[torch.Tensor]) -> str | None:
    """Why the compiled probe's output and gradients are not eager's, or None: NaN/Inf where eager is
    finite, or a direction off by more than reduced precision explains (cosine similarity < 0.9: bf16
    autocast alone moves an untrained model's gradients to about 0.95 of fp32's)."""
    for name, a, b in zip(("output", "gradients"), eager, compiled):
        if a.shape != b.shape:
            return f"its {name} have another shape"
        if bool(torch.isfinite(a).all()) and not bool(torch.isfinite(b).all()):
            return f"it gave non-finite {name} where eager mode gives finite ones"
        if a.numel() and float(torch.nn.functional.cosine_similarity(a, b, dim=0, eps=1e-30)) < 0.9:
            return f"its {name} differ from eager mode's"
    return None


# -- activation checkpointing ---------------------------------------------------------------------

def _stages(model: nn.Module) -> list[nn.Module]:
    """The stages of a ``SarAutoencoder`` (``encoder.*`` and ``decoder.*``), or the model itself."""
    found = [stage for part in ("encoder", "decoder") if isinstance(getattr(model, part, None), nn.Module)
             for stage in getattr(model, part).children()]
    return found or [model]


@contextlib.contextmanager
def _frozen_batchnorm_statistics(module: nn.Module):
    """Recomputation must not update BatchNorm running statistics a second time: they are put back
    as they were before it (a few numbers per channel). Switching the update off instead would
    change which tensors BatchNorm saves, and checkpointing checks that recomputation saves the
    same ones."""
    stats = [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
             for b in m.buffers(recurse=False)]
    saved = [b.detach().clone() for b in stats]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(stats, saved):
                b.copy_(s)


def _checkpointed_forward(module: nn.Module, forward: Callable, *args):
    if not (torch.is_grad_enabled() and module.training):
        return forward(*args)
    return torch.utils.checkpoint.checkpoint(
        forward, *args, use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _frozen_batchnorm_statistics(module)))


def set_stage_checkpointing(model: nn.Module, on: bool) -> None:
    """Checkpoint every stage's forward in training (``runtime.checkpoint``), or stop doing so. The
    forward is replaced on the instance, so the module tree and the state dict are unchanged."""
    for stage in _stages(model):
        if "forward" in stage.__dict__:
            del stage.forward
        if on:
            stage.forward = functools.partial(_checkpointed_forward, stage, stage.forward)


# -- inference --------------------------------------------------------------------------------------

def for_inference(model: nn.Module, runtime: dict[str, Any] | None, device: torch.device) -> FastPath:
    """Put ``model`` (eval mode, on ``device``) on the inference fast path of a ``runtime:`` section and
    remember it on the model, so ``forward`` (evaluation, tiled reconstruction, ``sarzoo.load``'s
    users) runs it the same way everywhere."""
    fast = FastPath.for_device(runtime, device, training=False)
    fast.prepare(model)
    model.eval()
    model.fast_path = fast
    return fast


def forward(model: nn.Module, x: torch.Tensor):
    """``model(x)`` on the model's fast path (``for_inference``), or as is for a model without one;
    ``x`` is moved to the model's device."""
    fast = getattr(model, "fast_path", None)
    if not isinstance(fast, FastPath):
        param = next(model.parameters(), None)
        return model(x.to(param.device) if param is not None else x)
    with fast.autocast():
        return model(fast.input(x))
