"""Third-party plugins through real discovery: each plugin here is a real distribution (a
``*.dist-info`` with ``entry_points.txt`` next to its modules, on ``PYTHONPATH``), found by
``importlib.metadata`` exactly as a pip-installed one, and the commands run in subprocesses, so
no registry is mocked and no discovery state leaks between tests.

Covered: plugins that fail to import, whose hook raises, returns bad values or does not match the
hookspec, do not stop sarzoo and are reported with distribution, version and reason (``sarzoo
plugins [--json]``); a recipe using a name a failed plugin declares gets that plugin's error, and
an undeclared name is never blamed on one; ``SARZOO_STRICT_PLUGINS`` and
``SARZOO_DISABLE_PLUGINS``; hooks are called through pluggy; nothing is written to $HOME; name
collisions and qualified ``dist:name`` references; third-party contracts checked before anything is
allocated; third-party bugs reported as such."""
import importlib
import json
import logging
import os
import subprocess
import sys

import pytest

from sarzoo import hookimpl
from sarzoo.errors import PluginError, SarzooError
from sarzoo.registry import Registry
from sarzoo.testing.dists import installed, write_distribution

from .conftest import run_cli

GATE = '''
from sarzoo import hookimpl
from sarzoo.interfaces import Component

WHO = {who!r}


def make_gate(channels):
    import torch   # inside the factory: listing plugins stays torch-free and instant
    from torch import nn

    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        def forward(self, x):
            return x * torch.sigmoid(self.scale)

    return Gate()


@hookimpl
def sarzoo_components():
    return [Component("attention", "gate", make_gate, "a channel gate from " + WHO)]
'''

# A block whose contract needs inputs that are multiples of 4 and whose factory leaves a marker:
# the marker proves whether anything was allocated before a recipe error.
PICKY = '''
import os
from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option


def make_picky(in_channels, out_channels, stride, explode=False):
    open(os.environ["PICKY_MARKER"], "a").write("allocated\\n")
    if explode:
        raise RuntimeError("picky exploded")
    from torch import nn
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


def make_liar(in_channels, out_channels, stride):
    from torch import nn
    return nn.Conv2d(in_channels, out_channels + 1, 3, stride=stride, padding=1)


def contract_raises(args):
    raise KeyError("no_such_arg")


@hookimpl
def sarzoo_components():
    return [
        Component("block", "picky", make_picky, "needs multiples of 4",
                  options={"explode": Option(bool, False, "raise in the factory")},
                  input_multiple=lambda a: 4 * a["stride"]),
        Component("block", "bad_contract", make_picky, "its check() raises",
                  check=contract_raises),
        Component("block", "liar", make_liar, "its default contract promises out_channels; it makes one more"),
        Component("stage", "not_steps", lambda stage: ["block0"], "returns names, not Steps"),
    ]
'''

HOOK = "from sarzoo import hookimpl\n@hookimpl\ndef sarzoo_components():\n{body}\n"
BAD_PLUGINS = {  # distribution -> (module source, words the reason must contain)
    "sarzoo-wavelet": ("import pywavelets_not_installed\n",
                       "import of 'sarzoo_wavelet' failed: ModuleNotFoundError: No module named "
                       "'pywavelets_not_installed'"),
    "sarzoo-raises": (HOOK.format(body="    raise RuntimeError('boom')"),
                      "registration failed: RuntimeError: boom"),
    "sarzoo-not-a-list": (HOOK.format(body="    return 42"),
                          "sarzoo_components must return a list of Components, got int"),
    "sarzoo-not-components": (HOOK.format(body="    return ['preact']"),
                              "returned str 'preact', not a sarzoo.interfaces.Component"),
    "sarzoo-empty": (HOOK.format(body="    return []"), "sarzoo_components returned no component"),
    "sarzoo-no-hook": ("def sarzoo_components():\n    return []\n",
                       "has no @sarzoo.hookimpl sarzoo_components() function"),
    "sarzoo-bad-name": (HOOK.format(body="    from sarzoo.interfaces import Component\n"
                                         "    return [Component('block', 'a:b', print, 'x')]"),
                        "block name 'a:b' is not valid"),
    "sarzoo-exits": ("raise SystemExit(3)\n", "import of 'sarzoo_exits' failed: SystemExit: 3"),
}


