"""The notebook API and the windowed reconstruction engine behind it, ``sarzoo reconstruct`` and ``sarzoo eval``.

- ``loaded``: ``load``, a trained model back from its checkpoint with its preprocessing (``Loaded``);
- ``tiles``: the tile geometry: the global grid, blend weights, alignment on the model's input multiple;
- ``engine``: the block loop (a scene of any size, one output block at a time) and ``reconstruct``
  for in-memory images;
- ``rasters``: where blocks go (GeoTIFF, Cloud-Optimised GeoTIFF, ``.npy``) and region views of scenes;
- ``seams``: the seam metric (is the tile grid visible?);
- ``run``: ``reconstruct_file``, one input file to one output file (what ``sarzoo reconstruct`` runs).

Why apart from evaluation: a user who only wants reconstructions needs the model, its
preprocessing and tiling, and none of the data selection, metrics or report of ``sarzoo eval``
(which builds on this package, never the other way round). Importing the package is cheap: the
names below load their module (and torch) on first use.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "Loaded": "sarzoo.inference.loaded",
    "load": "sarzoo.inference.loaded",
    "reconstruct": "sarzoo.inference.engine",
    "reconstruct_blocks": "sarzoo.inference.engine",
    "tile_size": "sarzoo.inference.tiles",
    "blend_weights": "sarzoo.inference.tiles",
    "tile_grid": "sarzoo.inference.tiles",
    "TileGrid": "sarzoo.inference.tiles",
    "reconstruct_file": "sarzoo.inference.run",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarzoo.inference' has no attribute {name!r}")
