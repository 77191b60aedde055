"""SAR data: synthetic scenes, file readers, preprocessing, patches, datasets.

This package module stays import-light on purpose (no numpy, no torch): the recipe schema
imports ``DATA_DEFAULTS`` / ``DATA_DOCS`` to validate a ``data:`` section, and ``import
sarzoo`` must stay instant. The heavy names below are loaded on first attribute access.
"""
from __future__ import annotations

import copy
from typing import Any

#: Defaults of a recipe's ``data:`` section; ``build_datasets`` deep-merges a config over it.
DATA_DEFAULTS: dict[str, Any] = {
    "paths": None,
    "domain": "intensity",
    "patch_size": 64,
    "stride": 64,
    "clip": {"mode": "percentile", "low": 1.0, "high": 99.0, "vmin": -25.0, "vmax": 0.0},
    "nodata": None,
    "min_valid": 0.5,
    "val_fraction": 0.2,
    "augment": True,
    "synthetic": {"n_scenes": 32, "size": 128, "looks": 4},
    "seed": 0,
}

#: One line per key (nested keys dotted), for schema validation messages and ``--help``-style docs.
DATA_DOCS: dict[str, str] = {
    "paths": "input files, directories (searched recursively) or globs; null = synthetic scenes",
    "domain": "what the files hold: 'intensity' (power), 'amplitude' (sqrt of intensity) or 'db'",
    "patch_size": "side in pixels of the square patches cut from each scene",
    "stride": "step in pixels between patch origins (< patch_size overlaps); null = patch_size",
    "clip": "dB clip range before scaling to [0, 1]",
    "clip.mode": "'percentile' (from the training scenes, streamed) or 'fixed' (vmin/vmax)",
    "clip.low": "lower percentile (0-100) of the training dB values, for mode 'percentile'",
    "clip.high": "upper percentile (0-100) of the training dB values, for mode 'percentile'",
    "clip.vmin": "lower clip bound in dB, for mode 'fixed'",
    "clip.vmax": "upper clip bound in dB, for mode 'fixed'",
    "nodata": "raw value meaning no measurement; null = the file's own nodata (NaN, and 0 "
              "in the linear domains, are always no-data)",
    "min_valid": "patches with a smaller fraction (0-1) of valid pixels are skipped",
    "val_fraction": "fraction (0 <= f < 1) of scenes held out for validation; split by scene",
    "augment": "random flips and 90-degree rotations of training patches",
    "synthetic": "synthetic scenes used when paths is null",
    "synthetic.n_scenes": "number of synthetic scenes (train and validation together)",
    "synthetic.size": "side in pixels of each synthetic scene",
    "synthetic.looks": "number of looks L of the Gamma speckle (mean 1, variance 1/L)",
    "seed": "seed of the synthetic scenes and of the train/validation split",
}

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
    "resolve_data_config": "sarzoo.data.dataset",
}

__all__ = ["DATA_DEFAULTS", "DATA_DOCS", "data_defaults", *_LAZY]


def data_defaults() -> dict[str, Any]:
    """A fresh deep copy of ``DATA_DEFAULTS`` (safe to mutate)."""
    return copy.deepcopy(DATA_DEFAULTS)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarzoo.data' has no attribute {name!r}")
