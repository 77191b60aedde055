"""``sarzoo encode``/``decode`` at the file level: a scene in, a code file out, and back to a raster.

Reading goes through ``sarzoo.data`` (GeoTIFF, PNG, ``.npy``/``.npz``, one scene per code file) and
the checkpoint's own preprocessing (a ``per_scene`` model refits its clip range on the scene; the
range used is stored in the header, so decoding needs nothing but the code file and the model).
Writing is atomic (``sarzoo.files`` for the code file, the reconstruction engine's sinks of
``sarzoo.inference.rasters`` for the scene). The decoded scene is float32 in the data's domain: a GeoTIFF
keeps the source's CRS, transform and nodata (NaN when the source had none), a ``.npy`` has NaN at
no-data pixels.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from sarzoo.codec import format as fmt
from sarzoo.codec.scene import GROUP, coding_digest, decode_tiles, encode_tiles, model_digest, tile_geometry
from sarzoo.errors import SarzooError

GEOTIFF_EXTS = (".tif", ".tiff", ".gtiff")


def load_model(checkpoint: str | os.PathLike, device: str = "cpu"):
    from sarzoo.inference import load

    return load(checkpoint, device=device)


def _read_scene(path: str, prep: Any, channels: int, nodata: float | None):
    from sarzoo.data.readers import open_file

    scenes = open_file(path, nodata=nodata, channels=channels, domain=prep.domain)
    if len(scenes) != 1:
        raise SarzooError(f"{path}: holds {len(scenes)} scenes; a code file holds one (give one file per scene)")
    scene = scenes[0]
    if scene.channels != channels:
        raise SarzooError(f"{path}: has {scene.channels} band(s) but the model takes {channels}")
    return scene, scene.read(0, 0, scene.height, scene.width)


def _georeferencing(path: str) -> tuple[dict[str, Any], int]:
    """(geo section of the header, bits per pixel of the source: dtype bits × bands)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in GEOTIFF_EXTS + (".png",):
        import rasterio

        with rasterio.open(path) as src:
            crs = src.crs.to_wkt() if src.crs else None
            t = src.transform
            transform = list(t)[:6] if t is not None and not t.is_identity else None
            nodata = src.nodata
            bits = sum(np.dtype(d).itemsize * 8 if d != "complex_int16" else 32 for d in src.dtypes)
        nd = None if nodata is None or not math.isfinite(nodata) else float(nodata)
        return {"crs": crs, "transform": transform, "nodata": nd}, bits
    if ext == ".npy":
        arr = np.load(path, mmap_mode="r")
        bands = arr.shape[0] if arr.ndim == 3 else 1
        return {"crs": None, "transform": None, "nodata": None}, arr.dtype.itemsize * 8 * bands
    return {"crs": None, "transform": None, "nodata": None}, 32


def encode_file(checkpoint: str, source: str, output: str, *, device: str = "cpu",
                nodata: float | None = None) -> dict[str, Any]:
    """Encode ``source`` with the model of ``checkpoint`` into ``output``; returns the report."""
    from sarzoo.files import atomic_write_bytes

    loaded = load_model(checkpoint, device)
    model, base = loaded
    channels = int(model.input_shape[0])
    scene, raw = _read_scene(source, base, channels, nodata)
    geo, source_bits = _georeferencing(source)
    prep = loaded.scene_preprocessing(raw)
    x, mask = prep.forward(raw, nodata=scene.nodata)
    tile, latent = tile_geometry(model)
    t0 = time.perf_counter()
    payloads, valid = encode_tiles(model, x, mask)
    seconds = time.perf_counter() - t0
    h, w = valid.shape
    header = {
        "model": {"digest": model_digest(model), "recipe": model.recipe.get("name"),
                  "bottleneck": (model.recipe.get("bottleneck") or {}).get("type", "none"),
                  "coding_digest": coding_digest(model)},
        "scene": {"height": int(h), "width": int(w), "channels": channels, "domain": prep.domain,
                  "source": Path(source).name, "source_bits_per_pixel": int(source_bits),
                  "dtype": str(getattr(scene, "dtype", "float32"))},
        "tiles": {"size": tile, "latent": list(latent), "group": GROUP},
        "preprocessing": prep.to_dict(),
        "geo": geo,
    }
    code = fmt.CodeFile(header, valid, payloads)
    data = fmt.serialise(code)
    atomic_write_bytes(output, data)
    n_valid = int(valid.sum())
    presence = fmt.tile_presence(valid, tile)
    return _report(source, output, len(data), code.tile_bytes(), n_valid, h, w, source_bits, seconds, "encode",
                   int(presence.sum()), presence.size, model)


