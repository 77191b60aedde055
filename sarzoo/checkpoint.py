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

import os
import pickle
import re
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarzoo.errors import SarzooError, first_line
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

__all__ = ["FORMAT", "CHECKPOINT_KINDS", "FAULT_ENV", "TMP_PREFIX", "resolve_path", "read", "write", "model_payload",
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


# --- reading -----------------------------------------------------------------------------------

def read(path: str | os.PathLike, purpose: str = "model", map_location: Any = "cpu") -> dict[str, Any]:
    """A sarzoo checkpoint, loaded with ``torch.load(weights_only=True)`` only.

    ``purpose`` picks the file of a run directory (``resolve_path``); ``resume`` also requires a
    training checkpoint. Anything else (a missing file, a file that is not a checkpoint, one that
    needs arbitrary code to unpickle) is a ``SarzooError`` saying so; nothing in it is executed.
    """
    p = resolve_path(path, purpose)
    if not p.exists():
        raise SarzooError(f"{p}: no such checkpoint file")
    try:
        with open(p, "rb") as f:
            magic = f.read(2)
    except OSError as exc:
        raise SarzooError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    if magic != b"PK" and magic[:1] != b"\x80":
        # neither torch.save's zip container nor a pickle: say "not a checkpoint", not "unsafe"
        raise SarzooError(f"{p}: not a sarzoo checkpoint (not a file written by torch.save; give the "
                          f"best.pt or last.pt of a run)")
    try:
        with warnings.catch_warnings():  # torch warns about a crafted file's pickle protocol before refusing it
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n\s*Check the documentation|$)", text, re.S)
        first = " ".join((m.group(1) if m else text or type(exc).__name__).split())
        first = first.split(" Please use ")[0]  # drop torch's advice to allowlist the global
        raise SarzooError(f"{p}: refused to load: the file is not a plain-data checkpoint (it would need "
                          f"arbitrary code to unpickle, which weights_only loading never runs: {first}). "
                          f"Only load checkpoints from sources you trust.") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, TypeError, AttributeError,
            KeyError, IndexError, UnicodeDecodeError, ImportError) as exc:
        raise SarzooError(f"{p}: not a readable sarzoo checkpoint ({first_line(exc)})") from None
    if isinstance(obj, dict) and obj.get("format") == LEGACY_MODEL_FORMAT:
        obj = {**obj, "format": FORMAT, "kind": "model", "model": obj.get("state_dict"),
               "preprocessing": None, "provenance": {"components": obj.get("provenance") or []}}
    if not isinstance(obj, dict) or not str(obj.get("format", "")).startswith("sarzoo.checkpoint/"):
        raise SarzooError(f"{p}: not a sarzoo checkpoint (no sarzoo format marker)")
    if obj["format"] != FORMAT:
        raise SarzooError(f"{p}: checkpoint format {obj['format']!r} is newer than this sarzoo understands "
                          f"({FORMAT}); upgrade sarzoo")
    for key in ("recipe", "model"):
        if not isinstance(obj.get(key), dict):
            raise SarzooError(f"{p}: not a usable sarzoo checkpoint: key '{key}' is "
                              f"{'missing' if key not in obj else type(obj[key]).__name__}, not a mapping")
    # files written before `kind` existed are training checkpoints
    obj.setdefault("kind", "training" if "optimizer" in obj else "model")
    if purpose == "resume" and obj["kind"] != "training":
        raise SarzooError(f"{p}: is an untrained model file (`sarzoo build --output`), not a training "
                          f"checkpoint: there is no run to resume. Train from its recipe instead.")
    obj["_path"] = str(p)
    return obj


def model_from_checkpoint(ckpt: dict[str, Any], device: Any = "cpu"):
    """Rebuild the exact architecture from the stored resolved recipe and load the weights."""
    from sarzoo.model import build_model
    from sarzoo.plan import make_plan

    model = build_model(make_plan(ckpt["recipe"]))
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

    data = {**defaults("data"), **(ckpt["recipe"].get("data") or {})}
    clip = {**defaults("data")["clip"], **(data.get("clip") or {})}
    return Preprocessing(domain=data["domain"], vmin=float(clip["vmin"]), vmax=float(clip["vmax"]),
                         nodata=data["nodata"])
