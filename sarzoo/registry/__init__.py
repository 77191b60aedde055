"""Component plugins, found through entry points, with provenance for every component.

Every component, first-party or not, arrives the same way: an entry point in the
``sarzoo.plugins`` group names a module holding a ``sarzoo_components`` hookimpl. The package
has one concept per module:

- ``discovery``: installed entry points, ``PluginRecord``, declarations, the environment policy
  (``SARZOO_STRICT_PLUGINS``, ``SARZOO_DISABLE_PLUGINS``);
- ``hooks``: registration with pluggy and hook calls through it, one plugin at a time;
- ``table``: validated components by kind and name, collisions, qualified names;
- ``diagnostics``: what a name nobody registered gets: its failed plugin's error, or "unknown".

``Registry`` ties them together. Discovery survives failures: a plugin that fails to import or to
register is recorded with its distribution, version and reason, logged once as a warning, and
skipped, and everything else keeps working. Nothing is cached or written anywhere: each process
discovers afresh from the installed metadata.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
from collections import Counter
from typing import Any, Iterable

from pluggy import PluginValidationError

from sarzoo.errors import PluginError, SarzooError, describe
from sarzoo.interfaces import Component, Provenance
from sarzoo.registry import diagnostics
from sarzoo.registry.discovery import (
    DECLARATION_GROUP,
    FIRST_PARTY_DISTRIBUTION,
    STATUSES,
    PluginRecord,
    Policy,
    _env_flag,
    declared_names,
    discover,
    dist_name,
    normalize,
    record_for,
    sort_entry_points,
)
from sarzoo.registry.hooks import Hooks
from sarzoo.registry.table import ComponentTable, split_name, validate

__all__ = ["Registry", "get_registry", "reset_registry", "normalize", "PluginRecord", "FIRST_PARTY_DISTRIBUTION",
           "DECLARATION_GROUP", "STATUSES", "_env_flag"]

log = logging.getLogger("sarzoo.plugins")


class Registry:
    """All components found at construction time, queryable by kind and name.

    ``entry_points``: use these instead of discovering the installed ones (their ``dist`` gives the
    distribution). ``strict``/``disabled`` default to ``SARZOO_STRICT_PLUGINS`` and
    ``SARZOO_DISABLE_PLUGINS``.
    """

    def __init__(self, entry_points: Iterable[md.EntryPoint] | None = None, *,
                 strict: bool | None = None, disabled: set[str] | None = None):
        self.policy = Policy.from_env(strict, disabled)
        self.plugins: dict[str, PluginRecord] = {}
        self._hooks = Hooks()
        self._table = ComponentTable()
        if entry_points is None:
            eps, shadowed_copies = discover()
            self.plugins.update((f"{r.key}@{r.location}", r) for r in shadowed_copies)
        else:
            eps = sort_entry_points(entry_points)
        plugins_per_dist = Counter(normalize(dist_name(ep.dist)) for ep in eps)
        for ep in eps:
            self._load_entry_point(ep, plugins_per_dist)
        failed = self.failed_plugins()
        for rec in failed if not self.strict else []:  # strict: the PluginError says it all
            log.warning("sarzoo: plugin '%s' from %s %s failed to load: %s. It is skipped; "
                        "see `sarzoo plugins`, or turn it off with SARZOO_DISABLE_PLUGINS=%s",
                        rec.name, rec.distribution, rec.version, rec.error, rec.key)
        if failed and self.strict:
            lines = "; ".join(f"plugin '{r.name}' from {r.distribution} {r.version}: {r.error}"
                              for r in failed)
            raise PluginError(f"{len(failed)} plugin(s) failed and SARZOO_STRICT_PLUGINS is set: "
                              f"{lines}. Fix or uninstall them, or turn them off with "
                              f"SARZOO_DISABLE_PLUGINS={','.join(r.key for r in failed)}.")

    @property
    def strict(self) -> bool:
        return self.policy.strict

    @property
    def disabled(self) -> frozenset[str]:
        return self.policy.disabled

    @property
    def plugin_manager(self):
        """The pluggy ``PluginManager`` every plugin is registered with: add hookwrappers or
        ``add_hookcall_monitoring`` here to watch the calls ``register_plugin`` makes."""
        return self._hooks.pm

    # -- loading ---------------------------------------------------------------------------
    def _load_entry_point(self, ep: md.EntryPoint, plugins_per_dist: Counter[str]) -> None:
        record = record_for(ep)
        self.plugins[record.key] = record
        record.declared = declared_names(record, ep.dist, plugins_per_dist[normalize(record.distribution)])
        if self.policy.turns_off(record.name, record.distribution):
            record.status, record.error = "disabled", "turned off by SARZOO_DISABLE_PLUGINS"
            return
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # a third-party import can raise anything
            record.status, record.error = "failed", f"import of '{ep.value}' failed: {describe(exc, whole=True)}"
            return
        self._register(module, record)

    def register_plugin(self, plugin: Any, *, name: str, distribution: str = "<local>",
                        version: str = "?") -> PluginRecord:
        """Register a plugin object directly (tests, notebooks); entry points use the same path.

        A plugin whose hookimpl does not match the hookspec, whose hook raises, returns something
        that is not a list of valid ``Component`` s, returns no component at all, or repeats a
        name its distribution already registered is recorded as failed and contributes nothing.
        """
        record = PluginRecord(name=name, value=repr(plugin), distribution=distribution, version=version)
        self.plugins[record.key] = record
        self._register(plugin, record)
        return record

    def _register(self, plugin: Any, record: PluginRecord) -> None:
        try:
            self._hooks.register(plugin, name=record.key)
        except PluginValidationError as exc:
            record.status = "failed"
            record.error = (f"registration failed: its hookimpl does not match the hookspec "
                            f"sarzoo_components() (sarzoo/hookspecs.py): {describe(exc, whole=True)}")
            return
        except (Exception, SystemExit) as exc:
            record.status, record.error = "failed", f"registration failed: {describe(exc, whole=True)}"
            return
        try:
            if not self._hooks.implements(plugin):
                raise LookupError(f"'{getattr(plugin, '__name__', plugin)}' has no "
                                  "@sarzoo.hookimpl sarzoo_components() function")
            found = validate(self._hooks.call(plugin))
            self._table.check_new(found, record.distribution)
        except (Exception, SystemExit) as exc:
            self._hooks.unregister(plugin)
            record.status, record.error = "failed", f"registration failed: {describe(exc, whole=True)}"
            return
        module_name = getattr(plugin, "__name__", type(plugin).__name__)
        for comp in found:
            comp.provenance = Provenance(plugin=record.name,
                                         module=getattr(comp.factory, "__module__", None) or module_name,
                                         distribution=record.distribution, version=record.version)
            record.components.append((comp.kind, comp.name))
        self._table.add(found)
        record.status, record.error = "ok", None
        self._mark_collisions()

    def _mark_collisions(self) -> None:
        for rec in self.plugins.values():
            if rec.components:
                rec.status = "ok"
                rec.collisions = []
        for (kind, name), comps in self._table.collisions().items():
            for comp in comps:
                rec = self.plugins.get(f"{comp.provenance.distribution}:{comp.provenance.plugin}")
                if rec is None:
                    continue
                others = [c for c in comps if c is not comp]
                rec.status = "shadowed"
                rec.collisions.append(
                    f"{kind} '{name}' is also provided by "
                    + ", ".join(f"{c.provenance.distribution} {c.provenance.version}" for c in others)
                    + "; recipes must name it " + " or ".join(f"'{c.qualified_name}'" for c in comps))

    # -- queries ---------------------------------------------------------------------------
    def components(self, kind: str | None = None) -> list[Component]:
        return self._table.components(kind)

    def names(self, kind: str) -> list[str]:
        return self._table.names(kind)

    def collisions(self) -> dict[tuple[str, str], list[Component]]:
        """Every (kind, name) that more than one distribution provides."""
        return self._table.collisions()

    def failed_plugins(self) -> list[PluginRecord]:
        return [r for r in self.plugins.values() if r.status == "failed"]

    def records(self, distribution: str | None = None) -> list[PluginRecord]:
        """Every plugin record, or those of one distribution (normalised name match)."""
        recs = sorted(self.plugins.values(), key=lambda r: (normalize(r.distribution), r.name,
                                                             r.location or ""))
        if distribution is None:
            return recs
        return [r for r in recs if normalize(r.distribution) == normalize(distribution)]

    def distributions(self) -> list[str]:
        return sorted({r.distribution for r in self.plugins.values()}, key=normalize)

    def get(self, kind: str, name: str) -> Component:
        """Look a component up by bare name or ``distribution:name``; errors explain and suggest."""
        comp = self._table.get(kind, name)
        if comp is not None:
            return comp
        dist, bare = split_name(name)
        records = self.records()
        culprit = diagnostics.attribute(kind, bare, dist, records, self.policy)
        if culprit is not None:
            raise PluginError(culprit)
        raise SarzooError(diagnostics.unknown_message(kind, name, dist, self._table, records))


_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, discovered once (until ``reset_registry``)."""
    global _current
    if _current is None:
        _current = Registry()
    return _current


def reset_registry() -> None:
    """Forget the process-wide registry (after installing a plugin in-process, or in tests)."""
    global _current
    _current = None
    importlib.invalidate_caches()


def _swap_registry(registry: Registry | None) -> Registry | None:
    """Install ``registry`` (or None: rediscover on next use) as the process-wide one and return
    the previous one; ``sarzoo.testing.dists.installed`` uses it to restore state after a test."""
    global _current
    previous, _current = _current, registry
    return previous
