"""The scale hyperprior of Ballé et al. 2018: side information that tells the coder each latent's scale.

``y`` is rounded and coded with a zero-mean Gaussian per element whose scale comes from a small
hyper-autoencoder: ``h_a(|y|)`` (3×3 conv, then two 5×5 stride-2 convs) gives ``z``, which is
rounded and coded first with a factorized prior (``factorized.FactorizedDensity``); ``h_s(ẑ)`` (two
5×5 stride-2 transposed convs, a 3×3 conv, ReLU) gives the scales. ``h_a`` pads (ceil) and ``h_s``'s
output is cropped to ``y``, so any latent size works and the bottleneck adds no input multiple.

Determinism: the decoder recomputes the scales from the ``ẑ`` it decoded. Both sides run ``h_s``
in float64 (a double copy, cached until the weights change), one tile at a time, and snap each
scale to ``gaussian.SCALE_TABLE``, so float32 kernel choices (batch size, threads, SIMD) cannot make
the two sides disagree; a table index could flip only if a float64 scale landed within rounding
error of a table boundary on one machine and not the other.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from sarzoo_bottleneck import coding
from sarzoo_bottleneck.factorized import FactorizedDensity, TableCache, decode_channels, encode_channels
from sarzoo_bottleneck.gaussian import SCALE_TABLE, scale_index, table_scales
from sarzoo_bottleneck.quantization import SCALE_BOUND, gaussian_likelihood, lower_bound, quantise


def _hyper_analysis(c: int, n: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, n, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(n, n, 5, stride=2, padding=2), nn.ReLU(),
                         nn.Conv2d(n, n, 5, stride=2, padding=2))


def _hyper_synthesis(n: int, c: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(n, n, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
                         nn.Conv2d(n, c, 3, padding=1), nn.ReLU())


def _half(v: int) -> int:
    return -(-v // 2)


def _hyper_mask(mask, z_shape) -> np.ndarray | None:
    """Which ẑ elements are coded: those whose 4×4 block of latent positions has one to code (the
    others only describe no-data and decode as 0), (B, N, zh, zw) bool; None: all."""
    if mask is None:
        return None
    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    m = m.astype(bool).any(axis=1)   # (B, h, w)
    b, n, zh, zw = z_shape
    padded = np.zeros((m.shape[0], zh * 4, zw * 4), dtype=bool)
    padded[:, :m.shape[1], :m.shape[2]] = m
    blocks = padded.reshape(m.shape[0], zh, 4, zw, 4).any(axis=(2, 4))
    return np.broadcast_to(blocks[:, None], (b, n, zh, zw)).copy()


class HyperpriorBottleneck(nn.Module):
    entropy_coded = True

    def __init__(self, channels: int, hyper_channels: int | None = None, decoder_input: str = "noise"):
        super().__init__()
        n = int(hyper_channels or max(channels, 8))
        self.decoder_input = decoder_input
        self.h_a = _hyper_analysis(channels, n)
        self.h_s = _hyper_synthesis(n, channels)
        self.z_density = FactorizedDensity(n)
        self._tables = TableCache()
        self._h_s64: dict = {}   # a plain dict: a module attribute would become part of the state dict

    def _scales(self, z_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = self.h_s(z_hat)[..., :y.shape[-2], :y.shape[-1]]
        return lower_bound(s, SCALE_BOUND)

    def forward(self, y: torch.Tensor):
        z = self.h_a(y.abs())
        z_lik_in, z_hat = quantise(z, self.training, "noise")
        y_lik_in, y_hat = quantise(y, self.training, self.decoder_input)
        scales = self._scales(z_hat, y)
        if not self.training:
            scales = table_scales(scales)
        return y_hat, (gaussian_likelihood(y_lik_in, scales), self.z_density.likelihood(z_lik_in))

    # -- coding ----------------------------------------------------------------------------------
    def _double_synthesis(self) -> nn.Module:
        key = tuple((p.data_ptr(), p._version) for p in self.h_s.parameters())
        if self._h_s64.get("key") != key:
            self._h_s64 = {"key": key, "module": copy.deepcopy(self.h_s).cpu().double().eval()}
        return self._h_s64["module"]

    def _scale_indices(self, z_hat: np.ndarray, y_shape) -> np.ndarray:
        """Table indices of one item's scales (float64, see the module doc)."""
        h_s = self._double_synthesis()
        s = h_s(torch.from_numpy(z_hat.astype(np.float64))[None])[0, :, :y_shape[-2], :y_shape[-1]]
        return scale_index(s.clamp_min(SCALE_BOUND))

    def coding_digest(self) -> str:
        self._tables.get(self.z_density)
        return self._tables.digest

    @torch.no_grad()
    def compress(self, y: torch.Tensor, mask=None) -> bytes:
        """One stream for the batch: every item's ẑ, then every item's ŷ (the decoder needs all ẑ
        first); with ``mask``, only the chosen elements of ŷ, and of ẑ those that serve one of them."""
        y = y.detach().float()
        z = self.h_a(y.abs())
        models = self._tables.get(self.z_density)
        y_int = torch.round(y).cpu().numpy().astype(np.int64)
        z_int = torch.round(z).cpu().numpy().astype(np.int64)
        z_keep = _hyper_mask(mask, z_int.shape)
        if z_keep is not None:
            z_int = z_int * z_keep   # the decoder sees 0 where ẑ is not coded: so do the scales here
        enc = coding.new_encoder()
        for i, zi in enumerate(z_int):
            encode_channels(enc, models, zi, None if z_keep is None else z_keep[i])
        stds = np.concatenate([SCALE_TABLE[self._scale_indices(zi, yi.shape)].reshape(-1)
                               for yi, zi in zip(y_int, z_int)]) if len(y_int) else np.zeros(0)
        values = y_int.reshape(-1)
        keep = coding.positions(mask, y_int.shape)
        if keep is not None:
            values, stds = values[keep], stds[keep]
        coding.encode_gaussian(enc, values, np.zeros(stds.size), stds)
        return coding.finish(enc)

    @torch.no_grad()
    def decompress(self, data: bytes, shape, mask=None) -> torch.Tensor:
        b, c, h, w = (int(v) for v in shape)
        zh, zw = _half(_half(h)), _half(_half(w))   # h_a's two stride-2 convs round up
        models = self._tables.get(self.z_density)
        dec = coding.new_decoder(data)
        z_keep = _hyper_mask(mask, (b, len(models), zh, zw))
        zs = [decode_channels(dec, models, (len(models), zh, zw), None if z_keep is None else z_keep[i])
              for i in range(b)]
        stds = np.concatenate([SCALE_TABLE[self._scale_indices(zi, (c, h, w))].reshape(-1) for zi in zs]) \
            if zs else np.zeros(0)
        keep = coding.positions(mask, (b, c, h, w))
        if keep is not None:
            stds = stds[keep]
        values = coding.decode_gaussian(dec, np.zeros(stds.size), stds)
        coding.check_finished(dec, "hyperprior latent")
        out = np.zeros(b * c * h * w, dtype=np.float32)
        out[slice(None) if keep is None else keep] = values
        return torch.from_numpy(out.reshape(b, c, h, w))
