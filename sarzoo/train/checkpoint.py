"""Checkpoints: written atomically, read only with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (str, int, float, bool, None, lists,
tuples, dicts) and nothing else, so the restricted unpickler of ``weights_only=True`` accepts it
and a file crafted to run code on load is refused. RNG states are stored as tensors/ints for the
same reason.

Writing goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed over
the target with ``os.replace`` (atomic on POSIX and Windows) and the directory is fsync'ed: a
crash or ``kill -9`` at any moment leaves either the previous complete checkpoint or the new one.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarzoo.errors import SarzooError

FORMAT = "sarzoo.checkpoint/1"
TMP_PREFIX = ".tmp-"

#: TEST-ONLY fault injection; never set it outside the test suite. ``step:K`` makes the training
#: process SIGKILL itself right after optimizer step K (after that step's checkpoint, if one was
#: due); ``save:N`` makes it SIGKILL itself inside its N-th checkpoint write, after the temporary
#: file is complete and before it is renamed over the target. It is a real ``SIGKILL`` (what the OOM
#: killer or ``kill -9`` does), placed deterministically so the resume and atomicity tests need no
#: timing races.
FAULT_ENV = "SARZOO_TEST_SIGKILL"
_saves = 0


def fault_point(kind: str, value: int) -> None:
    """SIGKILL this process if ``SARZOO_TEST_SIGKILL`` asks for it at ``kind:value`` (tests only)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    k, _, v = spec.partition(":")
    if k == kind and v.strip().isdigit() and int(v) == value:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# --- RNG state as weights_only-safe values ---------------------------------------------------

def rng_state() -> dict[str, Any]:
    """torch (CPU and every CUDA device), numpy and python RNG states as tensors and ints."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"algorithm": str(np_state[0]), "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "internal": list(py_internal), "gauss_next": py_gauss},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [t.cpu() for t in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8))
    n = state["numpy"]
    np.random.set_state((n["algorithm"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])


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


def _fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _chmod_like_new_file(path: str) -> None:
    """mkstemp creates 0600; give the checkpoint the permissions open() would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``payload`` to ``path`` atomically (tmp file in the same dir, fsync, rename, fsync dir)."""
    global _saves
    _saves += 1
    path = Path(path)
    directory = str(path.parent.resolve())
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".pt", dir=directory)
    try:
        _chmod_like_new_file(tmp)
        with os.fdopen(fd, "wb") as f:
            torch.save(plain(payload), f)
            f.flush()
            os.fsync(f.fileno())
        fault_point("save", _saves)
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def clean_tmp_files(directory: str | os.PathLike) -> None:
    """Remove temporary files a killed writer left behind (never complete checkpoints)."""
    for p in Path(directory).glob(f"{TMP_PREFIX}*.pt"):
        try:
            p.unlink()
        except OSError:
            pass


# --- reading -----------------------------------------------------------------------------------

def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A sarzoo training checkpoint, loaded with ``torch.load(weights_only=True)`` only.

    Anything else (a missing file, a directory, a file that is not a checkpoint, one that needs
    arbitrary code to unpickle) is a ``SarzooError`` saying so; nothing in the file is executed.
    """
    p = Path(path)
    if p.is_dir():
        cand = p / "last.pt"
        if not cand.exists():
            raise SarzooError(f"{p}: is a directory without last.pt; give a checkpoint file (best.pt or last.pt)")
        p = cand
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SarzooError(f"{p}: not a readable sarzoo checkpoint ({first})") from None
    if not isinstance(obj, dict) or not str(obj.get("format", "")).startswith("sarzoo.checkpoint/"):
        hint = ""
        if isinstance(obj, dict) and obj.get("format") == "sarzoo.model/1":
            hint = " (it is an untrained model written by `sarzoo build --output`, without preprocessing)"
        raise SarzooError(f"{p}: not a sarzoo training checkpoint{hint}")
    if obj["format"] != FORMAT:
        raise SarzooError(f"{p}: checkpoint format {obj['format']!r} is newer than this sarzoo understands "
                          f"({FORMAT}); upgrade sarzoo")
    obj["_path"] = str(p)
    return obj


def model_from_checkpoint(ckpt: dict[str, Any], device: Any = "cpu"):
    """Rebuild the exact architecture from the stored resolved recipe and load the weights."""
    from sarzoo.builder import instantiate, make_plan

    plan = make_plan(ckpt["recipe"])
    model = instantiate(plan)
    try:
        model.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as exc:
        raise SarzooError(f"{ckpt.get('_path', 'checkpoint')}: its weights do not fit the architecture its "
                          f"recipe builds with the installed components ({str(exc).splitlines()[0]})") from None
    stored = {(c["kind"], c["name"]): c for c in ckpt.get("provenance", {}).get("components", [])}
    for c in model.provenance():
        old = stored.get((c["kind"], c["name"]))
        if old and (old["distribution"], old["version"]) != (c["distribution"], c["version"]):
            warnings.warn(f"{c['kind']} '{c['name']}' was trained with {old['distribution']} {old['version']}, "
                          f"now provided by {c['distribution']} {c['version']}", stacklevel=2)
    return model.to(device)
