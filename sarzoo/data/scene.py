"""The ``Scene`` interface every reader implements, the per-process cache of open files, and the
checks and conversions every reader shares (regular files only, dtypes, shapes, no-data as NaN,
complex as |z|²), so each reader validates at the door the same way.

Why its own module: plain files (``readers``), Sentinel-1 products (``safe``) and multilooked views
(``complex``) are all scenes, and ``readers.open_file`` dispatches to the other two; the base
class lives below all three so none of them imports another upward (no import cycle).
"""
from __future__ import annotations

import os
import stat
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from sarzoo.errors import SarzooError
from sarzoo.files import file_kind

#: Largest scene (pixels, one band): 4·10⁹, about ten Sentinel-1 GRD scenes. A larger declared
#: size is a broken or hostile header; streaming passes over it would run for hours.
MAX_SCENE_PIXELS = 4 * 10**9

def check_scene_size(where: str, height: int, width: int) -> None:
    """``SarzooError`` for an empty or implausibly large declared size, before anything is read."""
    if height < 1 or width < 1:
        raise SarzooError(f"{where}: empty raster of {height} × {width} pixels")
    if height * width > MAX_SCENE_PIXELS:
        raise SarzooError(f"{where}: declares {height:,} × {width:,} = {height * width:,} pixels per band, more "
                          f"than the {MAX_SCENE_PIXELS:,} sarzoo reads from one scene; the header is broken, "
                          f"or cut the scene into smaller files")


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
    #: bands (polarisations) per pixel: ``read`` returns ``(channels, h, w)``, single-band scenes included
    channels: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        """float32 ``(channels, h, w)`` window; no-data as NaN. The window must lie inside the scene."""
        raise NotImplementedError

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        """The noise-free reflectivity of the same window, ``(channels, h, w)``, where known (synthetic data)."""
        return None

    def release(self) -> None:
        """Let go of what reading kept mapped (a streaming pass over a whole scene calls this after each
        block, so that resident memory stays one block's, not the scene's). Nothing to do by default."""

    def _check_window(self, row: int, col: int, h: int, w: int) -> None:
        if row < 0 or col < 0 or h <= 0 or w <= 0 or row + h > self.height or col + w > self.width:
            raise ValueError(f"window (row={row}, col={col}, h={h}, w={w}) outside scene {self.id} "
                             f"of shape {self.shape}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, {self.height}x{self.width})"


#: File types read as scenes (a Sentinel-1 product's folder or zip aside: ``sarzoo.data.safe``).
RASTER_EXTS = (".tif", ".tiff", ".gtiff", ".png")
ARRAY_EXTS = (".npy", ".npz")
SUPPORTED_EXTS = RASTER_EXTS + ARRAY_EXTS

#: Most scenes one file may declare (frames of an ``(N, H, W)`` stack, members of a ``.npz``).
MAX_SCENES_PER_FILE = 100_000


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
    raise SarzooError(f"{path}: is {file_kind(st.st_mode)}, not a regular data file; give files, directories "
                      f"or glob patterns of {', '.join(SUPPORTED_EXTS)} files")


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
