"""Progress display: a tqdm bar with live loss/PSNR/SSIM on a terminal, one line per epoch otherwise.

When stderr is not a terminal (CI, ``> log.txt``, a notebook cell capturing output) the bar is
off and each epoch prints a single summary line, so logs stay readable.

The command's console (``sarzoo.commands.train.Console``) drives it, not the training loop: the bar
and the run's lines share one terminal, and only their one owner can write the lines through
``tqdm.write`` so that they never break the bar; and a loop that draws nothing needs no change for
processes that must stay silent (``Runtime.is_main``) or for callers that want no bar at all.
"""
from __future__ import annotations

import sys
from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


class Progress:
    def __init__(self, enabled: bool | None = None, stream: Any = None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled

    def bar(self, total: int, initial: int, desc: str):
        if not self.enabled:
            return _NoBar()
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, file=self.stream, leave=False,
                    dynamic_ncols=True, unit="step")

    def write(self, line: str) -> None:
        """A message that does not break the bar (tqdm.write on a terminal)."""
        if self.enabled:
            from tqdm.auto import tqdm

            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)
