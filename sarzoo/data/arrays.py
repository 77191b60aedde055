"""``.npy`` and ``.npz`` files as scenes: ``.npy`` memory-mapped and read by window, ``.npz``
members (zip: no mapping) loaded whole on first read and therefore limited to ``MAX_WHOLE_BYTES``.

Why headers first: a ``.npz`` member is checked against the zip directory and its own ``.npy``
header before anything is decompressed (a zip bomb ends in an error, not in gigabytes), and a
``.npy`` must hold every byte its header declares before it is mapped.
"""
from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from sarzoo.data.scene import (
    _HANDLES,
    MAX_SCENES_PER_FILE,
    Scene,
    _mib,
    _to_float,
    check_dtype,
    check_shape,
)
from sarzoo.errors import SarzooError, describe

#: Largest array read whole into memory (decompressed bytes): a ``.npz`` member. Anything larger
#: must be a file that can be read by window (``.npy`` is memory-mapped, GeoTIFF is tiled/stripped).
MAX_WHOLE_BYTES = 512 * 2**20
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_NPY_HEADER = 10_000


class _ArrayCache:
    """``.npz`` members loaded whole, most recently used first, at most ``MAX_WHOLE_BYTES`` in all
    (the latest one is always kept): the first patch read of a member loads it anyway."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def get(self, key: tuple[str, str], loader: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        a = loader()
        self.items[key] = a
        while len(self.items) > 1 and sum(v.nbytes for v in self.items.values()) > self.max_bytes:
            self.items.popitem(last=False)
        return a

    def clear(self) -> None:
        self.items.clear()


_NPZ_ARRAYS = _ArrayCache(MAX_WHOLE_BYTES)


def _read_npy_header(fp: Any, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` from a ``.npy`` header, reading only the header's bytes."""
    from numpy.lib import format as npf

    start = fp.tell()
    try:
        version = npf.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = npf.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, _fortran, dtype = npf.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except Exception as exc:
        raise SarzooError(f"{where}: not a readable .npy array ({describe(exc)})") from exc
    return tuple(int(d) for d in shape), check_dtype(where, dtype), fp.tell() - start


def _npy_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


