"""Checkpoints: the one file format for a model, written atomically, read only as plain data.

One format for both kinds of file (``kind`` says which):

- ``training``: what ``sarzoo train`` writes (``last.pt``, ``best.pt``): the model plus its
  preprocessing and the whole training state, so a run resumes exactly;
- ``model``: what ``sarzoo build --output`` writes: an untrained model, no training state and no
  fitted preprocessing.

Both hold ``format``, ``kind``, ``recipe`` (the resolved recipe that rebuilds the architecture),
``preprocessing`` (a dict, or None), ``provenance`` and ``model`` (the state dict); ``sarzoo.load``
opens either. A checkpoint is a dict of tensors and plain Python values (str, int, float, bool,
None, lists, tuples, dicts) and nothing else, so the restricted unpickler of
``torch.load(weights_only=True)`` accepts it and a file crafted to run code on load is refused.

Which file a run directory means (the one rule, used everywhere): to *use a model* (``sarzoo
eval``, ``sarzoo.load``) a directory means its ``best.pt``, else its ``last.pt``; to *resume
training* it means its ``last.pt`` (the newest state, not the best one).
"""
from __future__ import annotations

import math
import os
import pickle
import re
import time
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarzoo.errors import SarzooError, describe, did_you_mean, first_line
from sarzoo.files import TMP_PREFIX, atomic_write, remove_partial

FORMAT = "sarzoo.checkpoint/1"
CHECKPOINT_KINDS = ("training", "model")
#: Format of model files written by sarzoo 0.1's ``sarzoo build --output``; still read.
LEGACY_MODEL_FORMAT = "sarzoo.model/1"
#: What a run directory means, by purpose (see the module docstring).
RUN_DIR_FILES = {"model": ("best.pt", "last.pt"), "resume": ("last.pt",)}

#: TEST-ONLY fault injection; never set it outside the test suite. ``step:K`` makes the training
#: process SIGKILL itself right after optimizer step K (after that step's checkpoint, if one was
#: due); ``save:N`` makes it SIGKILL itself inside its N-th checkpoint write, after the temporary
#: file is complete and before it is renamed over the target. It is a real ``SIGKILL`` (what the OOM
#: killer or ``kill -9`` does), placed deterministically so the resume and atomicity tests need no
#: timing races.
FAULT_ENV = "SARZOO_TEST_SIGKILL"
_saves = 0

__all__ = ["FORMAT", "CHECKPOINT_KINDS", "FAULT_ENV", "TMP_PREFIX", "SCHEMA", "resolve_path", "read", "validate",
           "write", "model_payload",
           "model_from_checkpoint", "preprocessing_of", "remove_partial", "fault_point"]


def fault_point(kind: str, value: int) -> None:
    """SIGKILL this process if ``SARZOO_TEST_SIGKILL`` asks for it at ``kind:value`` (tests only)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    k, _, v = spec.partition(":")
    if k == kind and v.strip().isdigit() and int(v) == value:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# --- which file --------------------------------------------------------------------------------

def resolve_path(path: str | os.PathLike, purpose: str = "model") -> Path:
    """The checkpoint file ``path`` means: a file as given; a run directory by ``RUN_DIR_FILES``."""
    p = Path(path)
    if p.is_dir():
        names = RUN_DIR_FILES[purpose]
        for name in names:
            if (p / name).is_file():
                return p / name
        raise SarzooError(f"{p}: is a directory without {' or '.join(names)}; give a checkpoint file or a "
                          f"run directory of `sarzoo train`")
    return p


# --- writing -----------------------------------------------------------------------------------

def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` reduced to what ``weights_only`` loading accepts, or a TypeError naming the culprit.

    Checked at write time because a value the restricted unpickler refuses (a numpy scalar, a
    ``str`` subclass such as ``torch.__version__``) would otherwise only show up when the user
    tries to resume, with a checkpoint that can never be loaded.
    """
    import collections
    import numbers

    if obj is None or type(obj) in (bool, int, float, str, bytes) or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        items = [(plain(k, f"{where} key"), plain(v, f"{where}.{k}")) for k, v in obj.items()]
        return collections.OrderedDict(items) if isinstance(obj, collections.OrderedDict) else dict(items)
    if isinstance(obj, list):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    raise TypeError(f"{where}: a {type(obj).__name__} cannot go into a weights_only checkpoint")


