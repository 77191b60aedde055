"""Clip-range warnings: which files' valid pixels mostly fall outside the checkpoint's clip range.

Why one owner: ``sarzoo reconstruct``, ``Loaded.reconstruct``, ``sarzoo eval`` and ``sarzoo rd`` all
warn about uncalibrated data (or the wrong ``--domain``) in the same words, counted on the pixels
they read anyway (never a pass of its own), one ``ClipRangeWarning`` per file; and their commands
print those warnings as one ``warning:`` line each on stderr. ``ClipTally`` does the counting and
the warning (the printing is the commands', ``sarzoo.commands.evaluate.warnings_to_stderr``: only
they print). The rule itself (what counts as clipped, the message) is ``sarzoo.data.preprocess``'s
``clip_counts`` and ``clip_warning``.
"""
from __future__ import annotations

import warnings
from typing import Any

__all__ = ["ClipTally"]


class ClipTally:
    """Valid, below-range and above-range pixel counts per file, added block by block."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}

    def add(self, where: str, x01: Any, mask: Any) -> None:
        """Count a block of file ``where`` (``x01`` in [0, 1] as the model sees it, ``mask``: valid)."""
        from sarzoo.data.preprocess import clip_counts

        acc = self.counts.setdefault(where, [0, 0, 0])
        for i, n in enumerate(clip_counts(x01, mask)):
            acc[i] += n

    def warn(self, prep: Any, stacklevel: int = 3) -> list[str]:
        """A ``ClipRangeWarning`` (Python ``warnings``) per file whose valid pixels mostly fell outside
        ``prep``'s clip range; returns their messages (a report's ``warnings``)."""
        from sarzoo.data.preprocess import ClipRangeWarning, clip_warning

        out = []
        for where, (valid, below, above) in self.counts.items():
            msg = clip_warning(where, valid, below, above, prep)
            if msg is not None:
                warnings.warn(msg, ClipRangeWarning, stacklevel=stacklevel)
                out.append(msg)
        return out
