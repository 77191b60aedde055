"""Where reconstructed blocks go, and the input views they come from: GeoTIFF (and Cloud-Optimised
GeoTIFF) and ``.npy`` written block by block, in the data's domain, no-data marked.

Why every output is written to a temporary file beside its target and renamed at the end: a run
that fails or is interrupted half-way must leave nothing under the output's name (and never a
half-overwritten earlier result), as ``sarzoo.files`` does for checkpoints.

Why ``.npy`` is written with positioned writes rather than through a memory map: every page of a
written map stays mapped into the process, so a 1.6 GB output would count 1.6 GB of resident
memory; ``pwrite`` puts the block in the file and keeps nothing.

Why GeoTIFF blocks are written on the file's own tile grid (``tiles.TileGrid.block_layout``): a
compressed tile written in pieces is compressed and stored again for every piece.

Why a GeoTIFF is read back before it is renamed into place: GDAL writes compressed tiles from its
block cache, often only when the file is closed, and rasterio's ``close()`` does not report a failure
there (a full disk, a file-size limit): the file would be truncated, or its tile index never
written, and still close "successfully". Reading every tile back (one at a time, so memory stays one
tile) and checking that each has a place in the file is the only sure test; it costs one
decompression of the output. A ``.npy`` needs none: every ``pwrite`` is checked, its space is
reserved when it is opened (``posix_fallocate``, so a full disk fails at the start, not an hour in),
and ``fsync`` reports late errors.
"""
from __future__ import annotations

import errno
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError, describe, first_line
from sarzoo.files import TMP_PREFIX, _chmod_like_new_file, _fsync_dir

__all__ = ["GEOTIFF_EXTS", "OUTPUT_EXTS", "output_kind", "RegionSource", "georeference", "input_nodata",
           "output_nodata", "output_values", "sarzoo_tags", "NpySink", "GeoTiffSink", "open_sink"]

GEOTIFF_EXTS = (".tif", ".tiff", ".gtiff")
OUTPUT_EXTS = GEOTIFF_EXTS + (".npy",)


def output_kind(path: str | os.PathLike) -> str:
    """``"geotiff"`` or ``"npy"`` from the output's extension; anything else is refused."""
    ext = Path(path).suffix.lower()
    if ext in GEOTIFF_EXTS:
        return "geotiff"
    if ext == ".npy":
        return "npy"
    raise SarzooError(f"{path}: unknown output type {ext or '(no extension)'!r}; name the output "
                      f"{', '.join(OUTPUT_EXTS)} (GeoTIFF, or a float32 .npy array)")


class RegionSource:
    """A rectangle of a scene as a source of its own (reflection happens at the rectangle's edges):
    one side of a spatially split scene is reconstructed as if it were the whole image."""

    def __init__(self, scene: Any, row: int, col: int, height: int, width: int):
        self.scene, self.row, self.col = scene, int(row), int(col)
        self.height, self.width, self.channels = int(height), int(width), int(scene.channels)
        self.id = scene.id

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        return self.scene.read(self.row + row, self.col + col, h, w)

    def release(self) -> None:
        self.scene.release()


def georeference(scene: Any) -> dict[str, Any] | None:
    """CRS, transform (or GCPs) and band descriptions of the GeoTIFF a scene reads pixel for pixel; None
    for anything else (arrays, products, multilooked views: their pixels are not a file's grid)."""
    path = str(getattr(scene, "path", ""))
    if not path.lower().endswith(GEOTIFF_EXTS) or not hasattr(scene, "band"):
        return None
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            if (src.height, src.width) != (scene.height, scene.width):
                return None
            indexes = getattr(scene, "indexes", [scene.band])
            descr = [src.descriptions[i - 1] or "" for i in indexes] if len(indexes) == scene.channels else []
            gcps, gcp_crs = src.gcps
            return {"crs": src.crs, "transform": src.transform, "gcps": (list(gcps), gcp_crs) if gcps else None,
                    "descriptions": descr if any(descr) else None}


