"""What a component declares, checked when its plugin registers.

``check_component`` refuses a declaration that would break a command later: a description that is
not a string, an ``Option`` whose ``type``, ``choices``, ``min``, ``max``, ``nullable`` or ``doc``
has the wrong type, a default that its own option refuses or that ``sarzoo list --json`` could not
print, an option name a recipe could not set, a contract that is not callable. It raises
``TypeError`` or ``ValueError`` with the reason; the registry then records the plugin as failed,
so every command that does not use the plugin keeps working and a recipe that does gets the reason.

What only shows when a recipe is planned or built (what contracts and factories *return*) is
checked by ``sarzoo.plan`` and ``sarzoo.model``.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from typing import Any

from sarzoo.interfaces import KIND_ARGS, KINDS, Component, Option

#: the type names ``sarzoo.config.values.check`` understands, besides Python types
_TYPE_NAMES = ("int", "float", "bool", "str", "list", "mapping", "size2", "paths", "any")
#: keys a recipe's component mapping uses itself: an option of the same name could never be set
_RESERVED = ("type", "out_channels", "stride")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _json_error(value: Any) -> str | None:
    """Why ``value`` cannot be printed as strict JSON, or None."""
    try:
        json.dumps(value, allow_nan=False)
    except (Exception, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_type(t: Any) -> bool:
    items = t if isinstance(t, tuple) else (t,)
    return bool(items) and all(isinstance(i, type) or (isinstance(i, str) and i in _TYPE_NAMES)
                               for i in items)


def check_option(key: Any, opt: Any, kind: str) -> None:
    """Raises ``TypeError``/``ValueError`` saying what is wrong with option ``key``."""
    where = f"option {_short(key)}"
    if not isinstance(key, str) or not key.isidentifier():
        raise ValueError(f"{where}: an option name must be a Python identifier (the factory gets it "
                         "as a keyword argument)")
    if key in _RESERVED or key in KIND_ARGS.get(kind, ()) or (kind == "stage" and key == "stage"):
        raise ValueError(f"{where}: the name is reserved for the {kind}'s own arguments or the "
                         "recipe's 'type'; choose another option name")
    if not isinstance(opt, Option):
        raise TypeError(f"{where} is {type(opt).__name__} {_short(opt)}, not a sarzoo.interfaces.Option")
    if not _check_type(opt.type):
        raise TypeError(f"{where}: type must be a type or a tuple of types, got {_short(opt.type)}")
    if opt.choices is not None:
        if isinstance(opt.choices, (str, bytes)) or not isinstance(opt.choices, Sequence):
            raise TypeError(f"{where}: choices must be None or a list or tuple of values, got "
                            f"{type(opt.choices).__name__} {_short(opt.choices)}")
        if not opt.choices:
            raise ValueError(f"{where}: choices is empty; use None for any value")
        problem = _json_error(list(opt.choices))
        if problem:
            raise TypeError(f"{where}: choices {_short(opt.choices)} cannot be printed as JSON "
                            f"(`sarzoo list --json`): {problem}")
    for bound in ("min", "max"):
        value = getattr(opt, bound)
        if value is not None and not (_is_number(value) and math.isfinite(value)):
            raise TypeError(f"{where}: {bound} must be None or a finite number, got "
                            f"{type(value).__name__} {_short(value)}")
    if opt.min is not None and opt.max is not None and opt.min > opt.max:
        raise ValueError(f"{where}: min {opt.min!r} is greater than max {opt.max!r}")
    if not isinstance(opt.nullable, bool):
        raise TypeError(f"{where}: nullable must be True or False, got {_short(opt.nullable)}")
    if not isinstance(opt.doc, str):
        raise TypeError(f"{where}: doc must be a string, got {type(opt.doc).__name__} {_short(opt.doc)}")
    if opt.default is None:
        if not opt.nullable:
            raise ValueError(f"{where}: the default is None but the option is not nullable")
        return
    try:
        problem = opt.check(opt.default)
    except (Exception, RecursionError) as exc:
        problem = f"cannot be checked ({type(exc).__name__}: {exc})"
    if problem:
        raise ValueError(f"{where}: its default {problem}")
    problem = _json_error(opt.default)
    if problem:
        raise TypeError(f"{where}: its default {_short(opt.default)} cannot be printed as JSON "
                        f"(`sarzoo list --json`, saved recipes): {problem}")


def check_component(comp: Component) -> None:
    """Raises ``TypeError``/``ValueError`` on anything unusable in ``comp``'s declaration (its
    name is checked by the table)."""
    if not isinstance(comp.kind, str) or comp.kind not in KINDS:
        raise ValueError(f"component {_short(comp.name)}: unknown kind {_short(comp.kind)}; kinds are "
                         f"{', '.join(KINDS)}")
    what = f"{comp.kind} '{comp.name}'"
    if not isinstance(comp.description, str):
        raise TypeError(f"{what}: description must be a string, got {type(comp.description).__name__} "
                        f"{_short(comp.description)}")
    if not callable(comp.factory):
        return  # the table explains why (with a hint for modules)
    if not isinstance(comp.options, dict):
        raise TypeError(f"{what}: options must be a dict of name -> sarzoo.interfaces.Option, got "
                        f"{type(comp.options).__name__}")
    for key, opt in comp.options.items():
        try:
            check_option(key, opt, comp.kind)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{what}: {exc}") from None
    for attr in ("output_shape", "input_multiple", "check"):
        fn = getattr(comp, attr)
        if fn is not None and not callable(fn):
            raise TypeError(f"{what}: {attr} must be callable or None, got {type(fn).__name__} {_short(fn)}")
