"""SAR data: synthetic scenes, file readers, preprocessing, patches, datasets.

The ``data:`` recipe section is declared with every other key in ``sarzoo.config.schema``. This
package module stays import-light (no numpy, no torch): the heavy names below are loaded on
first attribute access.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "SyntheticSAR": "sarzoo.data.synthetic",
    "Preprocessing": "sarzoo.data.preprocess",
    "DbHistogram": "sarzoo.data.preprocess",
    "fit_percentiles": "sarzoo.data.preprocess",
    "DOMAINS": "sarzoo.data.preprocess",
    "Scene": "sarzoo.data.readers",
    "open_sources": "sarzoo.data.readers",
    "expand_paths": "sarzoo.data.readers",
    "patch_grid": "sarzoo.data.patches",
    "split_scenes": "sarzoo.data.patches",
    "random_dihedral": "sarzoo.data.patches",
    "PatchDataset": "sarzoo.data.dataset",
    "DataSplit": "sarzoo.data.dataset",
    "build_datasets": "sarzoo.data.dataset",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarzoo.data' has no attribute {name!r}")