def input_nodata(scene: Any) -> float | None:
    """The no-data value the input declares (one for every band), or None."""
    vals = getattr(scene, "nodatas", None) or [getattr(scene, "nodata", None)]
    return vals[0] if len(set(map(str, vals))) == 1 else None


def output_nodata(scene: Any, nodata: float | None = None) -> float | None:
    """The value written at the no-data pixels of a reconstruction of ``scene``: ``nodata`` (a
    ``--nodata`` given for the input), else the input's declared one; None (written as NaN) when
    there is neither, or when it is NaN. One rule for ``sarzoo reconstruct`` and ``sarzoo eval
    --save-images``, so their outputs of one scene agree."""
    v = nodata if nodata is not None else input_nodata(scene)
    return None if v is None or v != v else v


def output_values(prep: Any, y01: np.ndarray, mask: np.ndarray, nodata: float | None = None) -> np.ndarray:
    """``y01`` back in the data's domain (``prep.inverse``), ``nodata`` (NaN when None) where ``mask`` is
    False; float32 ``(C, h, w)``."""
    fill = np.float32(np.nan if nodata is None else nodata)
    v = np.where(mask, prep.inverse(y01), fill).astype(np.float32, copy=False)
    return v.reshape(-1, *v.shape[-2:])


def sarzoo_tags(prep: Any, channels: int) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """``(dataset tags, per-band tags, band names)``: the clip range the output was mapped back with
    (``SARZOO_CLIP_VMIN``/``VMAX``, per band too, ``SARZOO_CLIP_MODE``, ``SARZOO_DOMAIN``). For a
    ``per_scene`` model that is the scene's own range, without which its values cannot be compared
    with another scene's."""
    from sarzoo.metrics import band_names

    names = band_names(channels, prep)
    lo = [prep.channel(i).vmin for i in range(channels)]
    hi = [prep.channel(i).vmax for i in range(channels)]
    tags = {"SARZOO_CLIP_MODE": prep.mode, "SARZOO_DOMAIN": prep.domain,
            "SARZOO_CLIP_VMIN": ",".join(f"{v:.6f}" for v in lo), "SARZOO_CLIP_VMAX": ",".join(f"{v:.6f}" for v in hi)}
    band = [{"SARZOO_BAND": names[i], "SARZOO_CLIP_VMIN": f"{lo[i]:.6f}", "SARZOO_CLIP_VMAX": f"{hi[i]:.6f}"}
            for i in range(channels)]
    return tags, band, names


def _write_errors() -> tuple[type[BaseException], ...]:
    """What a failed write raises: ``OSError``, GDAL's errors through rasterio, or our own."""
    try:
        from rasterio._err import CPLE_BaseError
        from rasterio.errors import RasterioError
    except ImportError:  # rasterio is a dependency; without it only .npy outputs exist
        return OSError, SarzooError
    return OSError, SarzooError, RasterioError, CPLE_BaseError


def _cannot_write(path: Path, exc: BaseException) -> SarzooError:
    """The one-paragraph error of a failed write (a full disk, a file-size limit, an I/O error)."""
    if isinstance(exc, SarzooError):
        return exc
    why = getattr(exc, "strerror", None) or first_line(exc.__cause__ or exc)
    return SarzooError(f"{path}: cannot write ({why}); is there room on the disk? Nothing was written under "
                       f"its name")


def _temp_beside(path: Path, suffix: str) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise SarzooError(f"{path}: cannot write in {path.parent} ({exc.strerror or describe(exc)})") from None
    os.close(fd)
    try:
        _chmod_like_new_file(tmp)
    except BaseException:
        _unlink(Path(tmp))
        raise
    return Path(tmp)


def _unlink(p: Path | None) -> None:
    if p is not None:
        try:
            p.unlink()
        except OSError:
            pass


