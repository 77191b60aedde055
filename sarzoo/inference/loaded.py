"""A trained model back from its checkpoint, with the preprocessing that makes it useful.

Why ``Loaded`` carries the preprocessing: the model alone maps [0, 1] to [0, 1]; without the clip
range it was trained with (stored in the checkpoint) its output comes back at the wrong scale.
``Loaded.reconstruct`` goes raw scene → model → raw scene through the windowed engine
(``sarzoo.inference.engine``), the same one ``sarzoo reconstruct`` and ``sarzoo eval`` use.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch

from sarzoo import fastpath

__all__ = ["Loaded", "load"]


class Loaded(NamedTuple):
    """What ``sarzoo.load`` returns; unpacks as ``model, preprocessing = sarzoo.load(path)``."""

    model: Any
    preprocessing: Any

    def reconstruct(self, raw: Any, overlap: int = 0, batch_size: int = 16, tile: int | None = None) -> Any:
        """Raw scene values (data's domain), ``(H, W)`` or ``(C, H, W)`` → the model's reconstruction in
        the same domain and shape (numpy float32, or a CPU tensor for a tensor).

        No-data pixels (NaN, 0 in the linear domains, the declared nodata; with several bands, a pixel
        missing in any band) come back as NaN. When most valid pixels fall outside the checkpoint's
        clip range, a ``ClipRangeWarning`` says so. A ``per_scene`` checkpoint refits the clip range on
        ``raw`` itself (``scene_preprocessing``) and inverts that range on the output. Tiling as
        ``sarzoo.reconstruct`` (``tile``, ``overlap``: multiples of the model's input multiple).
        """
        from sarzoo.data.readers import MemoryScene
        from sarzoo.inference.clips import ClipTally
        from sarzoo.inference.engine import DEFAULT_BLOCK, scene_values
        from sarzoo.inference.tiles import tile_grid

        is_tensor = isinstance(raw, torch.Tensor)
        a = raw.detach().cpu().numpy() if is_tensor else np.asarray(raw)
        self.preprocessing.check_shape(a)
        grid = tile_grid(self.model, tile, overlap)
        prep = self.scene_preprocessing(a)
        scene = MemoryScene("the input", a)
        out = np.empty((scene.channels, scene.height, scene.width), dtype=np.float32)
        tally = ClipTally()
        for blk, values in scene_values(self.model, scene, grid, prep, grid.block_layout(DEFAULT_BLOCK)[0],
                                        batch_size=batch_size, tally=tally):
            h, w = blk.shape
            out[:, blk.row:blk.row + h, blk.col:blk.col + w] = values
        tally.warn(prep)
        out = out.reshape(a.shape)
        return torch.from_numpy(out) if is_tensor else out

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
