"""The recipe configuration, one owner: read (``source``), declared (``schema``), checked
(``values``) and resolved (``resolve``).

``load(recipe, overrides)`` is the one way from a recipe file, a built-in name or a dict to the
resolved recipe; ``load_with_origins`` also returns where every key came from, so later stages
(the planner) can name the file and line of a problem they find. Import-light: no torch.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from sarzoo.config.resolve import resolve, total_stride
from sarzoo.config.schema import SECTIONS, Field, defaults, iter_keys
from sarzoo.config.source import RawRecipe, apply_override, dump, find_recipe, keypath, load_raw

__all__ = ["load", "load_with_origins", "ResolvedRecipe", "resolve", "load_raw", "apply_override", "dump", "keypath",
           "find_recipe", "RawRecipe", "Field", "SECTIONS", "defaults", "iter_keys", "total_stride",
           "resolve_section"]


class ResolvedRecipe(NamedTuple):
    """A resolved recipe and the raw one it came from (which knows each key's file and line)."""

    recipe: dict[str, Any]
    raw: RawRecipe


def load_with_origins(recipe: str | Any | Mapping[str, Any], overrides=None,
                      extra: Mapping[str, Any] | None = None, source: str = "<dict>") -> ResolvedRecipe:
    """Read, inherit, override and resolve. ``extra``: ``{"a.b": v}`` applied after ``overrides``
    (what command-line flags such as ``--epochs`` stand for); ``source`` names a dict recipe in
    errors (e.g. the checkpoint it was stored in)."""
    raw = load_raw(recipe, overrides, source=source)
    for key, value in (extra or {}).items():
        apply_override(raw, key, value)
    return ResolvedRecipe(resolve(raw), raw)


def load(recipe: str | Any | Mapping[str, Any], overrides=None) -> dict[str, Any]:
    """The fully resolved recipe: inherited, overridden, validated, defaults and mirrors filled in."""
    return load_with_origins(recipe, overrides).recipe


def resolve_section(name: str, value: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One section (e.g. ``data``) checked and completed as it would be inside a recipe with
    default model sections; for code that uses a part of sarzoo without a recipe
    (``build_datasets({...})``). Resolving a resolved section returns it unchanged."""
    from sarzoo.config.resolve import resolve_section as _resolve

    return _resolve(name, load_raw({name: value}))
