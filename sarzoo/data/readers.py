"""Raster sources: every input file becomes one or more ``Scene`` objects read by window.

Why windows: a Sentinel-1 GRD scene is ~25000 × 16000 pixels; cutting one 256 px patch must
not load the whole scene. GeoTIFF/TIFF/PNG go through rasterio (GDAL), which reads only the
tiles or strips a window touches and reports the file's nodata value; ``.npy`` files are
memory-mapped. ``.npz`` members cannot be mapped (zip) and are loaded whole on first read.

Why ``open_sources`` validates everything up front: a corrupt file found at epoch 7 wastes the
six epochs before it. Headers are opened (and shapes/dtypes checked) before training starts,
and any failure is a ``SarzooError`` naming the file.

Values come back as float32 with the file's nodata value (or the override) replaced by NaN,
so downstream code has one no-data convention. Complex data (SLC) comes back as |z|², i.e.
linear intensity.
"""
from __future__ import annotations

import glob
import os
import warnings
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from sarzoo.errors import SarzooError

RASTER_EXTS = (".tif", ".tiff", ".gtiff", ".png")
ARRAY_EXTS = (".npy", ".npz")
SUPPORTED_EXTS = RASTER_EXTS + ARRAY_EXTS


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


#: Most files kept open at once per process; thousands of scenes must not exhaust descriptors.
MAX_OPEN_FILES = 32


class _HandleCache:
    """Per-process LRU of open file handles (GDAL datasets, memory maps).

    Why per process: a handle inherited through ``fork`` by a DataLoader worker shares file
    offsets and GDAL state with its parent, so each process opens its own.
    """

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[tuple[str, str], tuple[Any, Callable[[Any], None] | None]] = OrderedDict()
        self.pid: int | None = None

    def get(self, key: tuple[str, str], opener: Callable[[], Any],
            closer: Callable[[Any], None] | None = None) -> Any:
        if self.pid != os.getpid():
            self.items, self.pid = OrderedDict(), os.getpid()  # the parent's handles stay the parent's
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key][0]
        handle = opener()
        self.items[key] = (handle, closer)
        while len(self.items) > self.size:
            _, (old, close) = self.items.popitem(last=False)
            if close is not None:
                close(old)
        return handle

    def close(self, key: tuple[str, str]) -> None:
        item = self.items.pop(key, None)
        if item is not None and item[1] is not None:
            item[1](item[0])


_HANDLES = _HandleCache(MAX_OPEN_FILES)


