"""Discovery of component plugins through entry points, with provenance for every component.

Every component, first-party or not, arrives the same way: an entry point in the
``sarzoo.plugins`` group names a module holding a ``sarzoo_components`` hookimpl.

Discovery survives failures. A plugin that fails to import or to register is recorded with its
distribution, version and reason, logged once as a warning, and skipped: everything else keeps
working. ``SARZOO_STRICT_PLUGINS=1`` turns any such failure into a ``PluginError``;
``SARZOO_DISABLE_PLUGINS`` (comma list of plugin names, distribution names,
``distribution:plugin``, or ``all`` for every third-party plugin) turns plugins off unloaded.

Names a failed plugin would have provided. An entry point that cannot be imported cannot say what
it provides, so when a recipe asks for a name nobody registered, the registry attributes it, in
this order, to:

1. a declaration: entry points in the ``sarzoo.components`` group of the plugin's distribution,
   ``"KIND.NAME" = "MODULE"`` (e.g. ``"attention.eca" = "sarzoo_eca_convnext"``). They are read
   from the installed metadata without importing anything, so they work even when the plugin's
   module is missing altogether. ``MODULE`` is the module (or the entry-point name) of the
   plugin providing the component; with one plugin per distribution any value attributes to it;
2. the names the same plugin registered the last time it loaded (a small JSON cache under
   ``SARZOO_CACHE_DIR``, default ``$XDG_CACHE_HOME/sarzoo`` or ``~/.cache/sarzoo``; set
   ``SARZOO_CACHE_DIR=`` (empty) to turn it off);
3. a guess from names: the plugin's entry-point name, module name or distribution name contains
   the requested name as a ``-``/``_``/``.``-separated word (``sarzoo-eca`` → ``eca``).

An attributed name fails with that plugin's own error (a ``PluginError``), not "unknown name".

Name collisions are never silent: two distributions providing the same kind and name both stay
registered (their plugins get the status ``shadowed``), the bare name is an error naming both, and
``distribution:name`` picks one (distribution names compare as PEP 503 normalised names).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import json
import logging
import os
import re
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pluggy

from sarzoo import hookspecs
from sarzoo.errors import PluginError, SarzooError
from sarzoo.interfaces import KINDS, Component, Option, Provenance

log = logging.getLogger("sarzoo.plugins")

FIRST_PARTY_DISTRIBUTION = "sarzoo"
#: entry-point group where a distribution may declare its component names ("KIND.NAME" = "MODULE")
DECLARATION_GROUP = "sarzoo.components"
STATUSES = ("ok", "shadowed", "failed", "disabled")


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name: ``Sarzoo_ECA.convnext`` → ``sarzoo-eca-convnext``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[-_.:\s]+", text.lower()) if w}


@dataclass
class PluginRecord:
    """What ``sarzoo plugins`` shows for one entry point.

    ``status``: ``ok``; ``shadowed`` (loaded, but a component name or the distribution itself is
    also provided by another distribution, see ``collisions``); ``failed`` (``error`` says why);
    ``disabled`` (by ``SARZOO_DISABLE_PLUGINS``).
    """

    name: str
    value: str
    distribution: str
    version: str
    status: str = "ok"
    error: str | None = None
    components: list[tuple[str, str]] = field(default_factory=list)
    declared: list[tuple[str, str]] = field(default_factory=list)
    last_known: list[tuple[str, str]] = field(default_factory=list)
    last_known_version: str | None = None
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
                "last_known": pairs(self.last_known), "last_known_version": self.last_known_version,
                "collisions": list(self.collisions), "location": self.location}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _disabled_set() -> set[str]:
    raw = os.environ.get("SARZOO_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def cache_dir() -> Path | None:
    """Where sarzoo keeps small caches; None when ``SARZOO_CACHE_DIR`` is set empty."""
    raw = os.environ.get("SARZOO_CACHE_DIR")
    if raw is not None:
        return Path(raw).expanduser() if raw.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sarzoo"


class _NameCache:
    """The components each plugin registered the last time it loaded, to attribute names later."""

    FILE = "plugins.json"

    def __init__(self, directory: Path | None):
        self.path = directory / self.FILE if directory is not None else None
        self.data: dict[str, Any] = {}
        self.dirty = False
        if self.path is not None:
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
                self.data = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self.data = {}

    @staticmethod
    def _key(rec: PluginRecord) -> str:
        return f"{normalize(rec.distribution)}:{rec.name}"

    def remember(self, rec: PluginRecord) -> None:
        entry = {"version": rec.version, "components": [f"{k}.{n}" for k, n in rec.components]}
        if self.path is not None and self.data.get(self._key(rec)) != entry:
            self.data[self._key(rec)] = entry
            self.dirty = True

    def recall(self, rec: PluginRecord) -> tuple[list[tuple[str, str]], str | None]:
        entry = self.data.get(self._key(rec))
        if not isinstance(entry, dict):
            return [], None
        out = []
        for item in entry.get("components") or []:
            if isinstance(item, str) and "." in item:
                kind, name = item.split(".", 1)
                out.append((kind, name))
        return out, str(entry.get("version", "?"))

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        try:  # best effort: a read-only home must never break sarzoo
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".plugins-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError:
            pass


_NAME_RE = re.compile(r"^[^\s:]+$")


def _validate(comp: Any, seen: dict[tuple[str, str], Any]) -> Component:
    if not isinstance(comp, Component):
        raise TypeError(f"sarzoo_components returned {type(comp).__name__} {comp!r}, "
                        "not a sarzoo.interfaces.Component")
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
    if not isinstance(comp.options, dict) or not all(
            isinstance(k, str) and isinstance(o, Option) for k, o in comp.options.items()):
        raise TypeError(f"{comp.kind} '{comp.name}': options must be a dict of "
                        "name -> sarzoo.interfaces.Option")
    for attr in ("output_shape", "input_multiple", "check"):
        fn = getattr(comp, attr)
        if fn is not None and not callable(fn):
            raise TypeError(f"{comp.kind} '{comp.name}': {attr} must be callable or None")
    if (comp.kind, comp.name) in seen:
        raise ValueError(f"{comp.kind} '{comp.name}' is returned twice")
    seen[(comp.kind, comp.name)] = comp
    return comp


class Registry:
    """All components found at construction time, queryable by kind and name.

    ``entry_points``: use these instead of discovering the installed ones (their ``dist`` gives the
    distribution). ``strict``/``disabled`` default to ``SARZOO_STRICT_PLUGINS`` and
    ``SARZOO_DISABLE_PLUGINS``.
    """

    def __init__(self, entry_points: Iterable[md.EntryPoint] | None = None, *,
                 strict: bool | None = None, disabled: set[str] | None = None,
                 cache: bool = True):
        self.strict = _env_flag("SARZOO_STRICT_PLUGINS") if strict is None else strict
        self.disabled = _disabled_set() if disabled is None else set(disabled)
        self.plugins: dict[str, PluginRecord] = {}
        self._components: dict[tuple[str, str], list[Component]] = {}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._cache = _NameCache(cache_dir() if cache else None)
        if entry_points is None:
            eps = self._discover()
        else:
            eps = sorted(entry_points, key=lambda e: (normalize(e.dist.name) if e.dist else "", e.name))
        self._per_dist: dict[str, int] = {}
        for ep in eps:
            d = normalize(ep.dist.name) if ep.dist is not None else "?"
            self._per_dist[d] = self._per_dist.get(d, 0) + 1
        for ep in eps:
            self._load_entry_point(ep)
        self._mark_collisions()
        self._cache.save()
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

    # -- discovery -------------------------------------------------------------------------
    def _discover(self) -> list[md.EntryPoint]:
        """Entry points of every installed distribution; a second copy of a distribution further
        down ``sys.path`` is shadowed by the first (as Python imports the first), and recorded
        when it would provide different plugins."""
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
        for dist, eps in shadowed:
            first = chosen[normalize(dist.metadata["Name"])][0]
            for ep in eps:
                rec = PluginRecord(name=ep.name, value=ep.value, distribution=dist.metadata["Name"],
                                   version=dist.version, status="shadowed",
                                   location=_location(dist))
                rec.error = (f"another copy of {first.metadata['Name']} ({first.version}, at "
                             f"{_location(first)}) comes first on sys.path and is the one used")
                self.plugins[f"{rec.key}@{rec.location}"] = rec
        out = [ep for _, eps in chosen.values() for ep in eps]
        return sorted(out, key=lambda e: (normalize(e.dist.name) if e.dist else "", e.name))

    def _is_disabled(self, name: str, dist: str) -> bool:
        d = normalize(dist)
        for item in self.disabled:
            if item == "all" and d != FIRST_PARTY_DISTRIBUTION:
                return True
            if item == name or normalize(item) == d:
                return True
            if ":" in item:
                idist, iname = item.split(":", 1)
                if normalize(idist) == d and iname == name:
                    return True
        return False

    def _load_entry_point(self, ep: md.EntryPoint) -> None:
        dist = ep.dist.metadata["Name"] if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        record = PluginRecord(name=ep.name, value=ep.value, distribution=dist, version=version,
                              location=_location(ep.dist) if ep.dist is not None else None)
        self.plugins[record.key] = record
        record.declared = self._declared_for(record, ep.dist)
        if self._is_disabled(ep.name, dist):
            record.status = "disabled"
            record.error = "turned off by SARZOO_DISABLE_PLUGINS"
            record.last_known, record.last_known_version = self._cache.recall(record)
            return
        try:
            module = ep.load()
        except (Exception, SystemExit) as exc:  # a third-party import can raise anything
            self._fail(record, f"import of '{ep.value}' failed: {_describe(exc)}")
            return
        self.register_plugin(module, name=ep.name, distribution=dist, version=version,
                             record=record)

    def _declared_for(self, rec: PluginRecord, dist: md.Distribution | None) -> list[tuple[str, str]]:
        """The ``sarzoo.components`` declarations of ``rec``'s distribution that name this plugin
        (by module or entry-point name); with one plugin in the distribution, all of them."""
        if dist is None:
            return []
        try:
            eps = dist.entry_points.select(group=DECLARATION_GROUP)
        except Exception:
            return []
        decl = []
        for ep in eps:
            kind, _, cname = ep.name.strip().partition(".")
            if kind in KINDS and cname:
                decl.append((kind, cname, ep.value.strip()))
        mine = [(k, n) for k, n, v in decl if v in (rec.module, rec.name)]
        if not mine and self._per_dist.get(normalize(rec.distribution), 0) <= 1:
            mine = [(k, n) for k, n, _ in decl]  # one plugin: every declaration is its own
        return mine

    def register_plugin(self, plugin: Any, *, name: str, distribution: str = "<local>",
                        version: str = "?", record: PluginRecord | None = None) -> PluginRecord:
        """Register a plugin object directly (tests, notebooks); entry points use the same path.

        A plugin whose hook raises, returns something that is not a list of valid ``Component``
        s, returns no component at all, or repeats a name its distribution already registered is
        recorded as failed and contributes nothing.
        """
        if record is None:
            record = PluginRecord(name=name, value=repr(plugin), distribution=distribution,
                                  version=version)
            self.plugins[record.key] = record
        try:
            self._pm.register(plugin, name=f"{distribution}:{name}")
        except (Exception, SystemExit) as exc:
            self._fail(record, f"registration failed: {_describe(exc)}")
            return record
        try:
            impls = [i for i in self._pm.hook.sarzoo_components.get_hookimpls() if i.plugin is plugin]
            if not impls:
                raise LookupError(f"'{getattr(plugin, '__name__', plugin)}' has no "
                                  "@sarzoo.hookimpl sarzoo_components() function")
            found: list[Component] = []
            seen: dict[tuple[str, str], Any] = {}
            for impl in impls:
                result = impl.function()
                if result is None:
                    result = []
                if not isinstance(result, (list, tuple)):
                    raise TypeError(f"sarzoo_components must return a list of Components, got "
                                    f"{type(result).__name__}")
                found += [_validate(c, seen) for c in result]
            if not found:
                raise LookupError("sarzoo_components returned no component")
            for comp in found:
                for other in self._components.get((comp.kind, comp.name), []):
                    if normalize(other.provenance.distribution) == normalize(distribution):
                        raise ValueError(f"{comp.kind} '{comp.name}' is already registered by "
                                         f"plugin '{other.provenance.plugin}' of the same "
                                         "distribution; a distribution provides each name once")
        except (Exception, SystemExit) as exc:
            self._pm.unregister(plugin)
            self._fail(record, f"registration failed: {_describe(exc)}")
            return record
        module_name = getattr(plugin, "__name__", type(plugin).__name__)
        for comp in found:
            comp.provenance = Provenance(plugin=name, module=getattr(comp.factory, "__module__", None) or module_name,
                                         distribution=distribution, version=version)
            self._components.setdefault((comp.kind, comp.name), []).append(comp)
            record.components.append((comp.kind, comp.name))
        record.status, record.error = "ok", None
        self._cache.remember(record)
        self._mark_collisions()
        return record

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status, record.error = "failed", reason
        record.last_known, record.last_known_version = self._cache.recall(record)

    def _mark_collisions(self) -> None:
        for rec in self.plugins.values():
            if rec.status == "shadowed" and rec.components:
                rec.status = "ok"
            if rec.components:
                rec.collisions = []
        for (kind, name), comps in sorted(self._components.items()):
            if len(comps) < 2:
                continue
            for comp in comps:
                rec = self._record_of(comp)
                if rec is None:
                    continue
                others = [c for c in comps if c is not comp]
                rec.status = "shadowed"
                rec.collisions.append(
                    f"{kind} '{name}' is also provided by "
                    + ", ".join(f"{c.provenance.distribution} {c.provenance.version}" for c in others)
                    + "; recipes must name it " + " or ".join(f"'{c.qualified_name}'" for c in comps))

    def _record_of(self, comp: Component) -> PluginRecord | None:
        return self.plugins.get(f"{comp.provenance.distribution}:{comp.provenance.plugin}")

    # -- queries ---------------------------------------------------------------------------
    def components(self, kind: str | None = None) -> list[Component]:
        return [c for (k, _), cs in sorted(self._components.items()) for c in cs
                if kind is None or k == kind]

    def names(self, kind: str) -> list[str]:
        return sorted({n for (k, n) in self._components if k == kind})

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

    def collisions(self) -> dict[tuple[str, str], list[Component]]:
        """Every (kind, name) that more than one distribution provides."""
        return {k: list(v) for k, v in sorted(self._components.items()) if len(v) > 1}

    def get(self, kind: str, name: str) -> Component:
        """Look a component up by bare name or ``distribution:name``; errors explain and suggest."""
        if kind not in KINDS:
            raise SarzooError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not isinstance(name, str) or not name:
            raise SarzooError(f"a {kind} name must be a non-empty string, got {name!r}")
        dist = None
        bare = name
        if ":" in name:
            dist, bare = name.split(":", 1)
        candidates = self._components.get((kind, bare), [])
        if dist is not None:
            candidates = [c for c in candidates
                          if normalize(c.provenance.distribution) == normalize(dist)]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            options = " or ".join(f"'{c.qualified_name}'" for c in candidates)
            dists = " and ".join(f"{c.provenance.distribution} {c.provenance.version}"
                                 for c in candidates)
            raise PluginError(f"{kind} '{name}' is provided by more than one distribution "
                              f"({dists}); choose one explicitly with the qualified name {options}, "
                              f"e.g. `{kind}: {{type: {candidates[0].qualified_name}}}` in the recipe")
        culprit = self._attribute(kind, bare, dist)
        if culprit is not None:
            raise PluginError(culprit)
        raise SarzooError(self._unknown_message(kind, name, dist))

    # -- names nobody registered -------------------------------------------------------------
    def _attribute(self, kind: str, name: str, dist: str | None) -> str | None:
        """When a failed or disabled plugin (probably) provides ``kind``/``name``: its error."""
        unloaded = [r for r in self.records() if r.status in ("failed", "disabled")]
        if dist is not None:
            unloaded = [r for r in unloaded if normalize(r.distribution) == normalize(dist)]
        if not unloaded:
            return None
        how = None
        rec = None
        for r in unloaded:
            if (kind, name) in r.declared:
                rec, how = r, "declares"
                break
        if rec is None:
            for r in unloaded:
                if (kind, name) in r.last_known:
                    rec, how = r, f"provided it when it last loaded (version {r.last_known_version})"
                    break
        if rec is None:
            for r in unloaded:
                if r.declared:
                    continue  # a plugin that declares its names is not guessed at
                if name.lower() in (_words(r.name) | _words(r.module) | _words(r.distribution)) \
                        or name.lower() in (r.name.lower(), r.module.lower()):
                    rec, how = r, "probably provides it (guessed from its name)"
                    break
        if rec is None and dist is not None and len(unloaded) >= 1:
            rec, how = unloaded[0], f"is the distribution named in '{dist}:{name}'"
        if rec is None:
            return None
        subject = f"{kind} '{name if dist is None else dist + ':' + name}'"
        who = f"plugin '{rec.name}' from {rec.distribution} {rec.version}"
        if how == "declares":
            head = f"{subject} is provided by {who}"
        else:
            head = f"{subject} is not available: {who} {how}"
        if rec.status == "disabled":
            setting = os.environ.get("SARZOO_DISABLE_PLUGINS", ",".join(sorted(self.disabled)))
            if "all" in self.disabled:
                return (f"{head}, which is turned off by SARZOO_DISABLE_PLUGINS={setting} (every "
                        "third-party plugin); unset it or list only the plugins to turn off.")
            return (f"{head}, which is turned off by SARZOO_DISABLE_PLUGINS={setting}; "
                    "remove it from that list to use it.")
        return (f"{head}, which failed to load: {rec.error}. Fix or reinstall {rec.distribution} "
                f"(`sarzoo plugins` lists every plugin and its status).")

    def _unknown_message(self, kind: str, name: str, dist: str | None = None) -> str:
        if dist is not None and not self.records(dist):
            known = ", ".join(self.distributions()) or "(none)"
            return (f"unknown {kind} '{name}': no installed distribution '{dist}' provides sarzoo "
                    f"plugins; distributions with plugins: {known}")
        known = self.names(kind)
        if dist is not None:
            mine = sorted(n for (k, n), cs in self._components.items() if k == kind
                          for c in cs if normalize(c.provenance.distribution) == normalize(dist))
            msg = f"unknown {kind} '{name}': {dist} provides no {kind} of that name"
            msg += f" (its {kind}s: {', '.join(mine) if mine else 'none'})."
            return msg
        msg = f"unknown {kind} '{name}'"
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        if close:
            msg += "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        msg += f" Registered {kind}s: {', '.join(known) if known else '(none)'}."
        for rec in self.failed_plugins():
            msg += (f" Note: plugin '{rec.name}' from {rec.distribution} {rec.version} failed to "
                    f"load ({rec.error}); the name may come from it.")
        return msg


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _location(dist: md.Distribution | None) -> str | None:
    path = getattr(dist, "_path", None)
    return os.path.abspath(str(path)) if path is not None else None


_current: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, discovered once (until ``reset_registry``)."""
    global _current
    if _current is None:
        _current = Registry()
    return _current


def reset_registry() -> None:
    """Forget the cached registry (after installing a plugin in-process, or in tests)."""
    global _current
    _current = None
    importlib.invalidate_caches()


def _swap_registry(registry: Registry | None) -> Registry | None:
    """Install ``registry`` (or None: rediscover on next use) as the process-wide one and return
    the previous one; ``sarzoo.testing.dists.installed`` uses it to restore state after a test."""
    global _current
    previous, _current = _current, registry
    return previous


get_registry.cache_clear = reset_registry  # type: ignore[attr-defined]  # (was an lru_cache)
