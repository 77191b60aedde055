"""One scene file through a checkpoint into one output file, window by window: what ``sarzoo reconstruct``
runs, as a library call that returns a JSON-ready report and prints nothing.

Why every check comes first: a bad flag or an existing output must be refused in a second, not
after the model is loaded or an hour of tiles; and nothing is written under OUTPUT's name until
the last block is in (``rasters``: a temporary file beside it, renamed at the end).

Why a ``per_scene`` checkpoint costs a pass of its own: its clip range is the scene's own
percentiles, which must be known before the first block is mapped to [0, 1]; the pass streams the
scene in 1024 px windows into a fixed-size histogram (``Preprocessing.refit``).
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from sarzoo.errors import SarzooError

__all__ = ["reconstruct_file", "GDAL_CACHE_BYTES"]

#: GDAL's block cache (it defaults to 5 % of the machine's memory, 1.2 GB on 24 GB): the reads and
#: writes of one block fit in it many times over.
GDAL_CACHE_BYTES = 128 * 2**20


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (or is a broken link)
        return os.path.abspath(a) == os.path.abspath(b)


def _check_paths(inp: str, out: str, overwrite: bool) -> str:
    from sarzoo.inference.rasters import output_kind

    kind = output_kind(out)
    if not os.path.lexists(inp):
        raise SarzooError(f"{inp}: no such input file")
    o = Path(out)
    if _same_file(o, inp):
        raise SarzooError(f"{out}: is the input; write the reconstruction to another file (the input is never "
                          f"overwritten)")
    if o.is_dir():
        raise SarzooError(f"{out}: is a directory; give the output file's name (e.g. {o / 'recon.tif'})")
    if os.path.lexists(o) and not overwrite:
        raise SarzooError(f"{out}: exists; pass --overwrite to replace it (it is replaced only once the new "
                          f"reconstruction is complete)")
    parent = o.parent if str(o.parent) else Path(".")
    if not parent.is_dir():
        raise SarzooError(f"{out}: its directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SarzooError(f"{out}: cannot write in {parent} (permission denied)")
    return kind


def _open_input(path: str, prep: Any, channels: int, nodata: float | None) -> Any:
    from sarzoo.data.readers import open_file

    scenes = open_file(path, nodata=nodata, channels=channels, domain=prep.domain, bands=prep.bands)
    if len(scenes) != 1:
        raise SarzooError(f"{path}: holds {len(scenes)} scenes ({', '.join(s.id for s in scenes[:3])}"
                          f"{' …' if len(scenes) > 3 else ''}); reconstruct takes one scene per file: give "
                          f"each its own file")
    scene = scenes[0]
    if int(scene.channels) != channels:
        names = "+".join(prep.band_names()) if prep.channels == channels else f"{channels} bands"
        raise SarzooError(f"{path}: has {scene.channels} band(s) but the checkpoint's model takes {channels} "
                          f"channel(s) ({names}); give one file holding all of them in that order, e.g. "
                          f"`gdal_merge.py -separate -o both.tif vv.tif vh.tif` or a ({channels}, H, W) .npy "
                          f"(reconstruct reads one file; it does not join one file per band)")
    return scene


def _scene_prep(scene: Any, prep: Any) -> Any:
    """``prep``, refitted on the whole scene for a ``per_scene`` checkpoint: the streaming pass of
    ``sarzoo eval`` and training (``dataset.scene_preprocessing``)."""
    if not prep.per_scene:
        return prep
    from sarzoo.data.dataset import scene_preprocessing

    return scene_preprocessing([scene], prep)[0][scene.id]


def reconstruct_file(checkpoint: str | os.PathLike, input_path: str | os.PathLike, output_path: str | os.PathLike, *,
                     tile: int | None = None, overlap: int | None = None, batch_size: int = 16,
                     block: int | None = None, device: str = "auto", cog: bool = False, overwrite: bool = False,
                     domain: str | None = None, nodata: float | None = None, runtime: dict[str, Any] | None = None,
                     seams: bool = False,
                     progress: Callable[[int], Callable[[int], None]] | None = None) -> dict[str, Any]:
    """Reconstruct the scene in ``input_path`` (GeoTIFF, ``.npy``, or any single scene ``sarzoo.data`` reads)
    into ``output_path`` (``.tif``: GeoTIFF with the input's georeferencing, Cloud-Optimised with ``cog``;
    ``.npy``), in the input's domain, no-data kept. ``overlap`` None: a quarter of the tile. ``domain``
    and ``nodata`` override how the input is read (the checkpoint's domain, the file's nodata).
    ``progress(total_tiles)`` returns the callback told the tiles done after each batch. Returns the
    report (``seams``: with the seam metric)."""
    from sarzoo import checkpoint as ck
    from sarzoo.data.readers import iter_blocks
    from sarzoo.inference.clips import ClipTally
    from sarzoo.inference.engine import DEFAULT_BLOCK, count_tiles, scene_values
    from sarzoo.inference.loaded import load
    from sarzoo.inference.rasters import georeference, open_sink, output_nodata
    from sarzoo.inference.seams import SeamMeter
    from sarzoo.inference.tiles import default_overlap, input_multiple, tile_grid, tile_size

    inp, out = str(input_path), str(output_path)
    kind = _check_paths(inp, out, overwrite)
    if cog and kind != "geotiff":
        raise SarzooError(f"--cog writes a Cloud-Optimised GeoTIFF; name the output .tif, not {out}")
    for name, v in (("--batch", batch_size), ("--block", block)):
        if v is not None and v < 1:
            raise SarzooError(f"{name} must be at least 1, got {v}")
    t0 = time.perf_counter()
    loaded = load(ck.resolve_path(checkpoint), device=device, runtime=runtime)
    model, prep = loaded
    if domain is not None:
        prep = replace(prep, domain=domain)
    t = tile_size(model) if tile is None else tile
    grid = tile_grid(model, t, default_overlap(t, input_multiple(model)) if overlap is None else overlap,
                     ("--tile", "--overlap"))
    channels = int(model.input_shape[0])

    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        scene = _open_input(inp, prep, channels, nodata)
        prep = _scene_prep(scene, prep)
        out_nodata = output_nodata(scene, nodata)
        H, W = int(scene.height), int(scene.width)
        bsize, file_tile = grid.block_layout(block or DEFAULT_BLOCK)
        total = count_tiles(grid, (H, W), iter_blocks(H, W, bsize))
        on_tiles = progress(total) if progress is not None else None
        meter = SeamMeter(grid, H, W, channels) if seams else None
        tally, valid = ClipTally(), 0
        sink = None
        t1 = time.perf_counter()
        try:
            sink = open_sink(out, H, W, channels, prep=prep, georef=georeference(scene) if kind == "geotiff" else None,
                             nodata=out_nodata, block=file_tile, cog=cog)
            for blk, values in scene_values(model, scene, grid, prep, bsize, nodata=out_nodata, batch_size=batch_size,
                                            on_tiles=on_tiles, tally=tally, where=inp):
                sink.write(blk.row, blk.col, values)
                valid += int(blk.mask[0].sum())
                if meter is not None:
                    meter.add(blk.row, blk.col, blk.y, blk.x, blk.mask)
            t2 = time.perf_counter()
            sink.commit()
        except BaseException:
            if sink is not None:
                sink.abort()
            raise
    t3 = time.perf_counter()
    msgs = tally.warn(prep)
    fast = getattr(model, "fast_path", None)
    return {
        "checkpoint": str(model.checkpoint_info.get("path") or checkpoint), "input": inp, "output": out,
        "format": "cog" if cog else kind, "shape": [H, W], "channels": channels,
        "tile": grid.tile, "overlap": grid.overlap, "stride": grid.stride, "input_multiple": grid.multiple,
        "block": bsize, "batch": batch_size, "tiles": total,
        "seconds": {"total": t3 - t0, "tiles": t2 - t1, "write": t3 - t2, "setup": t1 - t0},
        "tiles_per_s": total / max(t2 - t1, 1e-9),
        "valid_fraction": valid / (H * W),
        "nodata": "nan" if out_nodata is None else out_nodata,
        "preprocessing": prep.to_dict(),
        "runtime": fast.describe() if fast is not None else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seams": meter.result() if meter is not None else None,
        "warnings": msgs,
    }
