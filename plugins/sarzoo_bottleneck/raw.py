"""Fixed-precision bottlenecks: ``none`` (today's float32 latent) and ``fp16``.

They code nothing: the bytes are the latent's numbers at their storage precision, so the rate
does not depend on the content. Their likelihoods say exactly that (``2**-32`` or ``2**-16`` per
number), which lets every rate report use one formula, ``-log2`` summed, for every bottleneck.
``none`` has no parameters and returns its input itself, so a recipe without a ``bottleneck:``
trains exactly as before it existed.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sarzoo_bottleneck.coding import CodingError, positions

_FP16_MAX = 65504.0


class RawBottleneck(nn.Module):
    entropy_coded = False

    def __init__(self, channels: int, bits: int):
        super().__init__()
        self.channels, self.bits = int(channels), int(bits)
        self.dtype = {32: "<f4", 16: "<f2"}[self.bits]

    def forward(self, z: torch.Tensor):
        if self.bits == 32:
            return z, (torch.full_like(z, 2.0 ** -32, dtype=torch.float32),)
        half = z.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16).to(z.dtype)
        z_hat = z + (half - z).detach()   # straight-through: rounding to fp16 has no useful gradient
        lik = torch.full_like(z, 2.0 ** -self.bits, dtype=torch.float32)
        return z_hat, (lik,)

    @torch.no_grad()
    def compress(self, z: torch.Tensor, mask=None) -> bytes:
        arr = z.detach().float().clamp(-_FP16_MAX, _FP16_MAX).cpu().numpy().astype(self.dtype).reshape(-1)
        keep = positions(mask, z.shape)
        return np.ascontiguousarray(arr if keep is None else arr[keep]).tobytes()

    @torch.no_grad()
    def decompress(self, data: bytes, shape, mask=None) -> torch.Tensor:
        keep = positions(mask, shape)
        n = int(np.prod(shape)) if keep is None else int(keep.sum())
        size = n * np.dtype(self.dtype).itemsize
        if len(data) != size:
            raise CodingError(f"{n} {self.bits}-bit latent numbers are {size} bytes, got {len(data)}")
        values = np.frombuffer(data, dtype=self.dtype).astype(np.float32)
        out = np.zeros(int(np.prod(shape)), dtype=np.float32)
        out[slice(None) if keep is None else keep] = values
        return torch.from_numpy(out.reshape(shape))
