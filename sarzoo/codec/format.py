"""The file ``sarzoo encode`` writes: a versioned header, the no-data mask, an index, the records.

Layout (integers little-endian)::

    magic    8 bytes  b"SARZCODE"
    version  u16      FORMAT_VERSION
    header   u32 length, u32 CRC32, UTF-8 JSON (model digest, recipe, preprocessing, tile grid,
                      scene shape/dtype/domain, georeferencing: CRS WKT, transform, nodata)
    mask     u32 length, u32 CRC32, zlib(packbits(valid pixels, row-major))  (lossless)
    index    u32 length, u32 CRC32, per record: varint payload length, u32 CRC32 of the payload
    records  the records' bytes, back to back, in the index's order, and nothing after them

A record is the entropy-coded latents of ``tiles.group`` tiles (the last one: the rest), in
row-major order of the tiles with a valid pixel. Which tiles those are follows from the mask (a
tile with no valid pixel is in no record: it costs 0 bits), so the index needs no tile numbers.
Every part is checked before it is used: lengths against the bytes that are there, CRCs, JSON
types, and sizes against limits; any violation is a ``SarzooError`` naming the file and the part,
never a traceback and never a decoding of damaged bytes. ``parse`` is fuzzed with hostile bytes
(``tests/test_codec_format.py``).
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarzoo.errors import SarzooError

MAGIC = b"SARZCODE"
FORMAT_VERSION = 1
#: Largest header JSON and scene accepted (a hostile length must not allocate gigabytes).
MAX_HEADER_BYTES = 1 << 20
MAX_PIXELS = 4 * 10**9
HEADER_KEYS = ("model", "scene", "tiles", "preprocessing", "geo")


@dataclass
class CodeFile:
    """A parsed (or to-be-written) code file: the header dict, the valid-pixel mask (H, W) and the
    records' payloads (each the coded latents of a group of tiles; wholly no-data tiles in none)."""

    header: dict[str, Any]
    mask: np.ndarray
    payloads: list[bytes] = field(default_factory=list)

    def tile_bytes(self) -> int:
        """Bytes of the index and the records: the latents plus their per-record side information."""
        return len(_index(self.payloads)) + sum(len(p) for p in self.payloads)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _index(payloads: list[bytes]) -> bytes:
    return b"".join(_varint(len(p)) + struct.pack("<I", zlib.crc32(p)) for p in payloads)


def _part(data: bytes) -> bytes:
    return struct.pack("<II", len(data), zlib.crc32(data)) + data


