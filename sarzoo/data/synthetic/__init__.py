"""Synthetic SAR scenes: clean reflectivity × speckle, with the statistics real scenes show.

Why synthetic data at all: tests, CI and first experiments need SAR-like images without a
download, and only synthetic scenes come with the clean reflectivity, which is what lets us
check that a model removes speckle rather than structure. Why this much realism: a model trained
on white 4-look speckle over a narrow σ0 range beats the classical reference on such scenes and
loses to it on real SAR (1–3 looks, correlated speckle, textured land cover). So looks vary per
scene, speckle is correlated by a point-spread function, regions are textured (K / G0 product
model), σ0 spans −30..+10 dB, and VV/VH pairs come on request.

- ``speckle``: complex Gaussian looks → PSF → |z|² → multilook (and the ENL relations);
- ``texture``: Gamma / inverse-Gamma texture fields;
- ``scene``: the clean reflectivity (land cover, lines, points, VV − VH ratio);
- ``profiles``: the ``train`` and ``heldout`` parameter sets and per-scene draws;
- ``generator``: ``SyntheticSAR``, the dataset.
"""
from __future__ import annotations

from sarzoo.data.synthetic.generator import SyntheticSAR
from sarzoo.data.synthetic.profiles import HELDOUT, PROFILES, TRAIN, Profile, SceneParams
from sarzoo.data.synthetic.speckle import box_enl, intensity_correlation, speckle, speckle_channels, trigamma

__all__ = ["SyntheticSAR", "Profile", "SceneParams", "TRAIN", "HELDOUT", "PROFILES", "speckle",
           "speckle_channels", "box_enl", "intensity_correlation", "trigamma"]