class _Sink:
    """Common life of an output: a temporary file beside ``path``; ``commit`` renames it into place,
    ``abort`` removes it. Either may be called once; ``abort`` after ``commit`` does nothing."""

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int):
        self.path = Path(path)
        self.height, self.width, self.channels = int(height), int(width), int(channels)
        self.tmp: Path | None = _temp_beside(self.path, self.path.suffix)

    def _close(self) -> None:
        raise NotImplementedError

    def _finish(self, tmp: Path) -> Path:
        return tmp

    def _verify(self, final: Path) -> None:
        """Raise when the closed file is not what was written (the GeoTIFF sink reads it back)."""

    def _fail(self, exc: BaseException) -> None:
        """Remove the temporary file and raise ``exc``: a write error (``OSError``, GDAL's) as one
        ``SarzooError``; anything else (Ctrl-C, a bug) as it is."""
        self.abort()
        if isinstance(exc, _write_errors()):
            raise _cannot_write(self.path, exc) from None
        raise exc

    def commit(self) -> Path:
        try:
            self._close()
            final = self._finish(self.tmp)
            self._verify(final)
            os.replace(final, self.path)
            self.tmp = None
            _fsync_dir(str(self.path.parent))
        except BaseException as exc:
            self._fail(exc)
        return self.path

    def abort(self) -> None:
        try:
            self._close()
        except Exception:
            pass
        _unlink(self.tmp)
        self.tmp = None


class NpySink(_Sink):
    """A float32 ``.npy``: ``(H, W)`` for one channel, ``(C, H, W)`` for more, written with ``pwrite``;
    its space is reserved at once, so a disk without room for it fails before any work."""

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int):
        super().__init__(path, height, width, channels)
        self.fd: int | None = None
        try:
            from numpy.lib import format as npf

            shape = (self.height, self.width) if self.channels == 1 else (self.channels, self.height, self.width)
            with open(self.tmp, "wb") as f:
                npf.write_array_header_2_0(f, {"descr": npf.dtype_to_descr(np.dtype("<f4")),
                                               "fortran_order": False, "shape": shape})
                self.offset = f.tell()
            self.fd = os.open(self.tmp, os.O_WRONLY)
            size = 4 * self.channels * self.height * self.width
            try:
                os.posix_fallocate(self.fd, self.offset, size)
            except OSError as exc:  # a file system that cannot reserve space: a sparse file, every write checked
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise
                os.ftruncate(self.fd, self.offset + size)
        except BaseException as exc:
            self._fail(exc)

    def write(self, row: int, col: int, values: np.ndarray) -> None:
        v = np.ascontiguousarray(values, dtype="<f4").reshape(self.channels, *values.shape[-2:])
        h, w = v.shape[-2:]
        try:
            for c in range(self.channels):
                if w == self.width:  # whole rows: the channel's block is one contiguous run of the file
                    self._pwrite(v[c], self.offset + 4 * (c * self.height + row) * self.width)
                    continue
                for i in range(h):
                    self._pwrite(v[c, i], self.offset + 4 * ((c * self.height + row + i) * self.width + col))
        except OSError as exc:
            raise _cannot_write(self.path, exc) from None

    def _pwrite(self, a: np.ndarray, at: int) -> None:
        """All of ``a`` at ``at``: ``pwrite`` may write less than asked (a signal, a nearly full disk)."""
        data = memoryview(a).cast("B")
        while data:
            n = os.pwrite(self.fd, data, at)
            if n <= 0:
                raise OSError(errno.EIO, "a write wrote nothing")
            data, at = data[n:], at + n

    def _close(self) -> None:
        fd, self.fd = getattr(self, "fd", None), None
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


