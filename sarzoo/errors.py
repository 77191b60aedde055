"""User-facing errors.

Anything a user can cause (a bad recipe, a missing file, a broken plugin) is raised as a
``SarzooError``; the CLI prints its message as one paragraph and exits with status 2. Any
other exception is a bug in sarzoo and is allowed to show its traceback.
"""
from __future__ import annotations


class SarzooError(Exception):
    """An error caused by input the user can fix; its message is the whole explanation."""

    exit_code = 2


class RecipeError(SarzooError):
    """A recipe is invalid; names the file, line and key path so the user can go straight there."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None):
        self.file, self.line, self.key, self.reason = file, line, key, message
        where = []
        if file:
            where.append(f"{file}:{line}" if line else str(file))
        if key:
            where.append(f"key '{key}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PluginError(SarzooError):
    """A plugin failed to load or register, or two plugins claim the same name."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none.

    Messages from torch, YAML or a plugin can run to pages; a one-paragraph error quotes one line.
    """
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def describe(exc: BaseException, whole: bool = False) -> str:
    """``TypeName: first line`` of an exception, for errors that quote a cause; ``whole`` keeps every
    line, folded into one (a plugin's failure reason, where pluggy explains on the later lines)."""
    text = " ".join(str(exc).split()) if whole else (first_line(exc) if str(exc).strip() else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def did_you_mean(word: object, options) -> str:
    """`` Did you mean 'a' or 'b'?`` for the options closest to ``word``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=3, cutoff=0.5)
    return (" Did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else ""
