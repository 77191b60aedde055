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
from sarzoo.errors import describe
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
    return sorted(eps, key=lambda e: (normalize(dist_name(e.dist)) if e.dist else "", e.name))


def _text(value: Any) -> str | None:
    """A metadata field as a non-empty string, or None (missing, or not text)."""
    return (value.strip() or None) if isinstance(value, str) else None


def dist_name(dist: md.Distribution | None) -> str:
    """The distribution's name, or ``"?"`` when its metadata cannot be read; never raises."""
    try:
        return (_text(dist.metadata["Name"]) or "?") if dist is not None else "?"
    except Exception:  # undecodable or corrupt METADATA
        return "?"


def dist_version(dist: md.Distribution | None) -> str:
    """The distribution's version, or ``"?"``; never raises."""
    try:
        return (_text(dist.version) or "?") if dist is not None else "?"
    except Exception:
        return "?"


def _declares_plugins(dist: md.Distribution) -> bool:
    """Whether a dist-info whose entry points cannot be parsed mentions sarzoo's group at all:
    only then is it a (broken) sarzoo plugin worth reporting rather than somebody else's problem."""
    path = getattr(dist, "_path", None)
    try:
        raw = (path / "entry_points.txt").read_bytes() if path is not None else b""
    except Exception:
        return False
    return f"[{hookspecs.ENTRY_POINT_GROUP}]".encode() in raw


def _fallback_name(dist: md.Distribution) -> str:
    """A name for a distribution whose metadata cannot be read: its dist-info folder's."""
    path = getattr(dist, "_path", None)
    stem = getattr(path, "name", "") or "?"
    for suffix in (".dist-info", ".egg-info"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


def discover() -> tuple[list[md.EntryPoint], list[PluginRecord]]:
    """Entry points of every installed distribution, and records for the plugins that cannot be
    loaded from there: ``shadowed`` for each plugin of a second copy of a distribution further down
    ``sys.path`` that would provide different plugins (Python imports the first copy, so that is the
    one used), ``failed`` for a distribution that declares sarzoo plugins in metadata that cannot be
    read (undecodable ``METADATA``, malformed ``entry_points.txt``). Never raises."""
    chosen: dict[str, tuple[md.Distribution, list[md.EntryPoint]]] = {}
    shadowed: list[tuple[md.Distribution, list[md.EntryPoint]]] = []
    records = []
    try:
        dists = list(md.distributions())
    except Exception:  # a path entry importlib.metadata cannot walk
        dists = []
    for dist in dists:
        name, stage = None, "METADATA"
        try:
            name = _text(dist.metadata["Name"])
            stage = "entry_points.txt"
            eps = [ep for ep in dist.entry_points.select(group=hookspecs.ENTRY_POINT_GROUP)
                   if isinstance(ep.name, str) and isinstance(ep.value, str)]
            stage = "METADATA"
            version = _text(dist.version)
            if eps and name is None:
                raise ValueError("it has no Name")
            if eps and version is None:
                raise ValueError("it has no Version")
        except Exception as exc:  # a corrupt dist-info must not stop discovery
            if _declares_plugins(dist):
                fallback = name or _fallback_name(dist)
                error = f"its installed {stage} cannot be read ({describe(exc)}); reinstall it"
                if stage == "entry_points.txt":
                    error += (" (an unreadable entry_points.txt also breaks every other program that "
                              "reads entry points, `import torch` included)")
                records.append(PluginRecord(
                    name=fallback, value="?", distribution=fallback, version="?", status="failed",
                    location=location(dist), error=error))
            continue
        if not name:
            continue
        key = normalize(name)
        if key in chosen:
            if eps and {(e.name, e.value) for e in eps} != {(e.name, e.value) for e in chosen[key][1]}:
                shadowed.append((dist, eps))
            continue
        chosen[key] = (dist, eps)
    for dist, eps in shadowed:
        first = chosen[normalize(dist_name(dist))][0]
        for ep in eps:
            rec = PluginRecord(name=ep.name, value=ep.value, distribution=dist_name(dist),
                               version=dist_version(dist), status="shadowed", location=location(dist))
            rec.error = (f"another copy of {dist_name(first)} ({dist_version(first)}, at "
                         f"{location(first)}) comes first on sys.path and is the one used")
            records.append(rec)
    return sort_entry_points(ep for _, eps in chosen.values() for ep in eps), records


def record_for(ep: md.EntryPoint) -> PluginRecord:
    dist = ep.dist
    return PluginRecord(name=ep.name, value=ep.value, distribution=dist_name(dist),
                        version=dist_version(dist), location=location(dist))


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
        if not isinstance(ep.name, str) or not isinstance(ep.value, str):
            continue
        kind, _, cname = ep.name.strip().partition(".")
        if kind in KINDS and cname:
            decl.append((kind, cname, ep.value.strip()))
    mine = [(k, n) for k, n, v in decl if v in (rec.module, rec.name)]
    if not mine and plugins_in_distribution <= 1:
        mine = [(k, n) for k, n, _ in decl]  # one plugin: every declaration is its own
    return mine


def location(dist: md.Distribution | None) -> str | None:
    path = getattr(dist, "_path", None)
    try:
        return os.path.abspath(str(path)) if path is not None else None
    except Exception:
        return None