class GeoTiffSink(_Sink):
    """A tiled, deflate-compressed (floating-point predictor) float32 GeoTIFF with the input's
    georeferencing, band descriptions and no-data value, and the ``SARZOO_*`` tags of ``prep``;
    with ``cog``, copied at the end into a Cloud-Optimised GeoTIFF with overviews (GDAL's COG driver).
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int, *, prep: Any = None,
                 georef: dict[str, Any] | None = None, nodata: float | None = None, block: int = 512,
                 cog: bool = False):
        super().__init__(path, height, width, channels)
        self.cog = cog
        try:
            self._open(prep, georef or {}, nodata, block)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, Exception) and not isinstance(exc, SarzooError):
                raise SarzooError(f"{self.path}: cannot write GeoTIFF ({describe(exc)})") from None
            raise

    def _open(self, prep: Any, georef: dict[str, Any], nodata: float | None, block: int) -> None:
        import rasterio

        # a tile no larger than the image needs (its side rounded up to a multiple of 16, as GeoTIFF tiles are)
        block = min(int(block), -(-max(self.height, self.width) // 16) * 16)
        profile = {"driver": "GTiff", "height": self.height, "width": self.width, "count": self.channels,
                   "dtype": "float32", "nodata": float("nan") if nodata is None else float(nodata),
                   "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate",
                   "predictor": 3, "BIGTIFF": "IF_SAFER"}
        if georef.get("gcps") is None:  # a transform without a CRS (a local grid) is kept too
            transform, crs = georef.get("transform"), georef.get("crs")
            if transform is not None and (crs is not None or not transform.is_identity):
                profile["transform"] = transform
            if crs is not None:
                profile["crs"] = crs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning for arrays
            self.dst = rasterio.open(self.tmp, "w", **profile)
        if georef.get("gcps") is not None:
            self.dst.gcps = georef["gcps"]
        if prep is not None:
            tags, band_tags, names = sarzoo_tags(prep, self.channels)
            self.dst.update_tags(**tags)
            for i in range(self.channels):
                self.dst.update_tags(i + 1, **band_tags[i])
        else:
            names = [""] * self.channels
        for i, name in enumerate(georef.get("descriptions") or names):
            if name:
                self.dst.set_band_description(i + 1, name)

    def write(self, row: int, col: int, values: np.ndarray) -> None:
        from rasterio.windows import Window

        v = values.reshape(self.channels, *values.shape[-2:])
        try:
            self.dst.write(v, window=Window(col, row, v.shape[-1], v.shape[-2]))
        except _write_errors() as exc:  # GDAL's write error (CPLE_*, wrapped in RasterioIOError)
            raise _cannot_write(self.path, exc) from None

    def _close(self) -> None:
        dst = getattr(self, "dst", None)
        if dst is not None and not dst.closed:
            dst.close()

    def _verify(self, final: Path) -> None:
        """Every tile of the closed file has a place in it and decompresses (see the module's docstring)."""
        import rasterio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(final) as src:
                for _, win in src.block_windows(1):
                    x, y = win.col_off // src.block_shapes[0][1], win.row_off // src.block_shapes[0][0]
                    for b in range(1, src.count + 1):
                        if src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=b) in (None, "", "0"):
                            raise SarzooError(f"{self.path}: cannot write (tile {x}, {y} of band {b} is missing "
                                              f"from the file); is there room on the disk? Nothing was written "
                                              f"under its name")
                    src.read(window=win)

    def _finish(self, tmp: Path) -> Path:
        if not self.cog:
            return tmp
        from rasterio.shutil import copy as gdal_copy

        cog = _temp_beside(self.path, ".cog" + self.path.suffix)
        try:
            gdal_copy(str(tmp), str(cog), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=512,
                      OVERVIEWS="AUTO", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER")
        except BaseException as exc:
            _unlink(cog)
            if isinstance(exc, Exception):
                raise SarzooError(f"{self.path}: cannot write the Cloud-Optimised GeoTIFF "
                                  f"({describe(exc)})") from None
            raise
        _unlink(tmp)
        self.tmp = cog
        return cog


def open_sink(path: str | os.PathLike, height: int, width: int, channels: int, **geotiff: Any) -> Any:
    """The sink the extension of ``path`` asks for; ``geotiff`` options go to ``GeoTiffSink``."""
    if output_kind(path) == "npy":
        return NpySink(path, height, width, channels)
    return GeoTiffSink(path, height, width, channels, **geotiff)
