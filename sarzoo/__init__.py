"""sarzoo: a plugin-registry model zoo of autoencoders for SAR images.

Importing sarzoo is cheap (no torch): the API functions import what they need when called.
"""
from __future__ import annotations

from sarzoo._version import __version__
from sarzoo.hookspecs import ENTRY_POINT_GROUP, hookimpl

__all__ = ["build", "load_recipe", "load", "reconstruct", "hookimpl", "ENTRY_POINT_GROUP", "__version__"]


def build(recipe, overrides=None):
    """Build the model a recipe (path, built-in name or dict) describes, with its initial weights.

    ``overrides``: ``{"a.b": v}`` or ``["a.b=v"]``. The recipe is checked against every component's
    contract before any weight exists, and one forward pass then checks the real shapes.
    """
    from sarzoo.model import build as _build

    return _build(recipe, overrides)


def load_recipe(recipe, overrides=None) -> dict:
    """The fully resolved recipe (inherited, overridden, validated, defaults and mirror filled in)."""
    from sarzoo.config import load as _load

    return _load(recipe, overrides)


def load(checkpoint, device: str = "cpu", runtime: dict | None = None):
    """A trained model (eval mode) and its preprocessing, from a ``sarzoo train`` checkpoint.

    ``model, prep = sarzoo.load("runs/tiny/best.pt")``; ``prep.forward(raw) -> (x01, mask)`` and
    ``prep.inverse(x01)`` convert between the data's domain and the model's [0, 1] (the clip range
    the model was trained with travels in the checkpoint; without it outputs come back at the
    wrong scale). Read with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
    The result also has ``.reconstruct(raw)``: raw scene in, reconstruction in the same domain out.
    The model runs on the checkpoint's inference fast path; ``runtime`` overrides its keys
    (``{"amp": "off"}`` for fp32; docs/performance.md).
    """
    from sarzoo.inference import load as _load

    return _load(checkpoint, device, runtime)


def reconstruct(model, x01, overlap: int = 0, batch_size: int = 16, tile: int | None = None):
    """Reconstruct an image of any size (H, W) in [0, 1] by tiling it with the model's patches.

    Same type out as in (numpy or tensor). ``overlap`` > 0 blends overlapping tiles (fewer seams,
    more latent numbers spent than the dimension-matched reference); ``tile`` defaults to the
    patch size; both are multiples of the model's input multiple. The engine of ``sarzoo
    reconstruct`` (docs/reconstruct.md), on an image in memory.
    """
    from sarzoo.inference import reconstruct as _reconstruct

    return _reconstruct(model, x01, overlap=overlap, batch_size=batch_size, tile=tile)
