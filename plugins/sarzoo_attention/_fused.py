"""Hand-written forward and backward for CBAM and SE: the same math as the plain modules, fewer full-size tensors.

Why: in res_cbam a CBAM follows every residual block at up to 256×256 with 64+ channels, and
autograd's generic backward of the plain formulation walks and allocates the full activation many
times (``amax``'s backward alone builds an equality mask, casts it, counts it, divides and
multiplies; ``mean``'s backward expands and divides; every branch's gradient is summed with one
more full-size ``add``). On a CPU a fresh full-size tensor is expensive in itself: large blocks
come straight from the kernel and every page faults on first touch, so writing into a new tensor
costs about five times what the same pass costs in place. The functions below therefore

* pool once and run the shared MLP once on the stacked ``[avg; max]`` descriptors (batch 2B);
* keep only ``x`` and small tensors (gates, descriptors, argmax indices) for backward, instead of
  ``x`` and the channel-gated ``x * c`` (one full-size tensor less per CBAM);
* write the forward result into the one tensor they allocate (``x * c``, then ``*= s`` in place)
  and the input gradient into the one the backward allocates (``x * g``, reused);
* turn full-size reductions of products into matrix-vector products (``Σ_c g·x·c`` and
  ``Σ_hw g·x·s`` are ``bmm``s over a ``(B, C, HW)`` view, for NCHW and channels_last alike);
* route the max-pools' gradients through saved argmax indices (an indexed add of B·HW or B·C
  values) instead of full-size masks;
* sum and divide instead of ``mean``: on CPU ``mean`` of bfloat16 takes a slow path (about 10x).

Differences from autograd on the plain modules, all deliberate:

* ties in a max: the whole gradient goes to the first maximal element (``torch.max(dim)``, as
  ``MaxPool2d`` does) where ``amax`` splits it evenly between the tied elements. Both are valid
  subgradients, the sum over the tied elements is the same, and the forward pass is identical.
  Ties have probability zero for real-valued activations but do happen in bfloat16.
* no higher-order gradients and no ``torch.func`` transforms (no ``setup_context``/vmap rule):
  ``create_graph=True`` raises instead of being silently wrong; ``reference()`` supports both.
* under autocast the dtypes mirror the plain modules (MLP and 7×7 conv in the autocast dtype,
  full-size products in the input's dtype), but the dtype is chosen here explicitly rather than by
  ``torch.amp.custom_fwd``, whose device type would have to be fixed in advance: the code is the
  same for CPU and CUDA tensors.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def fused_available() -> bool:
    """Whether the modules should run the code here rather than their plain formulation.

    Not under ``torch.compile``: inductor fuses the plain formulation by itself and recomputes
    ``x * c`` in backward rather than keeping it; that ran 5-20% faster than the traced Function
    (CBAM, bf16, channels_last, torch 2.15 on CPU). Not on torch < 2.4 either, which lacks the
    device-typed autocast queries used here."""
    return _HAS_DEVICE_AMP and not torch.compiler.is_compiling()


def needs_grad(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    """Whether autograd will want a backward: if not, the forward skips what only backward needs."""
    return torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights))


_HAS_DEVICE_AMP = hasattr(torch, "get_autocast_dtype")


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast would run a convolution in on this device now, or None outside autocast (and
    on devices autocast does not know, such as ``meta``, where sarzoo checks shapes)."""
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def _no_autocast(device_type: str):
    """Autocast off: the functions pick every dtype themselves, also when backward runs inside autocast.

    A fixed list rather than ``torch.amp.is_autocast_available``, which dynamo cannot trace (torch
    2.11) and so would break the graph of a compiled Function."""
    if device_type in ("cpu", "cuda"):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _spatial_layout(t: torch.Tensor) -> torch.Tensor:
    """The spatial gate's 2-channel conv in channels_last: oneDNN's NCHW kernels for it are 2-6x slower."""
    return t.contiguous(memory_format=torch.channels_last)


