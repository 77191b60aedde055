"""Real installed distributions for tests, without pip: a ``*.dist-info`` with ``entry_points.txt``
and the plugin's modules written into a directory that is then put on ``sys.path``.

sarzoo discovers them exactly as it discovers a pip-installed package (``importlib.metadata``),
so tests of broken plugins, name collisions or disabled plugins exercise real discovery::

    from sarzoo.testing.dists import installed, write_distribution

    write_distribution(tmp_path, "my-plugin", "1.0",
                       modules={"my_plugin": SOURCE},
                       plugins={"mine": "my_plugin"},
                       components={"block.mine": "my_plugin"})
    with installed(tmp_path):
        reg = sarzoo.registry.get_registry()      # sees my-plugin 1.0

Torch-free.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Iterator, Mapping


def _dist_dir_name(name: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"


def write_distribution(site: str | os.PathLike, name: str, version: str = "1.0", *,
                       modules: Mapping[str, str] | None = None,
                       plugins: Mapping[str, str] | None = None,
                       components: Mapping[str, str] | None = None,
                       entry_points: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """Write distribution ``name`` ``version`` into ``site``; returns its dist-info folder.

    ``modules``: module name → source (``pkg.sub`` writes ``pkg/sub.py``, creating packages);
    ``plugins``: the ``sarzoo.plugins`` entry points (plugin name → module);
    ``components``: the ``sarzoo.components`` declarations ("KIND.NAME" → module);
    ``entry_points``: any other groups."""
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    for mod, source in (modules or {}).items():
        parts = mod.split(".")
        folder = site.joinpath(*parts[:-1])
        for i in range(1, len(parts)):
            pkg = site.joinpath(*parts[:i])
            pkg.mkdir(parents=True, exist_ok=True)
            init = pkg / "__init__.py"
            if not init.exists():
                init.write_text("")
        target = folder / f"{parts[-1]}.py"
        if (site.joinpath(*parts)).is_dir():
            target = site.joinpath(*parts) / "__init__.py"
        target.write_text(textwrap.dedent(source))
    info = site / _dist_dir_name(name, version)
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("sarzoo.testing\n")
    groups: dict[str, Mapping[str, str]] = {}
    if plugins:
        groups["sarzoo.plugins"] = plugins
    if components:
        groups["sarzoo.components"] = components
    groups.update(entry_points or {})
    text = ""
    for group, eps in groups.items():
        text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
    (info / "entry_points.txt").write_text(text)
    (info / "RECORD").write_text("")
    importlib.invalidate_caches()
    return info


def write_project_distribution(site: str | os.PathLike, project: str | os.PathLike) -> list[Path]:
    """Make a plugin's source folder discoverable as if ``pip install``-ed, without pip: write the
    dist-info its ``pyproject.toml`` describes (name, version, every entry-point group) into
    ``site``. Returns the folders to put on ``sys.path`` / ``PYTHONPATH``: ``site`` and the
    package root (``src/`` when ``tool.setuptools.packages.find.where`` says so).

    For a test suite that must not change the environment it runs in (CI installs only sarzoo)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
        import tomli as tomllib  # type: ignore[no-redef]
    project = Path(project).resolve()
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    proj = meta["project"]
    groups = {g: dict(eps) for g, eps in (proj.get("entry-points") or {}).items()}
    write_distribution(site, proj["name"], str(proj["version"]),
                       plugins=groups.pop("sarzoo.plugins", None),
                       components=groups.pop("sarzoo.components", None), entry_points=groups)
    where = (((meta.get("tool") or {}).get("setuptools") or {}).get("packages") or {}).get(
        "find", {}).get("where") or ["."]
    return [Path(site).resolve()] + [(project / w).resolve() for w in where]


@contextlib.contextmanager
def installed(*sites: str | os.PathLike, env: Mapping[str, str | None] | None = None) -> Iterator[None]:
    """Put ``sites`` first on ``sys.path`` (and set ``env`` variables) with a fresh process-wide
    registry; afterwards restore ``sys.path``, the environment, the previous registry, and forget
    the modules imported from ``sites``."""
    from sarzoo import registry

    paths = [os.fspath(Path(s).resolve()) for s in sites]
    saved_path = list(sys.path)
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    for k, v in (env or {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    sys.path[:0] = paths
    importlib.invalidate_caches()
    previous = registry._swap_registry(None)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for mod_name, mod in list(sys.modules.items()):
            f = getattr(mod, "__file__", None) or ""
            if any(f.startswith(p + os.sep) for p in paths):
                del sys.modules[mod_name]
        importlib.invalidate_caches()
        registry._swap_registry(previous)
