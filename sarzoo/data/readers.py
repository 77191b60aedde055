"""Raster sources: every input file becomes one or more ``Scene`` objects read by window.

Why windows: a Sentinel-1 GRD scene is ~25000 × 16000 pixels; cutting one 256 px patch must
not load the whole scene. GeoTIFF/TIFF/PNG go through rasterio (GDAL), which reads only the
tiles or strips a window touches and reports the file's nodata value; ``.npy`` files are
memory-mapped. ``.npz`` members cannot be mapped (zip) and are loaded whole on first read, so
they are limited to ``MAX_WHOLE_BYTES`` decompressed.

Why ``open_sources`` validates everything up front: a corrupt file found at epoch 7 wastes the
six epochs before it. Headers are opened (and shapes/dtypes checked) before training starts,
and any failure is a ``SarzooError`` naming the file.

Why sizes are checked from headers before anything is read: a hostile or broken file (a zip
bomb, a sparse GeoTIFF declaring 100000 × 100000 pixels, a FIFO or ``/dev/zero`` named as data)
must end in a ``SarzooError`` within seconds, not in minutes of decompression, gigabytes of
memory or a hang. Only regular files are opened; every declared size is checked against the
limits below and against the file's real size first.

Values come back as float32 ``(C, h, w)`` windows (C channels: the bands of a multi-band
GeoTIFF, the first axis of a ``(C, H, W)`` array, 1 otherwise) with the file's nodata value (or
the override) replaced by NaN, so downstream code has one shape and one no-data convention.
Complex data (SLC) comes back as |z|², i.e. linear intensity. Files holding one band each
(``*-vv-*.tiff`` beside ``*-vh-*.tiff``) are joined into one scene by ``sarzoo.data.bands``.
"""
from __future__ import annotations

import glob
import os
import stat
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from sarzoo.data import complex as complex_data
from sarzoo.data import safe

# MAX_OPEN_FILES, MAX_SCENE_PIXELS and _HandleCache lived here before scene.py: still importable from here
from sarzoo.data.scene import (
    _HANDLES,
    MAX_OPEN_FILES,  # noqa: F401
    MAX_SCENE_PIXELS,  # noqa: F401
    Scene,
    _HandleCache,  # noqa: F401
    check_scene_size,
)
from sarzoo.errors import SarzooError, describe

RASTER_EXTS = (".tif", ".tiff", ".gtiff", ".png")
ARRAY_EXTS = (".npy", ".npz")
SUPPORTED_EXTS = RASTER_EXTS + ARRAY_EXTS
#: ... and a Sentinel-1 product's zip (``sarzoo.data.safe``), when named or matched by a glob
ACCEPTED_EXTS = SUPPORTED_EXTS + (".zip",)

#: Largest array read whole into memory (decompressed bytes): a ``.npz`` member. Anything larger
#: must be a file that can be read by window (``.npy`` is memory-mapped, GeoTIFF is tiled/stripped).
MAX_WHOLE_BYTES = 512 * 2**20
#: Most scenes one file may declare (frames of an ``(N, H, W)`` stack, members of a ``.npz``).
MAX_SCENES_PER_FILE = 100_000
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_NPY_HEADER = 10_000


