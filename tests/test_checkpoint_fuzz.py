"""Hostile checkpoints never escape as anything but a SarzooError naming the file (issue 9 point 1).

One real training checkpoint (``train_tiny32``, 2 steps, trained once for the module) is mutated:
any key deleted, retyped (str, int, float, None, list, dict), tensors reshaped, resized or of
another dtype, extra keys (state-dict weights among them), list items dropped or added (the RNG
states). Each variant is written with ``torch.save`` and opened the three ways a user opens a
checkpoint: ``sarzoo.load``, ``checkpoint.read(purpose="resume")`` (what ``--resume`` does before
anything else) and ``sarzoo eval``. Each must succeed or raise a ``SarzooError`` that names the
file; nothing else, and within a time bound.

Cases: 200 in CI (about a minute on 2 CPU cores); ``--hypothesis-profile=deep`` for thousands.
"""
from __future__ import annotations

import contextlib
import copy
import io
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sarzoo.errors import SarzooError
from tests._train_common import one_torch_thread, train_args

#: seconds one entry point may take on one variant (a clean one takes well under one)
TIME_BOUND = 20.0


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[dict, Path]:
    from sarzoo.cli import main

    out = tmp_path_factory.mktemp("ckfuzz") / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(train_args(out, "--max-steps", 2, "--device", "cpu",
                               sets=("train.preview_samples=0", "train.histogram_every=0")))
    assert code == 0
    return torch.load(out / "last.pt", weights_only=True), tmp_path_factory.mktemp("variants")


# --- where to mutate -------------------------------------------------------------------------

