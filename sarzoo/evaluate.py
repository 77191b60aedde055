"""Evaluation of a trained checkpoint (``sarzoo eval``) and the notebook API (``sarzoo.load``).

Why a report always carries the classical reference: an autoencoder at 16× compression that
cannot beat "average 4×4 blocks, bicubic back" is not worth its parameters (SPEC §3), and the
absolute PSNR/SSIM of speckled data mean little on their own. So every figure of the model is
paired with the same figure of the reference on the same pixels, and, for synthetic data, both
are also measured against the clean reflectivity (the only way to tell speckle removal from
lost structure).

Two levels are measured because they answer different questions:

- **patches**: the model's own input size, exactly what training validated on;
- **full scenes**: what a user gets, reconstructed by tiling patches (``reconstruct``). Scenes
  are processed in windows of at most ``SCENE_WINDOW`` pixels per side, so memory stays bounded
  for a 25000 × 16000 Sentinel-1 scene; a larger scene is reported window by window.

Data and preprocessing follow the checkpoint: without ``--data`` the split the training used is
rebuilt from the stored ``data:`` section (same seed, same synthetic scenes), and the stored
clip range is used, never refitted (a refit on other data would change what the model sees).
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from sarzoo.errors import SarzooError

#: Largest side (px) of the piece of a scene reconstructed and measured at once; bounded memory.
SCENE_WINDOW = 2048
#: Metric names, in report order.
METRICS = ("psnr", "ssim", "enl_ratio", "epi")
#: Metrics that make sense against the clean reflectivity (ENL ratio compares speckle levels of
#: input and output; against a speckle-free truth it has no meaning).
CLEAN_METRICS = ("psnr", "ssim", "epi")


# --- loading -----------------------------------------------------------------------------------

class Loaded(NamedTuple):
    """What ``sarzoo.load`` returns; unpacks as ``model, preprocessing = sarzoo.load(path)``."""

    model: Any
    preprocessing: Any

    def reconstruct(self, raw: Any, overlap: int = 0, batch_size: int = 16) -> Any:
        """Raw scene values (data's domain) → the model's reconstruction in the same domain.

        No-data pixels (NaN, 0 in the linear domains, the declared nodata) come back as NaN.
        """
        x, mask = self.preprocessing.forward(raw)
        y = reconstruct(self.model, x, overlap=overlap, batch_size=batch_size)
        out = self.preprocessing.inverse(y)
        if isinstance(out, torch.Tensor):
            return torch.where(torch.as_tensor(mask), out, torch.full_like(out, float("nan")))
        return np.where(np.asarray(mask), out, np.nan).astype(np.float32)


def load(checkpoint: str | os.PathLike, device: str = "cpu") -> Loaded:
    """The trained model (eval mode) and its ``Preprocessing`` from a training checkpoint.

    Loading goes through ``torch.load(weights_only=True)`` only, so a checkpoint cannot run code.
    ``preprocessing.forward(raw) -> (x01, mask)`` and ``preprocessing.inverse(x01)`` convert
    between the data's domain and the model's [0, 1]; the model alone is useless without them.
    """
    from sarzoo import checkpoint as ck
    from sarzoo.device import pick_device

    ckpt = ck.read(checkpoint)
    model = ck.build_model(ckpt, pick_device(device))
    model.eval()
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


def _blend_weights(size: int, overlap: int) -> np.ndarray:
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
    """Pad bottom/right to at least ``size`` by reflection (replicate where too small to reflect)."""
    ph, pw = max(0, size - x.shape[0]), max(0, size - x.shape[1])
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[0] and pw < x.shape[1] else "edge"
    return np.pad(x, ((0, ph), (0, pw)), mode=mode)


@torch.no_grad()
def reconstruct(model: Any, x01: Any, overlap: int = 0, batch_size: int = 16, tile: int | None = None) -> Any:
    """Reconstruct an image of any size (H, W) in [0, 1] by tiling it with the model's patches.

    Tiles start every ``tile − overlap`` pixels plus one flush with the bottom/right edge, so the
    whole image is covered without padding a large scene (a scene smaller than a tile is padded by
    reflection and cropped back). Overlapping tiles are blended with ramp weights
    (``_blend_weights``). Returns the same type as ``x01`` (numpy float32 or a CPU tensor).
    Memory: the image, the output and one batch of tiles.
    """
    from sarzoo.data.patches import patch_grid

    is_tensor = isinstance(x01, torch.Tensor)
    x = (x01.detach().cpu().numpy() if is_tensor else np.asarray(x01)).astype(np.float32, copy=False)
    x = np.squeeze(x)
    if x.ndim != 2:
        raise SarzooError(f"reconstruct expects one single-channel image (H, W), got shape {tuple(np.shape(x01))}")
    h, w = x.shape
    tile = tile or tile_size(model)
    overlap = int(overlap)
    if not 0 <= overlap < tile:
        raise SarzooError(f"tile overlap must be in [0, {tile - 1}] px, got {overlap}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise SarzooError(f"batch_size must be at least 1, got {batch_size}")
    xp = np.ascontiguousarray(_pad_to(x, tile))
    H, W = xp.shape
    stride = tile - overlap
    pos = patch_grid(H, W, tile, stride)
    wt = np.outer(_blend_weights(tile, overlap), _blend_weights(tile, overlap))
    out = np.zeros((H, W), dtype=np.float64)
    wsum = np.zeros((H, W), dtype=np.float64)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(pos), batch_size):
            chunk = pos[b:b + batch_size]
            batch = np.stack([xp[r:r + tile, c:c + tile] for r, c in chunk])[:, None]
            y = model(torch.from_numpy(batch).to(device))
            y = (y[0] if isinstance(y, tuple) else y).float().clamp(0.0, 1.0).cpu().numpy()[:, 0]
            for (r, c), t in zip(chunk, y):
                out[r:r + tile, c:c + tile] += t * wt
                wsum[r:r + tile, c:c + tile] += wt
    finally:
        model.train(was_training)
    res = (out / wsum)[:h, :w].astype(np.float32)
    return torch.from_numpy(res) if is_tensor else res


# --- metrics of one image --------------------------------------------------------------------

def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def image_metrics(x: Any, y: Any, ref: Any, mask: Any, prep: Any, clean: Any = None) -> dict[str, Any]:
    """Model and reference figures of one image (or patch), plus against ``clean`` when given."""
    from sarzoo.metrics import compute_metrics, epi, psnr, ssim

    out: dict[str, Any] = dict(compute_metrics(x, y, mask, prep))
    out["reference"] = compute_metrics(x, ref, mask, prep)
    if clean is not None:
        def vs(img):
            return {"psnr": psnr(clean, img, mask), "ssim": ssim(clean, img, mask), "epi": epi(clean, img, mask)}
        out["clean"] = {"model": vs(y), "reference": vs(ref), "input": vs(x)}
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    ok = [v for v in values if v is not None and not math.isnan(v)]
    if not ok:
        return None
    return float(sum(ok) / len(ok))


def summarise(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over images of every figure; NaN (undefined) values are left out of their mean."""
    s: dict[str, Any] = {k: _mean([it.get(k) for it in items]) for k in METRICS}
    s["n_images"] = len(items)
    s["reference"] = {k: _mean([it["reference"].get(k) for it in items]) for k in METRICS}
    with_clean = [it for it in items if it.get("clean")]
    if with_clean:
        s["clean"] = {who: {k: _mean([it["clean"][who].get(k) for it in with_clean]) for k in CLEAN_METRICS}
                      for who in ("model", "reference", "input")}
    return s


# --- data --------------------------------------------------------------------------------------

class Piece(NamedTuple):
    """A window of a scene measured as one image."""

    id: str
    scene: Any
    row: int
    col: int
    height: int
    width: int


def _cuts(length: int, win: int, tile: int) -> list[tuple[int, int]]:
    """``(start, size)`` along one axis: every ``win`` px, a remainder shorter than a tile merged
    into the window before it (so every window but a lone small scene holds at least one tile)."""
    starts = list(range(0, length, win))
    if len(starts) > 1 and length - starts[-1] < tile:
        starts.pop()
    return [(s, (starts[i + 1] if i + 1 < len(starts) else length) - s) for i, s in enumerate(starts)]


def _pieces(region: Any, window: int, tile: int) -> list[Piece]:
    """Split a region into windows of about ``window`` px whose sizes are multiples of ``tile``.

    Why multiples, and why a short remainder is merged: then the tiles of every window are exactly
    the tiles the whole scene would get (multiples of the tile plus one flush with the far edge),
    so reconstructing window by window changes nothing but the memory used.
    """
    win = max(tile, (window // tile) * tile)
    sc = region.scene
    rows, cols = _cuts(region.height, win, tile), _cuts(region.width, win, tile)
    out = []
    for r, h in rows:
        for c, w in cols:
            r0, c0 = region.row + r, region.col + c
            whole = (r0, c0, h, w) == (0, 0, *sc.shape)
            out.append(Piece(sc.id if whole else f"{sc.id}[{r0}:{r0 + h}, {c0}:{c0 + w}]", sc, r0, c0, h, w))
    return out


def _eval_data_config(ckpt: dict[str, Any], data: Sequence[str] | None, overrides: Sequence[str]) -> dict[str, Any]:
    """The checkpoint's ``data:`` section with ``--data`` and ``--set data.KEY=VALUE`` applied."""
    import copy

    from sarzoo.data.dataset import resolve_data_config
    from sarzoo.recipes import normalise_overrides

    cfg = copy.deepcopy(ckpt["recipe"].get("data") or {})
    for key, value in normalise_overrides(list(overrides or [])):
        parts = key.split(".")
        if parts[0] != "data" or len(parts) < 2:
            raise SarzooError(f"--set {key}: only data.KEY=VALUE overrides apply to evaluation (the model and its "
                              f"training settings are fixed by the checkpoint)")
        node = cfg
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SarzooError(f"--set {key}: data.{p} is not a section")
        node[parts[-1]] = value
    if data:
        cfg["paths"] = [os.path.abspath(os.path.expanduser(p)) if not any(ch in p for ch in "*?[") else p
                        for p in data]
    return resolve_data_config(cfg)


class EvalData(NamedTuple):
    source: str           # "synthetic" | "files"
    split: str            # "val" | "train" | "all"
    regions: list
    patches: list
    config: dict
    description: str
    preprocessing: Any    # the stored one, with --set data.domain/nodata applied


def eval_data(ckpt: dict[str, Any], data: Sequence[str] | None = None, split: str | None = None,
              overrides: Sequence[str] = ()) -> EvalData:
    """The regions (scenes or split parts of scenes) and patches to evaluate on.

    Without ``data`` this is the checkpoint's own data, split exactly as training split it
    (``split_scenes`` with the stored seed); with ``data`` every scene of those files, whole.
    """
    from sarzoo.data.dataset import open_scenes, patches_of
    from sarzoo.data.patches import Region, split_scenes

    cfg = _eval_data_config(ckpt, data, overrides)
    synthetic = cfg["paths"] is None
    # the valid-pixel filter below must read values the way this evaluation will (e.g. zeros are
    # valid 0 dB after --set data.domain=db), so the overrides apply before it
    prep = _eval_prep(ckpt["preprocessing"], cfg, synthetic, overrides)
    scenes = open_scenes(cfg)
    if data:
        split = "all"
        regions = [Region.whole(s) for s in scenes]
    else:
        split = split or "val"
        train, val = split_scenes(scenes, cfg["val_fraction"], cfg["seed"])
        regions = {"val": val, "train": train, "all": train + val}[split]
        if not regions:
            raise SarzooError(f"the checkpoint's data has no {split} scenes (data.val_fraction = "
                              f"{cfg['val_fraction']}); use --split train/all or --data")
    patches = patches_of(regions, cfg, prep)
    if synthetic:
        syn = cfg["synthetic"]
        desc = (f"synthetic SAR, {split} split of {syn['n_scenes']} scenes {syn['size']}×{syn['size']} "
                f"(seed {cfg['seed']}, {syn['looks']:g} looks)")
    else:
        desc = (f"{len(scenes)} scene(s) from " + ", ".join(cfg["paths"][:3]) + (" …" if len(cfg["paths"]) > 3 else "")
                + ("" if data else f" ({split} split)"))
    return EvalData("synthetic" if synthetic else "files", split, regions, patches, cfg, desc, prep)


def _eval_prep(stored: dict[str, Any], cfg: dict[str, Any], synthetic: bool, overrides: Sequence[str]):
    """The stored preprocessing; ``--set data.domain/nodata`` change how raw values are read, never the clip."""
    from sarzoo.data.preprocess import Preprocessing

    d = dict(stored)
    keys = {o.split("=", 1)[0].strip() for o in overrides or []}
    if "data.domain" in keys and not synthetic:
        d["domain"] = cfg["domain"]
    if "data.nodata" in keys:
        d["nodata"] = cfg["nodata"]
    return Preprocessing.from_dict(d)


# --- images --------------------------------------------------------------------------------------

def _safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(s.rstrip("/")) or s)
    return s.strip("_")[:120] or "scene"


class _SceneWriter:
    """Full-resolution reconstructions of one scene, in the data's domain, written window by window
    (``.npy`` through a memory map; GeoTIFF with the source's georeferencing for GeoTIFF inputs)."""

    def __init__(self, directory: Path, index: int, scene: Any, prep: Any):
        self.scene, self.prep = scene, prep
        stem = f"{index:03d}_{_safe_name(scene.id)}"
        self.geotiff = getattr(scene, "path", "").lower().endswith((".tif", ".tiff", ".gtiff")) and \
            hasattr(scene, "band")
        self.path = directory / (stem + (".recon.tif" if self.geotiff else ".recon.npy"))
        if self.geotiff:
            import rasterio

            with rasterio.open(scene.path) as src:
                profile = src.profile.copy()
            profile.update(count=1, dtype="float32", nodata=float("nan"), driver="GTiff")
            for k in ("blockxsize", "blockysize", "tiled", "compress", "photometric", "interleave"):
                profile.pop(k, None)
            self.dst = rasterio.open(self.path, "w", **profile)
        else:
            self.arr = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=scene.shape)

    def write(self, row: int, col: int, y01: np.ndarray, mask: np.ndarray) -> None:
        v = np.where(mask, self.prep.inverse(y01), np.nan).astype(np.float32)
        if self.geotiff:
            from rasterio.windows import Window

            self.dst.write(v, 1, window=Window(col, row, v.shape[1], v.shape[0]))
        else:
            self.arr[row:row + v.shape[0], col:col + v.shape[1]] = v

    def close(self) -> None:
        if self.geotiff:
            self.dst.close()
        else:
            self.arr.flush()
            del self.arr


# --- the evaluation ------------------------------------------------------------------------------

def evaluate(checkpoint: str | os.PathLike, data: Sequence[str] | None = None, *, split: str | None = None,
             overrides: Sequence[str] = (), overlap: int = 0, scenes: bool = True, patches: bool = True,
             batch_size: int = 16, device: str = "auto", save_images: str | os.PathLike | None = None,
             window: int = SCENE_WINDOW, progress=None) -> dict[str, Any]:
    """Everything ``sarzoo eval`` reports, as one JSON-ready dict (non-finite values become None).

    Top-level ``psnr``/``ssim``/``enl_ratio``/``epi``/``n_images``/``reference`` are the full-scene
    figures (the patch figures when ``scenes`` is False); ``scenes`` and ``patches`` hold each
    level with its reference (and ``clean`` comparisons for synthetic data), ``scenes.images``
    the per-image values.
    """
    from sarzoo.data.dataset import PatchDataset
    from sarzoo.metrics import classical_reference
    from sarzoo import checkpoint as ck
    from sarzoo.images import DIFF_GAIN
    from sarzoo.device import pick_device

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
    model = ck.build_model(ckpt, dev)
    model.eval()
    ed = eval_data(ckpt, data, split, overrides)
    prep = ed.preprocessing
    tile = int(ed.config["patch_size"])
    if not 0 <= overlap < tile:
        raise SarzooError(f"--overlap must be in [0, {tile - 1}] px for {tile} px tiles, got {overlap}")
    latent_numel = math.prod(model.latent_shape)
    ratio = float(model.compression_ratio)
    out_dir = None
    if save_images:
        out_dir = Path(save_images)
        if out_dir.exists() and not out_dir.is_dir():
            raise SarzooError(f"--save-images {out_dir}: exists and is not a directory")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SarzooError(f"--save-images {out_dir}: cannot create the directory ({exc})") from None
    say = progress or (lambda s: None)

    report: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
        "recipe": ckpt["recipe"].get("name"),
        "epoch": ckpt.get("epoch"),
        "step": ckpt.get("step"),
        "latent_shape": list(model.latent_shape),
        "compression_ratio": ratio,
        "data": {"source": ed.source, "split": ed.split, "description": ed.description,
                 "paths": ed.config["paths"], "patch_size": tile, "stride": ed.config["stride"],
                 "n_scenes": len(ed.regions), "n_patches": len(ed.patches),
                 "preprocessing": prep.to_dict()},
    }

    # -- patches: the model's own input size, batched --------------------------------------------
    patch_items: list[dict[str, Any]] = []
    if patches and ed.patches:
        say(f"patches    {len(ed.patches)} × {tile} px")
        # the very items training validated on (same reading, preprocessing and clean fill)
        ds = PatchDataset(ed.patches, prep)
        with torch.no_grad():
            for b in range(0, len(ds), batch_size):
                items = [ds[i] for i in range(b, min(b + batch_size, len(ds)))]
                xb = torch.stack([it["x"] for it in items])
                yb = model(xb.to(dev))[0].float().clamp(0, 1).cpu()
                rb = classical_reference(xb, latent_numel)
                for i, it in enumerate(items):
                    patch_items.append(image_metrics(xb[i], yb[i], rb[i], it["mask"], prep, it.get("clean")))
        report["patches"] = {**summarise(patch_items), "size": tile}

    # -- full scenes, tiled, window by window ---------------------------------------------------
    scene_items: list[dict[str, Any]] = []
    if scenes:
        say(f"scenes     {len(ed.regions)} (tiles {tile} px, overlap {overlap} px)")
        writers: dict[str, _SceneWriter] = {}
        try:
            for reg in ed.regions:
                for piece in _pieces(reg, window, tile):
                    raw = piece.scene.read(piece.row, piece.col, piece.height, piece.width)
                    x, m = prep.forward(raw)
                    clean = None
                    if piece.scene.has_clean:
                        cr = piece.scene.read_clean(piece.row, piece.col, piece.height, piece.width)
                        clean = np.where(m, prep.forward(cr)[0], np.float32(prep.fill)).astype(np.float32)
                    y = reconstruct(model, x, overlap=overlap, batch_size=batch_size, tile=tile)
                    # the reference gets the same count of numbers per pixel as the model's latent
                    n_ref = max(1, round(x.size / ratio))
                    r = classical_reference(x, n_ref)
                    it = image_metrics(x, y, r, m, prep, clean)
                    it = {"id": piece.id, "shape": [piece.height, piece.width], **it}
                    scene_items.append(it)
                    if out_dir is not None:
                        idx = len(scene_items) - 1
                        png = out_dir / f"{idx:03d}_{_safe_name(piece.id)}.png"
                        diff = np.clip(np.abs(x - y) * DIFF_GAIN, 0, 1)
                        panels = [x, y, r] + ([clean] if clean is not None else []) + [diff]
                        write_panels(png, [np.where(m, p, 0.0) for p in panels])
                        it["png"] = str(png)
                        key = piece.scene.id
                        if key not in writers:
                            writers[key] = _SceneWriter(out_dir, len(writers), piece.scene, prep)
                        writers[key].write(piece.row, piece.col, y, m)
                        it["reconstruction"] = str(writers[key].path)
        finally:
            for w in writers.values():
                w.close()
        report["scenes"] = {**summarise(scene_items), "overlap": overlap, "window": window,
                            "images": scene_items}

    top = report["scenes"] if scenes else report.get("patches")
    if top is None:
        raise SarzooError("no patch has enough valid pixels to evaluate (data.min_valid); lower it with "
                          "--set data.min_valid=0 or evaluate full scenes")
    for k in (*METRICS, "n_images", "reference"):
        report[k] = top[k]
    if "clean" in top:
        report["clean"] = top["clean"]
    report["level"] = "scenes" if scenes else "patches"
    report["beats_reference"] = {k: (None if report[k] is None or report["reference"][k] is None
                                     else bool(report[k] > report["reference"][k])) for k in ("psnr", "ssim")}
    if out_dir is not None:
        (out_dir / "metrics.json").write_text(json.dumps(_jsonable(report), indent=1) + "\n", encoding="utf-8")
    return _jsonable(report)


