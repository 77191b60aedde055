"""A checkpoint read from outside, checked once at the door: the schema, then what needs more than
a type check (the stored recipe through ``sarzoo.config`` and the planner, the weights against the
model that recipe builds on the meta device, the optimizer, scheduler and RNG states on throwaway
objects). Every problem is one ``SarzooError`` naming the file and the key.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarzoo.checkpoint.schema import SCALER, SCHEMA
from sarzoo.checkpoint.spec import (
    Any_,
    Bool,
    Int,
    Invalid,
    Map,
    Num,
    Seq,
    Str,
    Tensor,
    is_int,
    is_num,
    short,
    tensor_kind_ok,
    type_name,
)
from sarzoo.errors import SarzooError, describe, first_line


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
    except Invalid as bad:
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
            raise Invalid(key, "is missing")
    if ck["kind"] == "training" and ck["preprocessing"] is None:
        raise Invalid("preprocessing", "must be a mapping in a training checkpoint (its fitted clip range), got null")
    plan = _check_recipe(ck, path)
    if ck.get("preprocessing") is not None:
        _check_preprocessing(ck["preprocessing"], plan.input_shape[0])
    meta = _meta_model(plan, path)
    _check_weights(ck["model"], meta)
    if purpose == "resume":
        if ck["batch_in_epoch"] > ck["steps_per_epoch"]:
            raise Invalid("batch_in_epoch", f"is {ck['batch_in_epoch']}, more than the {ck['steps_per_epoch']} "
                                             f"steps of an epoch (steps_per_epoch)")
        if ck.get("samples_in_epoch") is not None and ck["samples_in_epoch"] > ck["n_train"]:
            raise Invalid("samples_in_epoch", f"is {ck['samples_in_epoch']}, more than the {ck['n_train']} training "
                                               f"patches (n_train)")
        scaler = ck.get("scaler")
        if scaler:
            for k in SCALER:
                if k not in scaler:
                    raise Invalid(f"scaler.{k}", "is missing")
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
        raise Invalid("preprocessing", str(exc)) from None
    if prep.channels != channels:
        raise Invalid("preprocessing.vmin", f"holds a clip range for {prep.channels} channel(s), the model takes "
                                             f"{channels} (recipe input.channels)")


def _check_recipe(ck: dict[str, Any], path: Path):
    """The stored recipe resolved (``sarzoo.config``, as a file would be) and planned (``sarzoo.plan``)."""
    from sarzoo import config
    from sarzoo.plan import make_plan

    if "extends" in ck["recipe"]:
        raise Invalid("recipe.extends", "a stored recipe is resolved and extends nothing; it must not name "
                                         "another recipe (or file) to read")
    source = f"recipe stored in {path}"
    try:
        loaded = config.load_with_origins(ck["recipe"], source=source)
        plan = make_plan(loaded.recipe, loaded.raw)
    except SarzooError as exc:
        msg = str(exc)
        raise SarzooError(msg if str(path) in msg else f"{source}: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - a hostile recipe must end as a user error, whatever breaks
        raise Invalid("recipe", f"cannot be resolved and planned ({describe(exc)})") from None
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
        raise Invalid(f"model.{missing[0]}", f"is missing: the weights do not fit the architecture the stored "
                                              f"recipe builds (missing {', '.join(missing[:3])}{more})")
    extra = [k for k in sd if k not in want]
    if extra:
        raise Invalid(f"model.{extra[0]}", "is not a weight of the architecture the stored recipe builds "
                                            f"({len(extra)} unexpected weight(s))")
    for k, ref in want.items():
        t = sd[k]
        kind = "float" if ref.dtype.is_floating_point else "int"
        if not tensor_kind_ok(t, kind):
            raise Invalid(f"model.{k}", f"must be a {kind} tensor like the model's, got {type_name(t)}")
        if tuple(t.shape) != tuple(ref.shape):
            raise Invalid(f"model.{k}", f"has shape {tuple(t.shape)}, the architecture the stored recipe builds "
                                         f"needs {tuple(ref.shape)}")
        if kind == "float" and not bool(torch.isfinite(t).all()):
            raise Invalid(f"model.{k}", "holds NaN or infinite values")


_STATE_TENSORS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _check_optimizer(opt: dict[str, Any], params: list, ref: torch.optim.Optimizer) -> None:
    """The Adam/AdamW state of exactly the model's parameters: one group, every moment of its
    parameter's shape, hyper-parameters of the types a fresh optimizer has."""
    groups, ref_groups = opt["param_groups"], ref.state_dict()["param_groups"]
    if len(groups) != len(ref_groups):
        raise Invalid("optimizer.param_groups", f"has {len(groups)} groups, the training optimizer "
                                                 f"{len(ref_groups)}")
    ids: dict[int, Any] = {}
    for gi, (g, rg) in enumerate(zip(groups, ref_groups)):
        key = f"optimizer.param_groups[{gi}]"
        if "params" not in g:
            raise Invalid(f"{key}.params", "is missing")
        Seq(Int(0)).check(g["params"], f"{key}.params")
        if len(g["params"]) != len(rg["params"]) or len(set(g["params"])) != len(g["params"]):
            raise Invalid(f"{key}.params", f"must list {len(rg['params'])} distinct parameter ids (the model's "
                                            f"parameters), got {len(g['params'])} ids")
        for pid, p in zip(g["params"], params):
            if pid in ids:
                raise Invalid(f"{key}.params", f"lists parameter id {pid} twice")
            ids[pid] = p
        for name, want in rg.items():
            if name == "params" or name not in g:
                continue
            _like(g[name], want, f"{key}.{name}")
    for pid, st in opt["state"].items():
        key = f"optimizer.state.{pid}"
        if pid not in ids:
            raise Invalid(key, "is the state of no parameter in optimizer.param_groups")
        Map({"step": Any_(), **{k: Tensor("float") for k in _STATE_TENSORS}},
            required=("step", "exp_avg", "exp_avg_sq")).check(st, key)
        step = st["step"]
        if isinstance(step, torch.Tensor):
            if not tensor_kind_ok(step, "float") or step.numel() != 1:
                raise Invalid(f"{key}.step", f"must be one floating-point number, got {type_name(step)}")
            step = float(step)
        Num(finite=True, lo=0).check(step, f"{key}.step")
        for k in _STATE_TENSORS:
            if k in st and tuple(st[k].shape) != tuple(ids[pid].shape):
                raise Invalid(f"{key}.{k}", f"has shape {tuple(st[k].shape)}, its parameter "
                                             f"{tuple(ids[pid].shape)}")