def _paths(node, prefix=()):
    """Every place in the payload a mutation can hit; long lists (the Python RNG state) by a few items."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, (list, tuple)):
        for i in sorted({0, 1, len(node) - 1}) if len(node) > 8 else range(len(node)):
            if 0 <= i < len(node):
                yield from _paths(node[i], prefix + (i,))


def _parent(root, path):
    node = root
    for k in path[:-1]:
        node = node[k]
    return node


def _set(root, path, value):
    """``root`` with the value at ``path`` replaced (tuples rebuilt, as the RNG and betas are tuples)."""
    if not path:
        return value
    parent = _get(root, path[:-1])
    k = path[-1]
    if isinstance(parent, tuple):
        return _set(root, path[:-1], parent[:k] + (value,) + parent[k + 1:])
    parent[k] = value
    return root


def _get(root, path):
    node = root
    for k in path:
        node = node[k]
    return node


def _delete(root, path):
    parent = _get(root, path[:-1])
    k = path[-1]
    if isinstance(parent, tuple):
        return _set(root, path[:-1], parent[:k] + parent[k + 1:])
    del parent[k]
    return root


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2 ** 63, 2 ** 63 - 1),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["three", "training", "model", "MT19937", "sarzoo.checkpoint/1"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=5)
DTYPES = [torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]


def _tensors():
    return st.one_of(
        st.builds(lambda n: torch.zeros(n), st.integers(0, 6)),
        st.builds(lambda n: torch.full((n,), float("nan")), st.integers(1, 4)),
        st.builds(lambda n: torch.ones(n, dtype=torch.uint8), st.sampled_from([0, 1, 5055, 5056, 5057])),
        st.builds(lambda n: torch.arange(n, dtype=torch.int64) * 99991, st.sampled_from([623, 624, 625])),
    )


@st.composite
def mutations(draw, base: dict):
    """(description, mutated payload): one or two mutations of the pristine checkpoint."""
    ck = copy.deepcopy(base)
    done = []
    for _ in range(draw(st.integers(1, 2))):
        top = draw(st.sampled_from(sorted(ck))) if ck else None
        if top is None:
            break
        path = draw(st.sampled_from(list(_paths(ck[top], (top,)))))
        node = _get(ck, path)
        ops = ["delete", "retype", "extra"] if isinstance(node, dict) else ["delete", "retype"]
        if isinstance(node, torch.Tensor):
            ops += ["reshape", "dtype", "resize", "tensor"]
        if isinstance(node, (list, tuple)):
            ops += ["shorten", "lengthen"]
        op = draw(st.sampled_from(ops))
        if op == "delete":
            ck = _delete(ck, path)
        elif op == "retype":
            ck = _set(ck, path, draw(values))
        elif op == "extra":
            node[draw(st.text(min_size=1, max_size=10))] = draw(st.one_of(values, _tensors()))
        elif op == "reshape":
            ck = _set(ck, path, node.reshape(-1) if node.dim() != 1 else node.reshape(1, -1))
        elif op == "dtype":
            ck = _set(ck, path, node.to(draw(st.sampled_from(DTYPES))))
        elif op == "resize":
            n = node.numel()
            ck = _set(ck, path, node.reshape(-1)[: max(0, n - 1)] if draw(st.booleans())
                      else torch.cat([node.reshape(-1), node.reshape(-1)[:1]]))
        elif op == "tensor":
            ck = _set(ck, path, draw(_tensors()))
        elif op == "shorten":
            ck = _set(ck, path, type(node)(list(node)[:-1]))
        else:
            ck = _set(ck, path, type(node)([*node, draw(scalars)]))
        done.append(f"{op} {'.'.join(map(str, path))}")
    return "; ".join(done), ck


# --- the three ways in -------------------------------------------------------------------------

def _load(path):
    import sarzoo

    sarzoo.load(path)


def _resume(path):
    from sarzoo import checkpoint

    checkpoint.read(path, purpose="resume")


def _eval(path):
    from sarzoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", str(path), "--no-scenes", "--device", "cpu", "--json"])
    if code == 2:
        raise SarzooError(err.getvalue())
    assert code == 0, err.getvalue()


ENTRY_POINTS = {"sarzoo.load": _load, "read(resume)": _resume, "sarzoo eval": _eval}


def _outcome(fn, path) -> str:
    t0 = time.monotonic()
    try:
        fn(path)
        result = "ok"
    except SarzooError as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        assert "Traceback" not in str(exc)
        result = "refused"
    assert time.monotonic() - t0 < TIME_BOUND
    return result


#: a couple of hundred in CI; the ``deep`` profile (tests/conftest.py) raises it
EXAMPLES = 200 if settings.default.max_examples <= 100 else settings.default.max_examples


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_checkpoints_are_loaded_or_refused_naming_the_file(trained, data):
    base, tmp = trained
    what, ck = data.draw(mutations(base), label="mutation")
    path = tmp / "variant.pt"
    torch.save(ck, path)
    for name, fn in ENTRY_POINTS.items():
        event(f"{name}: {_outcome(fn, path)}")


def test_the_pristine_checkpoint_opens_every_way(trained):
    base, tmp = trained
    path = tmp / "pristine.pt"
    torch.save(base, path)
    assert [_outcome(fn, path) for fn in ENTRY_POINTS.values()] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c.pop("model"), "'model'"),
    (lambda c: c.pop("rng"), "'rng'"),
    (lambda c: c.__setitem__("epoch", "three"), "'epoch'"),
    (lambda c: c.__setitem__("recipe", "res_cbam"), "'recipe'"),
    (lambda c: c["recipe"]["encoder"].__setitem__("stages", None), "'encoder.stages'"),
    (lambda c: c["recipe"]["encoder"]["stages"][0].__setitem__("out_channels", 10 ** 7), "out_channels"),
    (lambda c: c.__setitem__("model", "weights"), "'model'"),
    (lambda c: c["model"].__setitem__("encoder.stem.conv.weight", torch.zeros(8, 1, 3, 3)),
     "'model.encoder.stem.conv.weight'"),
    (lambda c: c["model"].__setitem__("encoder.extra.weight", torch.zeros(2)), "'model.encoder.extra.weight'"),
    (lambda c: c["model"].pop("decoder.head.conv.bias"), "'model.decoder.head.conv.bias'"),
    (lambda c: c["rng"]["numpy"].__setitem__("keys", torch.zeros(600, dtype=torch.int64)), "'rng.numpy.keys'"),
    (lambda c: c["rng"].__setitem__("torch", torch.zeros(100, dtype=torch.uint8)), "'rng.torch'"),
    (lambda c: c["rng"]["python"].__setitem__("internal", [1] * 624), "'rng.python.internal'"),
    (lambda c: c["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(3)), "'optimizer.state.0.exp_avg'"),
    (lambda c: c["optimizer"]["param_groups"][0].__setitem__("lr", "fast"), "'optimizer.param_groups[0].lr'"),
    (lambda c: c["scheduler"]["plateau"].__setitem__("step", 1), "'scheduler.plateau.step'"),
    (lambda c: c["best"].__setitem__("value", None), "'best.value'"),
    (lambda c: c["preprocessing"].__setitem__("vmax", -100.0), "'preprocessing'"),
    (lambda c: c["recipe"].__setitem__("extends", "/etc/passwd"), "'recipe.extends'"),
], ids=["no-model", "no-rng", "epoch-str", "recipe-str", "stages-null", "huge-channels", "model-str",
        "weight-shape", "extra-weight", "missing-weight", "numpy-keys-size", "torch-rng-size", "python-rng-size",
        "optimizer-moment-shape", "lr-str", "scheduler-extra", "best-null", "clip-range", "extends"])
def test_each_damage_is_named(trained, mutate, key):
    from sarzoo import checkpoint

    base, tmp = trained
    ck = copy.deepcopy(base)
    mutate(ck)
    path = tmp / "damaged.pt"
    torch.save(ck, path)
    with pytest.raises(SarzooError) as exc:
        checkpoint.read(path, purpose="resume")
    msg = str(exc.value)
    assert str(path) in msg and key in msg and "\n" not in msg, msg


def test_schema_knows_the_trainers_running_sums():
    from sarzoo.checkpoint import ACCUM_KEYS
    from sarzoo.train.state import METRIC_KEYS, _zero_accum

    assert set(ACCUM_KEYS) == set(_zero_accum()) == {*METRIC_KEYS, "n", "time"}
