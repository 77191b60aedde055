"""Mutated recipes never escape as anything but a clean SarzooError.

Thousands of mutations of valid recipes (deleted keys, wrong types, random strings and numbers,
inserted keys, garbage YAML). Each must either build or fail with ``SarzooError``; recipes that
pass validation are instantiated on the meta device (no memory), and small ones run for real.
"""
import copy

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sarzoo.config import load_raw
from sarzoo.errors import SarzooError
from sarzoo.model import build_model as instantiate
from sarzoo.plan import plan_recipe as check
from tests.conftest import RECIPES

BASES = [load_raw(RECIPES / f"{n}.yaml").data for n in ("tiny", "res_cbam", "baseline", "resnet_lite")]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.integers(-10**9, 10**9),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["preact", "cbam", "interp", "conv", "standard", "bn", "none", "identity", "dist:preact"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def get_parent(root, path):
    node = root
    for p in path[:-1]:
        node = node[p]
    return node


@st.composite
def mutated(draw):
    recipe = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        all_paths = [p for p in paths(recipe) if p]
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = get_parent(recipe, path)
        op = draw(st.sampled_from(["delete", "replace", "replace", "insert"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(values)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(values)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(values))
    return recipe


def exercise(recipe):
    try:
        plan = check(recipe)
    except SarzooError:
        return "error"
    with torch.device("meta"):
        model = instantiate(plan)
    n = sum(p.numel() for p in model.parameters())
    if n < 300_000 and max(plan.input_shape[1:]) <= 128:
        model = instantiate(plan).eval()
        with torch.no_grad():
            x_hat, z = model(torch.rand(1, *plan.input_shape))
        assert tuple(x_hat.shape[1:]) == plan.input_shape
        assert tuple(z.shape[1:]) == plan.latent_shape
    return "built"


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_recipes_fail_cleanly(recipe):
    event(exercise(recipe))


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(max_size=200),
                 st.builds(lambda a, b: a + b, st.sampled_from([(RECIPES / "tiny.yaml").read_text()]),
                           st.text(alphabet=":-[]{}&*!|>'\"%@` \n\t#,?xyz0123", max_size=40))))
def test_garbage_yaml_fails_cleanly(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("g") / "garbage.yaml"
    p.write_text(text)
    try:
        check(p)
    except SarzooError:
        pass


def test_fuzzer_reaches_both_outcomes():
    """Guard against a fuzzer that only ever produces errors (or never does)."""
    ok = exercise(copy.deepcopy(BASES[0]))
    bad = copy.deepcopy(BASES[0])
    bad["encoder"]["stage"]["depth"] = "x"
    assert ok == "built" and exercise(bad) == "error"
