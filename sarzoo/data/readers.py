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
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from sarzoo.data import complex as complex_data
from sarzoo.data import safe

# The array readers (arrays.py) and the shared checks (scene.py: MAX_OPEN_FILES, MAX_SCENE_PIXELS,
# _HandleCache...) have their own modules; these names lived here before and stay importable from here.
from sarzoo.data.arrays import _NPZ_ARRAYS, MAX_NPY_HEADER, MAX_WHOLE_BYTES, ArrayScene, _open_npy, _open_npz  # noqa: F401
from sarzoo.data.scene import (  # noqa: F401
    _HANDLES,
    ARRAY_EXTS,
    MAX_OPEN_FILES,
    MAX_SCENE_PIXELS,
    MAX_SCENES_PER_FILE,
    RASTER_EXTS,
    SUPPORTED_EXTS,
    Scene,
    _HandleCache,
    _nodata_match,
    _to_float,
    check_dtype,
    check_regular_file,
    check_scene_size,
    check_shape,
)
from sarzoo.errors import SarzooError

#: ... and a Sentinel-1 product's zip (``sarzoo.data.safe``), when named or matched by a glob
ACCEPTED_EXTS = SUPPORTED_EXTS + (".zip",)



def _ext(path: str) -> str:
    return Path(path).suffix.lower()


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
            if not complex_data.is_complex(self.dtype):  # GDAL's CInt16 (SLC) has no numpy dtype: read as complex64
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
