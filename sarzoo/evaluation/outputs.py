"""What an evaluation leaves on disk with ``--save-images``: per-image PNG panels, full-resolution
reconstructions in the data's domain, and ``metrics.json``.

Why reconstructions are written window by window into a file opened once per scene: a
25000 × 16000 Sentinel-1 scene does not fit in memory as float32 twice over, while a memory map
(or a GeoTIFF written by windows) holds only the window being measured.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError

__all__ = ["output_dir", "safe_name", "write_image_panels", "SceneWriter", "write_metrics"]


def output_dir(save_images: str | os.PathLike) -> Path:
    """The ``--save-images`` directory, created; checked before any work so a bad path fails fast."""
    out = Path(save_images)
    if out.exists() and not out.is_dir():
        raise SarzooError(f"--save-images {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SarzooError(f"--save-images {out}: cannot create the directory ({exc})") from None
    return out


def safe_name(s: str) -> str:
    """A file-name stem for a scene id (which may be a path, or carry a window like ``[0:128, …]``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(s.rstrip("/")) or s)
    return s.strip("_")[:120] or "scene"


def _bands_stacked(a: np.ndarray) -> np.ndarray:
    """A ``(C, h, w)`` panel as one image, bands top to bottom with a white separator; ``(h, w)`` as is."""
    from sarzoo.images import SEP

    if a.ndim == 2:
        return a
    if a.shape[0] == 1:
        return a[0]
    rows = []
    for i, band in enumerate(a):
        if i:
            rows.append(np.ones((SEP, a.shape[-1]), dtype=np.float32))
        rows.append(band)
    return np.concatenate(rows)


def write_image_panels(directory: Path, index: int, image_id: str, x: np.ndarray, y: np.ndarray, ref: np.ndarray,
                       mask: np.ndarray, clean: np.ndarray | None = None) -> Path:
    """``input | reconstruction | reference [| clean] | DIFF_GAIN·|input − reconstruction|`` as one PNG,
    no-data drawn black (the same panels as the trainer's previews); several bands top to bottom."""
    from sarzoo.images import DIFF_GAIN, write_panels

    path = directory / f"{index:03d}_{safe_name(image_id)}.png"
    diff = np.clip(np.abs(x - y) * DIFF_GAIN, 0, 1)
    panels = [x, y, ref] + ([clean] if clean is not None else []) + [diff]
    write_panels(path, [_bands_stacked(np.where(mask, p, 0.0)) for p in panels])
    return path


class SceneWriter:
    """Full-resolution reconstructions of one scene, in the data's domain, written window by window
    (``.npy`` through a memory map; GeoTIFF with the source's georeferencing for GeoTIFF inputs).

    One band per channel (a ``(C, H, W)`` ``.npy`` for C > 1; ``(H, W)`` for one), each GeoTIFF band
    described by its band name. The GeoTIFF also records, as metadata tags, the clip range the
    output was mapped back with (``SARZOO_CLIP_VMIN``/``VMAX``, per band too, and
    ``SARZOO_CLIP_MODE``): for a ``per_scene`` model that is this scene's own range, without
    which the file's values cannot be compared with another scene's."""

    def __init__(self, directory: Path, index: int, scene: Any, prep: Any):
        self.scene, self.prep = scene, prep
        self.channels = int(scene.channels)
        stem = f"{index:03d}_{safe_name(scene.id)}"
        self.geotiff = getattr(scene, "path", "").lower().endswith((".tif", ".tiff", ".gtiff")) and \
            hasattr(scene, "band")
        self.path = directory / (stem + (".recon.tif" if self.geotiff else ".recon.npy"))
        if self.geotiff:
            import rasterio

            with rasterio.open(scene.path) as src:
                profile = src.profile.copy()
            profile.update(count=self.channels, dtype="float32", nodata=float("nan"), driver="GTiff")
            for k in ("blockxsize", "blockysize", "tiled", "compress", "photometric", "interleave"):
                profile.pop(k, None)
            self.dst = rasterio.open(self.path, "w", **profile)
            self._tag(prep)
        else:
            shape = scene.shape if self.channels == 1 else (self.channels, *scene.shape)
            self.arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=shape)

    def _tag(self, prep: Any) -> None:
        from sarzoo.metrics import band_names

        names = band_names(self.channels, prep)
        lo = [prep.channel(i).vmin for i in range(self.channels)]
        hi = [prep.channel(i).vmax for i in range(self.channels)]
        self.dst.update_tags(SARZOO_CLIP_MODE=prep.mode, SARZOO_DOMAIN=prep.domain,
                             SARZOO_CLIP_VMIN=",".join(f"{v:.6f}" for v in lo),
                             SARZOO_CLIP_VMAX=",".join(f"{v:.6f}" for v in hi))
        for i in range(self.channels):
            self.dst.set_band_description(i + 1, names[i])
            self.dst.update_tags(i + 1, SARZOO_BAND=names[i], SARZOO_CLIP_VMIN=f"{lo[i]:.6f}",
                                 SARZOO_CLIP_VMAX=f"{hi[i]:.6f}")

    def write(self, row: int, col: int, y01: np.ndarray, mask: np.ndarray) -> None:
        v = np.where(mask, self.prep.inverse(y01), np.nan).astype(np.float32)
        v = v.reshape(self.channels, *v.shape[-2:])
        h, w = v.shape[-2:]
        if self.geotiff:
            from rasterio.windows import Window

            self.dst.write(v, window=Window(col, row, w, h))
        elif self.channels == 1:
            self.arr[row:row + h, col:col + w] = v[0]
        else:
            self.arr[:, row:row + h, col:col + w] = v

    def close(self) -> None:
        if self.geotiff:
            self.dst.close()
        else:
            self.arr.flush()
            del self.arr


def write_metrics(directory: Path, report: dict[str, Any]) -> Path:
    """The report as ``metrics.json`` next to the images (already JSON-ready: ``files.jsonable``)."""
    from sarzoo.files import atomic_write_text

    return atomic_write_text(directory / "metrics.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
