"""The one value checker: every recipe value, and every component option, is checked here.

A recipe key (``sarzoo.config.schema.Field``) and a component's option
(``sarzoo.interfaces.Option``) are both "a value of these types, maybe within these choices or
bounds, maybe null"; both are checked by ``check`` so a value accepted in one place is accepted in
the other (``2e-1`` is a float whether it sets ``train.lr`` or a block's ``negative_slope``).
"""
from __future__ import annotations

import re
from typing import Any, Sequence

#: YAML 1.1 (PyYAML) reads ``1e-4`` or ``2e-1`` (no dot) as a string; a number field takes it.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_PY_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "mapping": "a mapping"}


class Invalid(ValueError):
    """A value is not acceptable; the message is the reason, without the key (the caller adds it)."""


def type_names(types: Any) -> tuple[str, ...]:
    """``int`` / ``(int, float)`` / ``"float"`` → ``("int",)`` … (the names ``check`` knows)."""
    items = types if isinstance(types, (tuple, list)) else (types,)
    out = []
    for t in items:
        if isinstance(t, str):
            out.append(t)
        elif t in _PY_TYPES:
            out.append(_PY_TYPES[t])
        elif isinstance(t, type):
            out.append(t)  # a plugin's own option type (a tuple, an enum…): checked with isinstance
        else:
            raise TypeError(f"{t!r} is not a type")
    return tuple(out)


def _as(value: Any, name: Any) -> tuple[bool, Any]:
    """Whether ``value`` is of the type ``name``, and the value converted to it."""
    if isinstance(name, type):
        return isinstance(value, name), value
    if name == "any":
        return True, value
    if name == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if name == "float":
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if name == "bool":
        return isinstance(value, bool), value
    if name == "str":
        return isinstance(value, str), value
    if name == "list":
        return isinstance(value, list), value
    if name == "mapping":
        return isinstance(value, dict), value
    if name == "size2":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        return ok, list(value) if ok else value
    if name == "range":
        # a number (fixed) or [low, high] (drawn from); kept as written so a resolved recipe reads back
        ok, v = _as(value, "numbers")
        return (ok, v) if ok and (not isinstance(v, list) or len(v) == 2) else (False, value)
    if name == "numbers":  # one number for every channel, or one per channel
        if not isinstance(value, list):
            return _as(value, "float")
        conv = [_as(v, "float") for v in value]
        ok = bool(value) and all(c[0] for c in conv)
        return ok, [c[1] for c in conv] if ok else value
    if name == "paths":
        if isinstance(value, str) and value:
            return True, [value]
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        return ok, list(value) if ok else value
    raise TypeError(f"unknown value type {name!r}")


def _expected(names: Sequence[str]) -> str:
    words = {"size2": "[height, width] (two integers) or one integer",
             "paths": "a path or a non-empty list of paths",
             "range": "a number or [low, high] (two numbers)",
             "numbers": "a number or a non-empty list of numbers (one per channel)"}
    return " or ".join(n.__name__ if isinstance(n, type) else words.get(n) or _TYPE_WORDS.get(n, n)
                       for n in names)


def check(value: Any, types: Any, *, choices: Sequence[Any] | None = None, min: float | None = None,
          max: float | None = None, nullable: bool = False) -> Any:
    """``value`` converted to the first of ``types`` it fits, or ``Invalid`` saying why not.

    ``types``: type names (``int float bool str list mapping size2 range paths numbers any``) or Python
    types. Numbers must be finite; ``min``/``max`` bound numbers, each side of a ``size2`` or ``range``
    and each item of ``numbers``.
    """
    if value is None:
        if nullable:
            return None
        raise Invalid("must not be empty/null")
    names = type_names(types)
    if "str" in names and isinstance(value, bool) and choices and "off" in choices:
        # YAML 1.1 reads `off`/`on`/`no`/`yes` as booleans; for a switch-like choice the user meant
        # the word, so false is "off" and true the first other choice
        value = "off" if not value else next(c for c in choices if c != "off")
    for name in names:
        ok, converted = _as(value, name)
        if ok:
            value = converted
            break
    else:
        raise Invalid(f"must be {_expected(names)}, got {type(value).__name__} {value!r}")
    items = value if isinstance(value, list) and {"size2", "range", "numbers"} & set(names) else [value]
    for v in items:
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise Invalid(f"must be a finite number, got {v!r}")
    if isinstance(value, list) and "range" in names and value[0] > value[1]:
        raise Invalid(f"must be [low, high] with low <= high, got {value!r}")
    if choices is not None and value not in choices:
        from sarzoo.errors import did_you_mean

        raise Invalid(f"must be one of {', '.join(map(repr, choices))}, got {value!r}."
                      + did_you_mean(value, choices))
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if min is not None and v < min:
                raise Invalid(f"must be >= {min:g}, got {v!r}")
            if max is not None and v > max:
                raise Invalid(f"must be <= {max:g}, got {v!r}")
    return value
