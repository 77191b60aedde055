"""The component table: every registered component by (kind, name), with its provenance.

A component is checked before it enters the table (``validate``), so a plugin that returns
something unusable fails at registration, naming the plugin, instead of inside a build later.

Name collisions are never silent: two distributions providing the same kind and name both stay in
the table, the bare name is an error naming both, and ``distribution:name`` picks one
(distribution names compare as PEP 503 normalised names).
"""
from __future__ import annotations

import re
import types
from typing import Any

from sarzoo.errors import PluginError, SarzooError
from sarzoo.interfaces import KINDS, Component
from sarzoo.registry.discovery import normalize
from sarzoo.registry.validation import check_component

_NAME_RE = re.compile(r"^[^\s:]+$")


def validate(results: list[Any]) -> list[Component]:
    """The components in one plugin's hook results; raises on anything that is not a valid one,
    or on a name the plugin returns twice."""
    found: list[Component] = []
    seen: set[tuple[str, str]] = set()
    for result in results:
        if not isinstance(result, (list, tuple)):
            raise TypeError(f"sarzoo_components must return a list of Components, got "
                            f"{type(result).__name__}")
        found += [_validate(c, seen) for c in result]
    if not found:
        raise LookupError("sarzoo_components returned no component")
    return found


def _validate(comp: Any, seen: set[tuple[str, str]]) -> Component:
    if not isinstance(comp, Component):
        raise TypeError(f"sarzoo_components returned {type(comp).__name__} {comp!r}, "
                        "not a sarzoo.interfaces.Component")
    if not isinstance(comp.kind, str) or comp.kind not in KINDS:
        raise ValueError(f"component {comp.name!r}: unknown kind {comp.kind!r}; kinds are "
                         f"{', '.join(KINDS)}")
    if not isinstance(comp.name, str) or not _NAME_RE.match(comp.name):
        raise ValueError(f"{comp.kind} name {comp.name!r} is not valid: a component name is a "
                         "non-empty string without spaces or ':' (':' separates the distribution "
                         "in qualified names)")
    if not callable(comp.factory):
        hint = ""
        if isinstance(comp.factory, types.ModuleType):
            hint = (": the factory is a module because importing a submodule of the same name "
                    "replaced the factory function in its package; name factory functions "
                    "differently from the package's submodules (e.g. make_" + comp.name + ")")
        raise TypeError(f"{comp.kind} '{comp.name}': factory {comp.factory!r} is not callable{hint}")
    check_component(comp)
    if (comp.kind, comp.name) in seen:
        raise ValueError(f"{comp.kind} '{comp.name}' is returned twice")
    seen.add((comp.kind, comp.name))
    return comp


def split_name(name: str) -> tuple[str | None, str]:
    """``dist:name`` → ``(dist, name)``; a bare ``name`` → ``(None, name)``."""
    dist, sep, bare = name.partition(":")
    return (dist, bare) if sep else (None, name)


class ComponentTable:
    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], list[Component]] = {}

    def check_new(self, comps: list[Component], distribution: str) -> None:
        """Raises when ``distribution`` already registered one of these names through another of
        its plugins: a distribution provides each name once, so that is its bug, not a collision."""
        for comp in comps:
            for other in self._by_name.get((comp.kind, comp.name), []):
                if normalize(other.provenance.distribution) == normalize(distribution):
                    raise ValueError(f"{comp.kind} '{comp.name}' is already registered by "
                                     f"plugin '{other.provenance.plugin}' of the same "
                                     "distribution; a distribution provides each name once")

    def add(self, comps: list[Component]) -> None:
        for comp in comps:
            self._by_name.setdefault((comp.kind, comp.name), []).append(comp)

    def components(self, kind: str | None = None) -> list[Component]:
        return [c for (k, _), cs in sorted(self._by_name.items()) for c in cs
                if kind is None or k == kind]

    def names(self, kind: str, distribution: str | None = None) -> list[str]:
        """The names of ``kind``, or only those ``distribution`` provides."""
        return sorted({n for (k, n), cs in self._by_name.items() if k == kind for c in cs
                       if distribution is None
                       or normalize(c.provenance.distribution) == normalize(distribution)})

    def collisions(self) -> dict[tuple[str, str], list[Component]]:
        """Every (kind, name) that more than one distribution provides."""
        return {k: list(v) for k, v in sorted(self._by_name.items()) if len(v) > 1}

    def get(self, kind: str, name: str) -> Component | None:
        """The component a bare name or ``distribution:name`` refers to; None when nobody
        registered it (why is the diagnostics' business); a ``PluginError`` naming every provider
        when a bare name is ambiguous."""
        if kind not in KINDS:
            raise SarzooError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise SarzooError(f"a {kind} name must be a non-empty string, got {name!r}")
        dist, bare = split_name(name)
        candidates = self._by_name.get((kind, bare), [])
        if dist is not None:
            candidates = [c for c in candidates
                          if normalize(c.provenance.distribution) == normalize(dist)]
        if len(candidates) > 1:
            options = " or ".join(f"'{c.qualified_name}'" for c in candidates)
            dists = " and ".join(f"{c.provenance.distribution} {c.provenance.version}"
                                 for c in candidates)
            raise PluginError(f"{kind} '{name}' is provided by more than one distribution "
                              f"({dists}); choose one explicitly with the qualified name {options}, "
                              f"e.g. `{kind}: {{type: {candidates[0].qualified_name}}}` in the recipe")
        return candidates[0] if candidates else None