def _module(dist):
    return dist.replace("-", "_")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Every distribution the tests need, side by side in one site directory."""
    root = tmp_path_factory.mktemp("site")
    for dist, (source, _) in BAD_PLUGINS.items():
        write_distribution(root, dist, "0.2", modules={_module(dist): source},
                           plugins={dist.split("-", 1)[1]: _module(dist)})
    write_distribution(root, "sarzoo-needs-lib", "1.4",
                       modules={"needs_lib": "raise ImportError('libfoo.so.2: cannot open shared "
                                             "object file')\n"},
                       plugins={"needs_lib": "needs_lib"},
                       components={"block.fancy": "needs_lib", "attention.fancy_gate": "needs_lib"})
    for who in ("a", "b"):
        write_distribution(root, f"sarzoo-gate-{who}", f"1.{ord(who) - 96}",
                           modules={f"gate_{who}": GATE.format(who=who)},
                           plugins={"gate": f"gate_{who}"})
    write_distribution(root, "sarzoo-picky", "0.9", modules={"picky": PICKY},
                       plugins={"picky": "picky"})
    return root


def _env(*sites, **extra):
    env = {"PYTHONPATH": os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")]),
           "SARZOO_STRICT_PLUGINS": "", "SARZOO_DISABLE_PLUGINS": ""}
    env.update(extra)
    return env


def _plugins_json(env):
    proc = run_cli("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {r["distribution"]: r for r in json.loads(proc.stdout)}


def _recipe(tmp_path, attention="cbam", block="preact", size=32, name="r.yaml"):
    path = tmp_path / name
    path.write_text(f"""name: mixed
input: {{channels: 1, size: [{size}, {size}]}}
encoder:
  stem: {{type: conv, out_channels: 8}}
  stage: {{block: {block}, attention: {attention}, depth: 1, stride: 2}}
  stages:
    - {{out_channels: 8}}
    - {{out_channels: 4}}
decoder:
  head: {{type: conv, norm: none, act: sigmoid}}
