"""The conformance kit (sarzoo.testing) catches broken components and says which check failed on
which input; through Python, the pytest plugin (pytest11) and `sarzoo check-plugin`.

The broken blocks live in a real distribution (a dist-info with entry points on sys.path), found
by the same discovery as any installed plugin."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from sarzoo.registry import get_registry
from sarzoo.testing import Case, StageCase, assert_conforms, check_case, check_component, format_report, sample_cases
from sarzoo.testing.dists import installed, write_distribution

from .conftest import run_cli

BROKEN = '''
import torch
from torch import nn
from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option, Step

ONLY = None   # a set of names: provide only those


class IgnoresStride(nn.Module):          # wrong output shape: never downsamples
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    def forward(self, x):
        return self.conv(x)


class Detached(nn.Module):               # breaks the gradient
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
    def forward(self, x):
        return self.conv(x).detach()


class UnusedParam(nn.Module):            # one parameter never gets a gradient
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.unused = nn.Parameter(torch.zeros(3))
    def forward(self, x):
        return self.conv(x)


class Noisy(nn.Module):                  # non-deterministic in eval mode
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
    def forward(self, x):
        y = self.conv(x)
        return y + 0.1 * torch.randn_like(y)


class Patchify(nn.Module):               # floors: k=s, stride s
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, stride, stride=stride)
    def forward(self, x):
        return self.conv(x)


class NaNs(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
    def forward(self, x):
        return torch.log(self.conv(x))   # log of negatives: nan


class Good(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
    def forward(self, x):
        return self.conv(x)


class Squash(nn.Module):                 # an "attention" that halves the resolution
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)
    def forward(self, x):
        return self.conv(x)[:, :, ::2, ::2]


def refuses(in_channels, out_channels, stride, width=4):
    raise ValueError("width must be a power of two")


def skip_stage(stage):                   # a stage that forgets the stride
    return [Step(f"block{i}", "block", stage.block,
                 {"in_channels": stage.in_channels if i == 0 else stage.out_channels,
                  "out_channels": stage.out_channels, "stride": 1})
            for i in range(max(stage.depth, 1))]


@hookimpl
def sarzoo_components():
    return [c for c in _all() if ONLY is None or c.name in ONLY]


def _all():
    return [
        Component("block", "ignores_stride", IgnoresStride, "wrong output shape"),
        Component("block", "detached", Detached, "breaks the gradient"),
        Component("block", "unused_param", UnusedParam, "a parameter gets no gradient"),
        Component("block", "noisy", Noisy, "non-deterministic in eval mode"),
        Component("block", "liar", Good, "declares that it keeps the size",
                  output_shape=lambda s, a: (a["out_channels"], s[1], s[2])),
        Component("block", "patchify_liar", Patchify, "claims any size works; floors",
                  input_multiple=lambda a: 1),
        Component("block", "nans", NaNs, "produces nan"),
        Component("block", "refuses", refuses, "factory raises for what the contract accepts",
                  options={"width": Option(int, 4, "", min=1, max=64)}),
        Component("attention", "squash", Squash, "changes the shape"),
        Component("block", "good", Good, "conforms"),
        Component("stage", "skip_stride", skip_stage, "forgets the stride"),
    ]
'''

FAILS = {  # component -> (check that must fail, words its message must contain)
    "ignores_stride": ("output_shape", "forward returned"),
    "detached": ("gradient", "does not require grad"),
    "unused_param": ("gradient", "parameter 'unused' received no gradient"),
    "noisy": ("eval_determinism", "two eval-mode forward passes"),
    "liar": ("contract", "must give"),
    "patchify_liar": ("output_shape", "but the block contract gives"),
    "nans": ("finite", "non-finite"),
    "refuses": ("construct", "the factory raised ValueError: width must be a power of two"),
    "squash": ("output_shape", "forward returned"),
    "skip_stride": ("stage_contract", "not by stride"),
}


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("broken_site")
    write_distribution(site, "sarzoo-broken-blocks", "0.3", modules={"broken_blocks": BROKEN},
                       plugins={"broken": "broken_blocks"})
    return site


@pytest.fixture
def broken(broken_site):
    with installed(broken_site):
        reg = get_registry()
        yield {c.name: c for c in reg.components() if c.provenance.distribution == "sarzoo-broken-blocks"}


def _env(site):
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("name", sorted(FAILS))
def test_each_broken_component_is_caught_by_the_right_check(broken, name):
    check, words = FAILS[name]
    report = check_component(broken[name], n_cases=6)
    assert not report.ok
    failed = report.failed_checks()
    assert check in failed, (check, format_report(report))
    msg = failed[check][0]
    assert msg.startswith(f"[{check}] ") and words in msg, msg
    assert "sarzoo-broken-blocks 0.3" in msg
    if check != "stage_contract":
        assert "on input (" in msg                     # which input shape
    else:
        assert "on stage (role=" in msg


def test_messages_name_the_input_shape_and_arguments(broken):
    case = Case(batch=2, channels=8, height=10, width=10, out_channels=16, stride=2)
    res = check_case(broken["ignores_stride"], case)
    [msg] = res.failures[0].messages
    assert msg == ("[output_shape] block 'ignores_stride' (sarzoo-broken-blocks 0.3) on input "
                   "(2, 8, 10, 10) with in_channels=8, out_channels=16, stride=2: forward returned "
                   "(2, 16, 10, 10) but the block contract gives (2, 16, 5, 5)")
    liar = check_case(broken["liar"], case)
    assert [r.check for r in liar.failures] == ["contract"]
    assert "output_shape declares (16, 10, 10) for input (8, 10, 10), but a block with " \
           "out_channels=16, stride=2 must give (16, 5, 5)" in liar.failure_messages()[0]
    odd = check_case(broken["patchify_liar"], Case(batch=1, channels=3, height=9, width=9,
                                                   out_channels=4, stride=2))
    assert "forward returned (1, 4, 4, 4) but its own output_shape declares" not in odd.failure_messages()[0]
    assert "forward returned (1, 4, 4, 4) but the block contract gives (1, 4, 5, 5)" in odd.failure_messages()[0]


def test_only_the_broken_check_fails(broken):
    report = check_component(broken["noisy"], n_cases=4)
    assert set(report.failed_checks()) == {"eval_determinism"}
    good = check_component(broken["good"], n_cases=6)
    assert good.ok, format_report(good)
    assert format_report(good).startswith("PASS  block good  (6 case(s)): contract, construct")


def test_assert_conforms_raises_with_every_failed_check(broken):
    with pytest.raises(AssertionError, match=r"\[gradient\].*on input \(1, 3, 6, 6\)"):
        assert_conforms(broken["detached"], Case(batch=1, channels=3, height=6, width=6))
    assert_conforms(broken["good"], Case(batch=3, channels=1, height=7, width=5, stride=3))
    with pytest.raises(AssertionError, match=r"\[stage_contract\]"):
        assert_conforms(broken["skip_stride"], StageCase(role="encoder", stride=2, depth=2))


def test_cases_the_contract_rejects_are_skipped_not_failed():
    reg = get_registry()
    preact = reg.get("block", "preact")
    res = check_case(preact, Case(channels=4, out_channels=8, options={"shortcut": "identity"}))
    assert res.skipped and "shortcut 'identity' needs stride 1" in res.skipped and res.ok
    res = check_case(reg.get("block", "conv"), Case(height=9, stride=1, options={"kernel": 4}))
    assert res.skipped and "kernel must be odd" in res.skipped


def test_sampled_cases_cover_odd_even_strides_and_respect_the_contract():
    comp = get_registry().get("block", "conv")
    cases = sample_cases(comp, n=12, seed=0)
    assert len(cases) == 12 and cases == sample_cases(comp, n=12, seed=0)   # deterministic
    assert {c.stride for c in cases} >= {1, 2, 3, 4}
    assert {c.height % 2 for c in cases} == {0, 1}
    assert min(c.channels for c in cases) == 1 and max(c.batch for c in cases) <= 3
    assert all(5 <= c.height <= 33 and c.height % c.stride == 0 for c in cases)


# -- the pytest plugin --------------------------------------------------------------------------
AUTHOR_TESTS = {
    "test_author.py": """
        from sarzoo.testing import conformance_test

        test_good = conformance_test("sarzoo-good")
        test_broken = conformance_test("sarzoo-broken-blocks", cases=3)
        test_missing = conformance_test("not-installed-anywhere")
    """,
    "test_module_target.py": """
        import broken_blocks
        from sarzoo.registry import get_registry
        from sarzoo.testing import conformance_test

        test_module_target = conformance_test(broken_blocks, cases=2)   # nothing installed needed

        def test_fixture(sarzoo_check):
            sarzoo_check(get_registry().get("block", "preact"), cases=2)
    """,
}


def test_pytest_plugin_one_line_conformance_test_fixture_and_module_target(tmp_path, broken_site):
    """An author's test files, run by pytest in a subprocess with sarzoo's pytest11 plugin."""
    good_site = tmp_path / "good_site"
    write_distribution(good_site, "sarzoo-good", "1.2", plugins={"good": "good_blocks"},
                       modules={"good_blocks": BROKEN.replace("ONLY = None", "ONLY = {'good'}")})
    tests = tmp_path / "tests"
    tests.mkdir()
    for name, source in AUTHOR_TESTS.items():
        (tests / name).write_text(textwrap.dedent(source))
    env = {**os.environ, **_env(os.pathsep.join([str(good_site), str(broken_site)]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-q", "-rA", "-p",
                           "no:cacheprovider", "--rootdir", str(tmp_path), "--sarzoo-cases", "3"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "PASSED tests/test_author.py::test_good[block:good]" in out
    assert "PASSED tests/test_author.py::test_broken[block:good]" in out
    assert "FAILED tests/test_author.py::test_broken[block:detached]" in out
    assert "[gradient] block 'detached' (sarzoo-broken-blocks 0.3) on input (" in out
    assert "FAILED tests/test_author.py::test_broken[stage:skip_stride]" in out
    assert "FAILED tests/test_author.py::test_missing[load-problem-0]" in out
    assert "no installed distribution 'not-installed-anywhere' provides sarzoo plugins" in out
    assert "PASSED tests/test_module_target.py::test_fixture" in out
    assert "PASSED tests/test_module_target.py::test_module_target[block:good]" in out
    assert "FAILED tests/test_module_target.py::test_module_target[block:noisy]" in out
    assert "[eval_determinism] block 'noisy' (<local> ?) on input" in out
    assert "Traceback" not in out


# -- sarzoo check-plugin ------------------------------------------------------------------------
def test_check_plugin_cli_reports_each_component_and_exits_nonzero(broken_site):
    proc = run_cli("check-plugin", "sarzoo-broken-blocks", "--cases", "4", env=_env(broken_site))
    out = proc.stdout
    assert proc.returncode == 1, proc.stderr
    assert out.splitlines()[0] == "sarzoo-broken-blocks 0.3"
    assert "  PASS  block good  (4 case(s))" in out
    for name, (check, _) in FAILS.items():
        kind = {"squash": "attention", "skip_stride": "stage"}.get(name, "block")
        assert f"  FAIL  {kind} {name}  (" in out, name
        assert f"{check}: failed on " in out
    assert "[gradient] block 'detached' (sarzoo-broken-blocks 0.3) on input (" in out
    assert out.rstrip().endswith("11 component(s): 1 passed, 10 failed")
    assert "Traceback" not in proc.stderr


def test_check_plugin_cli_json_and_one_component(broken_site):
    proc = run_cli("check-plugin", "sarzoo_broken_blocks", "--component", "good",
                   "--component", "block:noisy", "--cases", "3", "--json", env=_env(broken_site))
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["distribution"] == "sarzoo-broken-blocks" and data["version"] == "0.3"
    by_name = {c["name"]: c for c in data["components"]}
    assert set(by_name) == {"good", "noisy"}
    assert by_name["good"]["ok"] and not by_name["noisy"]["ok"]
    assert list(by_name["noisy"]["failed_checks"]) == ["eval_determinism"]


def test_check_plugin_first_party_passes_and_unknown_dist_is_a_user_error():
    proc = run_cli("check-plugin", "sarzoo", "--cases", "2", "--component", "preact",
                   "--component", "cbam", "--component", "standard")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  block preact" in proc.stdout and "PASS  stage standard" in proc.stdout
    proc = run_cli("check-plugin", "no-such-dist")
    assert proc.returncode == 2
    assert proc.stderr.startswith("sarzoo check-plugin: error: no installed distribution "
                                  "'no-such-dist' provides sarzoo plugins")
    assert "Traceback" not in proc.stderr


def test_check_plugin_reports_a_plugin_that_fails_to_load_and_bad_declarations(tmp_path):
    write_distribution(tmp_path, "sarzoo-declares", "2.0",
                       modules={"declares_mod": BROKEN.replace("ONLY = None", "ONLY = {'good'}")},
                       plugins={"declares": "declares_mod"},
                       components={"block.good": "declares_mod", "block.missing": "declares_mod"})
    write_distribution(tmp_path, "sarzoo-cannot-import", "0.1",
                       modules={"cannot_import": "import not_a_module_anywhere\n"},
                       plugins={"cannot": "cannot_import"})
    proc = run_cli("check-plugin", "sarzoo-declares", "--cases", "2", env=_env(tmp_path))
    assert proc.returncode == 1
    assert "PASS  block good" in proc.stdout
    assert "[declaration] plugin 'declares' declares block.missing in the sarzoo.components " \
           "entry points but does not provide it" in proc.stdout
    proc = run_cli("check-plugin", "sarzoo-cannot-import", env=_env(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "plugin cannot (cannot_import): failed: import of 'cannot_import' failed: " \
           "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in proc.stdout
