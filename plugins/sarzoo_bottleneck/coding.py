"""Entropy coding of integer latents with constriction's range coder: no coder written by hand.

Why constriction: a maintained, numpy-only wheel whose models (``Categorical``, ``QuantizedGaussian``,
``Uniform``) are exactly invertible fixed-point approximations of the probabilities given, so
encoder and decoder agree bit for bit as long as they are handed the same float64 numbers. This
module turns numpy arrays of integer symbols into bytes and back; the bottlenecks decide which
probabilities each symbol gets.

Every alphabet is finite, every latent is not: a symbol outside its table is coded as the table's
escape (``Categorical``: one extra last entry; Gaussian: the range's edge ±``GAUSS_RANGE``) followed
by its value in two 16-bit ``Uniform`` symbols (``ESCAPE_LIMIT`` bounds what can be written; the
model's latents never come near it). So coding is lossless for every latent the model produces.
"""
from __future__ import annotations

import numpy as np

#: Gaussian symbols are coded on [-GAUSS_RANGE, GAUSS_RANGE]; the edges double as escapes.
GAUSS_RANGE = 2047
#: Escaped values are coded in 32 bits, offset by 2**31: latents are clipped to ±ESCAPE_LIMIT.
ESCAPE_LIMIT = 2**30


def positions(mask, shape) -> np.ndarray | None:
    """Which latent elements are coded: ``mask`` (bool, (B, 1, h, w) or (B, C, h, w), or None for all)
    broadcast to ``shape`` as a flat numpy bool array, or None when every element is coded."""
    if mask is None:
        return None
    m = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    return np.broadcast_to(m.astype(bool), tuple(shape)).reshape(-1)


class CodingError(ValueError):
    """The bytes are not a stream this model wrote (corrupt, truncated or another model's)."""


def _constriction():
    import constriction

    return constriction


def new_encoder():
    return _constriction().stream.queue.RangeEncoder()


def finish(encoder) -> bytes:
    return encoder.get_compressed().astype("<u4").tobytes()


def new_decoder(data: bytes):
    if len(data) % 4:
        raise CodingError(f"an entropy-coded stream is a whole number of 32-bit words, got {len(data)} bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    return _constriction().stream.queue.RangeDecoder(words)


def _encode_raw(encoder, values: np.ndarray) -> None:
    """Values as 32-bit unsigned (offset 2**31), two 16-bit uniform symbols each."""
    if values.size == 0:
        return
    u = (np.clip(values, -ESCAPE_LIMIT, ESCAPE_LIMIT).astype(np.int64) + 2**31).astype(np.uint64)
    halves = np.stack([(u >> 16) & 0xFFFF, u & 0xFFFF], axis=1).reshape(-1).astype(np.int32)
    encoder.encode(halves, _constriction().stream.model.Uniform(2**16))


def _decode_raw(decoder, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    halves = np.asarray(decoder.decode(_constriction().stream.model.Uniform(2**16), 2 * n), dtype=np.int64)
    u = (halves[0::2] << 16) | halves[1::2]
    return u - 2**31


class CategoricalTable:
    """One channel's pmf over ``[offset, offset + len(pmf) - 1]`` plus an escape entry, as a
    constriction model (built once per table: coding many tiles reuses it)."""

    def __init__(self, pmf: np.ndarray, offset: int, escape: float):
        probs = np.concatenate([np.asarray(pmf, dtype=np.float64), [max(float(escape), 1e-9)]])
        self.offset, self.size = int(offset), len(pmf)
        self.model = _constriction().stream.model.Categorical(probs, perfect=False)

    def encode(self, encoder, values: np.ndarray) -> None:
        idx = values.astype(np.int64) - self.offset
        out = (idx < 0) | (idx >= self.size)
        idx[out] = self.size
        encoder.encode(idx.astype(np.int32), self.model)
        _encode_raw(encoder, values[out])

    def decode(self, decoder, n: int) -> np.ndarray:
        idx = np.asarray(decoder.decode(self.model, n), dtype=np.int64)
        values = idx + self.offset
        out = idx == self.size
        values[out] = _decode_raw(decoder, int(out.sum()))
        return values


def encode_gaussian(encoder, values: np.ndarray, means: np.ndarray, stds: np.ndarray) -> None:
    """Symbols ``values`` (ints) with per-symbol quantised Gaussians; escapes at the range's edges."""
    v = values.astype(np.int64).reshape(-1)
    sym = np.clip(v, -GAUSS_RANGE, GAUSS_RANGE)
    family = _constriction().stream.model.QuantizedGaussian(-GAUSS_RANGE, GAUSS_RANGE)
    encoder.encode(sym.astype(np.int32), family, np.ascontiguousarray(means, dtype=np.float64).reshape(-1),
                   np.ascontiguousarray(stds, dtype=np.float64).reshape(-1))
    edge = np.abs(sym) == GAUSS_RANGE
    _encode_raw(encoder, np.abs(v[edge]) - GAUSS_RANGE)


def decode_gaussian(decoder, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    family = _constriction().stream.model.QuantizedGaussian(-GAUSS_RANGE, GAUSS_RANGE)
    m = np.ascontiguousarray(means, dtype=np.float64).reshape(-1)
    sym = np.asarray(decoder.decode(family, m, np.ascontiguousarray(stds, dtype=np.float64).reshape(-1)),
                     dtype=np.int64)
    edge = np.abs(sym) == GAUSS_RANGE
    excess = _decode_raw(decoder, int(edge.sum()))
    sym[edge] = np.sign(sym[edge]) * (GAUSS_RANGE + excess)
    return sym


def check_finished(decoder, what: str) -> None:
    """After the last symbol only the coder's own padding may remain (else: not this model's stream)."""
    try:
        left = decoder.maybe_exhausted()
    except Exception:  # older constriction: no such check
        return
    if not left:
        raise CodingError(f"{what}: data remains after the last symbol")