def _first_order_only() -> None:
    """Refuse ``create_graph=True``: the backward is not written to be differentiated again.

    (``once_differentiable`` would not do: it only objects when the incoming gradient itself
    requires grad, and otherwise hands back a gradient that silently counts as a constant.)"""
    if torch.is_grad_enabled():
        raise RuntimeError("sarzoo's fused CBAM/SE backward is first-order only; for create_graph=True "
                           "(double backward, gradient penalties) call the module's reference() instead")


def _add_at(t: torch.Tensor, dim: int, index: torch.Tensor, values: torch.Tensor) -> None:
    """``t.scatter_add_(dim, index, values)`` for an index naming each element at most once (an argmax).

    One kernel on CUDA; on CPU ``scatter_add_`` of bfloat16 takes a scalar path (20x slower), so
    there the elements are read, added to and written back by advanced indexing."""
    if t.device.type != "cpu":
        t.scatter_add_(dim, index, values)
        return
    where = [torch.arange(n, device=t.device).view([-1 if i == d else 1 for i in range(t.dim())])
             for d, n in enumerate(t.shape)]
    where[dim] = index
    where = tuple(where)
    t.index_put_(where, t[where] + values)


def _mean(t: torch.Tensor, dims, keepdim: bool = False) -> torch.Tensor:
    """``t.mean(dims)`` as a sum and a division: CPU's bfloat16 ``mean`` takes a slow path (about 10x
    ``sum``). Not in float16, where the sum of a 256×256 map can pass the largest float16 (65504)."""
    if t.dtype == torch.float16:
        return t.mean(dims, keepdim=keepdim)
    n = 1
    for d in dims:
        n *= t.shape[d]
    return t.sum(dims, keepdim=keepdim) / n


