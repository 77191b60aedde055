"""The recipes that ship with sarzoo, found wherever sarzoo is installed.

They live in the package (``sarzoo/recipes/*.yaml``, package data) and are located through
``importlib.resources`` rather than a path relative to the source checkout, so that a built-in
name such as ``tiny`` works the same after ``pip install .`` as in an editable install.
Import-light (no torch, no numpy): ``sarzoo recipes`` and recipe loading use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import yaml

SUFFIX = ".yaml"


@dataclass(frozen=True)
class BuiltinRecipe:
    name: str
    description: str
    path: Path


def builtin_dir() -> Path:
    """The directory holding the built-in recipes (a real directory: sarzoo is never run zipped)."""
    return Path(str(files("sarzoo") / "recipes"))


def builtin_names() -> list[str]:
    """Sorted names without reading the files, for error messages that list what exists."""
    d = builtin_dir()
    return sorted(p.stem for p in d.glob(f"*{SUFFIX}") if p.is_file()) if d.is_dir() else []


def find_builtin(name: str) -> Path | None:
    """The file of the built-in recipe ``name``, or None.

    Only a bare name qualifies: anything with a directory part or a suffix is a path, and must not
    reach outside the built-in directory.
    """
    if not name or Path(name).name != name or name.startswith(".") or Path(name).suffix:
        return None
    path = builtin_dir() / f"{name}{SUFFIX}"
    return path if path.is_file() else None


def _description(path: Path) -> str:
    # A broken file still gets listed (with no description): the listing is how one finds it;
    # loading it reports the error with its line.
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    desc = data.get("description") if isinstance(data, dict) else None
    return " ".join(str(desc).split()) if desc is not None else ""


def builtin_recipes() -> list[BuiltinRecipe]:
    """Every built-in recipe, sorted by name, with the ``description:`` its own file gives."""
    d = builtin_dir()
    return [BuiltinRecipe(name, _description(d / f"{name}{SUFFIX}"), d / f"{name}{SUFFIX}")
            for name in builtin_names()]
