"""What to tell a user who asks for a name nobody registered.

A plugin that failed to import cannot say what it provides, so the registry blames a failed or
disabled plugin for a name only on evidence the user or the plugin's author wrote down:

1. a declaration: entry points in the ``sarzoo.components`` group of the plugin's distribution,
   ``"KIND.NAME" = "MODULE"`` (e.g. ``"attention.eca" = "sarzoo_eca_convnext"``), read from the
   installed metadata without importing anything (``discovery.declared_names``);
2. a qualified name ``distribution:name``: the user named the distribution, so its failed or
   disabled plugin is the culprit.

There is no guessing from plugin names and no memory of earlier runs: a failed plugin that
declares nothing is never blamed for a name, though the "unknown name" message still lists it as
a possible source. An attributed name fails with that plugin's own error (a ``PluginError``);
anything else gets the "unknown name" message with suggestions.
"""
from __future__ import annotations

from sarzoo.errors import did_you_mean
from sarzoo.registry.discovery import PluginRecord, Policy, normalize
from sarzoo.registry.table import ComponentTable


def attribute(kind: str, name: str, dist: str | None, records: list[PluginRecord],
              policy: Policy) -> str | None:
    """The error of the failed or disabled plugin that provides ``kind``/``name``, or None."""
    unloaded = [r for r in records if r.status in ("failed", "disabled")]
    if dist is not None:
        unloaded = [r for r in unloaded if normalize(r.distribution) == normalize(dist)]
    subject = f"{kind} '{name if dist is None else dist + ':' + name}'"
    declaring = [r for r in unloaded if (kind, name) in r.declared]
    if declaring:
        rec = declaring[0]
        head = f"{subject} is provided by plugin '{rec.name}' from {rec.distribution} {rec.version}"
    elif dist is not None and unloaded:
        rec = unloaded[0]
        head = (f"{subject} is not available: plugin '{rec.name}' from {rec.distribution} "
                f"{rec.version} is the distribution named in '{dist}:{name}'")
    else:
        return None
    if rec.status == "disabled":
        setting = policy.disabled_setting()
        if "all" in policy.disabled:
            return (f"{head}, which is turned off by SARZOO_DISABLE_PLUGINS={setting} (every "
                    "third-party plugin); unset it or list only the plugins to turn off.")
        return (f"{head}, which is turned off by SARZOO_DISABLE_PLUGINS={setting}; "
                "remove it from that list to use it.")
    return (f"{head}, which failed to load: {rec.error}. Fix or reinstall {rec.distribution} "
            f"(`sarzoo plugins` lists every plugin and its status).")


def unknown_message(kind: str, name: str, dist: str | None, table: ComponentTable,
                    records: list[PluginRecord]) -> str:
    """"unknown name": what is registered instead, the closest names, and every failed plugin,
    since an undeclared name may well come from one of them."""
    if dist is not None:
        if not any(normalize(r.distribution) == normalize(dist) for r in records):
            known = ", ".join(sorted({r.distribution for r in records}, key=normalize)) or "(none)"
            return (f"unknown {kind} '{name}': no installed distribution '{dist}' provides sarzoo "
                    f"plugins; distributions with plugins: {known}")
        mine = table.names(kind, dist)
        return (f"unknown {kind} '{name}': {dist} provides no {kind} of that name"
                f" (its {kind}s: {', '.join(mine) if mine else 'none'}).")
    known = table.names(kind)
    msg = (f"unknown {kind} '{name}'.{did_you_mean(name, known)} Registered {kind}s: "
           f"{', '.join(known) if known else '(none)'}.")
    for rec in records:
        if rec.status == "failed":
            msg += (f" Note: plugin '{rec.name}' from {rec.distribution} {rec.version} failed to "
                    f"load ({rec.error}); the name may come from it.")
    return msg
