"""A scene through the codec: tiles → latents → bytes, and back; ``roundtrip`` for rate reports.

The tile grid: non-overlapping squares of the model's training patch size (``tile_size``), from
the scene's top-left corner, the scene reflect-padded at the bottom/right to whole tiles. Why not
the overlapping, blended tiles of ``sarzoo reconstruct``: an overlap codes its pixels twice (more
bits for the same picture), and a codec's decoder must reproduce exactly what the encoder meant;
side-by-side tiles are each the model's own output on the patch size it was trained on. A tile with
no valid pixel is not coded at all (0 bits); which tiles those are follows from the mask in the
file's header. Inside a tile that is coded, the no-data pixels are set to the mean of the valid
ones before encoding (``_filled``: no edge to describe), and the latent positions whose block of pixels (the
encoder's total stride squared) holds no valid pixel are set to 0 and not coded at all: their
values would only describe the no-data fill, and the decoder knows them from the mask. The
quantised latent the decoder receives is this masked one.

Coded tiles are grouped, in row-major order, ``GROUP`` at a time: a group is one record of the file
(one entropy-coded stream, its own length and CRC). Why groups and not one stream per tile: a range
coder ends its stream on a 32-bit word, ~16-32 bits per stream whatever its length, which is several
percent of a small tile's bits at low rates; over a group of 64 it is a fraction of a percent, and a
group can still be decoded on its own. Decoding is deterministic: each group's tiles go through
``model.decode`` in batches of ``DECODE_BATCH`` in float32 with autocast off, so decoding the
same file twice, or ``roundtrip`` and ``sarzoo decode``, give the same pixels bit for bit on the
same machine and model load; the entropy decoding itself is exact everywhere (integers).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from sarzoo.codec.format import tile_presence
from sarzoo.errors import SarzooError

#: Coded tiles per record (one entropy-coded stream).
GROUP = 64
#: Tiles per decoder batch inside a record (fixed: the same batches, the same float arithmetic).
DECODE_BATCH = 8


def model_digest(model: Any) -> str:
    """sha256 of the model's resolved recipe (canonical JSON) and weights (every state-dict tensor
    by name, contiguous bytes): a code file names the exact model that can decode it."""
    h = hashlib.sha256(json.dumps(model.recipe, sort_keys=True, default=str).encode("utf-8"))
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode("utf-8"))
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def coding_digest(model: Any) -> str:
    """Fingerprint of the entropy-coding tables (empty when the bottleneck has none)."""
    fn = getattr(model.bottleneck, "coding_digest", None)
    return str(fn()) if callable(fn) else ""


def tile_geometry(model: Any) -> tuple[int, tuple[int, int, int]]:
    """(tile side, latent shape of one tile)."""
    from sarzoo.inference import tile_size

    t = tile_size(model)
    stride = int(model.plan.total_stride)
    if t % stride:
        raise SarzooError(f"the model's tile size {t} is not a multiple of its encoder's total stride {stride}")
    c = int(model.latent_shape[0])
    return t, (c, t // stride, t // stride)


def spatial_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: a pixel is valid when any channel is; ``mask`` (H, W) or (C, H, W) or None."""
    if mask is None:
        return np.ones(shape[-2:], dtype=bool)
    m = np.asarray(mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask).astype(bool)
    if m.ndim == 3:
        m = m.any(axis=0)
    if m.shape != tuple(shape[-2:]):
        raise SarzooError(f"the mask has shape {m.shape}, the image {tuple(shape)}")
    return m


def _as_image(model: Any, x01: Any) -> np.ndarray:
    x = np.asarray(x01.detach().cpu().numpy() if isinstance(x01, torch.Tensor) else x01, dtype=np.float32)
    channels = int(model.input_shape[0])
    if x.ndim == 2 and channels == 1:
        x = x[None]
    if x.ndim != 3 or x.shape[0] != channels:
        raise SarzooError(f"the codec takes one image (C, H, W) with C = {channels} for this model, got shape "
                          f"{tuple(x.shape)}")
    return x


def _padded(x: np.ndarray, tile: int) -> np.ndarray:
    h, w = x.shape[-2:]
    ph, pw = -h % tile, -w % tile
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "edge"
    return np.pad(x, ((0, 0), (0, ph), (0, pw)), mode=mode)


def _device(model: Any) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _present(valid: np.ndarray, tile: int) -> list[tuple[int, int]]:
    present = tile_presence(valid, tile)
    return [(int(r) * tile, int(c) * tile) for r, c in zip(*np.nonzero(present))]


def _filled(x_tile: np.ndarray, valid_tile: np.ndarray) -> np.ndarray:
    """The tile with its no-data pixels set to the mean of its valid ones (per channel): a flat fill
    draws no edge at the border of the no-data, which the latent would otherwise spend bits on."""
    if valid_tile.all():
        return x_tile
    out = x_tile.copy()
    for c in range(out.shape[0]):
        out[c][~valid_tile] = out[c][valid_tile].mean()
    return out