def _jsonable(o: Any) -> Any:
    """Plain JSON: NaN and ±inf become None (JSON has no such numbers), numpy scalars become floats."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return _finite(o)
    return o


# --- text report ---------------------------------------------------------------------------------

def _f(v: Any, spec: str) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1e4:  # an ENL ratio of a flat output: keep the columns aligned
        width = int(re.match(r"[+]?(\d*)", spec).group(1) or 0)
        return format(format(v, ".2e"), f">{width}")
    return format(v, spec)


def _rows(block: dict[str, Any]) -> list[str]:
    def row(name: str, d: dict[str, Any]) -> str:
        return (f"  {name:<22} {_f(d.get('psnr'), '8.2f')} {_f(d.get('ssim'), '8.3f')} "
                f"{_f(d.get('enl_ratio'), '10.3f')} {_f(d.get('epi'), '8.3f')}")

    lines = [f"  {'':<22} {'PSNR dB':>8} {'SSIM':>8} {'ENL ratio':>10} {'EPI':>8}",
             row("model", block), row("classical reference", block["reference"])]
    if block.get("psnr") is not None and block["reference"].get("psnr") is not None:
        d = {k: (None if block.get(k) is None or block["reference"].get(k) is None
                 else block[k] - block["reference"][k]) for k in ("psnr", "ssim")}
        lines.append(f"  {'model − reference':<22} {_f(d['psnr'], '+8.2f')} {_f(d['ssim'], '+8.3f')}")
    if block.get("clean"):
        c = block["clean"]
        lines.append(f"  against the clean reflectivity:    {'PSNR dB':>8} {'SSIM':>8} {'EPI':>8}")
        for who, name in (("model", "model"), ("reference", "classical reference"), ("input", "speckled input")):
            lines.append(f"    {name:<32} {_f(c[who].get('psnr'), '8.2f')} {_f(c[who].get('ssim'), '8.3f')} "
                         f"{_f(c[who].get('epi'), '8.3f')}")
    return lines


def format_report(r: dict[str, Any], max_rows: int = 40) -> str:
    pp = r["data"]["preprocessing"]
    lines = [
        f"checkpoint {r['checkpoint']} ({r['recipe']}, epoch {r['epoch']}, step {r['step']}; latent "
        f"{'×'.join(map(str, r['latent_shape']))}, {r['compression_ratio']:g}× compression)",
        f"data       {r['data']['description']}",
        f"           {pp['domain']} → dB clipped to {pp['vmin']:.2f}..{pp['vmax']:.2f} → [0, 1]; "
        f"no-data masked out of every metric",
        "reference  classical: area-downsample to the latent's count of numbers, bicubic back, same images",
    ]
    if "scenes" in r:
        s = r["scenes"]
        lines.append("")
        lines.append(f"full scenes: {s['n_images']} image(s), tiled with {r['data']['patch_size']} px patches, "
                     f"overlap {s['overlap']} px")
        lines += _rows(s)
    if "patches" in r:
        p = r["patches"]
        lines.append("")
        lines.append(f"patches: {p['n_images']} × {p['size']} px")
        lines += _rows(p)
    if "scenes" in r and r["scenes"]["images"]:
        imgs = r["scenes"]["images"]
        lines.append("")
        lines.append(f"per image{'' if len(imgs) <= max_rows else f' (first {max_rows} of {len(imgs)}; --json for all)'}:"
                     f"  PSNR / SSIM / ENL ratio / EPI, model | reference")
        for it in imgs[:max_rows]:
            ref = it["reference"]
            lines.append(f"  {it['id'][-40:]:<40} {_f(it['psnr'], '6.2f')} {_f(it['ssim'], '6.3f')} "
                         f"{_f(it['enl_ratio'], '6.3f')} {_f(it['epi'], '6.3f')} | {_f(ref['psnr'], '6.2f')} "
                         f"{_f(ref['ssim'], '6.3f')} {_f(ref['enl_ratio'], '6.3f')} {_f(ref['epi'], '6.3f')}")
    lines.append("")
    b = r["beats_reference"]
    if b["psnr"] is None:
        lines.append("verdict    undefined (no valid pixels)")
    else:
        won = [k.upper() for k in ("psnr", "ssim") if b[k]]
        lost = [k.upper() for k in ("psnr", "ssim") if b[k] is False]
        lines.append(f"verdict    {r['level']}: the model beats the classical reference on "
                     f"{' and '.join(won) if won else 'nothing'}"
                     + (f"; loses on {' and '.join(lost)}" if lost else ""))
    return "\n".join(lines)


def run_eval(args) -> int:
    """``sarzoo eval``: run ``evaluate`` and print the text report or one JSON object."""
    from sarzoo.images import DIFF_GAIN

    say = (lambda s: None) if args.json else (lambda s: print(s, file=sys.stderr, flush=True))
    r = evaluate(args.checkpoint, args.data, split=args.split, overrides=args.overrides, overlap=args.overlap,
                 scenes=not args.no_scenes, patches=not args.no_patches,
                 batch_size=args.batch_size, device=args.device, save_images=args.save_images, progress=say)
    if args.json:
        print(json.dumps(r, allow_nan=False))
    else:
        print(format_report(r))
        if args.save_images:
            print(f"images     {args.save_images}: per-image PNG (input | reconstruction | reference"
                  f"{' | clean' if r.get('clean') else ''} | {DIFF_GAIN:g}×|input − reconstruction|), "
                  f"reconstructions in the data's domain, metrics.json")
    return 0
