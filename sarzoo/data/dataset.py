"""Torch datasets of preprocessed SAR patches, and their construction from a ``data:`` config.

``build_datasets`` is the one entry point a trainer needs: it validates the config, opens and
checks every input file, splits by scene, fits the clip range on the training scenes only
(so validation statistics never leak into preprocessing), and returns lazy datasets plus the
``Preprocessing`` that must be stored in the checkpoint.
"""
from __future__ import annotations

import copy
import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sarzoo.data import DATA_DEFAULTS
from sarzoo.data.patches import PatchRef, Region, random_dihedral, read_patch, region_patches, split_scenes
from sarzoo.data.preprocess import DOMAINS, Preprocessing, fit_percentiles, to_db
from sarzoo.data.readers import MemoryScene, Scene, iter_blocks, open_sources
from sarzoo.data.synthetic import SyntheticSAR
from sarzoo.errors import RecipeError, SarzooError


class PatchDataset(Dataset):
    """Items ``{"x", "mask", "scene"}`` (+ ``"clean"`` for synthetic data), read lazily.

    ``x``: float32 (1, P, P) in [0, 1]; ``mask``: bool (1, P, P), False = no-data (filled
    with ``preprocessing.fill``); ``clean``: the noise-free reflectivity preprocessed the same
    way; ``scene``: the scene id (collated into a list of strings).
    """

    def __init__(self, patches: Sequence[PatchRef], preprocessing: Preprocessing, augment: bool = False):
        self.patches = list(patches)
        self.preprocessing = preprocessing
        self.augment = bool(augment)

    def __len__(self) -> int:
        return len(self.patches)

    @property
    def scene_ids(self) -> list[str]:
        return sorted({p.region.scene.id for p in self.patches})

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.patches[i]
        raw, clean = read_patch(p)
        x, m = self.preprocessing.forward(raw)
        xt = torch.from_numpy(np.ascontiguousarray(x))[None]
        mt = torch.from_numpy(np.ascontiguousarray(m))[None]
        ct = None
        if clean is not None:
            c, _ = self.preprocessing.forward(clean)
            c = np.where(m, c, np.float32(self.preprocessing.fill))
            ct = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))[None]
        if self.augment:
            xt, mt, ct = random_dihedral([xt, mt, ct])
            xt, mt = xt.contiguous(), mt.contiguous()
            ct = None if ct is None else ct.contiguous()
        item: dict[str, Any] = {"x": xt, "mask": mt, "scene": p.region.scene.id}
        if ct is not None:
            item["clean"] = ct
        return item


class DataSplit(NamedTuple):
    """What ``build_datasets`` returns; unpacks as ``train, val, preprocessing, config``."""

    train: PatchDataset
    val: PatchDataset
    preprocessing: Preprocessing
    config: dict[str, Any]


# --- config ------------------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _merge(defaults: dict[str, Any], cfg: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in cfg.items():
        key = f"{prefix}.{k}"
        if k not in defaults:
            raise RecipeError(f"unknown key (known: {', '.join(defaults)})", key=key)
        if isinstance(defaults[k], dict):
            if not isinstance(v, dict):
                raise RecipeError(f"must be a mapping, got {v!r}", key=key)
            out[k] = _merge(defaults[k], v, key)
        else:
            out[k] = v
    return out


def resolve_data_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config`` deep-merged over ``DATA_DEFAULTS`` and checked; errors name the key (``data.x``)."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise RecipeError(f"must be a mapping, got {config!r}", key="data")
    c = _merge(DATA_DEFAULTS, config, "data")

    def bad(key: str, msg: str) -> RecipeError:
        return RecipeError(msg, key=f"data.{key}")

    p = c["paths"]
    if p is not None:
        if isinstance(p, str):
            c["paths"] = [p]
        elif not (isinstance(p, (list, tuple)) and p and all(isinstance(x, str) for x in p)):
            raise bad("paths", f"must be null, a path or a non-empty list of paths, got {p!r}")
        else:
            c["paths"] = list(p)
    if not isinstance(c["domain"], str) or c["domain"].lower() not in DOMAINS:
        raise bad("domain", f"must be one of {', '.join(DOMAINS)}, got {c['domain']!r}")
    c["domain"] = c["domain"].lower()
    if not _is_int(c["patch_size"]) or c["patch_size"] < 1:
        raise bad("patch_size", f"must be a positive integer, got {c['patch_size']!r}")
    if c["stride"] is None:
        c["stride"] = c["patch_size"]
    if not _is_int(c["stride"]) or c["stride"] < 1:
        raise bad("stride", f"must be a positive integer or null, got {c['stride']!r}")
    clip = c["clip"]
    if clip["mode"] not in ("percentile", "fixed"):
        raise bad("clip.mode", f"must be 'percentile' or 'fixed', got {clip['mode']!r}")
    for k in ("low", "high", "vmin", "vmax"):
        if not _is_num(clip[k]) or not np.isfinite(clip[k]):
            raise bad(f"clip.{k}", f"must be a finite number, got {clip[k]!r}")
        clip[k] = float(clip[k])
    if not 0.0 <= clip["low"] < clip["high"] <= 100.0:
        raise bad("clip.low", f"need 0 <= low < high <= 100, got low={clip['low']}, high={clip['high']}")
    if not clip["vmin"] < clip["vmax"]:
        raise bad("clip.vmin", f"need vmin < vmax, got vmin={clip['vmin']}, vmax={clip['vmax']}")
    if c["nodata"] is not None:
        if not _is_num(c["nodata"]):
            raise bad("nodata", f"must be a number or null, got {c['nodata']!r}")
        c["nodata"] = float(c["nodata"])
    if not _is_num(c["min_valid"]) or not 0.0 <= c["min_valid"] <= 1.0:
        raise bad("min_valid", f"must be a number in [0, 1], got {c['min_valid']!r}")
    if not _is_num(c["val_fraction"]) or not 0.0 <= c["val_fraction"] < 1.0:
        raise bad("val_fraction", f"must be a number in [0, 1), got {c['val_fraction']!r}")
    if not isinstance(c["augment"], bool):
        raise bad("augment", f"must be true or false, got {c['augment']!r}")
    syn = c["synthetic"]
    if not _is_int(syn["n_scenes"]) or syn["n_scenes"] < 1:
        raise bad("synthetic.n_scenes", f"must be a positive integer, got {syn['n_scenes']!r}")
    if not _is_int(syn["size"]) or syn["size"] < 8:
        raise bad("synthetic.size", f"must be an integer >= 8, got {syn['size']!r}")
    if not _is_num(syn["looks"]) or not syn["looks"] > 0:
        raise bad("synthetic.looks", f"must be a number > 0, got {syn['looks']!r}")
    if not _is_int(c["seed"]):
        raise bad("seed", f"must be an integer, got {c['seed']!r}")
    return c


