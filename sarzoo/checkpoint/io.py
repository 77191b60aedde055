"""Checkpoint files: which file a path means, writing (atomic, plain data only), reading (regular
files only, ``weights_only``, then ``validate``), and the model and preprocessing a checkpoint
holds. The format itself is ``sarzoo.checkpoint.schema``.
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

from sarzoo.checkpoint.schema import FORMAT, LEGACY_MODEL_FORMAT
from sarzoo.checkpoint.validate import validate
from sarzoo.errors import SarzooError, first_line
from sarzoo.files import atomic_write, file_kind

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


def fault_point(kind: str, value: int) -> None:
    """SIGKILL this process if ``SARZOO_TEST_SIGKILL`` asks for it at ``kind:value`` (tests only);
    ``kind:value@R`` kills only the process of rank ``R`` of a run on several processes."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    spec, _, rank = spec.partition("@")
    if rank and rank.strip() != os.environ.get("RANK", "0"):
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
        raise SarzooError(f"{p}: is {file_kind(st.st_mode)}, not a checkpoint file; give the best.pt or "
                          f"last.pt of a run (nothing was read from it)")
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
    """The ``Preprocessing`` of a checkpoint returned by ``read`` (its recipe is the resolved one,
    ``_plan`` its plan). A model file has no fitted clip range: it gets the fixed clip of its
    recipe's ``data:`` section (``clip.vmin``/``clip.vmax``) and its domain."""
    from sarzoo.data.preprocess import Preprocessing

    if ckpt.get("preprocessing") is not None:
        return Preprocessing.from_dict(ckpt["preprocessing"])
    from sarzoo.data.dataset import base_preprocessing

    return base_preprocessing(ckpt["recipe"]["data"], int(ckpt["_plan"].input_shape[0]))
