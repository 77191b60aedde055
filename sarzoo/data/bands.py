"""Multi-channel scenes from one file per band: ``*-vv-*.tiff`` beside ``*-vh-*.tiff`` is one scene.

Why by name: Sentinel-1 products, and most exports of them, store each polarisation as its own
single-band file whose name differs from its sibling's only in the polarisation token. Joining
them by that token (the names of ``data.bands``, any case, delimited by ``-``, ``_`` or ``.``)
needs no index file and fails loudly when a sibling is missing, instead of training a
dual-polarisation model on half the bands or pairing bands of different acquisitions.

Why every scene's channel count is checked here, once: after this, every scene hands out
``(input.channels, h, w)`` windows, and a single-band file in a two-channel recipe is an error
naming the file at the door, not a shape mismatch inside a training step.
"""
from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

from sarzoo.data.readers import Scene
from sarzoo.errors import SarzooError

__all__ = ["StackScene", "band_key", "assemble"]

_SPLIT = re.compile(r"([-_.])")


class StackScene(Scene):
    """Co-registered single-band scenes read together as one ``(C, h, w)`` scene, in band order.

    ``path`` and ``band`` are the first member's (a GeoTIFF member lends its georeferencing to saved
    reconstructions). Holds only its members, so it pickles into DataLoader workers as they do.
    """

    def __init__(self, scene_id: str, members: Sequence[Scene], group: str | None = None):
        self.members = list(members)
        first = self.members[0]
        self.id, self.group = scene_id, group or scene_id
        self.height, self.width = first.height, first.width
        self.channels = sum(m.channels for m in self.members)
        self.nodata = first.nodata
        self.has_clean = all(m.has_clean for m in self.members)
        self.path = getattr(first, "path", scene_id)
        if hasattr(first, "band"):
            self.band = first.band

    def read(self, row: int, col: int, h: int, w: int) -> np.ndarray:
        self._check_window(row, col, h, w)
        return np.concatenate([m.read(row, col, h, w) for m in self.members])

    def read_clean(self, row: int, col: int, h: int, w: int) -> np.ndarray | None:
        if not self.has_clean:
            return None
        self._check_window(row, col, h, w)
        return np.concatenate([m.read_clean(row, col, h, w) for m in self.members])

    def release(self) -> None:
        for m in self.members:
            m.release()


def band_key(name: str, bands: Sequence[str]) -> tuple[str, int] | None:
    """``(name with its band token replaced by {}, band index)``, or None when no token of ``name``
    (split at ``-``, ``_``, ``.``) is one of ``bands`` (case-insensitive). Two tokens naming bands make
    the name ambiguous: ``SarzooError``."""
    folded = [b.lower() for b in bands]
    parts = _SPLIT.split(name)
    hits = [i for i, p in enumerate(parts) if i % 2 == 0 and p.lower() in folded]
    if not hits:
        return None
    if len(hits) > 1:
        raise SarzooError(f"{name}: names more than one band of data.bands {list(bands)} "
                          f"({', '.join(parts[i] for i in hits)}); cannot tell which band the file holds: rename it")
    i = hits[0]
    key = "".join(parts[:i]) + "{}" + "".join(parts[i + 1:])
    return key, folded.index(parts[i].lower())


def _split_id(scene: Scene) -> tuple[str, str, str]:
    """``(directory, file name, what follows the path in the id)``: frames and ``.npz`` members of
    per-band files are joined frame by frame and member by member."""
    path = getattr(scene, "path", None) or scene.id
    rest = scene.id[len(path):] if scene.id.startswith(path) else ""
    return os.path.dirname(path), os.path.basename(path), rest


def _need_bands(scene: Scene, channels: int) -> SarzooError:
    return SarzooError(
        f"{scene.id}: holds {scene.channels} band(s) but the recipe's input.channels is {channels}: give files of "
        f"{channels} bands (a {channels}-band GeoTIFF, a ({channels}, H, W) array), or one file per band named "
        f"alike except for the band token and list the bands in data.bands (e.g. data.bands: [VV, VH] joins "
        f"s1-vv-001.tiff with s1-vh-001.tiff)")


def assemble(scenes: Sequence[Scene], channels: int, bands: Sequence[str] | None = None) -> list[Scene]:
    """The scenes of a ``channels``-channel recipe: multi-band scenes as they are, single-band scenes
    named by a band of ``bands`` joined with their siblings (channels in ``bands`` order).

    Every scene that results has exactly ``channels`` channels, or ``SarzooError`` names the files:
    a band missing from a group, a band given twice, bands of different sizes, a single-band file
    without a band token, a file of another band count.
    """
    if channels == 1:
        for s in scenes:
            if s.channels != 1:
                raise _need_bands(s, 1)
        return list(scenes)
    out: list[Scene] = []
    groups: dict[tuple[str, str, str], dict[int, Scene]] = {}
    order: list[tuple[str, str, str]] = []
    for s in scenes:
        if s.channels == channels:
            out.append(s)
            continue
        hit = band_key(_split_id(s)[1], bands) if (bands and s.channels == 1) else None
        if hit is None:
            raise _need_bands(s, channels)
        d, _, rest = _split_id(s)
        key = (d, hit[0], rest)
        if key not in groups:
            groups[key] = {}
            order.append(key)
        if hit[1] in groups[key]:
            raise SarzooError(f"{groups[key][hit[1]].id} and {s.id}: both hold band {bands[hit[1]]} of one scene "
                              f"(names equal but for the band token's case); keep one")
        groups[key][hit[1]] = s
    for key in order:
        members = groups[key]
        d, pattern, rest = key
        missing = [b for i, b in enumerate(bands) if i not in members]
        have = ", ".join(m.id for _, m in sorted(members.items()))
        if missing:
            want = ", ".join(os.path.join(d, pattern.format(b.lower())) + rest for b in missing)
            raise SarzooError(f"{have}: band(s) {', '.join(missing)} of data.bands {list(bands)} missing for this "
                              f"scene: expected a file named like {want} (the same name with the band token "
                              f"replaced; any case)")
        shapes = {m.shape for m in members.values()}
        if len(shapes) > 1:
            sizes = ", ".join(f"{m.id} {m.height}×{m.width}" for _, m in sorted(members.items()))
            raise SarzooError(f"bands of one scene differ in size ({sizes}): the bands of a scene must be "
                              f"co-registered, pixel for pixel")
        ordered = [members[i] for i in range(len(bands))]
        joined = os.path.join(d, pattern.format("+".join(bands)))
        out.append(StackScene(joined + rest, ordered, group=joined))
    return out
