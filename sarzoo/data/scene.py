"""The ``Scene`` interface every reader implements, and the per-process cache of open files.

Why its own module: plain files (``readers``), Sentinel-1 products (``safe``) and multilooked views
(``complex``) are all scenes, and ``readers.open_file`` dispatches to the other two; the base
class lives below all three so none of them imports another upward (no import cycle).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from sarzoo.errors import SarzooError

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
    #: bands (polarisations) per pixel; ``read`` returns ``(channels, h, w)`` where the pipeline
    #: is multi-channel (issue 11), and plain single-band readers still ``(h, w)`` until then
    channels: int = 1

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
