"""Mutated recipes never escape as anything but a clean SarzooError.

Thousands of mutations of valid recipes (deleted keys, wrong types, random strings and numbers,
inserted keys, garbage YAML). Each must either build or fail with ``SarzooError``; recipes that
pass validation are instantiated on the meta device (no memory), and small ones run for real.

Hostile mutations (alias bombs, recursive aliases, deep nesting, huge channel counts, sizes,
depths and files) must also end within ``TIME_LIMIT`` seconds and without allocating more than
the memory budget: in this process under a low ``SARZOO_MEMORY_BUDGET`` (peak RSS watched), and
a fixed set through ``sarzoo build`` in subprocesses whose own peak RSS is measured.
``--hypothesis-profile=deep`` (tests/conftest.py) runs many more examples.
"""
import copy
import os
import resource
import subprocess
import sys
import time

import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sarzoo.budget import BUDGET_ENV, parse_bytes
from sarzoo.config import load_raw
from sarzoo.config.source import MAX_FILE_BYTES
from sarzoo.errors import SarzooError
from sarzoo.model import build_model as instantiate
from sarzoo.model import check_plan_memory
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


# --- hostile mutations: bounded time and memory ---------------------------------------------

TIME_LIMIT = 5.0          # seconds from reading the recipe to its error (or its build)
BUDGET = "512MB"          # SARZOO_MEMORY_BUDGET while the hostile cases run


def examples(ci: int) -> int:
    """``ci`` examples by default; more when the loaded hypothesis profile asks for more (deep)."""
    return max(ci, settings.default.max_examples)


def _laughs(levels: int, width: int) -> str:
    out = ["[" + ", ".join(["lol"] * width) + "]"]
    return "[" + ", ".join(f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" if i else f"&l0 {out[0]}"
                          for i in range(levels)) + f", *l{levels - 1}]"


