"""Pictures of reconstructions: training previews, evaluation panels, and the PNG writer.

Core, not training: ``sarzoo eval`` draws the same panels as the trainer's previews. The PNG
writer is a few lines of zlib so previews need no imaging library.
"""
from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sarzoo.files import atomic_write_bytes

#: The difference panel shows ``min(1, DIFF_GAIN·|x − x̂|)``: a raw |difference| of [0, 1] images is
#: nearly black. The gain is fixed so panels of different epochs compare.
DIFF_GAIN = 4.0
SEP = 2  # separator width in pixels (drawn at 1.0 = white)


def triple_grid(x: torch.Tensor, x_hat: torch.Tensor, extra: list[torch.Tensor] | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """One row per image and band: ``x | x_hat | DIFF_GAIN·|x − x_hat| [| extra...]``; (1, H', W') in [0, 1].

    ``x``/``x_hat``: (N, C, H, W); a multi-band image gets a row per band, in band order. No-data
    pixels (mask False) are drawn black in every panel.
    """
    x = x.detach().float().cpu().clamp(0, 1)
    y = x_hat.detach().float().cpu().clamp(0, 1)
    panels = [x, y, ((x - y).abs() * DIFF_GAIN).clamp(0, 1)]
    for e in extra or []:
        panels.insert(-1, e.detach().float().cpu().clamp(0, 1))
    if mask is not None:
        m = mask.detach().cpu().to(torch.float32)
        panels = [p * m for p in panels]
    n, ch, h, w = x.shape
    k = len(panels)
    rows = n * ch
    H = rows * h + (rows - 1) * SEP
    W = k * w + (k - 1) * SEP
    out = torch.ones(1, H, W)
    for i in range(rows):
        for j, p in enumerate(panels):
            r, c = i * (h + SEP), j * (w + SEP)
            out[0, r:r + h, c:c + w] = p[i // ch, i % ch]
    return out


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path: str | os.PathLike, image) -> Path:
    """Write a grey image (H, W) or (1, H, W) with values in [0, 1] as an 8-bit PNG."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {a.shape}")
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    u8 = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = u8.shape
    raw = b"".join(b"\x00" + u8[r].tobytes() for r in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))
    return atomic_write_bytes(path, png)


def _panel(a: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Area-downsample a panel so a preview of a huge scene stays a reasonable PNG."""
    f = max(1, math.ceil(max(a.shape) / max_side))
    if f == 1:
        return a
    t = torch.from_numpy(np.nan_to_num(a).astype(np.float32))[None, None]
    return torch.nn.functional.avg_pool2d(t, f, ceil_mode=True)[0, 0].numpy()


def write_panels(path: Path, panels: Sequence[np.ndarray]) -> None:
    """Panels side by side with a white separator, as an 8-bit grey PNG."""
    ps = [_panel(np.clip(p, 0, 1)) for p in panels]
    h = max(p.shape[0] for p in ps)
    out = np.ones((h, sum(p.shape[1] for p in ps) + SEP * (len(ps) - 1)), dtype=np.float32)
    c = 0
    for p in ps:
        out[:p.shape[0], c:c + p.shape[1]] = p
        c += p.shape[1] + SEP
    write_png(path, out)
