"""The small type language a checkpoint's payload is checked in (``sarzoo.checkpoint.schema``
uses it): each ``Spec`` checks one value and, when it does not fit, raises ``Invalid`` with the
dotted key and what is wrong, which ``validate`` turns into one error naming the file and the key.

Why a language of its own and not a JSON schema library: the payload holds tensors (dtype, shape,
element count are part of the check) and the messages must name the key in sarzoo's words.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch

from sarzoo.errors import did_you_mean


class Invalid(Exception):
    """A value that does not fit the schema: the key (dotted path) and what is wrong with it."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key, self.problem = key, problem


def type_name(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"a tensor of dtype {str(v.dtype).replace('torch.', '')} and shape {tuple(v.shape)}"
    return "null" if v is None else f"a {type(v).__name__}"


def is_int(v: Any) -> bool:
    return type(v) is int


def is_num(v: Any) -> bool:
    return type(v) in (int, float)


class Spec:
    """A value of the schema: ``check(value, key)`` raises ``Invalid`` when it does not fit."""

    what = "a value"

    def check(self, v: Any, key: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class Int(Spec):
    def __init__(self, lo: int | None = 0, hi: int | None = None):
        self.lo, self.hi = lo, hi
        self.what = "an integer" + (f" ≥ {lo}" if lo is not None else "") + (f" ≤ {hi}" if hi is not None else "")

    def check(self, v, key):
        if not is_int(v) or (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


class Num(Spec):
    def __init__(self, finite: bool = False, lo: float | None = None, hi: float | None = None, nan: bool = False):
        self.finite, self.lo, self.hi, self.nan = finite, lo, hi, nan
        self.what = ("a finite number" if finite else "a number") + (f" ≥ {lo}" if lo is not None else "") \
            + (f" ≤ {hi}" if hi is not None else "")

    def check(self, v, key):
        ok = is_num(v) and (self.nan or v == v) and (not self.finite or math.isfinite(v)) \
            and (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)
        if not ok:
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


class Str(Spec):
    def __init__(self, choices: tuple[str, ...] | None = None):
        self.choices = choices
        self.what = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"

    def check(self, v, key):
        if type(v) is not str or (self.choices and v not in self.choices):
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


class Bool(Spec):
    what = "true or false"

    def check(self, v, key):
        if type(v) is not bool:
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


class Opt(Spec):
    """``spec`` or None."""

    def __init__(self, spec: Spec):
        self.spec, self.what = spec, f"{spec.what} or null"

    def check(self, v, key):
        if v is not None:
            self.spec.check(v, key)


class Any_(Spec):
    what = "anything plain"

    def check(self, v, key):
        pass


class Scalar(Spec):
    what = "a number, string, boolean or null"

    def check(self, v, key):
        if v is not None and type(v) not in (int, float, str, bool):
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


class Seq(Spec):
    """A list (or tuple) of ``item``, of ``length`` items when given."""

    def __init__(self, item: Spec, length: int | None = None):
        self.item, self.length = item, length
        self.what = (f"a list of {length} items" if length is not None else "a list") + f", each {item.what}"

    def check(self, v, key):
        if type(v) not in (list, tuple):
            raise Invalid(key, f"must be {self.what}, got {short(v)}")
        if self.length is not None and len(v) != self.length:
            raise Invalid(key, f"must be {self.what}, got {len(v)} items")
        for i, x in enumerate(v):
            self.item.check(x, f"{key}[{i}]")


class Map(Spec):
    """A dict with string keys: ``fields`` (``required`` of them must be there); other keys are
    refused, or checked by ``extra`` when given."""

    def __init__(self, fields: dict[str, Spec] | None = None, required: tuple[str, ...] | str = "all",
                 extra: Spec | None = None, key_type: type = str):
        self.fields, self.key_type = fields or {}, key_type
        self.required = tuple(self.fields) if required == "all" else tuple(required)
        self.extra, self.what = extra, "a mapping"

    def check(self, v, key):
        if type(v) not in (dict, OrderedDict):
            raise Invalid(key, f"must be {self.what}, got {short(v)}")
        for k in self.required:
            if k not in v:
                raise Invalid(f"{key}.{k}", "is missing")
        for k, x in v.items():
            if type(k) is not self.key_type:
                want = "a string" if self.key_type is str else "an integer"
                raise Invalid(key, f"has a key {short(k)} that is not {want}")
            spec = self.fields.get(k, self.extra)
            if spec is None:
                raise Invalid(f"{key}.{k}", "is not a key of this part of a checkpoint" + did_you_mean(k, self.fields))
            spec.check(x, f"{key}.{k}")


class Tensor(Spec):
    """A dense tensor of one of ``dtypes`` (``"float"``, ``"int"`` or a dtype), ``numel`` elements."""

    def __init__(self, kind: str | torch.dtype = "float", numel: int | None = None, ndim: int | None = None):
        self.kind, self.numel, self.ndim = kind, numel, ndim
        k = {"float": "a floating-point", "int": "an integer", "any": "a"}.get(kind) if isinstance(kind, str) \
            else "a " + str(kind).replace("torch.", "")
        self.what = f"{k} tensor" + (f" of {numel} elements" if numel is not None else "")

    def check(self, v, key):
        ok = isinstance(v, torch.Tensor) and tensor_kind_ok(v, self.kind) \
            and (self.numel is None or (v.numel() == self.numel and v.dim() == 1)) \
            and (self.ndim is None or v.dim() == self.ndim)
        if not ok:
            raise Invalid(key, f"must be {self.what}, got {short(v)}")


def tensor_kind_ok(t: torch.Tensor, kind: str | torch.dtype) -> bool:
    if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
        return False
    if kind == "any":
        return True
    if kind == "float":
        return t.dtype.is_floating_point
    if kind == "int":
        return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool
    return t.dtype == kind


def short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return type_name(v)
    r = "null" if v is None else repr(v)
    return (r if len(r) <= 40 else r[:37] + "...") + ("" if v is None or type(v) in (int, float, bool)
                                                      else f" ({type(v).__name__})")


class Either(Spec):
    """One of ``specs`` (the first that accepts the value)."""

    def __init__(self, *specs: Spec):
        self.specs, self.what = specs, " or ".join(sp.what for sp in specs)

    def check(self, v, key):
        for sp in self.specs:
            try:
                sp.check(v, key)
                return
            except Invalid:
                continue
        raise Invalid(key, f"must be {self.what}, got {short(v)}")