@st.composite
def hostile(draw) -> str:
    """The YAML text of a base recipe with one or two hostile mutations."""
    recipe = copy.deepcopy(draw(st.sampled_from(BASES)))
    tail = ""
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["laughs", "recursive", "deep", "channels", "size", "depth", "stages",
                                     "file"]))
        big = st.sampled_from([4096, 4097, 65536, 10**6, 10**12, 2**63, 10**30])
        if kind == "laughs":   # alias bomb as the value of a real key (a later duplicate key wins)
            key = draw(st.sampled_from(["description", "encoder", "input", "decoder", "name"]))
            tail += f"{key}: {_laughs(draw(st.integers(2, 12)), draw(st.integers(2, 12)))}\n"
        elif kind == "recursive":
            tail += draw(st.sampled_from(["description: &r [*r]\n", "encoder: &r {stage: *r}\n",
                                          "decoder: &r {stages: [{out_channels: 1, block: *r}]}\n",
                                          "input: &r [1, [2, [3, *r]]]\n"]))
        elif kind == "deep":
            n = draw(st.sampled_from([10, 63, 64, 65, 100, 1000, 10_000, 50_000]))
            if draw(st.booleans()):
                tail += "description: " + "[" * n + "]" * n + "\n"
            else:
                tail += "description:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(min(n, 3000)))
        elif kind == "file":
            n = draw(st.sampled_from([MAX_FILE_BYTES - 4096, MAX_FILE_BYTES + 1, 4 * MAX_FILE_BYTES]))
            tail += draw(st.sampled_from(["#" * n + "\n", f"description: '{'x' * n}'\n",
                                          "a: [" + "1," * (n // 2) + "1]\n"]))
        else:
            enc = recipe.setdefault("encoder", {})
            if not isinstance(enc, dict):
                continue
            stages = enc.get("stages")
            if not isinstance(stages, list) or not stages or not all(isinstance(x, dict) for x in stages):
                stages = enc["stages"] = [{"out_channels": 16}]
            if kind == "channels":
                for x in draw(st.lists(st.sampled_from(stages), min_size=1, max_size=len(stages))):
                    x["out_channels"] = draw(big)
            elif kind == "depth":
                for x in stages:
                    x["depth"] = draw(st.sampled_from([32, 33, 10**6, 10**18]))
            elif kind == "stages":
                enc["stages"] = [{"out_channels": draw(big), "stride": 1, "depth": 32}
                                 for _ in range(draw(st.sampled_from([12, 13, 1000])))]
            else:
                side = draw(st.sampled_from([16384, 16385, 65536, 10**9]))
                recipe.setdefault("input", {})["size"] = [side, draw(st.sampled_from([side, 8, 16]))]
    return yaml.safe_dump(recipe, sort_keys=False) + tail


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def low_budget():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(BUDGET_ENV, BUDGET)
        yield parse_bytes(BUDGET)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile())
def test_hostile_recipes_end_quickly_within_the_budget(low_budget, tmp_path_factory, text):
    p = tmp_path_factory.mktemp("h") / "hostile.yaml"
    p.write_text(text)
    peak, t0 = _peak_rss(), time.monotonic()
    try:
        plan = check(p)
        check_plan_memory(plan)          # what build_model does before it allocates anything
        outcome = "within budget"
    except SarzooError as exc:
        outcome = "refused: " + ("memory" if BUDGET_ENV in str(exc) else "YAML" if "YAML" in str(exc)
                                 else "file" if "limit is" in str(exc) else "recipe")
    elapsed = time.monotonic() - t0
    event(outcome)
    assert elapsed < TIME_LIMIT, f"{outcome} after {elapsed:.1f}s"
    assert _peak_rss() - peak < low_budget, "the peak memory grew by more than the budget"


# Recipes that must not make `sarzoo build` allocate past the budget (measured per process).
SUBPROCESS_CASES = {
    "alias_bomb": "description: " + _laughs(12, 12) + "\n",
    "recursive_alias": "description: &r {a: [*r]}\n",
    "deep_nesting": "description: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "huge_channels": "encoder: {stages: [{out_channels: 4096, stride: 1, depth: 32}, "
                     "{out_channels: 4096, stride: 1, depth: 32}]}\n",
    "huge_size": "input: {size: [16384, 16384]}\n",
    "huge_depth": "encoder: {stage: {depth: 1000000000}}\n",
}


def _run_all(commands: dict[str, list[str]], env: dict, tmp_path, timeout: float) -> dict[str, tuple]:
    """Run every command at once; for each: exit status, peak RSS in bytes (from the rusage that
    os.wait4 returns for that child alone) and stderr."""
    procs = {}
    for name, cmd in commands.items():
        with open(tmp_path / f"{name}.out", "wb") as out, open(tmp_path / f"{name}.err", "wb") as err:
            procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
    results, deadline = {}, time.monotonic() + timeout
    while len(results) < len(procs):
        for name, proc in procs.items():
            if name in results:
                continue
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                results[name] = (proc.returncode, usage.ru_maxrss * 1024,
                                 (tmp_path / f"{name}.err").read_text(errors="replace"))
        if time.monotonic() > deadline:
            for name, proc in procs.items():
                if name not in results:
                    proc.kill()
                    proc.wait()
            raise AssertionError(f"still running after {timeout}s: {sorted(set(procs) - set(results))}")
        time.sleep(0.05)
    return results


def test_hostile_builds_stay_under_the_memory_budget(tmp_path):
    """Each `sarzoo build` ends with exit status 2 and a one-paragraph error, and its peak RSS
    stays under the RSS of importing torch and sarzoo plus the budget."""
    commands = {"baseline": [sys.executable, "-c", "import torch, sarzoo.model, sarzoo.cli"]}
    for name, tail in SUBPROCESS_CASES.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(f"extends: {RECIPES / 'tiny.yaml'}\n" + tail)
        commands[name] = [sys.executable, "-m", "sarzoo", "build", str(p)]
    results = _run_all(commands, {**os.environ, BUDGET_ENV: BUDGET}, tmp_path, timeout=240)
    assert results["baseline"][0] == 0, results["baseline"][2]
    for name in SUBPROCESS_CASES:
        rc, peak, err = results[name]
        assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, err[-2000:])
        assert peak < results["baseline"][1] + parse_bytes(BUDGET), (name, peak, results["baseline"][1])