def _report(source, output, file_bytes, tile_bytes, n_valid, h, w, source_bits, seconds, what, coded, tiles, model):
    per = max(n_valid, 1)
    return {"input": str(source), "output": str(output), "file_bytes": file_bytes, "tile_bytes": tile_bytes,
            "header_bytes": file_bytes - tile_bytes, "height": h, "width": w, "valid_pixels": n_valid,
            "bits_per_valid_pixel": file_bytes * 8 / per, "tile_bits_per_valid_pixel": tile_bytes * 8 / per,
            "source_bits_per_pixel": source_bits, "tiles": tiles, "coded_tiles": coded,
            "seconds": seconds, "megapixels_per_second": (h * w / 1e6) / seconds if seconds > 0 else None,
            "recipe": model.recipe.get("name"),
            "bottleneck": (model.recipe.get("bottleneck") or {}).get("type", "none"), "operation": what}


def read_code(path: str) -> fmt.CodeFile:
    from sarzoo.data.readers import check_regular_file

    check_regular_file(path)
    size = os.path.getsize(path)
    if size > 64 * fmt.MAX_PIXELS:
        raise SarzooError(f"{path}: {size:,} bytes is larger than any code file sarzoo writes")
    with open(path, "rb") as f:
        return fmt.parse(f.read(), path)


def decode_file(code_path: str, output: str, checkpoint: str) -> dict[str, Any]:
    """Decode ``code_path`` with the model of ``checkpoint`` into ``output`` (.tif/.tiff or .npy)."""
    from sarzoo.data.preprocess import Preprocessing
    from sarzoo.inference.rasters import output_kind

    output_kind(output)   # refuses an extension that is neither GeoTIFF nor .npy, before any work
    code = read_code(code_path)
    model, _ = load_model(checkpoint, "cpu")
    header = code.header
    digest = model_digest(model)
    if header["model"]["digest"] != digest:
        theirs = header["model"]
        raise SarzooError(f"{code_path}: was written by another model (recipe {theirs.get('recipe')!r}, weights+recipe "
                          f"sha256 {theirs['digest'][:12]}…) "
                          f"than {checkpoint} ({model.recipe.get('name')!r}, {digest[:12]}…); decode it with the "
                          f"checkpoint it was encoded with")
    if header["model"].get("coding_digest", "") != coding_digest(model):
        raise SarzooError(f"{code_path}: this machine computes other entropy-coding tables from the same model than "
                          f"the machine that encoded it (float64 arithmetic differs); it cannot be decoded here")
    tile, latent = tile_geometry(model)
    if header["tiles"]["size"] != tile or list(header["tiles"]["latent"]) != list(latent) \
            or header["scene"]["channels"] != model.input_shape[0]:
        raise SarzooError(f"{code_path}: its tile grid ({header['tiles']['size']} px, latent "
                          f"{header['tiles']['latent']}) is not this model's ({tile} px, latent {list(latent)})")
    try:
        prep = Preprocessing.from_dict(header["preprocessing"])
    except (SarzooError, TypeError, ValueError) as exc:
        raise SarzooError(f"{code_path}: the header's preprocessing is not valid ({exc})") from exc
    t0 = time.perf_counter()
    try:
        x01 = decode_tiles(model, code.payloads, code.mask, int(header["scene"]["channels"]),
                           int(header["tiles"]["group"]))
    except SarzooError:
        raise
    except (ValueError, RuntimeError, OverflowError) as exc:
        raise SarzooError(f"{code_path}: a coded tile does not decode with this model ({exc})") from exc
    seconds = time.perf_counter() - t0
    from sarzoo.inference.rasters import output_values

    geo = header["geo"]
    nodata = geo.get("nodata") if isinstance(geo.get("nodata"), (int, float)) else None
    _write_raster(output, output_values(prep, x01, code.mask[None], nodata), geo, nodata, prep)
    h, w = code.mask.shape
    n_valid = int(code.mask.sum())
    file_bytes = os.path.getsize(code_path)
    return _report(code_path, output, file_bytes, code.tile_bytes(), n_valid, h, w,
                   header["scene"].get("source_bits_per_pixel"), seconds, "decode",
                   int(fmt.tile_presence(code.mask, tile).sum()), fmt.tile_presence(code.mask, tile).size, model)


def _write_raster(output: str, values: np.ndarray, geo: dict[str, Any], nodata: Any, prep: Any) -> None:
    """Through the reconstruction engine's sinks (``sarzoo.inference.rasters``): a tiled, compressed
    GeoTIFF with the header's CRS, transform and nodata and the ``SARZOO_*`` clip tags, or a ``.npy``;
    written beside the target and renamed."""
    from sarzoo.inference.rasters import open_sink

    c, h, w = values.shape
    georef = None
    if geo.get("crs") and isinstance(geo.get("transform"), list) and len(geo["transform"]) == 6:
        from rasterio.crs import CRS
        from rasterio.transform import Affine

        try:
            georef = {"crs": CRS.from_wkt(geo["crs"]), "transform": Affine(*geo["transform"]), "gcps": None}
        except Exception as exc:   # a header that passed its CRC but names no valid CRS
            raise SarzooError(f"{output}: the code file's CRS cannot be read ({exc})") from None
    sink = open_sink(output, h, w, c, prep=prep, georef=georef, nodata=nodata)
    try:
        sink.write(0, 0, values)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
