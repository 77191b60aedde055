"""sarzoo from a wheel, installed the ordinary way (not editable), away from the source tree.

An editable install reads everything from the checkout, so it hides whatever the wheel forgets:
the built-in recipes (package data), the first-party plugins' packages and their entry points.
Here the wheel is built, installed into its own directory and put first on ``PYTHONPATH``, so
its copy shadows the editable one, and the commands a user runs first are run from an empty
directory.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sarzoo.catalog import builtin_recipes

ROOT = Path(__file__).resolve().parent.parent
# The plugin packages that ship in sarzoo's own wheel (plugins/sarzoo-eca-convnext is a separate,
# third-party-style distribution with its own pyproject).
FIRST_PARTY = sorted(p.name for p in (ROOT / "plugins").glob("sarzoo_*") if (p / "__init__.py").is_file())

pytestmark = pytest.mark.slow


def _pip(*args, cwd=None):
    res = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=600)
    assert res.returncode == 0, f"pip {' '.join(args)}:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """(wheel, site, env): the built wheel, where it is installed, the environment that uses it."""
    tmp = tmp_path_factory.mktemp("packaging")
    # Built from a copy: an in-tree build would write build/ and *.egg-info into the checkout,
    # under the editable install's feet.
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "runs", "*.pt"))
    # Offline: the build backend is the venv's setuptools (the `test` extra asks for it).
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src))
    (wheel,) = (tmp / "dist").glob("sarzoo-*.whl")
    site = tmp / "site"
    _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
           # no plugin cache in the user's home; every plugin must load, none is switched off
           "SARZOO_CACHE_DIR": "", "SARZOO_STRICT_PLUGINS": "1", "SARZOO_DISABLE_PLUGINS": ""}
    return wheel, site, env


def _run(env, cwd, *args, timeout=600):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def _sarzoo(wheel_install, cwd, *args):
    res = _run(wheel_install[2], cwd, "-m", "sarzoo", *args)
    assert res.returncode == 0, f"sarzoo {' '.join(map(str, args))}:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_wheel_carries_recipes_and_plugin_entry_points(wheel_install):
    wheel = wheel_install[0]
    assert FIRST_PARTY
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (ep_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_file).decode()
    for recipe in builtin_recipes():
        assert f"sarzoo/recipes/{recipe.path.name}" in names, recipe.name
    assert not any(n.startswith("sarzoo/recipes/__init__") for n in names)  # data, not a package
    group = entry_points.split("[sarzoo.plugins]", 1)[1].split("\n[", 1)[0]
    targets = sorted(line.split("=", 1)[1].strip() for line in group.splitlines() if "=" in line)
    assert targets == FIRST_PARTY
    for pkg in FIRST_PARTY:
        assert f"{pkg}/__init__.py" in names, pkg


def test_the_wheel_copy_is_the_one_imported(wheel_install, tmp_path):
    site = wheel_install[1]
    code = ("import json, importlib, sarzoo.catalog; "
            f"mods = [importlib.import_module(m) for m in ['sarzoo'] + {FIRST_PARTY!r}]; "
            "print(json.dumps([m.__file__ for m in mods] + [str(sarzoo.catalog.builtin_dir())]))")
    res = _run(wheel_install[2], tmp_path, "-c", code)
    assert res.returncode == 0, res.stderr
    for f in json.loads(res.stdout):
        assert Path(f).resolve().is_relative_to(site.resolve()), f


def test_build_a_builtin_recipe_from_the_wheel(wheel_install, tmp_path):
    out = _sarzoo(wheel_install, tmp_path, "build", "res_cbam")
    assert "parameters   24,009,025 " in out
    # The blocks and attention come from the first-party plugins, found through the wheel's entry points.
    assert "preact×2 + cbam×2" in out and "interp" in out
    plugins = {p["entry_point"]: p for p in json.loads(_sarzoo(wheel_install, tmp_path, "plugins", "--json"))}
    for pkg in FIRST_PARTY:
        assert plugins[pkg]["distribution"] == "sarzoo" and plugins[pkg]["status"] == "ok", plugins.get(pkg)


def test_train_a_builtin_recipe_from_the_wheel(wheel_install, tmp_path):
    _sarzoo(wheel_install, tmp_path, "train", "tiny", "--max-steps", "2", "--out", "RUN")
    assert (tmp_path / "RUN" / "last.pt").is_file()


def test_list_the_builtin_recipes_from_the_wheel(wheel_install, tmp_path):
    out = _sarzoo(wheel_install, tmp_path, "recipes")
    lines = [line for line in out.splitlines() if line.startswith("tiny ")]
    assert len(lines) == 1, out
    tiny = lines[0]
    assert "Small pre-activation + CBAM autoencoder for CPU training and tests" in tiny
    path = Path(tiny.split()[-1])
    assert path.is_file() and path.resolve().is_relative_to(wheel_install[1].resolve())
