"""The notebook API: a trained model back from its checkpoint, and scenes of any size through it.

Why this is its own module, apart from evaluation: a user who only wants reconstructions needs
the model, its preprocessing and tiling, and none of the data selection, metrics or report of
``sarzoo eval`` (which builds on this module, never the other way round).
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch

from sarzoo import fastpath
from sarzoo.errors import SarzooError

__all__ = ["Loaded", "load", "reconstruct", "tile_size", "blend_weights"]


class Loaded(NamedTuple):
    """What ``sarzoo.load`` returns; unpacks as ``model, preprocessing = sarzoo.load(path)``."""

    model: Any
    preprocessing: Any

    def reconstruct(self, raw: Any, overlap: int = 0, batch_size: int = 16) -> Any:
        """Raw scene values (data's domain), ``(H, W)`` or ``(C, H, W)`` → the model's reconstruction in
        the same domain and shape.

        No-data pixels (NaN, 0 in the linear domains, the declared nodata; with several bands, a pixel
        missing in any band) come back as NaN. When most valid pixels fall outside the checkpoint's
        clip range, a ``ClipRangeWarning`` says so. A ``per_scene`` checkpoint refits the clip range on
        ``raw`` itself (``scene_preprocessing``) and inverts that range on the output.
        """
        import warnings

        from sarzoo.data.preprocess import ClipRangeWarning, clip_counts, clip_warning

        prep = self.scene_preprocessing(raw)
        x, mask = prep.forward(raw)
        msg = clip_warning("the input", *clip_counts(x, mask), prep)
        if msg is not None:
            warnings.warn(msg, ClipRangeWarning, stacklevel=2)
        y = reconstruct(self.model, x, overlap=overlap, batch_size=batch_size)
        out = prep.inverse(y)
        if isinstance(out, torch.Tensor):
            return torch.where(torch.as_tensor(mask), out, torch.full_like(out, float("nan")))
        return np.where(np.asarray(mask), out, np.nan).astype(np.float32)

    def scene_preprocessing(self, raw: Any) -> Any:
        """The preprocessing that reads ``raw``: the checkpoint's, or for a ``per_scene`` checkpoint the
        checkpoint's with the clip range of ``raw``'s own valid pixels (its low/high percentiles)."""
        if not self.preprocessing.per_scene:
            return self.preprocessing
        a = raw.detach().cpu().numpy() if isinstance(raw, torch.Tensor) else np.asarray(raw)
        return self.preprocessing.refit([a])


def load(checkpoint: str | os.PathLike, device: str = "cpu", runtime: dict[str, Any] | None = None) -> Loaded:
    """The trained model (eval mode) and its ``Preprocessing`` from a training checkpoint.

    Loading goes through ``torch.load(weights_only=True)`` only, so a checkpoint cannot run code,
    and the checkpoint is validated (``sarzoo.checkpoint.read``: its recipe resolved and planned,
    its weights compared with that model on the meta device) before the model is built; a damaged
    one is a ``SarzooError`` naming the file and the key.
    ``preprocessing.forward(raw) -> (x01, mask)`` and ``preprocessing.inverse(x01)`` convert
    between the data's domain and the model's [0, 1]; the model alone is useless without them.
    The model is on the inference fast path (``sarzoo.fastpath``) of the checkpoint's ``runtime:``
    section with ``runtime`` (e.g. ``{"amp": "off"}`` for fp32) laid over it; ``reconstruct`` uses it.
    """
    from sarzoo import checkpoint as ck
    from sarzoo import config
    from sarzoo.device import pick_device

    ckpt = ck.read(checkpoint)
    dev = pick_device(device)
    model = ck.model_from_checkpoint(ckpt, dev)
    fastpath.for_inference(model, config.resolve_section("runtime", {**ckpt["recipe"]["runtime"], **(runtime or {})}),
                           dev)
    model.checkpoint_info = _checkpoint_info(ckpt)
    return Loaded(model, ck.preprocessing_of(ckpt))


def _checkpoint_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    best = ckpt.get("best") or {}
    return {"path": ckpt.get("_path"), "recipe": ckpt["recipe"].get("name"), "epoch": ckpt.get("epoch"),
            "step": ckpt.get("step"), "best": {k: best.get(k) for k in ("metric", "value", "epoch")},
            "sarzoo_version": ckpt.get("sarzoo_version")}


# --- tiled reconstruction --------------------------------------------------------------------

def tile_size(model: Any) -> int:
    """The patch side the model was trained on (the data's patch size, else the recipe's input)."""
    recipe = getattr(model, "recipe", None) or {}
    ps = (recipe.get("data") or {}).get("patch_size")
    if ps:
        return int(ps)
    h, w = recipe.get("input", {}).get("size", model.input_shape[-2:])
    if h != w:
        raise SarzooError(f"the model's input {h}×{w} is not square; tiles are")
    return int(h)


def blend_weights(size: int, overlap: int) -> np.ndarray:
    """1-D tile weights: a linear ramp over the ``overlap`` pixels at each end, flat inside.

    Never zero, so a pixel covered by one tile only (scene borders) keeps that tile's value;
    where tiles overlap, each contributes more the farther the pixel is from its edge, which
    hides the seams that the decoder's border effects would otherwise draw.
    """
    if overlap <= 0:
        return np.ones(size, dtype=np.float64)
    i = np.arange(size, dtype=np.float64)
    ramp = np.minimum((i + 1) / (overlap + 1), (size - i) / (overlap + 1))
    return np.clip(ramp, 1.0 / (overlap + 1), 1.0)


def _pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Pad a ``(C, H, W)`` image bottom/right to at least ``size`` by reflection (replicate where too
    small to reflect); the image itself when it is large enough."""
    h, w = x.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode=mode)