def model_payload(model: Any, recipe: dict[str, Any], preprocessing: Any = None,
                  kind: str = "model") -> dict[str, Any]:
    """The part every checkpoint has: what the model is, where its parts came from, its weights."""
    from sarzoo._version import __version__

    prep = preprocessing.to_dict() if hasattr(preprocessing, "to_dict") else preprocessing
    return {
        "format": FORMAT,
        "kind": kind,
        "sarzoo_version": __version__,
        "torch_version": str(torch.__version__),
        "saved_at": time.time(),
        "recipe": recipe,
        "preprocessing": prep,
        "provenance": {"sarzoo": __version__, "components": model.provenance()},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def write(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint atomically (``sarzoo.files.atomic_write``); every value checked plain."""
    global _saves
    _saves += 1
    data = plain(payload)
    n = _saves
    try:
        return atomic_write(path, lambda f: torch.save(data, f), before_rename=lambda: fault_point("save", n))
    except OSError as exc:
        raise SarzooError(f"{path}: cannot write the checkpoint ({exc.strerror or first_line(exc)}); "
                          f"give a file path in a writable directory") from None


# --- what a checkpoint must hold ----------------------------------------------------------------
#
# The one schema of the payload. Each top-level key: what it must be, and who needs it: "model"
# (every checkpoint: what ``sarzoo.load`` and ``sarzoo eval`` use), "training" (every training
# checkpoint), "resume" (a training checkpoint read to continue the run). Keys not listed are
# ignored. The recipe, the weights, the optimizer, the scheduler and the RNG states need more than
# a type check; they are checked against the architecture the stored recipe builds (``validate``).

class _Invalid(Exception):
    """A value that does not fit the schema: the key (dotted path) and what is wrong with it."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key, self.problem = key, problem


def _type_name(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"a tensor of dtype {str(v.dtype).replace('torch.', '')} and shape {tuple(v.shape)}"
    return "null" if v is None else f"a {type(v).__name__}"


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_num(v: Any) -> bool:
    return type(v) in (int, float)


class Spec:
    """A value of the schema: ``check(value, key)`` raises ``_Invalid`` when it does not fit."""

    what = "a value"

    def check(self, v: Any, key: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class Int(Spec):
    def __init__(self, lo: int | None = 0, hi: int | None = None):
        self.lo, self.hi = lo, hi
        self.what = "an integer" + (f" ≥ {lo}" if lo is not None else "") + (f" ≤ {hi}" if hi is not None else "")

    def check(self, v, key):
        if not _is_int(v) or (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


class Num(Spec):
    def __init__(self, finite: bool = False, lo: float | None = None, hi: float | None = None, nan: bool = False):
        self.finite, self.lo, self.hi, self.nan = finite, lo, hi, nan
        self.what = ("a finite number" if finite else "a number") + (f" ≥ {lo}" if lo is not None else "") \
            + (f" ≤ {hi}" if hi is not None else "")

    def check(self, v, key):
        ok = _is_num(v) and (self.nan or v == v) and (not self.finite or math.isfinite(v)) \
            and (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)
        if not ok:
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


class Str(Spec):
    def __init__(self, choices: tuple[str, ...] | None = None):
        self.choices = choices
        self.what = "one of " + ", ".join(repr(c) for c in choices) if choices else "a string"

    def check(self, v, key):
        if type(v) is not str or (self.choices and v not in self.choices):
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


class Bool(Spec):
    what = "true or false"

    def check(self, v, key):
        if type(v) is not bool:
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


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
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


class Seq(Spec):
    """A list (or tuple) of ``item``, of ``length`` items when given."""

    def __init__(self, item: Spec, length: int | None = None):
        self.item, self.length = item, length
        self.what = (f"a list of {length} items" if length is not None else "a list") + f", each {item.what}"

    def check(self, v, key):
        if type(v) not in (list, tuple):
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")
        if self.length is not None and len(v) != self.length:
            raise _Invalid(key, f"must be {self.what}, got {len(v)} items")
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
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")
        for k in self.required:
            if k not in v:
                raise _Invalid(f"{key}.{k}", "is missing")
        for k, x in v.items():
            if type(k) is not self.key_type:
                want = "a string" if self.key_type is str else "an integer"
                raise _Invalid(key, f"has a key {_short(k)} that is not {want}")
            spec = self.fields.get(k, self.extra)
            if spec is None:
                raise _Invalid(f"{key}.{k}", "is not a key of this part of a checkpoint" + did_you_mean(k, self.fields))
            spec.check(x, f"{key}.{k}")


class Tensor(Spec):
    """A dense tensor of one of ``dtypes`` (``"float"``, ``"int"`` or a dtype), ``numel`` elements."""

    def __init__(self, kind: str | torch.dtype = "float", numel: int | None = None, ndim: int | None = None):
        self.kind, self.numel, self.ndim = kind, numel, ndim
        k = {"float": "a floating-point", "int": "an integer", "any": "a"}.get(kind) if isinstance(kind, str) \
            else "a " + str(kind).replace("torch.", "")
        self.what = f"{k} tensor" + (f" of {numel} elements" if numel is not None else "")

    def check(self, v, key):
        ok = isinstance(v, torch.Tensor) and _tensor_kind_ok(v, self.kind) \
            and (self.numel is None or (v.numel() == self.numel and v.dim() == 1)) \
            and (self.ndim is None or v.dim() == self.ndim)
        if not ok:
            raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


def _tensor_kind_ok(t: torch.Tensor, kind: str | torch.dtype) -> bool:
    if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
        return False
    if kind == "any":
        return True
    if kind == "float":
        return t.dtype.is_floating_point
    if kind == "int":
        return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool
    return t.dtype == kind


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return _type_name(v)
    r = "null" if v is None else repr(v)
    return (r if len(r) <= 40 else r[:37] + "...") + ("" if v is None or type(v) in (int, float, bool)
                                                      else f" ({type(v).__name__})")


#: the running sums of the current epoch (``sarzoo.train.state``'s ``METRIC_KEYS`` + n, time)
ACCUM_KEYS = ("loss", "mse", "ssim", "psnr", "n", "time")
_COUNT = Int(0)
class Either(Spec):
    """One of ``specs`` (the first that accepts the value)."""

    def __init__(self, *specs: Spec):
        self.specs, self.what = specs, " or ".join(sp.what for sp in specs)

    def check(self, v, key):
        for sp in self.specs:
            try:
                sp.check(v, key)
                return
            except _Invalid:
                continue
        raise _Invalid(key, f"must be {self.what}, got {_short(v)}")


#: a clip bound: one number (single-channel checkpoints, all of them before multi-channel models),
#: or one per channel; ``mode``/``low``/``high`` are stored for ``per_scene`` models, ``bands`` when named
_BOUND = Either(Num(finite=True), Seq(Num(finite=True)))
PREPROCESSING = Map({"domain": Str(), "vmin": _BOUND, "vmax": _BOUND,
                     "eps": Num(finite=True, lo=0.0), "fill": Num(finite=True, lo=0.0, hi=1.0),
                     "nodata": Opt(Num(nan=True)), "mode": Str(("global", "per_scene")),
                     "low": Num(finite=True, lo=0.0, hi=100.0), "high": Num(finite=True, lo=0.0, hi=100.0),
                     "bands": Opt(Seq(Str()))}, required=("domain", "vmin", "vmax"))
PROVENANCE = Map({"sarzoo": Str(),
                  "components": Seq(Map({"kind": Str(), "name": Str(), "distribution": Str(), "version": Str()}))},
                 required=())
BEST = Map({"value": Num(), "epoch": Opt(_COUNT), "step": Opt(_COUNT), "metric": Str(("val_loss", "train_loss")),
            "psnr": Opt(Num(nan=True)), "ssim": Opt(Num(nan=True))}, required=("value", "epoch", "step", "metric"))
RNG = Map({"torch": Tensor(torch.uint8),
           "numpy": Map({"algorithm": Str(("MT19937",)), "keys": Tensor("int", numel=624), "pos": Int(0, 624),
                         "has_gauss": Int(0, 1), "cached_gaussian": Num(nan=True)}),
           "python": Map({"version": Int(3, 3), "internal": Seq(Int(0, 2 ** 32 - 1), 625), "gauss_next": Opt(Num())}),
           "cuda": Seq(Tensor(torch.uint8, ndim=1))}, required=("torch", "numpy", "python"))
SCALER = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")

#: key → (spec, needed by). Needed by "model": every checkpoint; "training": every training
#: checkpoint; "resume": a training checkpoint read to continue its run. A trailing "?": checked
#: when there, for that purpose (files written by earlier versions may lack it).
SCHEMA: dict[str, tuple[Spec, str]] = {
    "format": (Str((FORMAT,)), "model"),
    "kind": (Str(CHECKPOINT_KINDS), "model"),
    "recipe": (Map(extra=Any_()), "model"),              # + resolved and planned like a recipe file
    "model": (Map(extra=Tensor("any")), "model"),      # + every weight against the recipe's model
    "preprocessing": (Opt(PREPROCESSING), "model"),      # a mapping in a training checkpoint
    "provenance": (PROVENANCE, "model?"),
    "sarzoo_version": (Str(), "model?"),
    "torch_version": (Str(), "model?"),
    "saved_at": (Num(), "model?"),
    "epoch": (_COUNT, "training"),
    "step": (_COUNT, "training"),
    "best": (BEST, "training"),
    "batch_in_epoch": (_COUNT, "resume"),
    "steps_per_epoch": (Int(1), "resume"),
    "n_train": (_COUNT, "resume"),
    "n_val": (_COUNT, "resume"),
    "early_stopping": (Map({"bad_epochs": _COUNT}), "resume"),
    "nonfinite": (Map({"total": _COUNT, "in_a_row": _COUNT}), "resume"),
    "accum": (Map({**{k: Num() for k in ACCUM_KEYS}, "n": _COUNT}), "resume"),
    "metrics": (Opt(Map(extra=Scalar())), "resume?"),
    "reference": (Opt(Map(extra=Scalar())), "resume?"),
    "data": (Opt(Map(extra=Any_())), "resume?"),
    "amp": (Opt(Str()), "resume?"),
    "scaler": (Opt(Map({k: Num(finite=True) for k in SCALER}, required=())), "resume?"),  # + all or none
    "optimizer": (Map({"state": Map(extra=Any_(), key_type=int),  # + against the model's parameters
                       "param_groups": Seq(Map(extra=Any_()))}), "resume"),
    "scheduler": (Map({"plateau": Map(extra=Any_())}), "resume"),   # + against a fresh scheduler
    "rng": (RNG, "resume"),                                          # + tried on fresh generators
}


def validate(ckpt: dict[str, Any], path: str | os.PathLike, purpose: str = "model") -> None:
    """Check ``ckpt`` against ``SCHEMA`` for ``purpose`` (``model`` or ``resume``) and against the
    architecture its stored recipe builds; raise a ``SarzooError`` naming ``path`` and the bad key.

    The stored recipe goes through ``sarzoo.config`` exactly as a recipe file does, then through
    ``sarzoo.plan.make_plan`` (and its limits) before any module exists; the weights are compared
    with the state dict of the model built on the meta device (no memory), so a recipe and weights
    that do not fit are refused before anything is allocated or loaded. On success ``ckpt["recipe"]``
    is the re-resolved recipe and ``ckpt["_plan"]`` its plan.
    """
    try:
        _validate(ckpt, Path(path), purpose)
    except _Invalid as bad:
        raise SarzooError(f"{path}: key '{bad.key}': {bad.problem}; the checkpoint is damaged or not "
                          f"written by sarzoo, and nothing was loaded from it") from None


def _validate(ck: dict[str, Any], path: Path, purpose: str) -> None:
    kind_spec = SCHEMA["kind"][0]
    kind_spec.check(ck.get("kind"), "kind")
    if purpose == "resume" and ck["kind"] != "training":
        raise SarzooError(f"{path}: is an untrained model file (`sarzoo build --output`), not a training "
                          f"checkpoint: there is no run to resume. Train from its recipe instead.")
    needed = {"model"} | ({"training"} if ck["kind"] == "training" else set()) \
        | ({"resume"} if purpose == "resume" else set())
    for key, (spec, by) in SCHEMA.items():
        if by.rstrip("?") not in needed:
            continue
        if key in ck:
            spec.check(ck[key], key)
        elif not by.endswith("?"):
            raise _Invalid(key, "is missing")
    if ck["kind"] == "training" and ck["preprocessing"] is None:
        raise _Invalid("preprocessing", "must be a mapping in a training checkpoint (its fitted clip range), got null")
    plan = _check_recipe(ck, path)
    if ck.get("preprocessing") is not None:
        _check_preprocessing(ck["preprocessing"], plan.input_shape[0])
    meta = _meta_model(plan, path)
    _check_weights(ck["model"], meta)
    if purpose == "resume":
        if ck["batch_in_epoch"] > ck["steps_per_epoch"]:
            raise _Invalid("batch_in_epoch", f"is {ck['batch_in_epoch']}, more than the {ck['steps_per_epoch']} "
                                             f"steps of an epoch (steps_per_epoch)")
        scaler = ck.get("scaler")
        if scaler:
            for k in SCALER:
                if k not in scaler:
                    raise _Invalid(f"scaler.{k}", "is missing")
        params = list(meta.parameters())
        ref_opt = torch.optim.Adam(params)
        _check_optimizer(ck["optimizer"], params, ref_opt)
        _check_scheduler(ck["scheduler"], ref_opt)
        _check_rng(ck["rng"])
    ck["_plan"] = plan


def _check_preprocessing(d: dict[str, Any], channels: int) -> None:
    """The stored preprocessing builds, with a clip range per input channel of the model."""
    from sarzoo.data.preprocess import Preprocessing

    try:
        prep = Preprocessing.from_dict(d)
    except SarzooError as exc:
        raise _Invalid("preprocessing", str(exc)) from None
    if prep.channels != channels:
        raise _Invalid("preprocessing.vmin", f"holds a clip range for {prep.channels} channel(s), the model takes "
                                             f"{channels} (recipe input.channels)")


def _check_recipe(ck: dict[str, Any], path: Path):
    """The stored recipe resolved (``sarzoo.config``, as a file would be) and planned (``sarzoo.plan``)."""
    from sarzoo import config
    from sarzoo.plan import make_plan

    if "extends" in ck["recipe"]:
        raise _Invalid("recipe.extends", "a stored recipe is resolved and extends nothing; it must not name "
                                         "another recipe (or file) to read")
    source = f"recipe stored in {path}"
    try:
        loaded = config.load_with_origins(ck["recipe"], source=source)
        plan = make_plan(loaded.recipe, loaded.raw)
    except SarzooError as exc:
        msg = str(exc)
        raise SarzooError(msg if str(path) in msg else f"{source}: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - a hostile recipe must end as a user error, whatever breaks
        raise _Invalid("recipe", f"cannot be resolved and planned ({describe(exc)})") from None
    ck["recipe"] = loaded.recipe
    return plan


def _meta_model(plan: Any, path: Path):
    """The model the plan builds, on the meta device: its state dict's names and shapes, no memory."""
    from sarzoo.model import build_model

    try:
        with torch.device("meta"):
            return build_model(plan, verify_shapes=False)
    except SarzooError as exc:
        raise SarzooError(f"{path}: its recipe cannot be built: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a component that cannot build on the meta device
        raise SarzooError(f"{path}: its recipe cannot be built with the installed components "
                          f"({describe(exc)})") from None


def _check_weights(sd: dict[str, Any], meta: Any) -> None:
    """Every weight of the recipe's model there, none more, each of its shape and kind, all finite."""
    want = meta.state_dict()
    missing = [k for k in want if k not in sd]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _Invalid(f"model.{missing[0]}", f"is missing: the weights do not fit the architecture the stored "
                                              f"recipe builds (missing {', '.join(missing[:3])}{more})")
    extra = [k for k in sd if k not in want]
    if extra:
        raise _Invalid(f"model.{extra[0]}", "is not a weight of the architecture the stored recipe builds "
                                            f"({len(extra)} unexpected weight(s))")
    for k, ref in want.items():
        t = sd[k]
        kind = "float" if ref.dtype.is_floating_point else "int"
        if not _tensor_kind_ok(t, kind):
            raise _Invalid(f"model.{k}", f"must be a {kind} tensor like the model's, got {_type_name(t)}")
        if tuple(t.shape) != tuple(ref.shape):
            raise _Invalid(f"model.{k}", f"has shape {tuple(t.shape)}, the architecture the stored recipe builds "
                                         f"needs {tuple(ref.shape)}")
        if kind == "float" and not bool(torch.isfinite(t).all()):
            raise _Invalid(f"model.{k}", "holds NaN or infinite values")


_STATE_TENSORS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_optimizer(opt: dict[str, Any], params: list, ref: torch.optim.Optimizer) -> None:
    """The Adam/AdamW state of exactly the model's parameters: one group, every moment of its
    parameter's shape, hyper-parameters of the types a fresh optimizer has."""
    groups, ref_groups = opt["param_groups"], ref.state_dict()["param_groups"]
    if len(groups) != len(ref_groups):
        raise _Invalid("optimizer.param_groups", f"has {len(groups)} groups, the training optimizer "
                                                 f"{len(ref_groups)}")
    ids: dict[int, Any] = {}
    for gi, (g, rg) in enumerate(zip(groups, ref_groups)):
        key = f"optimizer.param_groups[{gi}]"
        if "params" not in g:
            raise _Invalid(f"{key}.params", "is missing")
        Seq(Int(0)).check(g["params"], f"{key}.params")
        if len(g["params"]) != len(rg["params"]) or len(set(g["params"])) != len(g["params"]):
            raise _Invalid(f"{key}.params", f"must list {len(rg['params'])} distinct parameter ids (the model's "
                                            f"parameters), got {len(g['params'])} ids")
        for pid, p in zip(g["params"], params):
            if pid in ids:
                raise _Invalid(f"{key}.params", f"lists parameter id {pid} twice")
            ids[pid] = p
        for name, want in rg.items():
            if name == "params" or name not in g:
                continue
            _like(g[name], want, f"{key}.{name}")
    for pid, st in opt["state"].items():
        key = f"optimizer.state.{pid}"
        if pid not in ids:
            raise _Invalid(key, "is the state of no parameter in optimizer.param_groups")
        Map({"step": Any_(), **{k: Tensor("float") for k in _STATE_TENSORS}},
            required=("step", "exp_avg", "exp_avg_sq")).check(st, key)
        step = st["step"]
        if isinstance(step, torch.Tensor):
            if not _tensor_kind_ok(step, "float") or step.numel() != 1:
                raise _Invalid(f"{key}.step", f"must be one floating-point number, got {_type_name(step)}")
            step = float(step)
        Num(finite=True, lo=0).check(step, f"{key}.step")
        for k in _STATE_TENSORS:
            if k in st and tuple(st[k].shape) != tuple(ids[pid].shape):
                raise _Invalid(f"{key}.{k}", f"has shape {tuple(st[k].shape)}, its parameter "
                                             f"{tuple(ids[pid].shape)}")


def _like(v: Any, want: Any, key: str) -> None:
    """``v`` of the kind of value ``want`` (a fresh optimizer's or scheduler's own setting) is."""
    if type(want) is bool:
        Bool().check(v, key)
    elif want is None:
        if v is not None and type(v) is not bool:
            raise _Invalid(key, f"must be true, false or null, got {_short(v)}")
    elif _is_num(want):
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype.is_floating_point:
            v = float(v)
        Num(finite=math.isfinite(want), lo=0.0 if want >= 0 else None).check(v, key)
    elif type(want) is str:
        Str().check(v, key)
    elif type(want) in (tuple, list):
        Seq(Num(finite=True), len(want)).check(v, key)


def _check_scheduler(sched: dict[str, Any], ref_opt: torch.optim.Optimizer) -> None:
    """ReduceLROnPlateau's state: its ``load_state_dict`` copies every key onto the scheduler, so
    only the keys a fresh one has are accepted, each of its kind."""
    plateau = sched["plateau"]
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt).state_dict()
    choices = {"mode": ("min", "max"), "threshold_mode": ("rel", "abs")}
    for k, v in plateau.items():
        key = f"scheduler.plateau.{k}"
        if k not in ref:
            raise _Invalid(key, "is not a setting of the plateau scheduler")
        want = ref[k]
        if k in choices:
            Str(choices[k]).check(v, key)
        elif _is_int(want) and k != "default_min_lr":
            Int(-1 if k == "last_epoch" else 0).check(v, key)
        elif _is_num(want):
            Num(finite=k not in ("best", "mode_worse")).check(v, key)
        elif type(want) is list:
            Seq(Num(finite=True, lo=0.0), len(want)).check(v, key)
        else:
            _like(v, want, key)
    if "factor" in plateau and not 0.0 < plateau["factor"] < 1.0:
        raise _Invalid("scheduler.plateau.factor", f"must be between 0 and 1, got {plateau['factor']}")


def _check_rng(rng: dict[str, Any]) -> None:
    """Sizes first (torch's state is ``torch.get_rng_state().numel()`` bytes), then each state tried
    on a fresh generator of its library, never on the global ones."""
    import random

    n = torch.get_rng_state().numel()
    if rng["torch"].dim() != 1 or rng["torch"].numel() != n:
        raise _Invalid("rng.torch", f"must be {n} bytes (torch's CPU generator state), got {_type_name(rng['torch'])}")
    try:
        torch.Generator().set_state(rng["torch"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _Invalid("rng.torch", f"is not a valid torch generator state ({first_line(exc)})") from None
    keys = rng["numpy"]["keys"]
    if bool((keys < 0).any()) or bool((keys > 2 ** 32 - 1).any()):
        raise _Invalid("rng.numpy.keys", "must be 624 unsigned 32-bit integers")
    nps = rng["numpy"]
    try:
        np.random.RandomState().set_state((nps["algorithm"], keys.numpy().astype(np.uint32), nps["pos"],
                                           nps["has_gauss"], nps["cached_gaussian"]))
    except (ValueError, TypeError) as exc:
        raise _Invalid("rng.numpy", f"is not a valid numpy generator state ({first_line(exc)})") from None
    py = rng["python"]
    if py["internal"][-1] > 624:
        raise _Invalid("rng.python.internal[624]", f"must be a position from 0 to 624, got {py['internal'][-1]}")
    try:
        random.Random().setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    except (ValueError, TypeError, OverflowError) as exc:
        raise _Invalid("rng.python", f"is not a valid Python generator state ({first_line(exc)})") from None


# --- reading ---------------------------------------------------------------------------------

def _open_regular(p: Path):
    """``p`` opened for reading, if it is a regular file; anything else is refused *before* it is
    opened (opening a FIFO blocks until a writer comes, a device may never end)."""
    import stat

    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise SarzooError(f"{p}: no such checkpoint file") from None
    except OSError as exc:
        raise SarzooError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise SarzooError(f"{p}: is {what}, not a checkpoint file; give the best.pt or last.pt of a run "
                          f"(nothing was read from it)")
    try:
        # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, opening it does not
        # wait for a writer, and the fstat below refuses it
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise SarzooError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SarzooError(f"{p}: is not a regular file (it changed while being opened); give a checkpoint file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read(path: str | os.PathLike, purpose: str = "model", map_location: Any = "cpu") -> dict[str, Any]:
    """A sarzoo checkpoint, loaded with ``torch.load(weights_only=True)`` only, and validated.

    ``purpose`` picks the file of a run directory (``resolve_path``) and what must be in it:
    ``model`` (``sarzoo.load``, ``sarzoo eval``) needs the model part, ``resume`` the whole training
    state (``validate``). Anything else (a missing file, a FIFO or device, a file that is not a
    checkpoint, one that needs arbitrary code to unpickle, a key missing or of the wrong type or
    size, weights that do not fit the stored recipe) is a ``SarzooError`` naming the file and the
    key; nothing in it is executed and nothing is built from it before it is validated.

    The returned dict carries ``_path`` (the file read) and ``_plan`` (the stored recipe's plan).
    """
    p = resolve_path(path, purpose)
    with _open_regular(p) as f:
        try:
            magic = f.read(2)
            f.seek(0)
        except OSError as exc:
            raise SarzooError(f"{p}: cannot read it ({exc.strerror or exc})") from None
        if magic != b"PK" and magic[:1] != b"\x80":
            # neither torch.save's zip container nor a pickle: say "not a checkpoint", not "unsafe"
            raise SarzooError(f"{p}: not a sarzoo checkpoint (not a file written by torch.save; give the "
                              f"best.pt or last.pt of a run)")
        try:
            with warnings.catch_warnings():  # torch warns about a crafted file's pickle protocol before refusing it
                warnings.simplefilter("ignore")
                obj = torch.load(f, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            text = str(exc)
            m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n\s*Check the documentation|$)", text, re.S)
            first = " ".join((m.group(1) if m else text or type(exc).__name__).split())
            first = first.split(" Please use ")[0]  # drop torch's advice to allowlist the global
            raise SarzooError(f"{p}: refused to load: the file is not a plain-data checkpoint (it would need "
                              f"arbitrary code to unpickle, which weights_only loading never runs: {first}). "
                              f"Only load checkpoints from sources you trust.") from None
        except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, TypeError, AttributeError,
                KeyError, IndexError, UnicodeDecodeError, ImportError, OverflowError, MemoryError,
                RecursionError) as exc:
            raise SarzooError(f"{p}: not a readable sarzoo checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and obj.get("format") == LEGACY_MODEL_FORMAT:
        obj = {**obj, "format": FORMAT, "kind": "model", "model": obj.get("state_dict"),
               "preprocessing": None, "provenance": {"components": obj.get("provenance") or []}}
    if not isinstance(obj, dict) or not isinstance(obj.get("format"), str) \
            or not obj["format"].startswith("sarzoo.checkpoint/"):
        raise SarzooError(f"{p}: not a sarzoo checkpoint (no sarzoo format marker)")
    if obj["format"] != FORMAT:
        raise SarzooError(f"{p}: checkpoint format {obj['format']!r} is not the one this sarzoo understands "
                          f"({FORMAT}); upgrade sarzoo")
    # files written before `kind` existed are training checkpoints
    if "kind" not in obj:
        obj["kind"] = "training" if "optimizer" in obj else "model"
    validate(obj, p, purpose)
    obj["_path"] = str(p)
    return obj


def model_from_checkpoint(ckpt: dict[str, Any], device: Any = "cpu"):
    """Rebuild the exact architecture from the stored resolved recipe and load the weights (which
    ``read`` has checked against it, so this allocates only what fits)."""
    from sarzoo.model import build_model
    from sarzoo.plan import make_plan

    plan = ckpt.get("_plan") or make_plan(ckpt["recipe"])  # read() has planned the stored recipe already
    model = build_model(plan)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:
        raise SarzooError(f"{ckpt.get('_path', 'checkpoint')}: its weights do not fit the architecture its "
                          f"recipe builds with the installed components ({first_line(exc)})") from None
    stored = {(c["kind"], c["name"]): c for c in ckpt.get("provenance", {}).get("components", [])}
    for c in model.provenance():
        old = stored.get((c["kind"], c["name"]))
        if old and (old["distribution"], old["version"]) != (c["distribution"], c["version"]):
            warnings.warn(f"{c['kind']} '{c['name']}' was trained with {old['distribution']} {old['version']}, "
                          f"now provided by {c['distribution']} {c['version']}", stacklevel=2)
    return model.to(device)


def preprocessing_of(ckpt: dict[str, Any]):
    """The checkpoint's ``Preprocessing``. A model file has no fitted clip range: it gets the fixed
    clip of its recipe's ``data:`` section (``clip.vmin``/``clip.vmax``) and its domain."""
    from sarzoo.data.preprocess import Preprocessing

    if ckpt.get("preprocessing") is not None:
        return Preprocessing.from_dict(ckpt["preprocessing"])
    from sarzoo.config import defaults
    from sarzoo.data.dataset import base_preprocessing

    data = {**defaults("data"), **(ckpt["recipe"].get("data") or {})}
    data["clip"] = {**defaults("data")["clip"], **(data.get("clip") or {})}
    return base_preprocessing(data, int((ckpt["recipe"].get("input") or {}).get("channels") or 1))
