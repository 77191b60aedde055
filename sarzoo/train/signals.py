"""SIGINT/SIGTERM during training: stop at the next safe point (after the current step) instead of dying.

The handler only records the signal; the loop polls ``received`` between steps and then writes a
checkpoint. A second signal takes the default action, so a user can still abort at once. Handlers
can only be installed in the main thread; elsewhere (a notebook's worker thread) the signals keep
their usual meaning.
"""
from __future__ import annotations

import signal
import threading
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStop:
    """Context manager; ``on_signal(signum)`` is told at once (from the handler), ``received`` holds it."""

    def __init__(self, on_signal: Callable[[int], None]):
        self.on_signal = on_signal
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, _frame) -> None:
        self.received = signum
        self.on_signal(signum)
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            try:
                signal.signal(s, h)
            except (ValueError, OSError):
                pass
        self._old = {}