@torch.no_grad()
def reconstruct(model: Any, x01: Any, overlap: int = 0, batch_size: int = 16, tile: int | None = None) -> Any:
    """Reconstruct an image of any size in [0, 1] by tiling it with the model's patches: ``(H, W)`` for
    a single-channel model, ``(C, H, W)`` (C = the model's input channels, any C).

    Tiles start every ``tile − overlap`` pixels plus one flush with the bottom/right edge, so the
    whole image is covered without padding a large scene (a scene smaller than a tile is padded by
    reflection and cropped back). Overlapping tiles are blended with ramp weights
    (``blend_weights``). Returns the same type and shape as ``x01`` (numpy float32 or a CPU tensor).
    Memory: the image, the output and one batch of tiles.
    """
    from sarzoo.data.patches import patch_grid

    is_tensor = isinstance(x01, torch.Tensor)
    x = (x01.detach().cpu().numpy() if is_tensor else np.asarray(x01)).astype(np.float32, copy=False)
    shape_in = x.shape
    channels = int(model.input_shape[0])
    while x.ndim > 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] != channels:
        want = "(H, W) or (1, H, W)" if channels == 1 else f"({channels}, H, W)"
        raise SarzooError(f"reconstruct expects one image {want} for this {channels}-channel model, got shape "
                          f"{tuple(shape_in)}")
    h, w = x.shape[1:]
    tile = tile or tile_size(model)
    overlap = int(overlap)
    if not 0 <= overlap < tile:
        raise SarzooError(f"tile overlap must be in [0, {tile - 1}] px, got {overlap}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise SarzooError(f"batch_size must be at least 1, got {batch_size}")
    xp = np.ascontiguousarray(_pad_to(x, tile))
    H, W = xp.shape[1:]
    stride = tile - overlap
    pos = patch_grid(H, W, tile, stride)
    wt = np.outer(blend_weights(tile, overlap), blend_weights(tile, overlap))
    out = np.zeros((channels, H, W), dtype=np.float64)
    wsum = np.zeros((H, W), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(pos), batch_size):
            chunk = pos[b:b + batch_size]
            batch = np.stack([xp[:, r:r + tile, c:c + tile] for r, c in chunk])
            y = fastpath.forward(model, torch.from_numpy(batch))
            y = (y[0] if isinstance(y, tuple) else y).float().clamp(0.0, 1.0).cpu().numpy()
            for (r, c), t in zip(chunk, y):
                out[:, r:r + tile, c:c + tile] += t * wt
                wsum[r:r + tile, c:c + tile] += wt
    finally:
        model.train(was_training)
    res = (out / wsum)[:, :h, :w].astype(np.float32).reshape(shape_in)
    return torch.from_numpy(res) if is_tensor else res
