"""Torch datasets of preprocessed SAR patches, and their construction from a ``data:`` config.

``build_datasets`` is the one entry point a trainer needs: it takes a ``data:`` section, opens and
checks every input file, splits by scene, fits the clip range on the training scenes only
(so validation statistics never leak into preprocessing), and returns lazy datasets plus the
``Preprocessing`` that must be stored in the checkpoint.

With ``clip.mode: per_scene`` every scene instead gets its own range, fitted on its own valid
pixels (``scene_preprocessing``): a scene's statistics are then part of its input, available at
inference as in training, so fitting them on validation scenes leaks nothing a model could use.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sarzoo.data.bands import assemble
from sarzoo.data.patches import PatchRef, Region, random_dihedral, read_patch, region_patches, split_scenes
from sarzoo.data.preprocess import DbHistogram, Preprocessing, channel_histograms, range_from_histograms
from sarzoo.data.readers import MemoryScene, Scene, iter_blocks, open_sources
from sarzoo.data.synthetic import SyntheticSAR
from sarzoo.errors import SarzooError


class PatchDataset(Dataset):
    """Items ``{"x", "mask", "scene"}`` (+ ``"clean"`` for synthetic data), read lazily.

    ``x``: float32 (C, P, P) in [0, 1]; ``mask``: bool (C, P, P), False = no-data (filled
    with ``preprocessing.fill``; the same in every channel: a pixel is valid where all bands are);
    ``clean``: the noise-free reflectivity preprocessed the same way; ``scene``: the scene id
    (collated into a list of strings). ``scene_preprocessing`` (``clip.mode: per_scene``): each
    scene's own preprocessing by scene id; ``preprocessing`` is then the one a checkpoint stores.
    """

    def __init__(self, patches: Sequence[PatchRef], preprocessing: Preprocessing, augment: bool = False,
                 scene_preprocessing: dict[str, Preprocessing] | None = None):
        self.patches = list(patches)
        self.preprocessing = preprocessing
        self.augment = bool(augment)
        self.scene_preprocessing = scene_preprocessing or {}

    def preprocessing_for(self, scene_id: str) -> Preprocessing:
        """The preprocessing of one scene's pixels: its own range (per_scene), else the shared one."""
        return self.scene_preprocessing.get(scene_id, self.preprocessing)

    def item_preprocessing(self, scene_ids: Sequence[str]) -> Preprocessing | list[Preprocessing]:
        """What ``sarzoo.metrics`` takes for a batch of these scenes' patches: the shared preprocessing,
        or one per image when scenes have their own ranges (ENL is measured in each one's intensity)."""
        if not self.scene_preprocessing:
            return self.preprocessing
        return [self.preprocessing_for(s) for s in scene_ids]

    def __len__(self) -> int:
        return len(self.patches)

    @property
    def scene_ids(self) -> list[str]:
        return sorted({p.region.scene.id for p in self.patches})

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.patches[i]
        prep = self.preprocessing_for(p.region.scene.id)
        raw, clean = read_patch(p)
        x, m = prep.forward(raw)
        xt = torch.from_numpy(np.ascontiguousarray(x))
        mt = torch.from_numpy(np.ascontiguousarray(m))
        ct = None
        if clean is not None:
            ct = torch.from_numpy(np.ascontiguousarray(clean_forward(prep, clean, m)))
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
                     **options: Any) -> list[Scene]:
    """Synthetic scenes as in-memory scenes carrying their clean reflectivity; ``(C, H, W)`` arrays when
    ``channels`` > 1 (``SyntheticSAR``'s VV/VH pairs). ``options``: ``SyntheticSAR``'s ``correlation``,
    ``texture``, ``texture_fraction``, ``profile`` (left out: the profile's own)."""
    syn = SyntheticSAR(n_scenes, size, looks, seed, channels=channels, **options)
    out: list[Scene] = []
    for i in range(len(syn)):
        speckled, clean = syn.scene(i)
        out.append(MemoryScene(syn.scene_id(i), speckled, clean=clean))
    return out


