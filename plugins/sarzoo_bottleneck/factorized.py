"""The factorized entropy model of Ballé et al. 2018 (appendix 6.1), and the bottleneck made of it.

Each latent channel gets its own learned, monotone cumulative function
``c(x) = sigmoid(f_K ∘ … ∘ f_1(x))`` with ``f_k(x) = g_k(softplus(H_k)·x + b_k)`` and
``g_k(x) = x + tanh(a_k)·tanh(x)`` (softplus keeps every matrix positive, so ``c`` is monotone); a
rounded latent value ``v`` has probability ``c(v + 1/2) − c(v − 1/2)``. The likelihood is computed
as a difference of sigmoids of logits on the same side of zero, which stays accurate in the tails.

Coding needs one pmf table per channel. It is evaluated in float64 from the float32 weights, on
the integers in ``[-SUPPORT, SUPPORT]``, and trimmed to where the tails hold less than
``TAIL_MASS`` each (what is left out is coded as an escape, ``coding.CategoricalTable``), so the
support follows the learned density without CompressAI's learned quantiles and their auxiliary
loss: this model needs no auxiliary parameters or optimizer. Encoder and decoder compute the table
by the same float64 arithmetic from the same weights; ``table_digest`` fingerprints it for the
file header, so a decoder whose tables differ refuses instead of decoding garbage.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sarzoo_bottleneck import coding
from sarzoo_bottleneck.quantization import LIKELIHOOD_BOUND, lower_bound, quantise

SUPPORT = 1024
TAIL_MASS = 1e-7


class FactorizedDensity(nn.Module):
    """``likelihood(v)`` of integer-binned values per channel; ``v``: (B, C, ...)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = int(channels)
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits(self, x: torch.Tensor, params=None) -> torch.Tensor:
        """``x``: (C, 1, N) → logits of the cumulative function, (C, 1, N)."""
        mats, biases, factors = params or (self.matrices, self.biases, self.factors)
        for i, (h, b) in enumerate(zip(mats, biases)):
            x = torch.matmul(F.softplus(h), x) + b
            if i < len(factors):
                x = x + torch.tanh(factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, v: torch.Tensor) -> torch.Tensor:
        shape = v.shape
        x = v.transpose(0, 1).reshape(self.channels, 1, -1).float()
        lower = self.logits(x - 0.5)
        upper = self.logits(x + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        lik = lower_bound(lik, LIKELIHOOD_BOUND)
        return lik.reshape(shape[1], shape[0], *shape[2:]).transpose(0, 1)

    @torch.no_grad()
    def pmf_tables(self) -> list[tuple[np.ndarray, int, float]]:
        """Per channel ``(pmf, offset, escape mass)`` from float64 arithmetic (see the module doc)."""
        params = tuple([p.detach().cpu().double() for p in group]
                       for group in (self.matrices, self.biases, self.factors))
        grid = torch.arange(-SUPPORT, SUPPORT + 1, dtype=torch.float64)
        x = grid.reshape(1, 1, -1).expand(self.channels, 1, -1)
        lower = self.logits(x - 0.5, params)
        upper = self.logits(x + 0.5, params)
        sign = -torch.sign(lower + upper)
        pmf = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()[:, 0].numpy()
        tables = []
        for c in range(self.channels):
            p = pmf[c]
            below = np.cumsum(p)
            above = np.cumsum(p[::-1])[::-1]
            lo = int(np.argmax(below > TAIL_MASS))
            hi = int(len(p) - 1 - np.argmax(above[::-1] > TAIL_MASS))
            hi = max(hi, lo)
            kept = p[lo:hi + 1]
            tables.append((kept, lo - SUPPORT, max(0.0, 1.0 - float(kept.sum()))))
        return tables


def digest(tables) -> str:
    """A short fingerprint of the tables a coder uses (the file header carries it)."""
    h = hashlib.sha256()
    for pmf, offset, escape in tables:
        h.update(np.asarray(pmf, dtype="<f8").tobytes())
        h.update(np.asarray([offset], dtype="<i8").tobytes())
        h.update(np.asarray([escape], dtype="<f8").tobytes())
    return h.hexdigest()[:16]


class TableCache:
    """The constriction models of a density, rebuilt only when its parameters change (an optimizer
    step or a state-dict load bumps every tensor's version counter)."""

    def __init__(self):
        self.key = None
        self.models: list[coding.CategoricalTable] = []
        self.digest = ""

    def get(self, density: FactorizedDensity) -> list[coding.CategoricalTable]:
        key = tuple((p.data_ptr(), p._version) for p in density.parameters())
        if key != self.key:
            tables = density.pmf_tables()
            self.models = [coding.CategoricalTable(*t) for t in tables]
            self.digest = digest(tables)
            self.key = key
        return self.models


def encode_channels(encoder, models: list[coding.CategoricalTable], v: np.ndarray,
                    keep: np.ndarray | None = None) -> None:
    """``v``: (C, ...) integers, channel by channel with each channel's table; ``keep`` (the shape of
    ``v``, bool): only those elements are coded."""
    for c, m in enumerate(models):
        m.encode(encoder, v[c].reshape(-1) if keep is None else v[c][keep[c]])


def decode_channels(decoder, models: list[coding.CategoricalTable], shape, keep: np.ndarray | None = None):
    out = np.zeros(shape, dtype=np.int64)
    for c, m in enumerate(models):
        if keep is None:
            out[c] = m.decode(decoder, int(np.prod(shape[1:]))).reshape(shape[1:])
        else:
            out[c][keep[c]] = m.decode(decoder, int(keep[c].sum()))
    return out


class FactorizedBottleneck(nn.Module):
    """Rounding + the factorized entropy model (Ballé et al. 2018, "factorized prior")."""

    entropy_coded = True

    def __init__(self, channels: int, decoder_input: str = "noise", filters: int = 3, init_scale: float = 10.0):
        super().__init__()
        self.decoder_input = decoder_input
        self.density = FactorizedDensity(channels, (filters,) * 3, init_scale)
        self._tables = TableCache()

    def forward(self, y: torch.Tensor):
        for_lik, y_hat = quantise(y, self.training, self.decoder_input)
        return y_hat, (self.density.likelihood(for_lik),)

    def coding_digest(self) -> str:
        self._tables.get(self.density)
        return self._tables.digest

    @torch.no_grad()
    def compress(self, y: torch.Tensor, mask=None) -> bytes:
        models = self._tables.get(self.density)
        v = torch.round(y.detach().float()).cpu().numpy().astype(np.int64)
        keep = coding.positions(mask, v.shape)
        keep = None if keep is None else keep.reshape(v.shape)
        enc = coding.new_encoder()
        for i, item in enumerate(v):
            encode_channels(enc, models, item, None if keep is None else keep[i])
        return coding.finish(enc)

    @torch.no_grad()
    def decompress(self, data: bytes, shape, mask=None) -> torch.Tensor:
        models = self._tables.get(self.density)
        keep = coding.positions(mask, shape)
        keep = None if keep is None else keep.reshape(shape)
        dec = coding.new_decoder(data)
        out = [decode_channels(dec, models, tuple(shape[1:]), None if keep is None else keep[i])
               for i in range(shape[0])]
        coding.check_finished(dec, "factorized latent")
        return torch.from_numpy(np.stack(out).astype(np.float32) if out else np.zeros(shape, np.float32))