class Scene:
    """One 2-D raster that patches are cut from.

    ``id`` names it in datasets and reports; ``group`` is the unit of the train/validation split
    (the file it came from: the frames of one ``(N, H, W)`` stack share a group, because such
    stacks are usually overlapping patches of the same acquisitions).
    """

    id: str
    group: str
    height: int
    width: int
    nodata: float | None = None
    has_clean: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """float32 (h, w) window; no-data as NaN. The window must lie inside the scene."""
        raise NotImplementedError

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        """The noise-free reflectivity of the same window, where known (synthetic data)."""
        return None

    def _check_window(self, row: int, col: int, h: int, w: int) -> None:
        if row < 0 or col < 0 or h <= 0 or w <= 0 or row + h > self.height or col + w > self.width:
            raise ValueError(f"window (row={row}, col={col}, h={h}, w={w}) outside scene {self.id} "
                             f"of shape {self.shape}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.height}x{self.width})"


class RasterScene(Scene):
    """A band of a GeoTIFF/TIFF/PNG read through rasterio, one window at a time.

    Holds no handle itself (so it pickles into DataLoader workers): the GDAL dataset comes
    from a small per-process cache of open files.
    """

    def __init__(self, path: str, band: int = 1, nodata: float | None = None):
        self.path, self.band = str(path), int(band)
        self.id = self.group = self.path
        src = self._open()
        if not 1 <= self.band <= src.count:
            raise SarzooError(f"{self.path}: has {src.count} band(s), band {self.band} requested")
        self.height, self.width = int(src.height), int(src.width)
        file_nodata = src.nodatavals[self.band - 1]
        self.nodata = nodata if nodata is not None else (None if file_nodata is None else float(file_nodata))
        self.dtype = src.dtypes[self.band - 1]

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
                a = self._open().read(self.band, window=Window(col, row, w, h))
        except SarzooError:
            raise
        except Exception as exc:
            raise SarzooError(f"{self.path}: failed to read window (row={row}, col={col}, {h}x{w}): {exc}") from exc
        return _to_float(a, self.nodata)


@lru_cache(maxsize=4)
def _load_npz_member(path: str, key: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        return z[key]


class ArrayScene(Scene):
    """A 2-D array, or one frame of an ``(N, H, W)`` stack, from ``.npy`` (memory-mapped) or ``.npz``."""

    def __init__(self, path: str, frame: int | None, shape: tuple[int, int], key: str | None = None,
                 nodata: float | None = None):
        self.path, self.frame, self.key = str(path), frame, key
        base = self.path if key is None else f"{self.path}:{key}"
        self.id = base if frame is None else f"{base}[{frame}]"
        self.group = self.path
        self.height, self.width = int(shape[0]), int(shape[1])
        self.nodata = nodata

    def _array(self) -> np.ndarray:
        if self.key is not None:
            try:
                return _load_npz_member(self.path, self.key)
            except Exception as exc:
                raise SarzooError(f"{self.path}: cannot read array {self.key!r} ({exc})") from exc

        def opener() -> np.ndarray:
            try:
                return np.load(self.path, mmap_mode="r", allow_pickle=False)
            except Exception as exc:
                raise SarzooError(f"{self.path}: cannot read .npy file ({exc})") from exc

        return _HANDLES.get(("npy", self.path), opener)

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        self._check_window(row, col, h, w)
        a = self._array()
        a = a[row:row + h, col:col + w] if self.frame is None else a[self.frame, row:row + h, col:col + w]
        return _to_float(np.asarray(a), self.nodata)


class MemoryScene(Scene):
    """An in-memory scene, optionally with its clean reflectivity (synthetic data, tests)."""

    def __init__(self, scene_id: str, data: np.ndarray, clean: np.ndarray | None = None,
                 group: str | None = None, nodata: float | None = None):
        data = np.asarray(data)
        if data.ndim != 2:
            raise SarzooError(f"{scene_id}: expected a 2-D array, got shape {data.shape}")
        self.id, self.group = scene_id, group or scene_id
        self.height, self.width = data.shape
        self.nodata = nodata
        self.data = data
        self.clean = None if clean is None else np.asarray(clean, dtype=np.float32)
        self.has_clean = clean is not None

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        self._check_window(row, col, h, w)
        return _to_float(self.data[row:row + h, col:col + w], self.nodata)

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        if self.clean is None:
            return None
        self._check_window(row, col, h, w)
        return self.clean[row:row + h, col:col + w].copy()


# --- opening and validating ----------------------------------------------------------------

def _array_scenes(path: str, a: Any, key: str | None, nodata: float | None) -> list[Scene]:
    where = path if key is None else f"{path}:{key}"
    if a.dtype.kind not in "biufc":
        raise SarzooError(f"{where}: array dtype {a.dtype} is not numeric")
    if a.ndim == 2:
        shape = a.shape
        frames: list[int | None] = [None]
    elif a.ndim == 3:
        shape = a.shape[1:]
        frames = list(range(a.shape[0]))
    else:
        raise SarzooError(f"{where}: expected (H, W) or (N, H, W) array, got shape {a.shape}")
    if min(shape) < 1 or not frames:
        raise SarzooError(f"{where}: empty array of shape {a.shape}")
    return [ArrayScene(path, f, shape, key=key, nodata=nodata) for f in frames]


def open_file(path: str | os.PathLike, nodata: float | None = None, band: int = 1) -> list[Scene]:
    """The scenes of one file, after checking that it can be read; ``SarzooError`` if not."""
    path = str(path)
    ext = _ext(path)
    if not os.path.isfile(path):
        raise SarzooError(f"{path}: no such file")
    if ext in RASTER_EXTS:
        return [RasterScene(path, band=band, nodata=nodata)]
    if ext == ".npy":
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise SarzooError(f"{path}: cannot read .npy file ({exc})") from exc
        return _array_scenes(path, a, None, nodata)
    if ext == ".npz":
        # Zip members cannot be memory-mapped, so validating means decompressing; the arrays
        # stay in a small cache because the first patch read would load them whole anyway.
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
            arrays = [(k, _load_npz_member(path, k)) for k in keys]
        except Exception as exc:
            raise SarzooError(f"{path}: cannot read .npz file ({exc})") from exc
        if not keys:
            raise SarzooError(f"{path}: .npz file holds no array")
        scenes: list[Scene] = []
        for k, arr in arrays:
            scenes.extend(_array_scenes(path, arr, k, nodata))
        return scenes
    raise SarzooError(f"{path}: unsupported file type {ext or '(no extension)'!r}; "
                      f"expected one of {', '.join(SUPPORTED_EXTS)}")


def expand_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Files named by ``paths``: files as given, directories searched recursively, globs expanded.

    Inside directories and glob matches, files of unsupported type are skipped (a Sentinel-1
    ``.SAFE`` folder holds XML, KML and PDF next to its TIFFs); a file named explicitly must be
    supported. The result is sorted and de-duplicated so the split does not depend on listing
    order.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        p = os.path.expanduser(str(p))
        if any(ch in p for ch in "*?["):
            matches = [m for m in glob.glob(p, recursive=True) if os.path.isfile(m)]
            found = [m for m in matches if _ext(m) in SUPPORTED_EXTS]
            if not found:
                raise SarzooError(f"{p}: pattern matches no supported data file ({', '.join(SUPPORTED_EXTS)})")
            out.extend(found)
        elif os.path.isdir(p):
            found = [str(f) for f in Path(p).rglob("*") if f.is_file() and _ext(str(f)) in SUPPORTED_EXTS]
            if not found:
                raise SarzooError(f"{p}: directory holds no supported data file ({', '.join(SUPPORTED_EXTS)})")
            out.extend(found)
        elif os.path.isfile(p):
            if _ext(p) not in SUPPORTED_EXTS:
                raise SarzooError(f"{p}: unsupported file type {_ext(p) or '(no extension)'!r}; "
                                  f"expected one of {', '.join(SUPPORTED_EXTS)}")
            out.append(p)
        else:
            raise SarzooError(f"{p}: no such file or directory")
    return sorted(set(out))


def open_sources(paths: str | os.PathLike | Sequence[str | os.PathLike], nodata: float | None = None,
                 band: int = 1) -> list[Scene]:
    """Expand ``paths`` and open every file, failing before training on the first bad one.

    ``nodata`` overrides each file's own nodata value (None: use the file's, if it has one).
    """
    files = expand_paths(paths)
    if not files:
        raise SarzooError("no input data files given")
    scenes: list[Scene] = []
    for f in files:
        scenes.extend(open_file(f, nodata=nodata, band=band))
    return scenes


def iter_blocks(height: int, width: int, block: int = 1024) -> Iterator[tuple[int, int, int, int]]:
    """Non-overlapping ``(row, col, h, w)`` windows covering a raster, for streaming passes."""
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield r, c, min(block, height - r), min(block, width - c)
