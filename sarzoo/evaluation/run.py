"""One evaluation of a checkpoint: data in, every figure out as one JSON-ready dict; prints nothing.

Two levels are measured because they answer different questions:

- **patches**: the model's own input size, exactly what training validated on, measured batch by
  batch with the function validation uses (``figures`` → ``batch_metrics``);
- **full scenes**: what a user gets, reconstructed by the windowed engine that ``sarzoo reconstruct``
  runs (``inference.engine``), each scene (or window of a scene larger than ``SCENE_WINDOW``) one
  image, so memory stays bounded for a 25000 × 16000 Sentinel-1 scene.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from sarzoo import fastpath
from sarzoo.errors import SarzooError
from sarzoo.evaluation.figures import METRICS, figures, summarise
from sarzoo.evaluation.selection import SCENE_WINDOW, eval_data, pieces

__all__ = ["evaluate", "SCENE_WINDOW"]


def evaluate(checkpoint: str | os.PathLike, data: Sequence[str] | None = None, *, split: str | None = None,
             overrides: Sequence[str] = (), overlap: int = 0, scenes: bool = True, patches: bool = True,
             batch_size: int = 16, device: str = "auto", save_images: str | os.PathLike | None = None,
             window: int = SCENE_WINDOW, progress: Callable[[str], None] | None = None,
             heldout: int | None = None) -> dict[str, Any]:
    """Everything ``sarzoo eval`` reports, as one JSON-ready dict (non-finite values become None).

    Top-level ``psnr``/``ssim``/``enl_ratio``/``epi``/``n_images``/``reference`` are the full-scene
    figures (the patch figures when ``scenes`` is False); ``scenes`` and ``patches`` hold each
    level with its reference (and ``clean`` comparisons for synthetic data), ``scenes.images``
    the per-image values. ``progress`` receives a line per stage (the caller decides where it goes).
    ``heldout``: evaluate on that many scenes of the synthetic held-out profile instead of the
    checkpoint's data (``selection.eval_data``), with the checkpoint's preprocessing all the same.

    A file whose valid pixels mostly (``CLIP_WARN_FRACTION``) fall outside the checkpoint's clip
    range gets a ``ClipRangeWarning`` (Python ``warnings``) naming it, with the clipped fractions and
    the remedy; the same lines are in ``report["warnings"]``. They are counted on the pixels the
    evaluation reads anyway, never in a pass of their own.
    """
    from sarzoo import checkpoint as ck
    from sarzoo.device import pick_device
    from sarzoo.evaluation import outputs
    from sarzoo.files import jsonable

    if not scenes and not patches:
        raise SarzooError("nothing to evaluate: both full scenes and patches are switched off")
    if batch_size < 1:
        raise SarzooError(f"--batch-size must be at least 1, got {batch_size}")
    ckpt_path = ck.resolve_path(checkpoint)
    ckpt = ck.read(ckpt_path)
    if ckpt.get("preprocessing") is None:
        raise SarzooError(f"{ckpt_path}: is an untrained model file (`sarzoo build --output`): it has no "
                          f"data or fitted preprocessing to evaluate with; train it first (`sarzoo train`)")
    dev = pick_device(device)
    ed = eval_data(ckpt, data, split, overrides, heldout=heldout)   # refuses bad overrides before the model is built
    model = ck.model_from_checkpoint(ckpt, dev)
    fast = fastpath.for_inference(model, ed.recipe["runtime"], dev)
    tile = int(ed.config["patch_size"])
    from sarzoo.inference.tiles import tile_grid

    tile_grid(model, tile, overlap, ("the tile (data.patch_size)", "--overlap"))  # refused before any work
    out_dir = outputs.output_dir(save_images) if save_images else None
    say = progress or (lambda s: None)

    report: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
        "recipe": ckpt["recipe"].get("name"),
        "epoch": ckpt.get("epoch"),
        "step": ckpt.get("step"),
        "latent_shape": list(model.latent_shape),
        "compression_ratio": float(model.compression_ratio),   # numbers, not bits: see "latent"
        "latent": model.latent_bits(),   # numbers and bits per pixel at storage precision (sarzoo.codec.rates)
        "runtime": fast.describe(),
        "data": {"source": ed.source, "split": ed.split, "description": ed.description,
                 "paths": ed.config["paths"], "patch_size": tile, "stride": ed.config["stride"],
                 "n_scenes": len(ed.regions), "n_patches": len(ed.patches),
                 "preprocessing": ed.preprocessing.to_dict()},
    }
    if ed.scene_preprocessing:  # per_scene: the range each scene was read (and its output written) with
        report["data"]["scene_clip_db"] = {sid: _clip_db(p) for sid, p in ed.scene_preprocessing.items()}
    from sarzoo.inference.clips import ClipTally

    patch_clips, scene_clips = ClipTally(), ClipTally()
    if patches and ed.patches:
        say(f"patches    {len(ed.patches)} × {tile} px")
        report["patches"] = {**_patch_level(model, ed, batch_size, dev, patch_clips), "size": tile}
    if scenes:
        say(f"scenes     {len(ed.regions)} (tiles {tile} px, overlap {overlap} px)")
        items = _scene_level(model, ed, tile, overlap, batch_size, window, out_dir, scene_clips)
        report["scenes"] = {**summarise(items), "overlap": overlap, "window": window, "images": items}
        coded = [it for it in items if "bits" in it]
        if coded:   # an entropy-coded latent: the rate `sarzoo encode` spends on these images' tiles
            report["latent"]["bits_per_pixel"] = sum(it["bits"] for it in coded) / max(
                1, sum(it["valid_pixels"] for it in coded))
            report["latent"]["measured_on"] = "full scenes, sarzoo.codec.roundtrip (tiles, no header)"
    report["warnings"] = (scene_clips if scenes else patch_clips).warn(ed.preprocessing)

    top = report["scenes"] if scenes else report.get("patches")
    if top is None:
        raise SarzooError("no patch has enough valid pixels to evaluate (data.min_valid); lower it with "
                          "--set data.min_valid=0 or evaluate full scenes")
    for k in (*METRICS, "n_images", "reference"):
        report[k] = top[k]
    for k in ("clean", "channels"):
        if k in top:
            report[k] = top[k]
    report["level"] = "scenes" if scenes else "patches"
    report["beats_reference"] = {k: (None if report[k] is None or report["reference"][k] is None
                                     else bool(report[k] > report["reference"][k])) for k in ("psnr", "ssim")}
    report = jsonable(report)
    if out_dir is not None:
        outputs.write_metrics(out_dir, report)
    return report


def _clip_db(prep: Any) -> dict[str, Any]:
    return {"vmin": prep.vmin, "vmax": prep.vmax}


@torch.no_grad()
def _patch_level(model: Any, ed: Any, batch_size: int, dev: torch.device, clips: Any) -> dict[str, Any]:
    """Means over the patches, batch by batch: the very items training validated on (same reading,
    preprocessing and clean fill), weighted by batch size as validation weighs them."""
    from sarzoo.data.dataset import PatchDataset
    from sarzoo.metrics import classical_reference

    latent_numel = math.prod(model.latent_shape)
    ds = PatchDataset(ed.patches, ed.preprocessing, scene_preprocessing=ed.scene_preprocessing)
    per_batch, sizes = [], []
    for b in range(0, len(ds), batch_size):
        items = [ds[i] for i in range(b, min(b + batch_size, len(ds)))]
        xb = torch.stack([it["x"] for it in items])
        mb = torch.stack([it["mask"] for it in items])
        cb = torch.stack([it["clean"] for it in items]) if all("clean" in it for it in items) else None
        for j, it in enumerate(items):
            clips.add(ds.patches[b + j].region.scene.group, it["x"], it["mask"])
        yb = fastpath.forward(model, xb)[0].float().clamp(0, 1).cpu()
        rb = classical_reference(xb, latent_numel)
        prep = ds.item_preprocessing([it["scene"] for it in items])
        per_batch.append(figures(xb, yb, rb, mb, prep, cb))
        sizes.append(len(items))
    return summarise(per_batch, sizes)


def _scene_level(model: Any, ed: Any, tile: int, overlap: int, batch_size: int, window: int,
                 out_dir: Path | None, clips: Any) -> list[dict[str, Any]]:
    """Per-image figures of every region, each window of ``pieces`` one image; with ``out_dir`` also its
    PNG and its part of the scene's reconstruction file. ``clips``: a ``ClipTally`` of the pixels read.

    A region is reconstructed by the windowed engine (``sarzoo.inference.engine``), the windows being its
    output blocks: each is exactly its part of the whole region's reconstruction (one global tile grid,
    reflect-padded at the region's edges), so windows bound memory and change nothing else."""
    from sarzoo.data.dataset import clean_forward
    from sarzoo.evaluation import outputs
    from sarzoo.inference.engine import reconstruct_blocks
    from sarzoo.inference.rasters import RegionSource
    from sarzoo.inference.tiles import tile_grid
    from sarzoo.metrics import classical_reference

    ratio = float(model.compression_ratio)
    grid = tile_grid(model, tile, overlap, ("the tile (data.patch_size)", "--overlap"))
    items: list[dict[str, Any]] = []
    writers: dict[str, outputs.SceneWriter] = {}
    try:
        for reg in ed.regions:
            prep = ed.prep_for(reg.scene.id)
            ps = pieces(reg, window, tile)
            blocks = [(p.row - reg.row, p.col - reg.col, p.height, p.width) for p in ps]
            source = RegionSource(reg.scene, reg.row, reg.col, reg.height, reg.width)
            for piece, blk in zip(ps, reconstruct_blocks(model, source, grid, blocks, prep=prep,
                                                         batch_size=batch_size)):
                x, m, y = blk.x, blk.mask, blk.y
                clips.add(piece.scene.group, x, m)
                clean = None
                if piece.scene.has_clean:
                    clean = clean_forward(prep, piece.scene.read_clean(piece.row, piece.col, piece.height,
                                                                       piece.width), m)
                # the reference gets the same count of numbers per pixel as the model's latent
                r = classical_reference(x, max(1, round(x.size / ratio)))
                it = {"id": piece.id, "shape": [piece.height, piece.width], **figures(x, y, r, m, prep, clean)}
                if model.entropy_coded:
                    it.update(_measured_rate(model, x, m))
                if ed.scene_preprocessing:
                    it["clip_db"] = _clip_db(prep)
                items.append(it)
                if out_dir is not None:
                    png = outputs.write_image_panels(out_dir, len(items) - 1, piece.id, x, y, r, m, clean)
                    it["png"] = str(png)
                    key = piece.scene.id
                    if key not in writers:
                        writers[key] = outputs.SceneWriter(out_dir, len(writers), piece.scene, prep)
                    writers[key].write(piece.row, piece.col, y, m)
                    it["reconstruction"] = str(writers[key].path)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()
    return items


def _measured_rate(model: Any, x: Any, m: Any) -> dict[str, Any]:
    """Bits the codec spends on one image (``sarzoo.codec.roundtrip``) and per valid pixel."""
    from sarzoo.codec import roundtrip

    _, bits = roundtrip(model, x, m)
    valid = int(np.asarray(m).reshape(-1, *np.asarray(m).shape[-2:]).any(axis=0).sum())
    return {"bits": int(bits), "valid_pixels": valid, "bpp": bits / max(valid, 1)}