# --- building ----------------------------------------------------------------------------

def synthetic_scenes(n_scenes: int, size: int, looks: float, seed: int) -> list[Scene]:
    """Synthetic scenes as in-memory scenes carrying their clean reflectivity."""
    syn = SyntheticSAR(n_scenes, size, looks, seed)
    out: list[Scene] = []
    for i in range(len(syn)):
        speckled, clean = syn.scene(i)
        out.append(MemoryScene(syn.scene_id(i), speckled, clean=clean))
    return out


def clip_range_from_regions(regions: Sequence[Region], domain: str, low: float, high: float,
                            nodata: float | None = None, block: int = 1024) -> tuple[float, float]:
    """Percentile clip range over the valid pixels of ``regions``, read block by block."""
    prep = Preprocessing(domain=domain, nodata=nodata)

    def chunks():
        for reg in regions:
            for r, c, h, w in iter_blocks(reg.height, reg.width, block):
                raw = reg.scene.read(reg.row + r, reg.col + c, h, w)
                m = prep.mask(raw)
                if m.any():
                    yield to_db(raw[m], domain, prep.eps)

    return fit_percentiles(chunks(), low, high)


def valid_fraction(p: PatchRef, prep: Preprocessing) -> float:
    raw, _ = read_patch(p)
    return float(prep.mask(raw).mean())


def open_scenes(cfg: dict[str, Any]) -> list[Scene]:
    """The scenes a resolved ``data:`` config names: its files, or the synthetic set when it has
    no ``paths``. Training and evaluation must open the very same scenes for the split to match."""
    if cfg["paths"] is None:
        syn = cfg["synthetic"]
        return synthetic_scenes(syn["n_scenes"], syn["size"], syn["looks"], cfg["seed"])
    return open_sources(cfg["paths"], nodata=cfg["nodata"])


def patches_of(regions: Sequence[Region], cfg: dict[str, Any], prep: Preprocessing) -> list[PatchRef]:
    """The patches cut from ``regions`` that have at least ``min_valid`` valid pixels, as read by
    ``prep`` (its domain and nodata decide what is valid)."""
    out = [p for reg in regions for p in region_patches(reg, cfg["patch_size"], cfg["stride"])]
    if cfg["min_valid"] > 0:
        out = [p for p in out if valid_fraction(p, prep) >= cfg["min_valid"]]
    return out


def build_datasets(config: dict[str, Any] | None = None, scenes: Sequence[Scene] | None = None) -> DataSplit:
    """Train/validation ``PatchDataset``s and the fitted ``Preprocessing`` from a ``data:`` config.

    ``scenes`` bypasses ``paths``/synthetic (already opened scenes, e.g. from a test).
    Synthetic scenes are linear intensity, so ``domain`` is forced to ``intensity`` for them.
    """
    cfg = resolve_data_config(config)
    if scenes is None:
        scenes = open_scenes(cfg)
        if cfg["paths"] is None:
            cfg["domain"] = "intensity"
    train_regions, val_regions = split_scenes(scenes, cfg["val_fraction"], cfg["seed"])

    clip = cfg["clip"]
    if clip["mode"] == "fixed":
        vmin, vmax = clip["vmin"], clip["vmax"]
    else:
        vmin, vmax = clip_range_from_regions(train_regions, cfg["domain"], clip["low"], clip["high"],
                                             cfg["nodata"])
    prep = Preprocessing(domain=cfg["domain"], vmin=vmin, vmax=vmax, nodata=cfg["nodata"])

    train_p, val_p = patches_of(train_regions, cfg, prep), patches_of(val_regions, cfg, prep)
    if not train_p:
        raise SarzooError(f"no training patch has at least {cfg['min_valid']:.0%} valid pixels "
                          f"(patch_size {cfg['patch_size']}); check the inputs' no-data or lower data.min_valid")
    return DataSplit(PatchDataset(train_p, prep, augment=cfg["augment"]), PatchDataset(val_p, prep, augment=False),
                     prep, cfg)
