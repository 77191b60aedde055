"""The fused CBAM and SE (plugins/sarzoo_attention/_fused.py) against their plain formulation.

Each module's ``reference`` is the straightforward version differentiated by autograd; ``forward``
runs the hand-written Function. They must agree on the output and on the gradient of the input and
of every parameter: fp32 (NCHW and channels_last, whose memory format the output keeps), bfloat16
autocast, non-reentrant checkpointing, ``torch.compile``, random small shapes. The one deliberate
difference, a tie in a max, has its own test. Tiny shapes; no timing.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarzoo.registry import get_registry
from sarzoo_attention._fused import cbam_fused
from sarzoo_attention.cbam import CBAM
from sarzoo_attention.se import SqueezeExcite

CL = torch.channels_last


def _module(kind, channels, reduction=4, kernel_size=7, seed=0):
    torch.manual_seed(seed)
    m = CBAM(channels, reduction, kernel_size) if kind == "cbam" else SqueezeExcite(channels, reduction)
    with torch.no_grad():
        for p in m.parameters():  # larger than the default init, so that every branch matters
            p.normal_(0, 0.3)
    return m


def _run(m, fn, x, g, amp=None, wrap=None):
    """Output, input gradient and parameter gradients of ``fn(x)`` for the output gradient ``g``."""
    x = x.detach().clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        y = wrap(fn, x) if wrap else fn(x)
    y.backward(g)
    return y.detach(), x.grad, {n: p.grad for n, p in m.named_parameters()}


def _close(got, want, rtol, atol):
    """Every tensor of ``got`` near ``want``, with atol scaled to the tensor's magnitude."""
    (y1, dx1, dp1), (y0, dx0, dp0) = got, want
    pairs = [("output", y1, y0), ("input grad", dx1, dx0)] + [(n, dp1[n], dp0[n]) for n in dp0]
    for name, a, b in pairs:
        assert a.dtype == b.dtype, name
        scale = float(b.abs().max()) or 1.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol * scale, msg=lambda s, n=name: f"{n}: {s}")


def _inputs(shape, layout=torch.contiguous_format, dtype=torch.float32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=layout)
    g = torch.randn(shape, generator=gen).to(dtype).contiguous(memory_format=layout)
    return x, g


KINDS = ["cbam", "se"]
SHAPES = [(2, 8, 16, 16), (3, 12, 7, 9), (1, 3, 5, 4)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels_last"])
def test_fp32_equals_reference_and_keeps_layout(kind, shape, layout):
    m = _module(kind, shape[1])
    x, g = _inputs(shape, layout)
    got, want = _run(m, m.forward, x, g), _run(m, m.reference, x, g)
    _close(got, want, rtol=1e-4, atol=1e-5)
    assert got[0].is_contiguous(memory_format=layout)
    assert got[1].shape == x.shape


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL], ids=["nchw", "channels_last"])
def test_bf16_autocast_fp32_input(kind, layout):
    # fp32 activations (the first layer after the stem sees them): no ties in the maxima, so the
    # gradients agree up to bfloat16 rounding of the MLP and the spatial conv.
    m = _module(kind, 16)
    x, g = _inputs((2, 16, 12, 12), layout)
    got, want = _run(m, m.forward, x, g, torch.bfloat16), _run(m, m.reference, x, g, torch.bfloat16)
    _close(got, want, rtol=2e-2, atol=2e-2)
    assert got[0].is_contiguous(memory_format=layout)


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast_bf16_channels_last_input(kind):
    # The fast path as training runs it. In bfloat16 a max can be tied, and at a tie the fused
    # backward gives the whole gradient to one element (see the ties test): compare everything in
    # norm, and the input gradient elementwise away from the few tied elements.
    m = _module(kind, 16)
    x, g = _inputs((2, 16, 12, 12), CL, torch.bfloat16)
    got, want = _run(m, m.forward, x, g, torch.bfloat16), _run(m, m.reference, x, g, torch.bfloat16)
    assert got[0].dtype == want[0].dtype == torch.bfloat16 and got[0].is_contiguous(memory_format=CL)
    torch.testing.assert_close(got[0], want[0], rtol=2e-2, atol=2e-2)
    for a, b in [(got[1], want[1])] + [(got[2][n], want[2][n]) for n in want[2]]:
        assert a.dtype == b.dtype
        assert float((a.float() - b.float()).norm()) <= 5e-2 * float(b.float().norm())
    close = ((got[1].float() - want[1].float()).abs() <= 3e-2 * float(want[1].abs().max())).float().mean()
    assert close > 0.99