def _compact_index(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Saved argmax indices in int16 where they fit: 2 bytes per pixel instead of 8."""
    return idx.to(torch.int16) if n <= torch.iinfo(torch.int16).max else idx


def _mlp_forward(pooled, w1, b1, w2, b2, dtype):
    """The bottleneck MLP on a (N, C) batch of descriptors, in ``dtype``; returns (hidden, output)."""
    h = F.relu(F.linear(pooled.to(dtype), w1.flatten(1).to(dtype), None if b1 is None else b1.to(dtype)))
    return h, F.linear(h, w2.flatten(1).to(dtype), None if b2 is None else b2.to(dtype))


def _mlp_backward(do, pooled, h, w1, w2, with_bias: bool):
    """Gradients of ``_mlp_forward`` from the output gradient ``do`` (N, C), computed in float32.

    The tensors are (N, C) and (N, C/r) with N = B or 2B: float32 costs nothing here and is at least
    as accurate as autograd's gradient in the autocast dtype."""
    do, h, pooled = do.float(), h.float(), pooled.float()
    dw2 = do.t() @ h
    dh = (do @ w2.flatten(1).float()) * (h > 0)
    dw1 = dh.t() @ pooled
    dpooled = dh @ w1.flatten(1).float()
    db1, db2 = (dh.sum(0), do.sum(0)) if with_bias else (None, None)
    return dpooled, dw1.view_as(w1), db1, dw2.view_as(w2), db2


def cbam_forward(x, w1, w2, wsp, amp: torch.dtype | None, for_backward: bool):
    """CBAM's output, and (``for_backward``) what ``CBAMFunction.backward`` needs.

    Without backward the maxima are taken with ``amax``: tracking their indices costs more than
    the rest of the forward pass on some layouts (``max(dim)`` is not vectorised)."""
    b, ch = x.shape[:2]
    with _no_autocast(x.device.type):
        if for_backward and x.device.type == "cpu":
            # On CPU the max-pool kernel tracks the argmax vectorised over channels (channels_last)
            # or rows (NCHW), where torch.max(dim) does neither (3-8x slower); on CUDA it is the
            # other way round (the pool kernel took 28% of the fused CBAM's time on an H100).
            mx, sp_idx = F.adaptive_max_pool2d(x, 1, return_indices=True)
        elif for_backward:
            mx, sp_idx = x.flatten(2).max(2)
        else:
            mx, sp_idx = x.amax((2, 3)), None
        pooled = torch.cat([_mean(x, (2, 3)), mx.view(b, ch)])        # [avg; max], (2B, C)
        h, o = _mlp_forward(pooled, w1, None, w2, None, amp or w1.dtype)
        c = torch.sigmoid(o[:b] + o[b:])                                    # (B, C)
        y = x * c.view(b, ch, 1, 1)                           # the one full-size allocation
        m, ch_idx = y.max(1, keepdim=True) if for_backward else (y.amax(1, keepdim=True), None)
        desc = _spatial_layout(torch.cat([m, _mean(y, (1,), keepdim=True)], 1))
        dt = amp or wsp.dtype
        s = torch.sigmoid(F.conv2d(desc.to(dt), _spatial_layout(wsp.to(dt)), padding=wsp.shape[-1] // 2))
        out = y.mul_(s) if torch.promote_types(y.dtype, s.dtype) == y.dtype else y * s
    if not for_backward:
        return out, None
    return out, (pooled, h, c, desc, s, sp_idx.view(b, ch), _compact_index(ch_idx, ch))


class CBAMFunction(torch.autograd.Function):
    """``CBAM(x)`` for weights ``w1`` (C/r, C, 1, 1), ``w2`` (C, C/r, 1, 1), ``wsp`` (1, 2, k, k)."""

    @staticmethod
    def forward(ctx, x, w1, w2, wsp, amp: torch.dtype | None):
        out, saved = cbam_forward(x, w1, w2, wsp, amp, for_backward=True)
        ctx.save_for_backward(x, w1, w2, wsp, *saved)
        ctx.amp = amp
        return out

    @staticmethod
    def backward(ctx, g):
        _first_order_only()
        x, w1, w2, wsp, pooled, h, c, desc, s, sp_idx, ch_idx = ctx.saved_tensors
        b, ch, hgt, wid = x.shape
        hw = hgt * wid
        with _no_autocast(x.device.type):
            fdt = g.dtype                                      # dtype of y = x * c and of the output
            xf, cf = x.flatten(2), c.float()
            sv, cv = s.to(fdt).reshape(b, 1, hw), c.to(fdt).view(b, 1, ch)
            # With P = x·g: dL/ds = Σ_c g·y = Σ_c P·c, and the part of dL/dc that comes straight
            # from the output is Σ_hw g·s·x = Σ_hw P·s: two matrix-vector products of P. (bmm with
            # the vector on the left is fast for NCHW and NHWC, fp32 and bf16 alike.)
            buf = x * g
            bf = buf.flatten(2)
            ds = torch.bmm(cv, bf).view(b, 1, hgt, wid).float()
            dc = torch.bmm(sv, bf.transpose(1, 2)).view(b, ch).float()
            sf = s.float()
            dt = ctx.amp or wsp.dtype
            da = _spatial_layout((ds * sf * (1 - sf)).to(dt))
            wt, pad = _spatial_layout(wsp.to(dt)), wsp.shape[-1] // 2
            ddesc = torch.nn.grad.conv2d_input(desc.shape, wt, da, padding=pad)
            dwsp = torch.nn.grad.conv2d_weight(desc.to(dt), wsp.shape, da, padding=pad)
            dm = ddesc[:, 0].reshape(b, hw).float()
            dmu = (ddesc[:, 1:2] / ch).to(fdt)
            # dL/dy = g·s + dμ/C, plus dm at each pixel's max channel; dL/dc = Σ_hw dL/dy · x.
            dc += torch.bmm(dmu.reshape(b, 1, hw), xf.transpose(1, 2)).view(b, ch).float()
            cidx = ch_idx.reshape(b, hw).long()
            x_at_max = xf.gather(1, cidx.unsqueeze(1)).view(b, hw).float()
            dc.scatter_add_(1, cidx, x_at_max * dm)
            dz = dc * cf * (1 - cf)
            dpooled, dw1, _, dw2, _ = _mlp_backward(torch.cat([dz, dz]), pooled, h, w1, w2, with_bias=False)
            dx = None
            if ctx.needs_input_grad[0]:
                # Binary in-place ops only: a ternary addcmul broadcasting over the innermost
                # dimension takes a scalar path (10x slower) on CPU.
                dx = torch.mul(g, s.to(fdt), out=buf).add_(dmu)      # reuses P's memory
                _add_at(dx.flatten(2), 1, cidx.unsqueeze(1), dm.to(fdt).unsqueeze(1))
                dx.mul_(c.to(fdt).view(b, ch, 1, 1)).add_((dpooled[:b] / hw).to(fdt).view(b, ch, 1, 1))
                _add_at(dx.flatten(2), 2, sp_idx.unsqueeze(2), dpooled[b:].to(fdt).unsqueeze(2))
                dx = dx.to(x.dtype)
        return dx, dw1.to(w1.dtype), dw2.to(w2.dtype), dwsp.to(wsp.dtype), None


@torch.compiler.disable
def cbam_fused(x, w1, w2, wsp, amp: torch.dtype | None):
    """``CBAMFunction.apply``, kept out of compiled graphs: the modules never call it under
    ``torch.compile``, and a direct call there runs eagerly, because torch 2.11's dynamo traced its
    backward into wrong input gradients (2.15's did not; see the tests)."""
    return CBAMFunction.apply(x, w1, w2, wsp, amp)


def se_forward(x, w1, b1, w2, b2, amp: torch.dtype | None):
    """SE's output, and the small tensors ``SEFunction.backward`` needs."""
    b, ch = x.shape[:2]
    with _no_autocast(x.device.type):
        pooled = _mean(x, (2, 3))
        h, o = _mlp_forward(pooled, w1, b1, w2, b2, amp or w1.dtype)
        gate = torch.sigmoid(o)
        return x * gate.view(b, ch, 1, 1), (pooled, h, gate)


class SEFunction(torch.autograd.Function):
    """``SqueezeExcite(x)`` for 1×1 conv weights and biases ``w1, b1`` (C/r, C) and ``w2, b2`` (C, C/r)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, amp: torch.dtype | None):
        out, saved = se_forward(x, w1, b1, w2, b2, amp)
        ctx.save_for_backward(x, w1, w2, *saved)
        return out

    @staticmethod
    def backward(ctx, g):
        _first_order_only()
        x, w1, w2, pooled, h, gate = ctx.saved_tensors
        b, ch, hgt, wid = x.shape
        with _no_autocast(x.device.type):
            buf = x * g
            dgate = buf.sum((2, 3)).float()
            gf = gate.float()
            dpooled, dw1, db1, dw2, db2 = _mlp_backward(dgate * gf * (1 - gf), pooled, h, w1, w2, with_bias=True)
            dx = None
            if ctx.needs_input_grad[0]:
                fdt = g.dtype
                dx = torch.mul(g, gate.to(fdt).view(b, ch, 1, 1), out=buf)   # reuses x·g's memory
                dx = dx.add_((dpooled / (hgt * wid)).to(fdt).view(b, ch, 1, 1)).to(x.dtype)
        return dx, dw1.to(w1.dtype), db1.to(w1.dtype), dw2.to(w2.dtype), db2.to(w2.dtype), None


@torch.compiler.disable
def se_fused(x, w1, b1, w2, b2, amp: torch.dtype | None):
    """``SEFunction.apply``, kept out of compiled graphs like ``cbam_fused``."""
    return SEFunction.apply(x, w1, b1, w2, b2, amp)
