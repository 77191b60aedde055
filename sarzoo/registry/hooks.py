"""The pluggy side of the registry: one ``PluginManager`` with sarzoo's hookspec, through which
every plugin is registered and every hook is called.

Registering through pluggy validates each hookimpl against the hookspec (a
``sarzoo_components(bogus)`` is refused with pluggy's reason), and calling through pluggy's hook
caller means hookwrappers, ``add_hookcall_monitoring`` and pluggy's tracing see every call.

Tracing: when the ``sarzoo.plugins`` logger is enabled for DEBUG at the time a registry is made,
pluggy's trace of every hook call (the hook, the plugins it reaches, what they return) is logged
there at DEBUG. ``SARZOO_TRACE_PLUGINS=1`` enables that logger for DEBUG, with a stderr handler
when logging is not configured, so the trace is one environment variable away on the command line.
"""
from __future__ import annotations

import logging
from typing import Any

import pluggy

from sarzoo import hookspecs
from sarzoo.registry.discovery import _env_flag

log = logging.getLogger("sarzoo.plugins")

HOOK = "sarzoo_components"


def _tracing_wanted() -> bool:
    """Asked once per registry: tracing formats every hook call and its result, worth it only
    when someone reads the log."""
    if _env_flag("SARZOO_TRACE_PLUGINS") and not log.isEnabledFor(logging.DEBUG):
        log.setLevel(logging.DEBUG)
        if not log.hasHandlers():  # the CLI configures no logging; a trace nobody sees is no use
            log.addHandler(logging.StreamHandler())
    return log.isEnabledFor(logging.DEBUG)


def _log_trace(message: str) -> None:
    log.debug("pluggy: %s", message.strip())


class Hooks:
    """Registers plugins with pluggy and calls ``sarzoo_components`` one plugin at a time.

    Why one at a time, rather than one ``pm.hook.sarzoo_components()`` for all plugins: a single
    call stops at the first plugin that raises, so one broken plugin would take every other
    plugin's components down with it; and its result is a flat list that no longer says which
    plugin returned what, while every component must carry the provenance of its own plugin and
    every failure must be recorded against the plugin that caused it. ``call`` therefore goes
    through ``pm.subset_hook_caller`` with every other component provider removed: still pluggy's
    hook-calling machinery (wrappers, monitoring and tracing apply), but with one plugin's result
    and one plugin's failure at a time.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if _tracing_wanted():
            self.pm.trace.root.setwriter(_log_trace)
            self.pm.enable_tracing()

    def register(self, plugin: Any, name: str) -> None:
        """Register ``plugin``; pluggy raises ``PluginValidationError`` for a hookimpl that does
        not match the hookspec, and ``ValueError`` for a plugin object or name registered twice."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError:
            if self.pm.is_registered(plugin):  # older pluggy keeps a plugin whose impl it refused
                self.pm.unregister(plugin)
            raise

    def unregister(self, plugin: Any) -> None:
        self.pm.unregister(plugin)

    def implements(self, plugin: Any) -> bool:
        return any(impl.plugin is plugin for impl in self._providers())

    def call(self, plugin: Any) -> list[Any]:
        """The results of ``plugin``'s own ``sarzoo_components`` impls (pluggy leaves out None)."""
        others = [impl.plugin for impl in self._providers() if impl.plugin is not plugin]
        log.debug("calling %s of plugin '%s'", HOOK, self.pm.get_name(plugin))
        return self.pm.subset_hook_caller(HOOK, remove_plugins=others)()

    def _providers(self) -> list[pluggy.HookImpl]:
        """The impls that provide components; wrappers only wrap calls, so they are never removed
        from a call nor counted as providers."""
        return [impl for impl in getattr(self.pm.hook, HOOK).get_hookimpls()
                if not (impl.wrapper or impl.hookwrapper)]
