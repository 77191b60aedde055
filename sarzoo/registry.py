"""Discovery of component plugins through entry points, with provenance for every component.

Every component, first-party or not, arrives the same way: an entry point in the
``sarzoo.plugins`` group names a module holding a ``sarzoo_components`` hookimpl. A plugin that
fails to import or register is recorded with its reason and skipped, so one broken package never
takes the others down; ``SARZOO_STRICT_PLUGINS=1`` makes such failures fatal instead.
"""
from __future__ import annotations

import difflib
import functools
import importlib.metadata as md
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pluggy

from sarzoo import hookspecs
from sarzoo.errors import PluginError, SarzooError
from sarzoo.interfaces import KINDS, Component, Provenance


@dataclass
class PluginRecord:
    """What ``sarzoo plugins`` shows for one entry point."""

    name: str
    value: str
    distribution: str
    version: str
    status: str = "ok"          # ok | failed | disabled
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entry_point": self.value, "distribution": self.distribution,
                "version": self.version, "status": self.status, "error": self.error,
                "components": [f"{k}:{n}" for k, n in self.components]}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _disabled_set() -> set[str]:
    raw = os.environ.get("SARZOO_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


FIRST_PARTY_DISTRIBUTION = "sarzoo"


class Registry:
    """All components found at construction time, queryable by kind and name."""

    def __init__(self, entry_points: Iterable[md.EntryPoint] | None = None, *,
                 strict: bool | None = None, disabled: set[str] | None = None):
        self.strict = _env_flag("SARZOO_STRICT_PLUGINS") if strict is None else strict
        self.disabled = _disabled_set() if disabled is None else disabled
        self.plugins: dict[str, PluginRecord] = {}
        self._components: dict[tuple[str, str], list[Component]] = {}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        if entry_points is None:
            entry_points = md.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
        for ep in sorted(entry_points, key=lambda e: (e.dist.name if e.dist else "", e.name)):
            self._load_entry_point(ep)

    # -- discovery -------------------------------------------------------------------------
    def _is_disabled(self, name: str, dist: str) -> bool:
        if name in self.disabled or dist in self.disabled:
            return True
        return "all" in self.disabled and dist != FIRST_PARTY_DISTRIBUTION

    def _load_entry_point(self, ep: md.EntryPoint) -> None:
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        key = f"{dist}:{ep.name}"
        record = PluginRecord(name=ep.name, value=ep.value, distribution=dist, version=version)
        self.plugins[key] = record
        if self._is_disabled(ep.name, dist):
            record.status = "disabled"
            return
        try:
            module = ep.load()
        except Exception as exc:  # a third-party import can raise anything
            self._fail(record, f"import of '{ep.value}' failed: {type(exc).__name__}: {exc}")
            return
        self.register_plugin(module, name=ep.name, distribution=dist, version=version,
                             record=record)

    def register_plugin(self, plugin: Any, *, name: str, distribution: str = "<local>",
                        version: str = "?", record: PluginRecord | None = None) -> PluginRecord:
        """Register a plugin object directly (tests, notebooks); entry points use the same path."""
        if record is None:
            record = PluginRecord(name=name, value=repr(plugin), distribution=distribution,
                                  version=version)
            self.plugins[f"{distribution}:{name}"] = record
        try:
            self._pm.register(plugin, name=f"{distribution}:{name}")
            impls = [i for i in self._pm.hook.sarzoo_components.get_hookimpls()
                     if i.plugin is plugin]
            found: list[Component] = []
            for impl in impls:
                result = impl.function()
                for comp in result or []:
                    if not isinstance(comp, Component):
                        raise TypeError(f"sarzoo_components returned {type(comp).__name__}, "
                                        "not sarzoo.interfaces.Component")
                    found.append(comp)
        except Exception as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self._fail(record, f"registration failed: {type(exc).__name__}: {exc}")
            return record
        module_name = getattr(plugin, "__name__", type(plugin).__name__)
        for comp in found:
            comp.provenance = Provenance(plugin=name, module=getattr(comp.factory, "__module__", module_name),
                                         distribution=distribution, version=version)
            self._components.setdefault((comp.kind, comp.name), []).append(comp)
            record.components.append((comp.kind, comp.name))
        return record

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status, record.error = "failed", reason
        if self.strict:
            raise PluginError(f"plugin '{record.name}' from {record.distribution} {record.version} "
                              f"{reason} (SARZOO_STRICT_PLUGINS is set)")

    # -- queries ---------------------------------------------------------------------------
    def components(self, kind: str | None = None) -> list[Component]:
        out = [c for (k, _), cs in sorted(self._components.items()) for c in cs
               if kind is None or k == kind]
        return out

    def names(self, kind: str) -> list[str]:
        return sorted({n for (k, n) in self._components if k == kind})

    def failed_plugins(self) -> list[PluginRecord]:
        return [r for r in self.plugins.values() if r.status == "failed"]

    def get(self, kind: str, name: str) -> Component:
        """Look a component up by bare name or ``distribution:name``; errors explain and suggest."""
        if kind not in KINDS:
            raise SarzooError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        dist = None
        bare = name
        if ":" in name:
            dist, bare = name.split(":", 1)
        candidates = self._components.get((kind, bare), [])
        if dist is not None:
            candidates = [c for c in candidates if c.provenance.distribution == dist]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            options = ", ".join(f"'{c.qualified_name}'" for c in candidates)
            dists = " and ".join(f"{c.provenance.distribution} {c.provenance.version}"
                                 for c in candidates)
            raise SarzooError(f"{kind} '{name}' is provided by more than one distribution "
                              f"({dists}); choose one explicitly with {options}")
        raise SarzooError(self._unknown_message(kind, name))

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        msg = f"unknown {kind} '{name}'"
        close = difflib.get_close_matches(name.split(":")[-1], known, n=3, cutoff=0.5)
        if close:
            msg += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        msg += f" Registered {kind}s: {', '.join(known) if known else '(none)'}."
        for rec in self.failed_plugins():
            msg += (f" Note: plugin '{rec.name}' from {rec.distribution} {rec.version} failed to "
                    f"load ({rec.error}); the name may come from it.")
        return msg


@functools.lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry, discovered once."""
    return Registry()


def reset_registry() -> None:
    """Forget the cached registry (after installing a plugin in-process, or in tests)."""
    get_registry.cache_clear()