def _assert_near(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_tie_in_the_spatial_max_sends_its_gradient_to_one_element():
    # At a tie the fused backward gives the whole gradient to the first maximal element
    # (torch.max, MaxPool2d) where amax splits it evenly: the sum over the tie is the same.
    m = _module("cbam", 4)
    x, g = _inputs((1, 4, 6, 6))
    x[0, 2, 0, 0] = x[0, 2, 3, 3] = x[0, 2].max() + 1
    (y, dx, dp), (y0, ref, dp0) = _run(m, m.forward, x, g), _run(m, m.reference, x, g)
    _assert_near(y, y0)
    for n in dp0:
        _assert_near(dp[n], dp0[n])
    tied = torch.zeros_like(x, dtype=torch.bool)
    tied[0, 2, 0, 0] = tied[0, 2, 3, 3] = True
    _assert_near(dx[~tied], ref[~tied])
    _assert_near(dx[tied].sum(), ref[tied].sum())
    assert not torch.allclose(dx[tied], ref[tied])  # the test does exercise a tie


def test_tie_in_the_channel_max_sends_its_gradient_to_one_channel():
    # Zero output weights in the MLP make the channel gate 0.5 for every channel, so channels equal
    # at the input are tied after gating, at every pixel.
    m = _module("cbam", 4)
    with torch.no_grad():
        m.channel.mlp[2].weight.zero_()
    x, g = _inputs((1, 4, 6, 6))
    x[:, 1] = x[:, 0]
    (y, dx, dp), (y0, ref, dp0) = _run(m, m.forward, x, g), _run(m, m.reference, x, g)
    _assert_near(y, y0)
    _assert_near(dx[:, 2:], ref[:, 2:])
    _assert_near(dx[:, :2].sum(1), ref[:, :2].sum(1))
    assert not torch.allclose(dx[:, :2], ref[:, :2])
    _assert_near(dp["channel.mlp.0.weight"], dp0["channel.mlp.0.weight"])
    _assert_near(dp["spatial.conv.weight"], dp0["spatial.conv.weight"])
    w2, w2_ref = dp["channel.mlp.2.weight"], dp0["channel.mlp.2.weight"]  # one row per channel
    _assert_near(w2[2:], w2_ref[2:])
    _assert_near(w2[:2].sum(0), w2_ref[:2].sum(0))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("amp", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_non_reentrant_checkpoint(kind, amp):
    m = _module(kind, 8)
    x, g = _inputs((2, 8, 10, 10), CL)

    def ckpt(fn, t):
        return torch.utils.checkpoint.checkpoint(fn, t, use_reentrant=False)

    got, plain = _run(m, m.forward, x, g, amp, wrap=ckpt), _run(m, m.forward, x, g, amp)
    _close(got, plain, rtol=0, atol=0)  # the recomputed forward is the same computation


@pytest.mark.parametrize("kind", KINDS)
def test_float16_pooling_does_not_overflow(kind):
    # A 64×64 map of values near 20 sums to about 80000, past float16's largest value (65504).
    # (A small output gradient keeps the backward's own sums, in both versions, within range.)
    m = _module(kind, 4).half()
    x = (20 + torch.rand(1, 4, 64, 64)).half()
    g = torch.full_like(x, 1e-2)
    (y, dx, _), (y0, ref, _) = _run(m, m.forward, x, g), _run(m, m.reference, x, g)
    assert torch.isfinite(y).all() and torch.isfinite(dx).all()
    torch.testing.assert_close(y, y0, rtol=1e-2, atol=1e-2 * float(y0.abs().max()))
    # float16 has 64 values between 20 and 21: the spatial max is tied many times over, so compare
    # per-channel sums of the input gradient, which do not depend on who gets a tie's gradient.
    torch.testing.assert_close(dx.float().sum((2, 3)), ref.float().sum((2, 3)), rtol=2e-2, atol=1e-2)


@pytest.mark.parametrize("kind", KINDS)
def test_without_autograd_same_output(kind):
    m = _module(kind, 8)
    x, _ = _inputs((2, 8, 9, 11), CL)
    with torch.no_grad():
        got, want = m(x), m.reference(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert got.is_contiguous(memory_format=CL)


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_only_and_input_only(kind):
    m = _module(kind, 8)
    x, g = _inputs((2, 8, 6, 6))
    m(x).backward(g)                       # x needs no gradient: the parameters still get theirs
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad(set_to_none=True)
    m.reference(x).backward(g)
    for n, p in m.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6)
    m.requires_grad_(False)
    _, dx, _ = _run(m, m.forward, x, g)
    _, ref, _ = _run(m, m.reference, x, g)
    torch.testing.assert_close(dx, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_double_backward_is_refused(kind):
    m = _module(kind, 4)
    x, g = _inputs((1, 4, 5, 5))
    x.requires_grad_()
    with pytest.raises(RuntimeError, match="first-order only"):
        torch.autograd.grad(m(x), x, g, create_graph=True)


def test_torch_func_is_refused_cleanly():
    m = _module("cbam", 4)
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda t: m(t).sum())(torch.randn(1, 4, 5, 5))


def _saved_bytes(m, fn, x):
    """Bytes autograd keeps for backward, parameters excluded, each storage counted once."""
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    seen = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.detach().requires_grad_())
    return sum(seen.values())


def test_cbam_keeps_one_full_size_tensor_for_backward():
    m = _module("cbam", 32)
    x, _ = _inputs((2, 32, 24, 24), CL)
    full = x.numel() * x.element_size()
    assert _saved_bytes(m, m.reference, x) > 2 * full          # x and x * c
    assert _saved_bytes(m, m.forward, x) < 1.15 * full         # x, plus gates, descriptors, argmax


def test_parameter_names_and_counts_unchanged():
    cbam, se = CBAM(64), SqueezeExcite(64)
    assert {k: tuple(v.shape) for k, v in cbam.state_dict().items()} == {
        "channel.mlp.0.weight": (4, 64, 1, 1), "channel.mlp.2.weight": (64, 4, 1, 1),
        "spatial.conv.weight": (1, 2, 7, 7)}
    assert {k: tuple(v.shape) for k, v in se.state_dict().items()} == {
        "fc1.weight": (4, 64, 1, 1), "fc1.bias": (4,), "fc2.weight": (64, 4, 1, 1), "fc2.bias": (64,)}
    assert type(get_registry().get("attention", "cbam").factory(64)) is CBAM


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(kind=st.sampled_from(KINDS), b=st.integers(1, 3), c=st.integers(1, 24), h=st.integers(1, 12),
       w=st.integers(1, 12), reduction=st.integers(1, 16), kernel=st.sampled_from([3, 5, 7]),
       channels_last=st.booleans(), seed=st.integers(0, 2**16))
def test_random_shapes_equal_reference(kind, b, c, h, w, reduction, kernel, channels_last, seed):
    m = _module(kind, c, reduction, kernel, seed)
    layout = CL if channels_last else torch.contiguous_format
    x, g = _inputs((b, c, h, w), layout, seed=seed + 1)
    _close(_run(m, m.forward, x, g), _run(m, m.reference, x, g), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_torch_compile_module(kind):
    # Under compile the modules hand the plain formulation to inductor (faster there, see
    # _fused.fused_available); the compiled module must still run and match.
    torch._dynamo.reset()
    m = _module(kind, 8)
    x, g = _inputs((2, 8, 10, 10), CL)
    got = _run(m, torch.compile(m), x, g)
    _close(got, _run(m, m.forward, x, g), rtol=1e-4, atol=1e-5)
    assert got[0].is_contiguous(memory_format=CL)


@pytest.mark.slow
def test_torch_compile_of_a_direct_call_runs_it_eagerly():
    # The Function is kept out of graphs (torch.compiler.disable): compiling code that calls it
    # directly breaks the graph there and still gives the reference's gradients.
    torch._dynamo.reset()
    m = _module("cbam", 8)
    x, g = _inputs((2, 8, 10, 10), CL)
    weights = (m.channel.mlp[0].weight, m.channel.mlp[2].weight, m.spatial.conv.weight)
    fused = torch.compile(lambda t: cbam_fused(t * 1.0, *weights, None) * 1.0)
    _close(_run(m, fused, x, g), _run(m, m.reference, x, g), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("amp", [None, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
def test_cuda(kind, amp, monkeypatch):
    # cuDNN runs fp32 convolutions in TF32 by default: the reference's 1×1 convs would not be fp32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    m = _module(kind, 16).cuda()
    x, g = (t.cuda() for t in _inputs((2, 16, 12, 12), CL))

    def run(fn):
        x_ = x.detach().clone().requires_grad_()
        m.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=amp or torch.float16, enabled=amp is not None):
            y = fn(x_)
        y.backward(g)
        return y.detach(), x_.grad, {n: p.grad for n, p in m.named_parameters()}

    tol = 1e-4 if amp is None else 3e-2
    _close(run(m.forward), run(m.reference), rtol=tol, atol=tol)


def test_attention_runs_on_the_meta_device():
    """sarzoo checks shapes on the meta device, where autocast has no state to ask (the recipe fuzzer
    found the query raising there)."""
    from sarzoo_attention.cbam import CBAM
    from sarzoo_attention.se import SqueezeExcite

    x = torch.rand(2, 32, 8, 8, device="meta", requires_grad=True)
    for module in (CBAM(32, 4), SqueezeExcite(32, 4)):
        module.to("meta")
        assert module(x).shape == x.shape
        with torch.no_grad():
            assert module(x).shape == x.shape