""")
    return path


# -- failures are survived and reported -------------------------------------------------------
def test_failed_plugins_are_listed_with_distribution_version_and_reason(site):
    plugins = _plugins_json(_env(site))
    for dist, (_, reason) in BAD_PLUGINS.items():
        rec = plugins[dist]
        assert rec["status"] == "failed" and rec["version"] == "0.2", rec
        assert reason in rec["error"], (dist, rec["error"])
        assert rec["components"] == []
    assert plugins["sarzoo-needs-lib"]["status"] == "failed"
    assert plugins["sarzoo-needs-lib"]["declared"] == [
        {"kind": "block", "name": "fancy", "qualified_name": "sarzoo-needs-lib:fancy"},
        {"kind": "attention", "name": "fancy_gate", "qualified_name": "sarzoo-needs-lib:fancy_gate"}]
    assert plugins["sarzoo"]["status"] == "ok" and plugins["sarzoo-picky"]["status"] == "ok"
    assert {c["name"] for c in plugins["sarzoo-picky"]["components"]} == {"picky", "bad_contract",
                                                                          "liar", "not_steps"}


def test_plugins_table_and_list_keep_working(site):
    proc = run_cli("plugins", env=_env(site))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.split()[:4] == ["sarzoo-raises", "0.2", "raises", "failed"] for line in lines)
    assert "    failed: registration failed: RuntimeError: boom" in lines
    assert any(line.split()[:4] == ["sarzoo-needs-lib", "1.4", "needs_lib", "failed"]
               and "(declared: block: fancy; attention: fancy_gate)" in line for line in lines)
    assert "9 failed" in lines[-1] and "2 shadowed" in lines[-1]
    proc = run_cli("list", "--json", env=_env(site))
    assert proc.returncode == 0
    names = {(c["kind"], c["name"], c["distribution"]) for c in json.loads(proc.stdout)}
    assert ("block", "preact", "sarzoo") in names and ("block", "picky", "sarzoo-picky") in names
    # every command warns about each failed plugin once, naming distribution, version and reason
    assert ("sarzoo: plugin 'wavelet' from sarzoo-wavelet 0.2 failed to load: import of "
            "'sarzoo_wavelet' failed: ModuleNotFoundError") in proc.stderr
    assert proc.stderr.count("failed to load") == 9


def test_a_recipe_using_a_failed_plugin_gets_that_plugins_error(site, tmp_path):
    declared = run_cli("build", _recipe(tmp_path, block="fancy"), env=_env(site))
    assert declared.returncode == 2
    err = declared.stderr.splitlines()[-1]
    assert "key 'encoder.stage.block.type': block 'fancy' is provided by plugin 'needs_lib' from " \
           "sarzoo-needs-lib 1.4, which failed to load: import of 'needs_lib' failed: ImportError: " \
           "libfoo.so.2: cannot open shared object file" in err, err
    assert "unknown" not in err
    # sarzoo-wavelet declares nothing: its name is no evidence, so the name is unknown, and the
    # failed plugins are listed as possible sources
    undeclared = run_cli("build", _recipe(tmp_path, block="wavelet"), env=_env(site))
    assert undeclared.returncode == 2
    err = undeclared.stderr.splitlines()[-1]
    assert "key 'encoder.stage.block.type': unknown block 'wavelet'. Registered blocks: " in err, err
    assert "Note: plugin 'wavelet' from sarzoo-wavelet 0.2 failed to load (import of " \
           "'sarzoo_wavelet' failed: ModuleNotFoundError: No module named 'pywavelets_not_installed'); " \
           "the name may come from it." in err, err
    qualified = run_cli("build", _recipe(tmp_path, attention="sarzoo-raises:anything"),
                        env=_env(site))
    assert qualified.returncode == 2
    assert "attention 'sarzoo-raises:anything' is not available: plugin 'raises' from sarzoo-raises " \
           "0.2 is the distribution named in 'sarzoo-raises:anything', which failed to load: " \
           "registration failed: RuntimeError: boom" in qualified.stderr, qualified.stderr
    assert "Traceback" not in declared.stderr + undeclared.stderr + qualified.stderr


FLAKY = "import torch_not_here\n"


def test_a_failed_plugin_is_blamed_only_for_the_names_it_declares(tmp_path):
    """Attribution uses declarations (read without importing) and the distribution a qualified name
    names, nothing else: not the plugin's own names, not what it provided in an earlier run."""
    write_distribution(tmp_path, "sarzoo-gate-flaky", "1.0", modules={"gate_flaky": FLAKY},
                       plugins={"gate": "gate_flaky"})
    write_distribution(tmp_path, "sarzoo-declared", "2.0", modules={"declared": FLAKY},
                       plugins={"declared": "declared"}, components={"attention.spot": "declared"})
    with installed(tmp_path, env={"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": ""}):
        reg = Registry()
        with pytest.raises(SarzooError) as info:
            reg.get("attention", "gate")          # its plugin and distribution are called "gate"
        assert not isinstance(info.value, PluginError)
        assert str(info.value).startswith("unknown attention 'gate'"), info.value
        assert "Note: plugin 'gate' from sarzoo-gate-flaky 1.0 failed to load" in str(info.value)
        with pytest.raises(PluginError, match="attention 'spot' is provided by plugin 'declared' from "
                           "sarzoo-declared 2.0, which failed to load: import of 'declared' failed: "
                           "ModuleNotFoundError: No module named 'torch_not_here'"):
            reg.get("attention", "spot")
        with pytest.raises(SarzooError, match="unknown block 'spot'"):
            reg.get("block", "spot")               # declared as an attention, not as a block
        with pytest.raises(PluginError, match="plugin 'gate' from sarzoo-gate-flaky 1.0 is the "
                           "distribution named in 'sarzoo_gate_flaky:gate', which failed to load"):
            reg.get("attention", "sarzoo_gate_flaky:gate")


def test_hookimpls_that_do_not_match_the_hookspec_are_refused_by_pluggy(tmp_path):
    write_distribution(tmp_path, "sarzoo-bogus", "0.1", plugins={"bogus": "bogus_hook"},
                       modules={"bogus_hook": HOOK.replace("sarzoo_components()", "sarzoo_components(bogus)")
                                .format(body="    return []")})
    with installed(tmp_path, env={"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": ""}):
        reg = Registry()
        [rec] = reg.records("sarzoo-bogus")
        assert rec.status == "failed" and rec.components == []
        assert rec.error.startswith("registration failed: its hookimpl does not match the hookspec "
                                    "sarzoo_components() (sarzoo/hookspecs.py): PluginValidationError: ")
        assert "sarzoo_components(bogus)" in rec.error
        assert "Argument(s) {'bogus'} are declared in the hookimpl but can not be found in the hookspec" \
            in rec.error
        assert reg.get("block", "preact").provenance.distribution == "sarzoo"   # the others load
        assert not reg.plugin_manager.has_plugin("sarzoo-bogus:bogus")        # nothing half-registered


class Watch:
    """A pluggy hookwrapper on the registry's plugin manager: it sees a call only if the registry
    calls the hook through pluggy."""

    def __init__(self):
        self.results = []

    @hookimpl(wrapper=True)
    def sarzoo_components(self):
        result = yield
        self.results.append([c.name for found in result for c in found])
        return result


