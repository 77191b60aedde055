"""Which plugins are installed, what they declare, and which of them the environment turns off.

Discovery only reads installed metadata (``importlib.metadata``): it imports no plugin until
``load`` is called, and it writes nothing anywhere, so listing plugins or loading a recipe leaves
``$HOME`` and every other directory as it was.

Environment policy: ``SARZOO_STRICT_PLUGINS=1`` turns any plugin failure into a ``PluginError``;
``SARZOO_DISABLE_PLUGINS`` (comma list of plugin names, distribution names,
``distribution:plugin``, or ``all`` for every third-party plugin) turns plugins off unloaded;
``SARZOO_TRACE_PLUGINS=1`` logs every hook call (see ``sarzoo.registry.hooks``).
"""
from __future__ import annotations

import importlib.metadata as md
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from sarzoo import hookspecs
from sarzoo.interfaces import KINDS

FIRST_PARTY_DISTRIBUTION = "sarzoo"
#: entry-point group where a distribution may declare its component names ("KIND.NAME" = "MODULE")
DECLARATION_GROUP = "sarzoo.components"
STATUSES = ("ok", "shadowed", "failed", "disabled")


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name: ``Sarzoo_ECA.convnext`` → ``sarzoo-eca-convnext``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PluginRecord:
    """What ``sarzoo plugins`` shows for one entry point.

    ``status``: ``ok``; ``shadowed`` (loaded, but a component name or the distribution itself is
    also provided by another distribution, see ``collisions``); ``failed`` (``error`` says why);
    ``disabled`` (by ``SARZOO_DISABLE_PLUGINS``). ``declared``: the names its distribution declares
    for it in ``sarzoo.components``, the only names a failed or disabled plugin is blamed for.
    """

    name: str
    value: str
    distribution: str
    version: str
    status: str = "ok"
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)
    declared: list[tuple[str, str]] = field(default_factory=list)
    collisions: list[str] = field(default_factory=list)
    location: str | None = None

    @property
    def key(self) -> str:
        return f"{self.distribution}:{self.name}"

    @property
    def module(self) -> str:
        return self.value.split(":", 1)[0].split("[", 1)[0].strip()

    def as_dict(self) -> dict[str, Any]:
        """What ``sarzoo plugins --json`` prints for this plugin. Components are objects, not
        ``kind:name`` strings, which would read like the ``distribution:name`` of a recipe."""
        def pairs(items):
            return [{"kind": k, "name": n, "qualified_name": f"{self.distribution}:{n}"}
                    for k, n in items]
        return {"name": self.name, "entry_point": self.value, "distribution": self.distribution,
                "version": self.version, "status": self.status, "error": self.error,
                "components": pairs(self.components), "declared": pairs(self.declared),
                "collisions": list(self.collisions), "location": self.location}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Policy:
    """``strict`` and ``disabled`` as the registry applies them; ``from_env`` fills what the
    caller leaves None from ``SARZOO_STRICT_PLUGINS`` and ``SARZOO_DISABLE_PLUGINS``."""

    strict: bool
    disabled: frozenset[str]

    @classmethod
    def from_env(cls, strict: bool | None = None, disabled: Iterable[str] | None = None) -> Policy:
        if strict is None:
            strict = _env_flag("SARZOO_STRICT_PLUGINS")
        if disabled is None:
            raw = os.environ.get("SARZOO_DISABLE_PLUGINS", "")
            disabled = (p.strip() for p in raw.split(",") if p.strip())
        return cls(strict, frozenset(disabled))

    def turns_off(self, plugin: str, distribution: str) -> bool:
        d = normalize(distribution)
        for item in self.disabled:
            if item == "all" and d != FIRST_PARTY_DISTRIBUTION:
                return True
            if item == plugin or normalize(item) == d:
                return True
            if ":" in item:
                idist, iname = item.split(":", 1)
                if normalize(idist) == d and iname == plugin:
                    return True
        return False

    def disabled_setting(self) -> str:
        """The setting as the user wrote it, for messages that tell them what to change."""
        return os.environ.get("SARZOO_DISABLE_PLUGINS", ",".join(sorted(self.disabled)))


def sort_entry_points(eps: Iterable[md.EntryPoint]) -> list[md.EntryPoint]:
    return sorted(eps, key=lambda e: (normalize(e.dist.name) if e.dist else "", e.name))


def discover() -> tuple[list[md.EntryPoint], list[PluginRecord]]:
    """Entry points of every installed distribution, and a ``shadowed`` record for each plugin of
    a second copy of a distribution further down ``sys.path`` that would provide different plugins:
    Python imports the first copy, so that is the one used."""
    chosen: dict[str, tuple[md.Distribution, list[md.EntryPoint]]] = {}
    shadowed: list[tuple[md.Distribution, list[md.EntryPoint]]] = []
    for dist in md.distributions():
        try:
            name = dist.metadata["Name"]
            all_eps = dist.entry_points
        except Exception:  # a corrupt dist-info must not stop discovery
            continue
        if not name:
            continue
        eps = list(all_eps.select(group=hookspecs.ENTRY_POINT_GROUP))
        key = normalize(name)
        if key in chosen:
            if eps and {(e.name, e.value) for e in eps} != {(e.name, e.value) for e in chosen[key][1]}:
                shadowed.append((dist, eps))
            continue
        chosen[key] = (dist, eps)
    records = []
    for dist, eps in shadowed:
        first = chosen[normalize(dist.metadata["Name"])][0]
        for ep in eps:
            rec = PluginRecord(name=ep.name, value=ep.value, distribution=dist.metadata["Name"],
                               version=dist.version, status="shadowed", location=location(dist))
            rec.error = (f"another copy of {first.metadata['Name']} ({first.version}, at "
                         f"{location(first)}) comes first on sys.path and is the one used")
            records.append(rec)
    return sort_entry_points(ep for _, eps in chosen.values() for ep in eps), records


def record_for(ep: md.EntryPoint) -> PluginRecord:
    dist = ep.dist
    return PluginRecord(name=ep.name, value=ep.value,
                        distribution=dist.metadata["Name"] if dist is not None else "?",
                        version=dist.version if dist is not None else "?", location=location(dist))


def declared_names(rec: PluginRecord, dist: md.Distribution | None,
                   plugins_in_distribution: int) -> list[tuple[str, str]]:
    """The ``sarzoo.components`` declarations of ``rec``'s distribution that name this plugin (by
    module or entry-point name); with one plugin in the distribution, all of them. Read from the
    metadata without importing, so they are known even when the plugin's module cannot load."""
    if dist is None:
        return []
    try:
        eps = dist.entry_points.select(group=DECLARATION_GROUP)
    except Exception:  # a corrupt dist-info declares nothing
        return []
    decl = []
    for ep in eps:
        kind, _, cname = ep.name.strip().partition(".")
        if kind in KINDS and cname:
            decl.append((kind, cname, ep.value.strip()))
    mine = [(k, n) for k, n, v in decl if v in (rec.module, rec.name)]
    if not mine and plugins_in_distribution <= 1:
        mine = [(k, n) for k, n, _ in decl]  # one plugin: every declaration is its own
    return mine


def location(dist: md.Distribution | None) -> str | None:
    path = getattr(dist, "_path", None)
    return os.path.abspath(str(path)) if path is not None else None