def _like(v: Any, want: Any, key: str) -> None:
    """``v`` of the kind of value ``want`` (a fresh optimizer's or scheduler's own setting) is."""
    if type(want) is bool:
        Bool().check(v, key)
    elif want is None:
        if v is not None and type(v) is not bool:
            raise Invalid(key, f"must be true, false or null, got {short(v)}")
    elif is_num(want):
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
            raise Invalid(key, "is not a setting of the plateau scheduler")
        want = ref[k]
        if k in choices:
            Str(choices[k]).check(v, key)
        elif is_int(want) and k != "default_min_lr":
            Int(-1 if k == "last_epoch" else 0).check(v, key)
        elif is_num(want):
            Num(finite=k not in ("best", "mode_worse")).check(v, key)
        elif type(want) is list:
            Seq(Num(finite=True, lo=0.0), len(want)).check(v, key)
        else:
            _like(v, want, key)
    if "factor" in plateau and not 0.0 < plateau["factor"] < 1.0:
        raise Invalid("scheduler.plateau.factor", f"must be between 0 and 1, got {plateau['factor']}")


def _check_rng(rng: dict[str, Any]) -> None:
    """Sizes first (torch's state is ``torch.get_rng_state().numel()`` bytes), then each state tried
    on a fresh generator of its library, never on the global ones."""
    import random

    n = torch.get_rng_state().numel()
    if rng["torch"].dim() != 1 or rng["torch"].numel() != n:
        raise Invalid("rng.torch", f"must be {n} bytes (torch's CPU generator state), got {type_name(rng['torch'])}")
    try:
        torch.Generator().set_state(rng["torch"])
    except (RuntimeError, ValueError, TypeError) as exc:
        raise Invalid("rng.torch", f"is not a valid torch generator state ({first_line(exc)})") from None
    keys = rng["numpy"]["keys"]
    if bool((keys < 0).any()) or bool((keys > 2 ** 32 - 1).any()):
        raise Invalid("rng.numpy.keys", "must be 624 unsigned 32-bit integers")
    nps = rng["numpy"]
    try:
        np.random.RandomState().set_state((nps["algorithm"], keys.numpy().astype(np.uint32), nps["pos"],
                                           nps["has_gauss"], nps["cached_gaussian"]))
    except (ValueError, TypeError) as exc:
        raise Invalid("rng.numpy", f"is not a valid numpy generator state ({first_line(exc)})") from None
    py = rng["python"]
    if py["internal"][-1] > 624:
        raise Invalid("rng.python.internal[624]", f"must be a position from 0 to 624, got {py['internal'][-1]}")
    try:
        random.Random().setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    except (ValueError, TypeError, OverflowError) as exc:
        raise Invalid("rng.python", f"is not a valid Python generator state ({first_line(exc)})") from None
