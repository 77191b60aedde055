"""sarzoo: a plugin-registry model zoo of autoencoders for SAR images.

Importing sarzoo is cheap (no torch): the API functions import what they need when called.
"""
from __future__ import annotations

from sarzoo.hookspecs import ENTRY_POINT_GROUP, hookimpl

__version__ = "0.1.0"
__all__ = ["build", "load_recipe", "hookimpl", "ENTRY_POINT_GROUP", "__version__"]


def build(recipe, overrides=None):
    """Build the model a recipe (path or dict) describes. ``overrides``: ``{"a.b": v}`` or ``["a.b=v"]``."""
    from sarzoo.builder import build as _build

    return _build(recipe, overrides)


def load_recipe(recipe, overrides=None) -> dict:
    """The fully resolved recipe (inherited, overridden, validated, defaults and mirror filled in)."""
    from sarzoo.recipes import load_recipe as _load

    return _load(recipe, overrides)
