"""The pluggy hook specification: the one function a plugin implements.

A plugin is a plain module (or object) with ``@sarzoo.hookimpl`` functions, exposed through an
entry point in the ``sarzoo.plugins`` group. First-party components use exactly this path.
"""
from __future__ import annotations

import pluggy

PROJECT = "sarzoo"
ENTRY_POINT_GROUP = "sarzoo.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sarzoo_components() -> list:
    """Return the ``sarzoo.interfaces.Component`` objects this plugin provides."""