def test_hooks_are_called_through_pluggy_one_plugin_at_a_time(site):
    with installed(site, env={"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": ""}):
        reg = Registry(entry_points=[])
        watch, reached = Watch(), []
        reg.plugin_manager.register(watch)
        reg.plugin_manager.add_hookcall_monitoring(
            lambda hook, impls, kwargs: reached.append(sorted(reg.plugin_manager.get_name(i.plugin)
                                                              for i in impls if i.plugin is not watch)),
            lambda outcome, hook, impls, kwargs: None)
        for who, version in (("a", "1.1"), ("b", "1.2")):
            rec = reg.register_plugin(importlib.import_module(f"gate_{who}"), name="gate",
                                      distribution=f"sarzoo-gate-{who}", version=version)
            assert rec.status == ("ok" if who == "a" else "shadowed"), rec
        assert watch.results == [["gate"], ["gate"]]
        assert reached == [["sarzoo-gate-a:gate"], ["sarzoo-gate-b:gate"]]
        assert [c.provenance.distribution for c in reg.components("attention")] == ["sarzoo-gate-a",
                                                                                    "sarzoo-gate-b"]


def test_pluggy_traces_hook_calls_to_the_plugins_logger_at_debug(site, caplog):
    caplog.set_level(logging.DEBUG, logger="sarzoo.plugins")
    with installed(site, env={"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": ""}):
        Registry()
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert "calling sarzoo_components of plugin 'sarzoo-gate-b:gate'" in debug
    assert "pluggy: sarzoo_components [hook]" in debug
    assert any(m.startswith("pluggy: finish sarzoo_components --> [[Component(kind='attention', "
                            "name='gate'") for m in debug), debug
    traced = run_cli("list", env=_env(SARZOO_TRACE_PLUGINS="1"))    # the CLI configures no logging
    assert traced.returncode == 0
    assert "calling sarzoo_components of plugin 'sarzoo:resnet'\npluggy: sarzoo_components [hook]\n" \
           in traced.stderr, traced.stderr