def serialise(code: CodeFile) -> bytes:
    header = json.dumps(code.header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    mask = zlib.compress(np.packbits(np.asarray(code.mask, dtype=bool).reshape(-1)).tobytes(), 9)
    return b"".join([MAGIC, struct.pack("<H", FORMAT_VERSION), _part(header), _part(mask),
                     _part(_index(code.payloads)), *code.payloads])


def fixed_bytes(code: CodeFile) -> int:
    """Bytes of everything but the tiles: magic, version, header and mask (with their lengths and CRCs)
    and the index's own length and CRC."""
    return len(serialise(code)) - code.tile_bytes()


class _Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def fail(self, what: str) -> SarzooError:
        return SarzooError(f"{self.where}: {what}; it is not a complete sarzoo code file (truncated or "
                           f"corrupted), so nothing was decoded")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"the {what} needs {n} bytes at offset {self.pos} but the file has "
                            f"{len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def part(self, what: str, limit: int) -> bytes:
        length, crc = struct.unpack("<II", self.take(8, f"{what}'s length"))
        if length > limit:
            raise self.fail(f"the {what} declares {length:,} bytes, more than the {limit:,} allowed")
        data = self.take(length, what)
        if zlib.crc32(data) != crc:
            raise self.fail(f"the {what} fails its CRC32 check")
        return data


def parse(data: bytes, where: str) -> CodeFile:
    """A code file from its bytes, every part checked (see the module doc); ``SarzooError`` otherwise."""
    r = _Reader(bytes(data), where)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise SarzooError(f"{where}: not a sarzoo code file (it does not start with {MAGIC!r}); "
                          "`sarzoo encode` writes them")
    r.pos = len(MAGIC)
    (version,) = struct.unpack("<H", r.take(2, "format version"))
    if version != FORMAT_VERSION:
        who = "a newer" if version > FORMAT_VERSION else "an older"
        raise SarzooError(f"{where}: code file format version {version}; this sarzoo reads version "
                          f"{FORMAT_VERSION} (written by {who} sarzoo)")
    raw = r.part("header", MAX_HEADER_BYTES)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise r.fail(f"the header is not UTF-8 JSON ({exc})") from exc
    h, w, n_tiles, expected = _check_header(header, r)
    mask_raw = r.part("no-data mask", MAX_PIXELS // 8 + 1024)
    try:
        d = zlib.decompressobj()
        packed = d.decompress(mask_raw, (h * w + 7) // 8 + 1)
    except zlib.error as exc:
        raise r.fail(f"the no-data mask does not decompress ({exc})") from exc
    if len(packed) != (h * w + 7) // 8 or d.unconsumed_tail or not d.eof:
        raise r.fail(f"the no-data mask does not hold {h}×{w} pixels")
    mask = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=h * w).astype(bool).reshape(h, w)
    coded = expected(mask)
    index = r.part("index", 16 * n_tiles + 16)
    entries, pos = [], 0
    for i in range(coded):
        n, shift = 0, 0
        while True:
            if pos >= len(index) or shift > 35:
                raise r.fail(f"the index ends before record {i + 1} of {coded}")
            b = index[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if pos + 4 > len(index):
            raise r.fail(f"the index ends before record {i + 1} of {coded}")
        entries.append((n, struct.unpack("<I", index[pos:pos + 4])[0]))
        pos += 4
    if pos != len(index):
        raise r.fail(f"the index has {len(index) - pos} bytes beyond its {coded} entries")
    payloads = []
    for i, (n, crc) in enumerate(entries):
        p = r.take(n, f"record {i + 1} of {coded}")
        if zlib.crc32(p) != crc:
            raise r.fail(f"record {i + 1} of {coded} fails its CRC32 check")
        payloads.append(p)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} bytes follow the last record")
    return CodeFile(header, mask, payloads)


def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _check_header(header: Any, r: _Reader):
    """The header's structure and numbers; returns (H, W, tile count, mask → coded tile count)."""
    if not isinstance(header, dict) or any(k not in header or not isinstance(header[k], dict) for k in HEADER_KEYS):
        raise r.fail(f"the header is not a mapping with the sections {', '.join(HEADER_KEYS)}")
    scene, tiles = header["scene"], header["tiles"]
    if not (_int(scene.get("height"), 1, MAX_PIXELS) and _int(scene.get("width"), 1, MAX_PIXELS)
            and scene["height"] * scene["width"] <= MAX_PIXELS and _int(scene.get("channels"), 1, 64)):
        raise r.fail("the header's scene size is missing or out of range")
    latent = tiles.get("latent")
    if not (_int(tiles.get("size"), 1, 1 << 16) and isinstance(latent, list) and len(latent) == 3
            and all(_int(v, 1, 1 << 16) for v in latent) and _int(tiles.get("group"), 1, 4096)):
        raise r.fail("the header's tile grid is missing or out of range")
    if not isinstance(header["model"].get("digest"), str):
        raise r.fail("the header names no model digest")
    h, w, t = scene["height"], scene["width"], tiles["size"]
    rows, cols = -(-h // t), -(-w // t)

    group = tiles["group"]

    def expected(mask: np.ndarray) -> int:
        return -(-int(tile_presence(mask, t).sum()) // group)

    return h, w, rows * cols, expected


def tile_presence(mask: np.ndarray, tile: int) -> np.ndarray:
    """(rows, cols) bool: the tiles of the grid holding at least one valid pixel."""
    h, w = mask.shape
    rows, cols = -(-h // tile), -(-w // tile)
    padded = np.zeros((rows * tile, cols * tile), dtype=bool)
    padded[:h, :w] = mask
    return padded.reshape(rows, tile, cols, tile).any(axis=(1, 3))
