"""``SyntheticSAR``: the dataset of synthetic scenes, one deterministic scene per index.

Determinism is per scene: scene ``i`` of seed ``s`` comes from its own random streams, seeded by
``(s, i)`` (``(s, i, stream)`` in the held-out profile), and depends only on them and the
parameters, never on how many scenes are requested or in which order they are read. Three child
streams keep the parts apart: the scene's parameters, its reflectivity and its speckle; so a scene's
clean reflectivity does not change when only the looks or the speckle correlation change.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sarzoo.data.synthetic.profiles import SceneParams, draw_params
from sarzoo.data.synthetic.profiles import profile as make_profile
from sarzoo.data.synthetic.scene import reflectivity
from sarzoo.data.synthetic.speckle import speckle_channels
from sarzoo.errors import SarzooError

#: floor of the speckled intensity: an exact 0 would read as no-data (never reached in practice)
_TINY = np.float32(1e-30)


class SyntheticSAR:
    """Map-style dataset of synthetic scenes; works with ``torch.utils.data.DataLoader``.

    ``scene(i)`` returns numpy arrays ``(speckled, clean)`` in linear intensity, float32: (H, W)
    for one channel (VV), (C, H, W) for ``channels=2`` (VV, VH). ``dataset[i]`` returns
    ``{"speckled", "clean"}`` as float32 tensors (C, H, W) and the scene id. Scenes are generated
    on demand (a few ms each), not cached.

    ``looks``, ``correlation`` and ``texture`` take a number or ``[low, high]`` (drawn per scene,
    per region for ``texture``); None (the default) takes the profile's own (``profiles.TRAIN``).
    With ``profile="heldout"`` they and ``texture_fraction`` are ignored: that profile's parameters
    are fixed (``profiles.HELDOUT``, docs/data.md).
    """

    def __init__(self, n_scenes: int = 32, size: int | tuple[int, int] = 128,
                 looks: float | Sequence[float] | None = None, seed: int = 0, *, channels: int = 1,
                 correlation: float | Sequence[float] | None = None, texture: float | Sequence[float] | None = None,
                 texture_fraction: float | None = None, profile: str = "train"):
        if int(n_scenes) < 1:
            raise SarzooError(f"synthetic n_scenes must be >= 1, got {n_scenes}")
        h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if int(h) < 8 or int(w) < 8:
            raise SarzooError(f"synthetic scene size must be >= 8 px, got {size}")
        if int(channels) not in (1, 2):
            raise SarzooError(f"synthetic channels must be 1 (VV) or 2 (VV, VH), got {channels}")
        if int(seed) < 0:
            raise SarzooError(f"synthetic seed must be >= 0, got {seed}")
        self.profile = make_profile(profile, looks, correlation, texture, texture_fraction)
        self.n_scenes, self.height, self.width = int(n_scenes), int(h), int(w)
        self.seed, self.channels = int(seed), int(channels)

    def __len__(self) -> int:
        return self.n_scenes

    def scene_id(self, i: int) -> str:
        tag = "" if self.profile.name == "train" else f"{self.profile.name}-"
        return f"synthetic-{tag}{self.seed}-{i:04d}"

    def _streams(self, i: int) -> list[np.random.SeedSequence]:
        if not 0 <= i < self.n_scenes:
            raise IndexError(i)
        key = [self.seed, i] + ([self.profile.stream] if self.profile.stream else [])
        return np.random.SeedSequence(key).spawn(3)

    def params(self, i: int) -> SceneParams:
        """The parameters scene ``i`` is drawn with: looks, PSF and its width, texture correlation, coherence."""
        return draw_params(self.profile, np.random.default_rng(self._streams(i)[0]))

    def scene(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(speckled, clean)`` linear intensity, float32, (H, W) or (C, H, W) for scene ``i``."""
        ps, cs, ss = self._streams(i)
        p = draw_params(self.profile, np.random.default_rng(ps))
        vv, ratio_db = reflectivity(np.random.default_rng(cs), self.height, self.width, self.profile,
                                    p.texture_correlation)
        speck = speckle_channels(np.random.default_rng(ss), (self.height, self.width), p.looks, p.psf, p.width,
                                 channels=self.channels, coherence=p.coherence)
        if self.channels == 1:
            clean = vv
        else:
            clean = np.stack([vv, vv * np.power(np.float32(10.0), -ratio_db / np.float32(10.0))])
        speckled = np.maximum(clean * speck, _TINY)
        return (speckled[0], clean) if self.channels == 1 else (speckled, clean)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        speckled, clean = self.scene(int(i))
        if self.channels == 1:
            speckled, clean = speckled[None], clean[None]
        return {"speckled": torch.from_numpy(speckled), "clean": torch.from_numpy(clean),
                "scene": self.scene_id(int(i))}