def test_nothing_is_written_to_home_on_import_recipe_loading_or_listing(site, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SARZOO_")}
    env.update(_env(site), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    load = subprocess.run([sys.executable, "-c", "import sarzoo; sarzoo.load_recipe('tiny')"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert load.returncode == 0, load.stderr
    listed = subprocess.run([sys.executable, "-m", "sarzoo", "list"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert listed.returncode == 0 and "gate" in listed.stdout, listed.stderr
    assert sorted(home.rglob("*")) == []


# -- strict and disabled ------------------------------------------------------------------------
def test_strict_mode_turns_any_plugin_failure_into_an_error(site):
    proc = run_cli("list", env=_env(site, SARZOO_STRICT_PLUGINS="1"))
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert err.startswith("sarzoo list: error: 9 plugin(s) failed and SARZOO_STRICT_PLUGINS is set: ")
    assert "plugin 'raises' from sarzoo-raises 0.2: registration failed: RuntimeError: boom" in err
    assert "SARZOO_DISABLE_PLUGINS=sarzoo-bad-name:bad-name," in err and "Traceback" not in err
    proc = run_cli("plugins", env=_env(site, SARZOO_STRICT_PLUGINS="1"))   # still lists, then fails
    assert proc.returncode == 2 and "sarzoo-raises" in proc.stdout
    assert "SARZOO_STRICT_PLUGINS is set" in proc.stderr
    fine = run_cli("list", env=_env(SARZOO_STRICT_PLUGINS="1"))            # nothing broken: fine
    assert fine.returncode == 0 and fine.stderr == ""


def test_disable_plugins_by_distribution_plugin_name_or_all(site, tmp_path):
    broken = ",".join(BAD_PLUGINS) + ",needs_lib"          # distribution names and a plugin name
    plugins = _plugins_json(_env(site, SARZOO_DISABLE_PLUGINS=broken))
    assert {d: r["status"] for d, r in plugins.items() if r["status"] != "ok"} == {
        **{d: "disabled" for d in BAD_PLUGINS}, "sarzoo-needs-lib": "disabled",
        "sarzoo-gate-a": "shadowed", "sarzoo-gate-b": "shadowed"}
    proc = run_cli("list", env=_env(site, SARZOO_DISABLE_PLUGINS=broken,
                                    SARZOO_STRICT_PLUGINS="1"))
    assert proc.returncode == 0 and proc.stderr == ""       # disabled is not failed
    proc = run_cli("plugins", "--json", env=_env(site, SARZOO_DISABLE_PLUGINS="sarzoo-gate-a:gate"))
    by_dist = {r["distribution"]: r for r in json.loads(proc.stdout)}
    assert by_dist["sarzoo-gate-a"]["status"] == "disabled"
    assert by_dist["sarzoo-gate-b"]["status"] == "ok"       # no collision left
    everything = _plugins_json(_env(site, SARZOO_DISABLE_PLUGINS="all"))
    assert {r["status"] for d, r in everything.items() if d != "sarzoo"} == {"disabled"}
    assert everything["sarzoo"]["status"] == "ok"           # `all` means third-party only
    proc = run_cli("build", _recipe(tmp_path, block="fancy"),
                   env=_env(site, SARZOO_DISABLE_PLUGINS="all"))
    assert proc.returncode == 2
    assert "block 'fancy' is provided by plugin 'needs_lib' from sarzoo-needs-lib 1.4, which is " \
           "turned off by SARZOO_DISABLE_PLUGINS=all (every third-party plugin)" in proc.stderr, proc.stderr


# -- collisions ---------------------------------------------------------------------------------
def test_collisions_are_listed_and_the_bare_name_is_an_error_naming_both(site, tmp_path):
    plugins = _plugins_json(_env(site))
    for who, other in (("a", "b"), ("b", "a")):
        rec = plugins[f"sarzoo-gate-{who}"]
        assert rec["status"] == "shadowed" and rec["components"][0]["name"] == "gate"
        assert rec["collisions"] == [
            f"attention 'gate' is also provided by sarzoo-gate-{other} 1.{ord(other) - 96}; recipes "
            "must name it 'sarzoo-gate-a:gate' or 'sarzoo-gate-b:gate'"]
    listed = json.loads(run_cli("list", "attention", "--json", env=_env(site)).stdout)
    assert [c["qualified_name"] for c in listed if c["name"] == "gate"] == [
        "sarzoo-gate-a:gate", "sarzoo-gate-b:gate"]
    table = run_cli("list", "attention", env=_env(site)).stdout
    assert "note: attention 'gate' is provided by 2 distributions; recipes must use " \
           "'sarzoo-gate-a:gate' or 'sarzoo-gate-b:gate'" in table
    proc = run_cli("build", _recipe(tmp_path, attention="gate"), env=_env(site))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].endswith(
        "key 'encoder.stage.attention.type': attention 'gate' is provided by more than one "
        "distribution (sarzoo-gate-a 1.1 and sarzoo-gate-b 1.2); choose one explicitly with the "
        "qualified name 'sarzoo-gate-a:gate' or 'sarzoo-gate-b:gate', e.g. `attention: {type: "
        "sarzoo-gate-a:gate}` in the recipe"), proc.stderr


def test_a_qualified_name_picks_one_distribution_in_a_recipe(site, tmp_path):
    # the distribution part compares as a normalised name: underscores and case do not matter
    recipe = _recipe(tmp_path, attention="{type: Sarzoo_Gate.b:gate}")
    proc = run_cli("build", recipe, "--json", env=_env(site))     # next to 9 broken plugins
    assert proc.returncode == 0, proc.stderr
    assert "sarzoo: plugin 'raises' from sarzoo-raises 0.2 failed to load" in proc.stderr
    used = {(c["kind"], c["name"], c["distribution"]) for c in json.loads(proc.stdout)["components"]}
    assert ("attention", "gate", "sarzoo-gate-b") in used
    assert not any(d == "sarzoo-gate-a" for _, _, d in used)
    with installed(site, env={"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": ""}):
        from sarzoo.registry import get_registry
        reg = get_registry()
        assert reg.get("attention", "sarzoo-gate-a:gate").description == "a channel gate from a"
        with pytest.raises(PluginError, match="more than one distribution"):
            reg.get("attention", "gate")
        with pytest.raises(SarzooError, match="sarzoo-gate-a provides no block of that name "
                                              r"\(its blocks: none\)"):
            reg.get("block", "sarzoo-gate-a:gate")
        with pytest.raises(SarzooError, match="no installed distribution 'nope' provides"):
            reg.get("attention", "nope:gate")


# -- third-party contracts before allocation, and third-party bugs ------------------------------
def test_third_party_contracts_are_checked_before_anything_is_allocated(site, tmp_path):
    marker = tmp_path / "allocated.txt"
    env = _env(site, PICKY_MARKER=str(marker))
    # stem conv (first-party) then picky stride 2 needs multiples of 8: 36 px is not
    proc = run_cli("build", _recipe(tmp_path, block="picky", size=36), env=env)
    assert proc.returncode == 2 and not marker.exists()
    assert "block 'picky' (from sarzoo-picky 0.9) at encoder.stage0.block0 needs a spatial size divisible " \
           "by 8 but receives 36×36" in proc.stderr, proc.stderr
    # first-party attention with an impossible option next to the third-party block: same errors
    proc = run_cli("build", _recipe(tmp_path, block="picky", attention="{type: cbam, kernel_size: 4}"),
                   env=env)
    assert proc.returncode == 2 and not marker.exists()
    assert "key 'encoder.stage.attention.kernel_size': option 'kernel_size' of attention 'cbam' " \
           "must be one of 3, 5, 7, 9, 11, got 4" in proc.stderr, proc.stderr
    proc = run_cli("build", _recipe(tmp_path, block="picky"), "--input-size", "40", "40", env=env)
    assert proc.returncode == 2 and not marker.exists()
    assert "needs a spatial size divisible by 8 but receives 20×20" in proc.stderr, proc.stderr


def test_third_party_bugs_are_reported_as_the_plugins_not_as_tracebacks(site, tmp_path):
    import torch

    import sarzoo

    env = {"SARZOO_DISABLE_PLUGINS": "", "SARZOO_STRICT_PLUGINS": "", "PICKY_MARKER": str(tmp_path / "m.txt")}
    with installed(site, env=env):
        model = sarzoo.build(str(_recipe(tmp_path, block="picky")))    # valid: it does build
        assert (tmp_path / "m.txt").read_text().count("allocated") == 4   # mirrored decoder too
        assert model(torch.rand(1, 1, 32, 32))[0].shape == (1, 1, 32, 32)
        with pytest.raises(SarzooError) as info:     # a contract that raises: while planning
            sarzoo.build(str(_recipe(tmp_path, block="bad_contract")))
        assert "r.yaml:7, key 'encoder.stages[0].block': block 'bad_contract' from sarzoo-picky 0.9 " \
               "(plugin 'picky'): its contract's check() raised KeyError: 'no_such_arg'. This is a " \
               "bug in sarzoo-picky, not in the recipe; `sarzoo check-plugin sarzoo-picky`" \
               in str(info.value), str(info.value)
        with pytest.raises(SarzooError, match="stage 'not_steps' from sarzoo-picky 0.9 "
                           r"\(plugin 'picky'\): its stage factory returned something other "
                           "than a list of sarzoo.interfaces.Step"):
            sarzoo.build(str(_recipe(tmp_path, block="{type: preact}")),
                         {"encoder.stage.compose": "not_steps"})
        with pytest.raises(PluginError) as info:     # a factory that raises: while building
            sarzoo.build(str(_recipe(tmp_path, block="{type: picky, explode: true}")))
        assert "block 'picky' from sarzoo-picky 0.9 (plugin 'picky'): building it at block0 " \
               "raised RuntimeError: picky exploded" in str(info.value), str(info.value)
        assert str(info.value).startswith("key 'encoder.stages[0].block'")


def test_build_names_the_component_whose_contract_lies(site, tmp_path):
    """The plan trusts contracts; the dummy forward pass of ``sarzoo build`` catches a lying one
    at the first layer that disagrees, instead of a conv error two layers later."""
    proc = run_cli("build", _recipe(tmp_path, block="liar"), env=_env(site))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "encoder.stage0.block0 (block 'liar' from sarzoo-picky 0.9, recipe key 'encoder.stages[0].block') " \
           "produced (9, 16, 16) for an input of (8, 32, 32), but its declared contract promises (8, 16, 16)" \
           in proc.stderr, proc.stderr


def test_the_python_api_gets_the_same_forward_pass_check(site, tmp_path):
    """``sarzoo.build()`` builds through the same ``model.build_model`` as the command: a lying
    contract is named there too, not left to fail later in someone's training loop."""
    import sarzoo

    with installed(site):
        with pytest.raises(PluginError) as info:
            sarzoo.build(_recipe(tmp_path, block="liar"))
    assert "block 'liar' from sarzoo-picky 0.9" in str(info.value)
    assert "but its declared contract promises (8, 16, 16)" in str(info.value)


# -- declarations checked at registration, results checked at build ------------------------------
DECLARES = '''
from sarzoo import hookimpl
from sarzoo.interfaces import Component, Option


def make(channels, **options):
    from torch import nn
    return nn.Identity()


@hookimpl
def sarzoo_components():
    return [Component("attention", {name!r}, make, {description}, options={{"k": {option}}})]
'''
MALFORMED = {  # distribution -> (component name, description, option, words the reason must contain)
    "sarzoo-choices-int": ("ch", "'x'", "Option(int, 3, 'd', choices=3)",
                           "option 'k': choices must be None or a list or tuple of values, got int 3"),
    "sarzoo-min-str": ("mn", "'x'", "Option(int, 3, 'd', min='a')",
                       "option 'k': min must be None or a finite number, got str 'a'"),
    "sarzoo-type-not-type": ("ty", "'x'", "Option(3, 3, 'd')",
                             "option 'k': type must be a type or a tuple of types, got 3"),
    "sarzoo-default-object": ("ob", "'x'", "Option(object, object(), 'd')",
                              "cannot be printed as JSON (`sarzoo list --json`, saved recipes)"),
    "sarzoo-default-lambda": ("la", "'x'", "Option(int, lambda: 1, 'd')",
                              "option 'k': its default must be an integer, got function <function"),
    "sarzoo-default-wrong": ("dw", "'x'", "Option(int, 9, 'd', max=4)",
                             "option 'k': its default must be <= 4, got 9"),
    "sarzoo-null-default": ("nd", "'x'", "Option(int, None, 'd')",
                            "option 'k': the default is None but the option is not nullable"),
    "sarzoo-nullable-str": ("ns", "'x'", "Option(int, 1, 'd', nullable='yes')",
                            "option 'k': nullable must be True or False, got 'yes'"),
    "sarzoo-doc-int": ("dc", "'x'", "Option(int, 1, 3)", "option 'k': doc must be a string, got int 3"),
    "sarzoo-description": ("de", "3", "Option(int, 1, 'd')",
                           "attention 'de': description must be a string, got int 3"),
}


def test_malformed_declarations_fail_at_registration_and_break_nothing_else(tmp_path):
    """A plugin whose Component or Option declaration is malformed is `failed` with the reason;
    `build tiny`, `list --json` and `plugins --json` keep working; a recipe using its declared name
    gets its error. Corrupt distribution metadata is reported, not raised."""
    for dist, (name, description, option, _) in MALFORMED.items():
        mod = _module(dist)
        write_distribution(tmp_path, dist, "0.5", plugins={"p": mod}, components={f"attention.{name}": mod},
                           modules={mod: DECLARES.format(name=name, description=description,
                                                         option=option)})
    info = write_distribution(tmp_path, "sarzoo-bad-utf8", "0.1", plugins={"p": "bad_utf8"},
                              modules={"bad_utf8": "raise ImportError('never imported')\n"})
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: sarzoo-bad-\xff\xfeutf8\nVersion: 0.1\n")
    # a malformed entry_points.txt breaks `import torch` itself (torch reads every distribution's
    # entry points), so it lives in a site of its own
    info = write_distribution(tmp_path / "eps", "sarzoo-bad-eps", "0.1")
    (info / "entry_points.txt").write_text("[sarzoo.plugins]\nno equals sign here\n")
    plugins = _plugins_json(_env(tmp_path, tmp_path / "eps"))
    for dist, (*_, reason) in MALFORMED.items():
        assert plugins[dist]["status"] == "failed", plugins[dist]
        assert reason in plugins[dist]["error"], (dist, plugins[dist]["error"])
    for folder in ("sarzoo_bad_utf8", "sarzoo-bad-eps"):
        rec = plugins[folder]
        assert rec["status"] == "failed" and "cannot be read" in rec["error"], rec
    assert "its installed METADATA cannot be read (UnicodeDecodeError" in plugins["sarzoo_bad_utf8"]["error"]
    assert "its installed entry_points.txt cannot be read" in plugins["sarzoo-bad-eps"]["error"]
    proc = run_cli("list", "--json", env=_env(tmp_path, tmp_path / "eps"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "preact" in {c["name"] for c in json.loads(proc.stdout)}
    # and a command that computes says so in one paragraph instead of a traceback from torch's import
    proc = run_cli("build", "tiny", env=_env(tmp_path, tmp_path / "eps"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "PyTorch cannot be imported" in proc.stderr and "`sarzoo plugins`" in proc.stderr
    env = _env(tmp_path)
    proc = run_cli("build", "tiny", "--set", "encoder.stage.attention=ch", env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "attention 'ch' is provided by plugin 'p' from sarzoo-choices-int 0.5, which failed to " \
           "load: registration failed: TypeError: attention 'ch': option 'k': choices must be" \
           in proc.stderr, proc.stderr
    proc = run_cli("build", "tiny", "--json", env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    json.loads(proc.stdout)


RESULTS = '''
import sys
from sarzoo import hookimpl
from sarzoo.interfaces import Component, Ref, Step


def identity(channels):
    from torch import nn
    return nn.Identity()


def bad_steps(stage):
    return [Step("block0", "block", Ref("preact"), {{"in_channels": stage.in_channels,
                                                    "out_channels": stage.out_channels,
                                                    "stride": "two"}})]


@hookimpl
def sarzoo_components():
    return [
        Component("attention", "gives_none", lambda channels: None, "factory returns None"),
        Component("attention", "gives_int", lambda channels: 3, "factory returns an int"),
        Component("attention", "gives_function", lambda channels: print, "factory returns a function"),
        Component("attention", "flat_shape", identity, "2-tuple shape", output_shape=lambda s, a: s[:2]),
        Component("attention", "wide_shape", identity, "breaks the rule",
                  output_shape=lambda s, a: (s[0] + 1, s[1], s[2])),
        Component("attention", "zero_multiple", identity, "input_multiple 0", input_multiple=lambda a: 0),
        Component("attention", "float_multiple", identity, "input_multiple 2.5",
                  input_multiple=lambda a: 2.5),
        Component("attention", "int_check", identity, "check returns 3", check=lambda a: 3),
        Component("attention", "exits", identity, "check exits", check=lambda a: sys.exit(3)),
        Component("stage", "bad_steps", bad_steps, "a step with stride 'two'"),
    ]
'''


@pytest.mark.parametrize("name, reason", [
    ("gives_none", "its factory returned NoneType None at attn0, not a torch.nn.Module"),
    ("gives_int", "its factory returned int 3 at attn0, not a torch.nn.Module"),
    ("gives_function", "its factory returned builtin_function_or_method <built-in function print>"),
    ("flat_shape", "its contract's output_shape() returned tuple (32, 32) for an input of (32, 32, 32), "
                   "not a (channels, height, width) tuple of positive ints"),
    ("wide_shape", "its contract's output_shape() returned (33, 32, 32) for an input of (32, 32, 32) "
                   "that its contract accepts, but an attention must produce (32, 32, 32) there"),
    ("zero_multiple", "its contract's input_multiple() returned int 0, not a positive int"),
    ("float_multiple", "its contract's input_multiple() returned float 2.5, not a positive int"),
    ("int_check", "its contract's check() returned int 3, not None or a str"),
    ("exits", "its contract's check() raised SystemExit: 3"),
    ("compose=bad_steps", "its stage factory returned step 'block0' with stride not a positive int"),
])
def test_what_factories_and_contracts_return_is_checked_when_a_recipe_uses_them(tmp_path, name, reason):
    """Factory and contract results only show on a recipe that uses the component: that recipe
    fails with exit status 2, naming the distribution, and nothing else is affected."""
    import contextlib
    import io

    from sarzoo.cli import main

    write_distribution(tmp_path, "sarzoo-results", "0.7", modules={"results": RESULTS.format()},
                       plugins={"results": "results"})
    key, value = ("encoder.stage.compose", name.split("=")[1]) if "=" in name else \
        ("encoder.stage.attention", name)
    err = io.StringIO()
    with installed(tmp_path, env={"SARZOO_STRICT_PLUGINS": None, "SARZOO_DISABLE_PLUGINS": None}):
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            assert main(["build", "tiny", "--set", f"{key}={value}"]) == 2
            assert main(["build", "tiny"]) == 0
    head = "attention" if "=" not in name else "stage"
    assert f"{head} '{value}' from sarzoo-results 0.7 (plugin 'results'): {reason}" in err.getvalue(), \
        err.getvalue()
    assert "This is a bug in sarzoo-results" in err.getvalue()


MUTATING = '''
from torch import nn
from sarzoo import hookimpl
from sarzoo.interfaces import Component


def make(in_channels, out_channels, stride):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


@hookimpl
def sarzoo_components():
    return [Component("block", "clearer", make, "its check() empties the arguments it is given",
                      check=lambda args: args.clear())]
'''


def test_a_contract_that_mutates_its_arguments_changes_nothing(tmp_path):
    """Found by the deep plugin fuzz: `check=lambda a: a.clear()` emptied the planner's own
    arguments (a KeyError later). Each contract call now gets its own copy."""
    import sarzoo

    write_distribution(tmp_path, "sarzoo-clearer", "0.1", plugins={"p": "clearer_mod"},
                       modules={"clearer_mod": MUTATING})
    with installed(tmp_path):
        model = sarzoo.build(_recipe(tmp_path, block="clearer"))
    assert model.count_parameters()["total"] > 0
