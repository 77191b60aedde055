"""Writing files so that a crash never leaves half of one: the one atomic writer.

Everything sarzoo writes that a user falls back on (checkpoints, model files, previews, reports)
goes to a temporary file in the target's directory, is flushed and fsync'ed, then renamed over
the target (``os.replace``, atomic on POSIX and Windows), and the directory is fsync'ed. A
``kill -9`` at any moment leaves either the previous complete file or the new one.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

#: Prefix of the temporary files; a killed writer may leave one behind (``remove_partial``).
TMP_PREFIX = ".tmp-"


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
    """mkstemp creates 0600; give the file the permissions open() would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(path, 0o666 & ~umask)
    except OSError:
        pass


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is ("a FIFO (named pipe)", ...), from ``os.stat``'s
    ``st_mode``: the words every refusal of a non-regular input (data file, checkpoint) uses."""
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None],
                 before_rename: Callable[[], None] | None = None) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a binary temporary file that replaces it.

    ``before_rename`` runs once the temporary file is complete, before it replaces the target
    (the test suite's fault injection kills the process there).
    """
    path = Path(path)
    directory = str(path.parent.resolve())
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=directory)
    try:
        _chmod_like_new_file(tmp)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def remove_partial(directory: str | os.PathLike, suffix: str = "") -> None:
    """Remove temporary files a killed writer left in ``directory`` (never complete files)."""
    for p in Path(directory).glob(f"{TMP_PREFIX}*{suffix}"):
        try:
            p.unlink()
        except OSError:
            pass


def jsonable(o):
    """Plain JSON values: NaN and ±inf become None (JSON has no such numbers), numpy and torch
    scalars become Python numbers, tuples lists. The one cleaner for reports, logs and --json."""
    import math

    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if hasattr(o, "tolist") and callable(o.tolist):  # numpy / torch scalars, arrays and tensors
        n = o.numel() if hasattr(o, "numel") else getattr(o, "size", None)
        o = o.item() if n == 1 else o.tolist()
        if isinstance(o, list):
            return jsonable(o)
    if isinstance(o, bool):
        return o
    if isinstance(o, int):
        return int(o)
    if isinstance(o, float):
        return float(o) if math.isfinite(o) else None
    return o