def _load_npz_member(path: str, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A ``.npz`` member, decompressed whole (it was checked to be at most ``MAX_WHOLE_BYTES``)."""
    from numpy.lib import format as npf

    with zipfile.ZipFile(path) as zf, zf.open(name) as f:
        a = npf.read_array(f, allow_pickle=False, max_header_size=MAX_NPY_HEADER)
    if shape is not None and (a.shape != shape or a.dtype != dtype):
        raise ValueError(f"holds {a.dtype} {a.shape}, was {dtype} {shape} when opened: the file changed")
    return a


class ArrayScene(Scene):
    """A 2-D array, one frame of an ``(N, H, W)`` stack, or a ``(C, H, W)`` scene / frame of an
    ``(N, C, H, W)`` stack (``channels`` C > 1), from ``.npy`` (memory-mapped) or ``.npz``."""

    def __init__(self, path: str, frame: int | None, shape: tuple[int, int], key: str | None = None,
                 nodata: float | None = None, member: tuple[str, tuple[int, ...], np.dtype] | None = None,
                 dtype: np.dtype | None = None, channels: int = 1):
        self.path, self.frame, self.key = str(path), frame, key
        self.dtype = dtype  # the file's, as validated (complex: read as |z|²)
        self.channels = int(channels)
        base = self.path if key is None else f"{self.path}:{key}"
        self.id = base if frame is None else f"{base}[{frame}]"
        self.group = self.path
        self.height, self.width = int(shape[0]), int(shape[1])
        self.nodata = nodata
        self.member = member  # .npz: (zip member name, shape, dtype) as validated

    def _array(self) -> np.ndarray:
        if self.key is not None:
            name, shape, dtype = self.member or (self.key + ".npy", None, None)
            try:
                return _NPZ_ARRAYS.get((self.path, name), lambda: _load_npz_member(self.path, name, shape, dtype))
            except Exception as exc:
                raise SarzooError(f"{self.path}: cannot read array {self.key!r} ({describe(exc)})") from exc

        def opener() -> np.ndarray:
            try:
                return np.load(self.path, mmap_mode="r", allow_pickle=False)
            except Exception as exc:
                raise SarzooError(f"{self.path}: cannot read .npy file ({describe(exc)})") from exc

        return _HANDLES.get(("npy", self.path), opener)

    def release(self) -> None:
        """Unmap a ``.npy`` (the next read maps it again): every page read through a memory map stays
        resident in this process until the map goes, so a pass over a scene larger than memory would
        hold all of it."""
        if self.key is None:
            _HANDLES.close(("npy", self.path))

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        self._check_window(row, col, h, w)
        a = self._array()
        try:
            a = a if self.frame is None else a[self.frame]
            a = a[None, row:row + h, col:col + w] if a.ndim == 2 else a[:, row:row + h, col:col + w]
            out = _to_float(np.asarray(a), self.nodata)
        except (OSError, ValueError, IndexError) as exc:  # a memory map over a file truncated since
            raise SarzooError(f"{self.id}: failed to read window (row={row}, col={col}, {h}x{w}): "
                              f"{describe(exc)}") from exc
        if out.shape != (self.channels, h, w):
            raise SarzooError(f"{self.id}: window (row={row}, col={col}, {h}x{w}) came back {out.shape}: "
                              f"the file changed since it was opened")
        return out


def _array_scenes(path: str, checked: tuple[tuple[int, int], list[int | None], int], dtype: np.dtype,
                  key: str | None, nodata: float | None,
                  member: tuple[str, tuple[int, ...], np.dtype] | None = None) -> list[Scene]:
    """One scene per frame of an array whose header was checked: ``checked`` is ``check_shape``'s
    ``(hw, frames, C)``, ``dtype`` the one ``_read_npy_header`` checked."""
    hw, frames, c = checked
    return [ArrayScene(path, f, hw, key=key, nodata=nodata, member=member, dtype=dtype, channels=c) for f in frames]


def _open_npy(path: str, st: os.stat_result, nodata: float | None, channels: int = 1) -> list[Scene]:
    """Check the header (dtype, then shape) and that the file holds every byte it declares; the scenes
    memory-map it on their first read."""
    try:
        with open(path, "rb") as f:
            shape, dtype, offset = _read_npy_header(f, path)
    except OSError as exc:
        raise SarzooError(f"{path}: cannot read .npy file ({describe(exc)})") from exc
    checked = check_shape(path, shape, channels)
    need = offset + _npy_nbytes(shape, dtype)
    if st.st_size < need:
        raise SarzooError(f"{path}: truncated .npy file: its header declares {dtype} {shape} "
                          f"({need:,} bytes with the header), the file has {st.st_size:,} bytes")
    return _array_scenes(path, checked, dtype, None, nodata)


def _open_npz(path: str, nodata: float | None, channels: int = 1) -> list[Scene]:
    """Check every member from the zip directory and its ``.npy`` header, before decompressing any
    data: a member declaring more than ``MAX_WHOLE_BYTES`` is refused (it would be loaded whole),
    and one whose header disagrees with the zip entry's size is broken or hostile."""
    scenes: list[Scene] = []
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if not infos:
                raise SarzooError(f"{path}: .npz file holds no array")
            if len(infos) > MAX_SCENES_PER_FILE:
                raise SarzooError(f"{path}: .npz file holds {len(infos):,} members, more than the "
                                  f"{MAX_SCENES_PER_FILE:,} one file may hold")
            for info in infos:
                name = info.filename
                if not name.endswith(".npy"):
                    raise SarzooError(f"{path}: member {name!r} is not a .npy array (a .npz holds only "
                                      f".npy members, as numpy.savez writes them)")
                key = name[:-4]
                where = f"{path}:{key}"
                if info.file_size > MAX_WHOLE_BYTES:
                    raise SarzooError(
                        f"{where}: the zip directory declares {_mib(info.file_size)} uncompressed "
                        f"({_mib(info.compress_size)} compressed); a .npz member is read whole and at most "
                        f"{_mib(MAX_WHOLE_BYTES)} is; convert it to .npy (memory-mapped) or a tiled GeoTIFF, "
                        f"which are read window by window")
                with zf.open(info) as f:
                    shape, dtype, offset = _read_npy_header(f, where)
                checked = check_shape(where, shape, channels)
                need = offset + _npy_nbytes(shape, dtype)
                if need != info.file_size:
                    raise SarzooError(f"{where}: its .npy header declares {dtype} {shape} ({need:,} bytes with "
                                      f"the header) but the zip entry holds {info.file_size:,} bytes: "
                                      f"the file is broken")
                scenes.extend(_array_scenes(path, checked, dtype, key, nodata, member=(name, shape, dtype)))
                if len(scenes) > MAX_SCENES_PER_FILE:
                    raise SarzooError(f"{path}: holds more than {MAX_SCENES_PER_FILE:,} scenes (frames); "
                                      f"split it into several files")
    except SarzooError:
        raise
    except Exception as exc:  # BadZipFile, encrypted or unsupported compression, truncated data
        raise SarzooError(f"{path}: cannot read .npz file ({describe(exc)})") from exc
    return scenes