def _mib(n: int | float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def check_regular_file(path: str) -> os.stat_result:
    """``os.stat`` of ``path`` if it is a regular file; ``SarzooError`` otherwise, without opening it.

    Why ``stat`` and not ``open``: opening a FIFO blocks until a writer appears, and a device
    such as ``/dev/zero`` never ends; neither is data a scene can be cut from.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SarzooError(f"{path}: cannot access file ({exc.strerror or exc})") from exc
    if stat.S_ISREG(st.st_mode):
        return st
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
    raise SarzooError(f"{path}: is {kind}, not a regular data file; give files, directories or glob patterns "
                      f"of {', '.join(SUPPORTED_EXTS)} files")


def check_dtype(where: str, dtype: Any) -> np.dtype:
    """The dtype if sarzoo can read it as float32 values (integers, floats, complex as |z|²)."""
    dt = np.dtype(dtype)
    if dt.kind in "iufc" and dt.fields is None and not dt.shape:
        return dt
    what = {"O": "object: Python objects, never loaded as that needs pickle", "b": "bool", "U": "str",
            "S": "bytes", "V": "structured", "M": "datetime", "m": "timedelta"}.get(dt.kind, "not numeric")
    raise SarzooError(f"{where}: array dtype {dt} ({what}) is not supported; expected integer, float or "
                      f"complex values (complex is read as intensity |z|²)")


def check_shape(where: str, shape: tuple[int, ...], channels: int = 1
                ) -> tuple[tuple[int, int], list[int | None], int]:
    """``((H, W), frames, C)`` of an array after checking the declared sizes.

    The rule (``channels`` is the recipe's ``input.channels``): ``(H, W)`` is one single-band scene;
    with one channel ``(N, H, W)`` is N frames (as always); with C > 1 channels ``(C, H, W)`` is one
    C-band scene and ``(N, C, H, W)`` N of them. An ``(N, H, W)`` whose N is not C is refused then:
    it cannot be told from a stack of single-band frames.
    """
    shape = tuple(int(d) for d in shape)
    if shape and min(shape) < 1:
        raise SarzooError(f"{where}: empty array of shape {shape}")
    c, n = 1, None  # n: frames of a stack (None: the array is one scene)
    if len(shape) == 2:
        hw = shape
    elif len(shape) == 3 and channels == 1:
        hw, n = shape[1:], shape[0]
    elif len(shape) == 3 and shape[0] == channels:
        hw, c = shape[1:], channels
    elif len(shape) == 4 and channels > 1 and shape[1] == channels:
        hw, n, c = shape[2:], shape[0], channels
    elif len(shape) in (3, 4) and channels > 1:
        want = f"({channels}, H, W) or (N, {channels}, H, W)"
        raise SarzooError(f"{where}: shape {shape} does not hold the recipe's input.channels = {channels} bands: "
                          f"expected {want} (bands on the first axis of a scene), or (H, W) single-band arrays "
                          f"grouped by band name (data.bands)")
    else:
        more = " (N, C, H, W) stacks need input.channels = C > 1;" if len(shape) == 4 else ""
        raise SarzooError(f"{where}: expected (H, W) or (N, H, W) array, got {len(shape)}-D shape {shape};{more} "
                          f"see docs/data.md")
    if n is not None and n > MAX_SCENES_PER_FILE:
        raise SarzooError(f"{where}: declares {n:,} frames (shape {shape}), more than the "
                          f"{MAX_SCENES_PER_FILE:,} one file may hold; split it into several files")
    check_scene_size(where, hw[0], hw[1])
    return (hw[0], hw[1]), [None] if n is None else list(range(n)), c


def _ext(path: str) -> str:
    return Path(path).suffix.lower()


def _nodata_match(a: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """Where ``a`` equals ``nodata``, compared in ``a``'s own dtype so float32 values match exactly."""
    if nodata is None:
        return None
    if np.isnan(nodata):
        return np.isnan(a) if a.dtype.kind in "fc" else None
    if a.dtype.kind in "fc":
        return a == np.asarray(nodata).astype(a.dtype)
    if a.dtype.kind in "iu" and float(nodata).is_integer():
        info = np.iinfo(a.dtype)
        return a == int(nodata) if info.min <= nodata <= info.max else None
    return None


def _to_float(a: np.ndarray, nodata: float | None) -> np.ndarray:
    """float32 with ``nodata`` replaced by NaN; complex (SLC) data becomes intensity |z|²."""
    bad = _nodata_match(a, nodata)
    if np.iscomplexobj(a):
        out = a.real.astype(np.float32) ** 2 + a.imag.astype(np.float32) ** 2
    else:
        out = a.astype(np.float32, copy=True)
    if bad is not None and bad.any():
        out[bad] = np.nan
    return out


class RasterScene(Scene):
    """Bands of a GeoTIFF/TIFF/PNG read through rasterio, one window at a time.

    A file with exactly ``channels`` bands (the recipe's ``input.channels``) is one scene of all of
    them, in band order; otherwise the scene is band ``band`` alone (a single-band file, which
    ``sarzoo.data.bands`` may join with its sibling polarisations). Holds no handle itself (so it
    pickles into DataLoader workers): the GDAL dataset comes from a small per-process cache.
    """

    def __init__(self, path: str, band: int = 1, nodata: float | None = None, channels: int | None = None):
        self.path, self.band = str(path), int(band)
        self.id = self.group = self.path
        src = self._open()
        # everything below comes from the header: nothing is read before the sizes are checked
        if channels is not None and src.count > channels:
            raise SarzooError(f"{self.path}: has {src.count} bands, more than the recipe's input.channels = "
                              f"{channels}; give each band (polarisation) as its own single-band file "
                              f"(e.g. `gdal_translate -b 1`), or train a {src.count}-channel recipe")
        if not 1 <= self.band <= src.count:
            raise SarzooError(f"{self.path}: has {src.count} band(s), band {self.band} requested")
        multi = channels is not None and channels > 1 and src.count == channels
        self.indexes = list(range(1, src.count + 1)) if multi else [self.band]
        self.channels = len(self.indexes)
        self.height, self.width = int(src.height), int(src.width)
        check_scene_size(self.path, self.height, self.width)
        for i in self.indexes:
            self.dtype = src.dtypes[i - 1]
            if self.dtype != "complex_int16":  # GDAL's CInt16 (SLC), read as complex64
                try:
                    check_dtype(self.path, self.dtype)
                except TypeError as exc:
                    raise SarzooError(f"{self.path}: raster data type {self.dtype} is not supported") from exc
        self.nodatas = [nodata if nodata is not None else
                        (None if src.nodatavals[i - 1] is None else float(src.nodatavals[i - 1])) for i in self.indexes]
        self.nodata = self.nodatas[0]

    def _open(self) -> Any:
        def opener() -> Any:
            import rasterio

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NotGeoreferencedWarning for PNG / GCP-only GRD
                    return rasterio.open(self.path)
            except Exception as exc:  # RasterioIOError and friends
                raise SarzooError(f"{self.path}: cannot read raster file ({exc})") from exc

        return _HANDLES.get(("raster", self.path), opener, lambda src: src.close())

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        from rasterio.windows import Window

        self._check_window(row, col, h, w)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = self._open().read(self.indexes, window=Window(col, row, w, h))
        except SarzooError:
            raise
        except Exception as exc:
            raise SarzooError(f"{self.path}: failed to read window (row={row}, col={col}, {h}x{w}): {exc}") from exc
        if len(set(self.nodatas)) == 1:
            return _to_float(a, self.nodata)
        return np.stack([_to_float(b, nd) for b, nd in zip(a, self.nodatas)])  # a nodata value per band


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


class MemoryScene(Scene):
    """An in-memory scene, ``(H, W)`` or ``(C, H, W)``, optionally with its clean reflectivity of the
    same shape (synthetic data, tests)."""

    def __init__(self, scene_id: str, data: np.ndarray, clean: np.ndarray | None = None,
                 group: str | None = None, nodata: float | None = None):
        data = np.asarray(data)
        if data.ndim not in (2, 3) or min(data.shape) < 1:
            raise SarzooError(f"{scene_id}: expected a 2-D (H, W) or 3-D (C, H, W) array, got shape {data.shape}")
        data = data[None] if data.ndim == 2 else data
        self.id, self.group = scene_id, group or scene_id
        self.channels, self.height, self.width = data.shape
        self.nodata = nodata
        self.data = data
        if clean is not None:
            clean = np.asarray(clean, dtype=np.float32)
            clean = clean[None] if clean.ndim == 2 else clean
            if clean.shape != data.shape:
                raise SarzooError(f"{scene_id}: clean reflectivity of shape {clean.shape} does not match the "
                                  f"data's {data.shape}")
        self.clean = clean
        self.has_clean = clean is not None

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        self._check_window(row, col, h, w)
        return _to_float(self.data[:, row:row + h, col:col + w], self.nodata)

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        if self.clean is None:
            return None
        self._check_window(row, col, h, w)
        return self.clean[:, row:row + h, col:col + w].copy()


# --- opening and validating ----------------------------------------------------------------

def _array_scenes(path: str, shape: tuple[int, ...], dtype: np.dtype, key: str | None, nodata: float | None,
                  member: tuple[str, tuple[int, ...], np.dtype] | None = None, channels: int = 1) -> list[Scene]:
    where = path if key is None else f"{path}:{key}"
    check_dtype(where, dtype)
    hw, frames, c = check_shape(where, shape, channels)
    return [ArrayScene(path, f, hw, key=key, nodata=nodata, member=member, dtype=np.dtype(dtype), channels=c)
            for f in frames]


def _open_npy(path: str, st: os.stat_result, nodata: float | None, channels: int = 1) -> list[Scene]:
    """Check the header and that the file holds every byte it declares, then memory-map it."""
    try:
        with open(path, "rb") as f:
            shape, dtype, offset = _read_npy_header(f, path)
    except OSError as exc:
        raise SarzooError(f"{path}: cannot read .npy file ({describe(exc)})") from exc
    check_dtype(path, dtype)
    check_shape(path, shape, channels)
    need = offset + _npy_nbytes(shape, dtype)
    if st.st_size < need:
        raise SarzooError(f"{path}: truncated .npy file: its header declares {dtype} {shape} "
                          f"({need:,} bytes with the header), the file has {st.st_size:,} bytes")
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise SarzooError(f"{path}: cannot read .npy file ({describe(exc)})") from exc
    return _array_scenes(path, a.shape, a.dtype, None, nodata, channels=channels)


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
                check_dtype(where, dtype)
                check_shape(where, shape, channels)
                need = offset + _npy_nbytes(shape, dtype)
                if need != info.file_size:
                    raise SarzooError(f"{where}: its .npy header declares {dtype} {shape} ({need:,} bytes with "
                                      f"the header) but the zip entry holds {info.file_size:,} bytes: "
                                      f"the file is broken")
                scenes.extend(_array_scenes(path, shape, dtype, key, nodata, member=(name, shape, dtype),
                                            channels=channels))
                if len(scenes) > MAX_SCENES_PER_FILE:
                    raise SarzooError(f"{path}: holds more than {MAX_SCENES_PER_FILE:,} scenes (frames); "
                                      f"split it into several files")
    except SarzooError:
        raise
    except Exception as exc:  # BadZipFile, encrypted or unsupported compression, truncated data
        raise SarzooError(f"{path}: cannot read .npz file ({describe(exc)})") from exc
    return scenes


def open_file(path: str | os.PathLike, nodata: float | None = None, band: int = 1,
              channels: int | None = None, *, domain: str = "intensity", bands: Sequence[str] | None = None,
              calibration: str = "sigma0", multilook: Sequence[int] | None = None) -> list[Scene]:
    """The scenes of one file or product, after checking that it can be read; ``SarzooError`` if not.

    Only a regular file is opened (a FIFO or a device is refused from ``os.stat``), and every
    declared size, dtype and band count is checked from the header before any pixel is read.
    ``channels`` (the recipe's ``input.channels``): a raster with more bands is refused, one with
    exactly that many is one multi-channel scene, and arrays follow ``check_shape``'s rule.
    A Sentinel-1 SAFE product (folder or ``.zip``) is opened by ``sarzoo.data.safe`` with
    ``bands``/``calibration``; complex values are intensity, so ``domain`` must be ``intensity``
    for them; ``multilook`` (``[az, rg]``) averages looks (``sarzoo.data.complex``).
    """
    path = str(path)
    ext = _ext(path)
    if not os.path.lexists(path):
        raise SarzooError(f"{path}: no such file")
    if safe.is_product(path):
        scenes = safe.open_product(path, bands=bands, calibration=calibration, channels=channels, domain=domain)
        scenes = complex_data.detected(path, scenes, complex_input=False, domain=domain, looks=multilook)
        return scenes
    st = check_regular_file(path)
    if ext in RASTER_EXTS:
        scenes = [RasterScene(path, band=band, nodata=nodata, channels=channels)]
    elif ext == ".npy":
        scenes = _open_npy(path, st, nodata, channels or 1)
    elif ext == ".npz":
        scenes = _open_npz(path, nodata, channels or 1)
    else:
        raise SarzooError(f"{path}: unsupported file type {ext or '(no extension)'!r}; "
                          f"expected one of {', '.join(SUPPORTED_EXTS)} or a Sentinel-1 product (.SAFE, .zip)")
    complex_input = any(complex_data.is_complex(getattr(s, "dtype", None)) for s in scenes)
    return complex_data.detected(path, scenes, complex_input=complex_input, domain=domain, looks=multilook)


def _search(directory: str) -> list[str]:
    """Data files under ``directory``, and Sentinel-1 products as one entry each (never searched into)."""
    found = []
    for root, dirs, files in os.walk(directory):
        for d in list(dirs):
            if safe.is_product_dir(os.path.join(root, d)):
                found.append(os.path.join(root, d))
                dirs.remove(d)
        for f in files:
            full = os.path.join(root, f)
            if os.path.isfile(full) and (_ext(f) in SUPPORTED_EXTS or safe.looks_like_product_zip(f)):
                found.append(full)
    return found


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Files named by ``paths``: files as given, directories searched recursively, globs expanded.

    Inside directories and glob matches, files of unsupported type are skipped; a file named
    explicitly must be supported. A Sentinel-1 product (a ``*.SAFE`` folder or one holding
    ``manifest.safe``) is one entry, never searched for files; a ``.zip`` is a product when named
    or matched by a glob, and in a directory search when named like one (``S1*.zip``,
    ``*.SAFE.zip``). The result is sorted and de-duplicated so the split does not depend on
    listing order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.path.expanduser(str(p))
        if any(ch in p for ch in "*?["):
            matches = glob.glob(p, recursive=True)
            found = [m for m in matches if safe.is_product_dir(m) or (os.path.isfile(m) and _ext(m) in ACCEPTED_EXTS)]
            if not found:
                raise SarzooError(f"{p}: pattern matches no supported data file ({', '.join(SUPPORTED_EXTS)})")
            out.extend(found)
        elif safe.is_product_dir(p):
            out.append(p)
        elif os.path.isdir(p):
            found = _search(p)
            if not found:
                raise SarzooError(f"{p}: directory holds no supported data file ({', '.join(SUPPORTED_EXTS)})")
            out.extend(found)
        elif os.path.lexists(p):
            check_regular_file(p)  # a FIFO or a device is refused here, never opened
            if _ext(p) not in ACCEPTED_EXTS:
                raise SarzooError(f"{p}: unsupported file type {_ext(p) or '(no extension)'!r}; "
                                  f"expected one of {', '.join(SUPPORTED_EXTS)} or a Sentinel-1 product (.SAFE, .zip)")
            out.append(p)
        else:
            raise SarzooError(f"{p}: no such file or directory")
    return sorted(set(out))


def open_sources(paths: str | os.PathLike | Sequence[str | os.PathLike], nodata: float | None = None,
                 band: int = 1, channels: int | None = None, **options: Any) -> list[Scene]:
    """Expand ``paths`` and open every file, failing before training on the first bad one.

    ``nodata`` overrides each file's own nodata value (None: use the file's, if it has one);
    ``channels`` (the recipe's ``input.channels``) refuses rasters with more bands; ``options``
    (``domain``, ``bands``, ``calibration``, ``multilook``: the ``data:`` keys) go to ``open_file``.
    """
    files = expand_paths(paths)
    if not files:
        raise SarzooError("no input data files given")
    scenes: list[Scene] = []
    for f in files:
        scenes.extend(open_file(f, nodata=nodata, band=band, channels=channels, **options))
    return scenes


def iter_blocks(height: int, width: int, block: int = 1024) -> Iterator[tuple[int, int, int, int]]:
    """Non-overlapping ``(row, col, h, w)`` windows covering a raster, for streaming passes."""
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield r, c, min(block, height - r), min(block, width - c)
