"""Torch datasets of preprocessed SAR patches, and their construction from a ``data:`` config.

``build_datasets`` is the one entry point a trainer needs: it takes a ``data:`` section, opens and
checks every input file, splits by scene, fits the clip range on the training scenes only
(so validation statistics never leak into preprocessing), and returns lazy datasets plus the
``Preprocessing`` that must be stored in the checkpoint.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sarzoo.data.patches import PatchRef, Region, random_dihedral, read_patch, region_patches, split_scenes
from sarzoo.data.preprocess import Preprocessing, fit_percentiles, to_db
from sarzoo.data.readers import MemoryScene, Scene, iter_blocks, open_sources
from sarzoo.data.synthetic import SyntheticSAR
from sarzoo.errors import SarzooError


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


# --- building ----------------------------------------------------------------------------

def synthetic_scenes(n_scenes: int, size: int, looks: float | Sequence[float], seed: int, *, channels: int = 1,
                     correlation: float | Sequence[float] = (0.0, 1.2), texture: float | Sequence[float] = (1.0, 10.0),
                     texture_fraction: float = 0.5, profile: str = "train") -> list[Scene]:
    """Synthetic scenes as in-memory scenes carrying their clean reflectivity; ``(C, H, W)`` arrays when
    ``channels`` > 1 (``SyntheticSAR``'s VV/VH pairs)."""
    syn = SyntheticSAR(n_scenes, size, looks, seed, channels=channels, correlation=correlation, texture=texture,
                       texture_fraction=texture_fraction, profile=profile)
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


def open_scenes(cfg: dict[str, Any], channels: int = 1) -> list[Scene]:
    """The scenes a resolved ``data:`` config names: its files, or the synthetic set when it has
    no ``paths``. Training and evaluation must open the very same scenes for the split to match.
    ``channels`` is the recipe's ``input.channels``: a file with more bands is refused."""
    if cfg["paths"] is None:
        syn = cfg["synthetic"]
        return synthetic_scenes(syn["n_scenes"], syn["size"], syn["looks"], cfg["seed"],
                                correlation=syn["correlation"], texture=syn["texture"],
                                texture_fraction=syn["texture_fraction"], profile=syn["profile"])
    return open_sources(cfg["paths"], nodata=cfg["nodata"], channels=channels, domain=cfg["domain"],
                        bands=cfg.get("bands"), calibration=cfg.get("calibration", "sigma0"),
                        multilook=cfg.get("multilook"))


def patches_of(regions: Sequence[Region], cfg: dict[str, Any], prep: Preprocessing) -> list[PatchRef]:
    """The patches cut from ``regions`` that have at least ``min_valid`` valid pixels, as read by
    ``prep`` (its domain and nodata decide what is valid)."""
    out = [p for reg in regions for p in region_patches(reg, cfg["patch_size"], cfg["stride"])]
    if cfg["min_valid"] > 0:
        out = [p for p in out if valid_fraction(p, prep) >= cfg["min_valid"]]
    return out


def build_datasets(config: dict[str, Any] | None = None, scenes: Sequence[Scene] | None = None,
                   channels: int = 1) -> DataSplit:
    """Train/validation ``PatchDataset``s and the fitted ``Preprocessing`` from a ``data:`` section.

    ``config``: a recipe's resolved ``data:`` section, or a partial one (checked and completed
    by ``sarzoo.config.resolve_section``, the same rules as in a recipe). ``scenes`` bypasses
    ``paths``/synthetic (already opened scenes, e.g. from a test). Synthetic scenes are linear
    intensity, so ``domain`` is forced to ``intensity`` for them. ``channels``: the recipe's
    ``input.channels`` (files with more bands are refused).
    """
    from sarzoo.config import resolve_section

    cfg = resolve_section("data", config)
    if scenes is None:
        scenes = open_scenes(cfg, channels=channels)
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
