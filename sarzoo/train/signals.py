"""SIGINT/SIGTERM during training: stop at the next safe point (after the current step) instead of dying.

The handler only records the signal; the loop polls ``received`` between steps and then writes a
checkpoint. A second signal takes the default action, so a user can still abort at once. Handlers
can only be installed in the main thread; elsewhere (a notebook's worker thread) the signals keep
their usual meaning.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalStop:
    """Context manager; ``on_signal(signum)`` is told at once (from the handler), ``received`` holds it.

    ``relayed``: the process runs under torchrun, whose agent passes the signals it receives on to
    every process. A process can then get one stop twice within moments: a batch scheduler (SLURM's
    ``scancel``, ``--signal``) signals every process of the job step, the agent included, which
    relays it once more. A repeat within ``RELAY_SECONDS`` of the first is taken for that copy, not
    for a second Ctrl-C, and ignored; a later one aborts as usual.
    """

    RELAY_SECONDS = 2.0

    def __init__(self, on_signal: Callable[[int], None], relayed: bool = False):
        self.on_signal = on_signal
        self.relayed = relayed
        self.received: int | None = None
        self._first_at = 0.0
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:   # only under torchrun: a plain run restored the default below
            if time.monotonic() - self._first_at < self.RELAY_SECONDS:
                return
            self._default(signum)
            if signum == signal.SIGINT:
                signal.default_int_handler(signum, frame)
            os.kill(os.getpid(), signum)
            return
        self.received = signum
        self._first_at = time.monotonic()
        self.on_signal(signum)
        if not self.relayed:
            self._default(signum)

    @staticmethod
    def _default(signum: int) -> None:
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
