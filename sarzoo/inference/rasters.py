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
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError, describe
from sarzoo.files import TMP_PREFIX, _chmod_like_new_file, _fsync_dir

__all__ = ["GEOTIFF_EXTS", "OUTPUT_EXTS", "output_kind", "RegionSource", "georeference", "input_nodata",
           "output_values", "sarzoo_tags", "NpySink", "GeoTiffSink", "open_sink"]

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


def _temp_beside(path: Path, suffix: str) -> Path:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.stem}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise SarzooError(f"{path}: cannot write in {path.parent} ({exc.strerror or describe(exc)})") from None
    os.close(fd)
    _chmod_like_new_file(tmp)
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

    def commit(self) -> Path:
        try:
            self._close()
            final = self._finish(self.tmp)
            os.replace(final, self.path)
            self.tmp = None
            _fsync_dir(str(self.path.parent))
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        try:
            self._close()
        except Exception:
            pass
        _unlink(self.tmp)
        self.tmp = None


class NpySink(_Sink):
    """A float32 ``.npy``: ``(H, W)`` for one channel, ``(C, H, W)`` for more, written with ``pwrite``."""

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int):
        super().__init__(path, height, width, channels)
        from numpy.lib import format as npf

        shape = (self.height, self.width) if self.channels == 1 else (self.channels, self.height, self.width)
        try:
            with open(self.tmp, "wb") as f:
                npf.write_array_header_2_0(f, {"descr": npf.dtype_to_descr(np.dtype("<f4")),
                                               "fortran_order": False, "shape": shape})
                self.offset = f.tell()
                f.truncate(self.offset + 4 * self.channels * self.height * self.width)
            self.fd: int | None = os.open(self.tmp, os.O_WRONLY)
        except OSError as exc:
            self.abort()
            raise SarzooError(f"{self.path}: cannot write ({exc.strerror or describe(exc)})") from None

    def write(self, row: int, col: int, values: np.ndarray) -> None:
        v = np.ascontiguousarray(values, dtype="<f4").reshape(self.channels, *values.shape[-2:])
        h, w = v.shape[-2:]
        for c in range(self.channels):
            for i in range(h):
                at = self.offset + 4 * ((c * self.height + row + i) * self.width + col)
                os.pwrite(self.fd, v[c, i].tobytes(), at)

    def _close(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


class GeoTiffSink(_Sink):
    """A tiled, deflate-compressed (floating-point predictor) float32 GeoTIFF with the input's
    georeferencing, band descriptions and no-data value, and the ``SARZOO_*`` tags of ``prep``;
    with ``cog``, copied at the end into a Cloud-Optimised GeoTIFF with overviews (GDAL's COG driver).
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int, *, prep: Any = None,
                 georef: dict[str, Any] | None = None, nodata: float | None = None, block: int = 512,
                 cog: bool = False):
        super().__init__(path, height, width, channels)
        import rasterio

        self.cog = cog
        georef = georef or {}
        profile = {"driver": "GTiff", "height": self.height, "width": self.width, "count": self.channels,
                   "dtype": "float32", "nodata": float("nan") if nodata is None else float(nodata),
                   "tiled": True, "blockxsize": block, "blockysize": block, "compress": "deflate",
                   "predictor": 3, "BIGTIFF": "IF_SAFER"}
        if georef.get("crs") is not None and georef.get("gcps") is None:
            profile.update(crs=georef["crs"], transform=georef["transform"])
        try:
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
        except SarzooError:
            raise
        except Exception as exc:
            self.abort()
            raise SarzooError(f"{self.path}: cannot write GeoTIFF ({describe(exc)})") from None

    def write(self, row: int, col: int, values: np.ndarray) -> None:
        from rasterio.windows import Window

        v = values.reshape(self.channels, *values.shape[-2:])
        self.dst.write(v, window=Window(col, row, v.shape[-1], v.shape[-2]))

    def _close(self) -> None:
        dst = getattr(self, "dst", None)
        if dst is not None and not dst.closed:
            dst.close()

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
