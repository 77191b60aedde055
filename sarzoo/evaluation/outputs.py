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


def write_image_panels(directory: Path, index: int, image_id: str, x: np.ndarray, y: np.ndarray, ref: np.ndarray,
                       mask: np.ndarray, clean: np.ndarray | None = None) -> Path:
    """``input | reconstruction | reference [| clean] | DIFF_GAIN·|input − reconstruction|`` as one PNG,
    no-data drawn black (the same panels as the trainer's previews)."""
    from sarzoo.images import DIFF_GAIN, write_panels

    path = directory / f"{index:03d}_{safe_name(image_id)}.png"
    diff = np.clip(np.abs(x - y) * DIFF_GAIN, 0, 1)
    panels = [x, y, ref] + ([clean] if clean is not None else []) + [diff]
    write_panels(path, [np.where(mask, p, 0.0) for p in panels])
    return path


class SceneWriter:
    """Full-resolution reconstructions of one scene, in the data's domain, written window by window
    (``.npy`` through a memory map; GeoTIFF with the source's georeferencing for GeoTIFF inputs)."""

    def __init__(self, directory: Path, index: int, scene: Any, prep: Any):
        self.scene, self.prep = scene, prep
        stem = f"{index:03d}_{safe_name(scene.id)}"
        self.geotiff = getattr(scene, "path", "").lower().endswith((".tif", ".tiff", ".gtiff")) and \
            hasattr(scene, "band")
        self.path = directory / (stem + (".recon.tif" if self.geotiff else ".recon.npy"))
        if self.geotiff:
            import rasterio

            with rasterio.open(scene.path) as src:
                profile = src.profile.copy()
            profile.update(count=1, dtype="float32", nodata=float("nan"), driver="GTiff")
            for k in ("blockxsize", "blockysize", "tiled", "compress", "photometric", "interleave"):
                profile.pop(k, None)
            self.dst = rasterio.open(self.path, "w", **profile)
        else:
            self.arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=scene.shape)

    def write(self, row: int, col: int, y01: np.ndarray, mask: np.ndarray) -> None:
        v = np.where(mask, self.prep.inverse(y01), np.nan).astype(np.float32)
        if self.geotiff:
            from rasterio.windows import Window

            self.dst.write(v, 1, window=Window(col, row, v.shape[1], v.shape[0]))
        else:
            self.arr[row:row + v.shape[0], col:col + v.shape[1]] = v

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
