"""The example third-party plugin (plugins/sarzoo-eca-convnext) works with no change to sarzoo.

The test environment installs only sarzoo, so the example is made discoverable the way pip would:
its ``pyproject.toml`` becomes a real ``*.dist-info`` (entry points included) on ``PYTHONPATH``
next to its ``src/``. Everything then runs in subprocesses through ordinary discovery: its
components are listed, its recipe builds, a bad recipe mixing it with first-party components gets
the same keyed errors before allocation, the property tests of ``test_components_properties.py``
pick its components up, and its own test suite (conformance one-liner, its recipe building and
training) passes when run in its own folder."""
import json
import os
import subprocess
import sys

import pytest

from sarzoo.testing.dists import write_project_distribution

from .conftest import ROOT, run_cli

EXAMPLE = ROOT / "plugins" / "sarzoo-eca-convnext"
RECIPE = EXAMPLE / "recipes" / "convnext_eca.yaml"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    paths = write_project_distribution(tmp_path_factory.mktemp("example_site"), EXAMPLE)
    return {"PYTHONPATH": os.pathsep.join([*map(str, paths), os.environ.get("PYTHONPATH", "")]),
            "SARZOO_STRICT_PLUGINS": "1", "SARZOO_DISABLE_PLUGINS": ""}


def test_the_example_is_listed_with_its_components(env):
    proc = run_cli("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    [rec] = [r for r in json.loads(proc.stdout) if r["distribution"] == "sarzoo-eca-convnext"]
    assert rec["version"] == "0.1.0" and rec["status"] == "ok" and rec["name"] == "eca_convnext"
    assert {(c["kind"], c["name"]) for c in rec["components"]} == {("attention", "eca"),
                                                                   ("block", "convnext")}
    assert rec["declared"] == rec["components"]       # its sarzoo.components declarations
    listed = json.loads(run_cli("list", "--json", env=env).stdout)
    assert {(c["kind"], c["name"]) for c in listed
            if c["distribution"] == "sarzoo-eca-convnext"} == {("attention", "eca"),
                                                               ("block", "convnext")}


@pytest.mark.parametrize("args, message", [
    (["--input-size", "60", "60"], "key 'input.size': input size 60×60 is not a multiple of the "
                                   "encoder's total stride 8; use e.g. 56×56"),
    (["--set", "encoder.stage.attention={type: eca, kernel_size: 4}"],
     "key 'encoder.stages[0].attention': attention 'eca': kernel_size must be odd (or null for "
     "the adaptive size), got 4"),
    (["--set", "encoder.stage.block.kernel_size=4"],
     "key 'encoder.stage.block.kernel_size': option 'kernel_size' of block 'convnext' must be one "
     "of 3, 5, 7, got 4"),
    (["--set", "encoder.stage.block.drop_path=two"],
     "key 'encoder.stage.block.drop_path': option 'drop_path' of block 'convnext' must be a number, "
     "got str 'two'"),
    (["--set", "encoder.stage.attention.gama=3"],
     "attention 'eca' has no option 'gama'"),
])
def test_bad_recipes_with_it_get_the_same_clean_errors(env, args, message):
    """Checked through its contract and options before any weight exists, exit status 2."""
    proc = run_cli("build", RECIPE, *args, env=env)
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith("sarzoo build: error: ") and "Traceback" not in proc.stderr
    assert message in proc.stderr, proc.stderr


def test_the_registry_wide_property_tests_pick_it_up(env):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
         str(ROOT / "tests" / "test_components_properties.py"), "-k", "sarzoo-eca-convnext"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PASSED tests/test_components_properties.py::test_layer_component_properties" \
           "[attention:sarzoo-eca-convnext:eca]" in out
    assert "[block:sarzoo-eca-convnext:convnext]" in out


def test_its_own_tests_pass_in_its_folder(env):
    """Its conformance one-liner (sarzoo's pytest11 plugin), its recipe building and training."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                           "--sarzoo-cases", "4"],
                          capture_output=True, text=True, cwd=EXAMPLE, env={**os.environ, **env},
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "PASSED tests/test_conformance.py::test_sarzoo_conformance[attention:eca]" in out
    assert "PASSED tests/test_conformance.py::test_sarzoo_conformance[block:convnext]" in out
    assert "PASSED tests/test_recipe.py::test_recipe_trains" in out