def _latent_mask(valid_tile: np.ndarray, stride: int) -> np.ndarray:
    """(h, w) float: 1 where the latent position's ``stride``×``stride`` pixel block holds a valid
    pixel, 0 where it holds none."""
    t = valid_tile.shape[0]
    n = t // stride
    return valid_tile.reshape(n, stride, n, stride).any(axis=(1, 3)).astype(np.float32)


@torch.no_grad()
def encode_tiles(model: Any, x01: Any, mask: Any, group: int = GROUP) -> tuple[list[bytes], np.ndarray]:
    """The records of one image (each the coded latents of up to ``group`` tiles with a valid pixel,
    row-major) and the valid-pixel mask (H, W) that says which tiles those are."""
    x = _as_image(model, x01)
    valid = spatial_mask(mask, x.shape)
    tile, _ = tile_geometry(model)
    where = _present(valid, tile)
    xp = _padded(x, tile)
    vp = np.zeros(xp.shape[1:], dtype=bool)
    vp[:valid.shape[0], :valid.shape[1]] = valid
    stride = int(model.plan.total_stride)
    dev = _device(model)
    was_training = model.training
    model.eval()
    records: list[bytes] = []
    try:
        for b in range(0, len(where), group):
            chunk = where[b:b + group]
            batch = np.stack([_filled(xp[:, r:r + tile, c:c + tile], vp[r:r + tile, c:c + tile]) for r, c in chunk])
            keep = np.stack([_latent_mask(vp[r:r + tile, c:c + tile], stride) for r, c in chunk])
            with torch.autocast(dev.type, enabled=False):
                y = model.encode(torch.from_numpy(np.ascontiguousarray(batch)).to(dev)).float()
            keep_t = torch.from_numpy(keep[:, None] > 0)
            y = y * keep_t.to(y)
            records.append(model.bottleneck.compress(y, keep_t))
    finally:
        model.train(was_training)
    return records, valid


@torch.no_grad()
def decode_tiles(model: Any, records: list[bytes], valid: np.ndarray, channels: int,
                 group: int = GROUP) -> np.ndarray:
    """(C, H, W) float32 in [0, 1]; pixels that are not valid are 0. ``ValueError`` subclasses from
    the bottleneck mean bytes this model did not write."""
    tile, latent = tile_geometry(model)
    where = _present(valid, tile)
    if len(records) != -(-len(where) // group):
        raise SarzooError(f"the mask has {len(where)} tiles with valid pixels, {-(-len(where) // group)} records "
                          f"of {group}, but there are {len(records)} records")
    h, w = valid.shape
    vp = np.zeros((-(-h // tile) * tile, -(-w // tile) * tile), dtype=bool)
    vp[:h, :w] = valid
    stride = int(model.plan.total_stride)
    out = np.zeros((channels, *vp.shape), dtype=np.float32)
    dev = _device(model)
    was_training = model.training
    model.eval()
    try:
        for i, b in enumerate(range(0, len(where), group)):
            chunk = where[b:b + group]
            keep = np.stack([_latent_mask(vp[r:r + tile, c:c + tile], stride) for r, c in chunk])
            z_hat = model.bottleneck.decompress(records[i], (len(chunk), *latent),
                                                torch.from_numpy(keep[:, None] > 0)).to(dev)
            for k in range(0, len(chunk), DECODE_BATCH):
                with torch.autocast(dev.type, enabled=False):
                    y = model.decode(z_hat[k:k + DECODE_BATCH].float()).float().clamp(0.0, 1.0).cpu().numpy()
                for (r, c), t in zip(chunk[k:k + DECODE_BATCH], y):
                    out[:, r:r + tile, c:c + tile] = t
    finally:
        model.train(was_training)
    out = out[:, :h, :w]
    out[:, ~valid] = 0.0
    return np.ascontiguousarray(out)


def roundtrip(model: Any, x01: Any, mask: Any = None) -> tuple[np.ndarray, int]:
    """``(x01_hat, bits)`` of one scene or window of any size through the model's codec.

    ``x01``: (C, H, W) (or (H, W) for one channel) float32 in [0, 1]; ``mask``: (H, W) or (C, H, W)
    bool, True = valid (None: all valid). ``x01_hat`` is the decoded reconstruction, (C, H, W) float32
    in [0, 1], exactly what ``sarzoo decode`` produces in the model's [0, 1] (0 at pixels that are
    not valid); ``bits`` is what ``sarzoo encode`` writes for this image minus the fixed header:
    the coded latents of every tile with a valid pixel plus the index entry (length and CRC32) of
    each record of ``GROUP`` tiles; wholly no-data tiles cost 0 bits. Works for every bottleneck: ``none``/``fp16``
    store raw float32/float16 latents, the others entropy-code them.
    """
    from sarzoo.codec.format import CodeFile

    x = _as_image(model, x01)
    records, valid = encode_tiles(model, x, mask)
    x_hat = decode_tiles(model, records, valid, x.shape[0])
    return x_hat, 8 * CodeFile({}, valid, records).tile_bytes()