def region_blocks(regions: Sequence[Region], block: int = 1024):
    """Raw ``(C, h, w)`` blocks covering ``regions``: a streaming pass, one block in memory. Each scene
    is released after every block (``Scene.release``): pages of a memory-mapped ``.npy`` would
    otherwise stay resident until the pass ends, i.e. the whole scene."""
    for reg in regions:
        for r, c, h, w in iter_blocks(reg.height, reg.width, block):
            a = reg.scene.read(reg.row + r, reg.col + c, h, w)
            reg.scene.release()
            yield a


def clean_forward(prep: Preprocessing, clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Raw clean reflectivity (synthetic data) as the model sees its input: ``prep.forward``, with the
    input's no-data pixels (``mask`` False) filled with ``prep.fill``; float32. Training's items,
    eval's and rd's images compare against the same clean truth."""
    c, _ = prep.forward(clean)
    return np.where(mask, c, np.float32(prep.fill)).astype(np.float32, copy=False)


def clip_range_from_regions(regions: Sequence[Region], domain: str, low: float, high: float) -> tuple[Any, Any]:
    """The ``low``/``high`` percentile clip range over the valid pixels of single-channel ``regions``,
    read block by block (``Preprocessing.refit``)."""
    prep = Preprocessing(domain=domain, low=low, high=high).refit(region_blocks(regions))
    return prep.vmin, prep.vmax


def scene_preprocessing(scenes: Sequence[Scene], prep: Preprocessing, block: int = 1024
                        ) -> tuple[dict[str, Preprocessing], list[DbHistogram]]:
    """Each scene's own preprocessing (``clip.mode: per_scene``): ``prep`` with the scene's
    ``low``/``high`` percentiles per channel, fitted on the whole scene; and the histograms of all
    of them pooled (for the range a checkpoint records, for information)."""
    out: dict[str, Preprocessing] = {}
    pooled = [DbHistogram() for _ in range(prep.channels)]
    for s in scenes:
        if s.id in out:
            continue
        hists = channel_histograms(region_blocks([Region.whole(s)], block), prep)
        if any(h.total == 0 for h in hists):
            raise SarzooError(f"{s.id}: has no valid pixel to fit its own clip range from (data.clip.mode "
                              f"per_scene); check its no-data, or leave it out")
        out[s.id] = prep.with_range(*range_from_histograms(hists, prep.low, prep.high))
        for acc, h in zip(pooled, hists):
            acc.counts += h.counts
    return out, pooled


def base_preprocessing(cfg: dict[str, Any], channels: int) -> Preprocessing:
    """The preprocessing a ``data:`` section describes before any fit: domain, no-data, bands, mode,
    and the fixed bounds (one number for every channel, or one per channel)."""
    clip = cfg["clip"]

    def per_channel(v: Any) -> Any:
        if channels == 1:
            return v[0] if isinstance(v, list) else v
        return v if isinstance(v, list) else [v] * channels

    return Preprocessing(domain=cfg["domain"], vmin=per_channel(clip["vmin"]), vmax=per_channel(clip["vmax"]),
                         nodata=cfg["nodata"], bands=cfg.get("bands"),
                         mode="per_scene" if clip["mode"] == "per_scene" else "global",
                         low=clip["low"], high=clip["high"])


def valid_fraction(p: PatchRef, prep: Preprocessing) -> float:
    raw, _ = read_patch(p)
    return float(prep.mask(raw).mean())


def open_scenes(cfg: dict[str, Any], channels: int = 1) -> list[Scene]:
    """The scenes a resolved ``data:`` config names: its files, or the synthetic set when it has
    no ``paths``. Training and evaluation must open the very same scenes for the split to match.
    ``channels`` is the recipe's ``input.channels``: every scene has that many bands (files of one
    band each are joined by ``data.bands``: ``sarzoo.data.bands.assemble``), or ``SarzooError``."""
    bands = cfg.get("bands")
    if bands is not None and len(bands) != channels:
        raise SarzooError(f"data.bands names {len(bands)} band(s) {bands} but input.channels is {channels}: "
                          f"give one name per channel")
    if cfg["paths"] is None:
        syn = cfg["synthetic"]
        return synthetic_scenes(syn["n_scenes"], syn["size"], syn["looks"], cfg["seed"], channels=channels,
                                correlation=syn["correlation"], texture=syn["texture"],
                                texture_fraction=syn["texture_fraction"], profile=syn["profile"])
    scenes = open_sources(cfg["paths"], nodata=cfg["nodata"], channels=channels, domain=cfg.get("domain", "intensity"),
                          bands=bands, calibration=cfg.get("calibration", "sigma0"), multilook=cfg.get("multilook"))
    return assemble(scenes, channels, bands)


def patches_of(regions: Sequence[Region], cfg: dict[str, Any], prep: Preprocessing) -> list[PatchRef]:
    """The patches cut from ``regions`` that have at least ``min_valid`` valid pixels, as read by
    ``prep`` (its domain and nodata decide what is valid)."""
    out = [p for reg in regions for p in region_patches(reg, cfg["patch_size"], cfg["stride"])]
    if cfg["min_valid"] > 0:
        out = [p for p in out if valid_fraction(p, prep) >= cfg["min_valid"]]
    return out


def build_datasets(config: dict[str, Any] | None = None, scenes: Sequence[Scene] | None = None,
                   channels: int | None = None) -> DataSplit:
    """Train/validation ``PatchDataset``s and the fitted ``Preprocessing`` from a ``data:`` section.

    ``config``: a recipe's resolved ``data:`` section, or a partial one (checked and completed
    by ``sarzoo.config.resolve_section``, the same rules as in a recipe). ``scenes`` bypasses
    ``paths``/synthetic (already opened scenes, e.g. from a test). Synthetic scenes are linear
    intensity, so ``domain`` is forced to ``intensity`` for them. ``channels``: the recipe's
    ``input.channels`` (default: the given scenes', else 1); every scene must have that many bands.
    The clip range is fitted per channel; with ``clip.mode: per_scene`` per scene and channel.
    """
    from sarzoo.config import resolve_section

    cfg = resolve_section("data", config)
    if channels is None:
        channels = scenes[0].channels if scenes else 1
    if scenes is None:
        scenes = open_scenes(cfg, channels=channels)
        if cfg["paths"] is None:
            cfg["domain"] = "intensity"
    else:
        scenes = assemble(scenes, channels, cfg.get("bands"))
    train_regions, val_regions = split_scenes(scenes, cfg["val_fraction"], cfg["seed"])

    prep = base_preprocessing(cfg, channels)
    scene_prep = None
    if cfg["clip"]["mode"] == "percentile":
        prep = prep.refit(region_blocks(train_regions))  # low/high: the config's clip percentiles
    elif prep.per_scene:
        scene_prep, pooled = scene_preprocessing([r.scene for r in train_regions], prep)
        scene_prep.update(scene_preprocessing([r.scene for r in val_regions if r.scene.id not in scene_prep],
                                              prep)[0])
        prep = prep.with_range(*range_from_histograms(pooled, prep.low, prep.high))

    train_p, val_p = patches_of(train_regions, cfg, prep), patches_of(val_regions, cfg, prep)
    if not train_p:
        raise SarzooError(f"no training patch has at least {cfg['min_valid']:.0%} valid pixels "
                          f"(patch_size {cfg['patch_size']}); check the inputs' no-data or lower data.min_valid")
    return DataSplit(PatchDataset(train_p, prep, augment=cfg["augment"], scene_preprocessing=scene_prep),
                     PatchDataset(val_p, prep, augment=False, scene_preprocessing=scene_prep), prep, cfg)
