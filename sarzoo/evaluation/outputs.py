"""What an evaluation leaves on disk with ``--save-images``: per-image PNG panels, full-resolution
reconstructions in the data's domain, and ``metrics.json``.

Why reconstructions are written window by window into a file opened once per scene: a
25000 × 16000 Sentinel-1 scene does not fit in memory as float32 twice over, while a GeoTIFF or
``.npy`` written by windows holds only the window being measured.
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
    (``.npy``; GeoTIFF with the source's georeferencing for GeoTIFF inputs), through the sinks of
    ``sarzoo reconstruct`` (``sarzoo.inference.rasters``): the same layout, ``SARZOO_*`` tags (the
    clip range the output was mapped back with: for a ``per_scene`` model this scene's own) and
    band names, written to a temporary file that ``close`` renames into place (``abort`` removes it).

    One band per channel (a ``(C, H, W)`` ``.npy`` for C > 1; ``(H, W)`` for one). No-data is written as
    ``sarzoo reconstruct`` writes it (``rasters.output_nodata``): the input's declared nodata value
    (``--set data.nodata`` included), NaN where it declares none."""

    def __init__(self, directory: Path, index: int, scene: Any, prep: Any):
        from sarzoo.inference.rasters import georeference, open_sink, output_nodata

        self.scene, self.prep = scene, prep
        self.nodata = output_nodata(scene)
        self.channels = int(scene.channels)
        stem = f"{index:03d}_{safe_name(scene.id)}"
        georef = georeference(scene)
        self.geotiff = georef is not None
        self.path = directory / (stem + (".recon.tif" if self.geotiff else ".recon.npy"))
        self.sink = open_sink(self.path, scene.height, scene.width, self.channels, prep=prep, georef=georef,
                              nodata=self.nodata)

    def write(self, row: int, col: int, y01: np.ndarray, mask: np.ndarray) -> None:
        from sarzoo.inference.rasters import output_values

        self.sink.write(row, col, output_values(self.prep, y01, mask, self.nodata))

    def close(self) -> None:
        self.sink.commit()

    def abort(self) -> None:
        self.sink.abort()


def write_metrics(directory: Path, report: dict[str, Any]) -> Path:
    """The report as ``metrics.json`` next to the images (already JSON-ready: ``files.jsonable``)."""
    from sarzoo.files import atomic_write_text

    return atomic_write_text(directory / "metrics.json", json.dumps(report, indent=1, allow_nan=False) + "\n")
